//! kernels/tokens.cu: declarations and the CUDA implementation of [`TokenOps`].

use super::launch::kernels;
use super::{block_per, grid_1d, grid_stride, CudaBackend};
use crate::backend::api::tokens::{GatherGrads, GatherInput, TokenOps};
use crate::tensor::Tensor;
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "tokens";
    /// Grid-stride over the patch elements; dims of the image [b, c, h, w], patch p.
    Patchify = patchify<T>(patches: out T, img: inp T, b: val i32, c: val i32, h: val i32,
        w: val i32, p: val i32);
    /// Grid-stride over the patch elements.
    Unpatchify = unpatchify<T>(img: out T, patches: inp T, b: val i32, c: val i32, h: val i32,
        w: val i32, p: val i32);
    /// One block per output row; `fill` may be null (zeros).
    GatherRows = gather_rows<T>(out: out T, src: inp T, idx: inp i32, fill: opt_inp T,
        ns: val i32, nd: val i32, c: val i32);
    /// One block per source row.
    GatherRowsBackward = gather_rows_backward<T>(dsrc: out T, dout: inp T, idx: inp i32,
        ns: val i32, nd: val i32, c: val i32);
    /// One thread per column, accumulating into dfill.
    GatherFillBackward = gather_fill_backward<T>(dfill: out T, dout: inp T, idx: inp i32,
        rows: val i64, c: val i32);
}

pub(crate) fn rows_cfg(rows: usize, c: usize) -> LaunchConfig {
    block_per(rows, if c >= 256 { 256 } else { 64 }, 0)
}

/// (b, c, h, w) of an NCHW image as the kernels take them (`ops` checked the rank).
fn dims(img: &Tensor) -> [i32; 4] {
    [img.shape[0], img.shape[1], img.shape[2], img.shape[3]].map(|d| d as i32)
}

impl TokenOps for CudaBackend {
    fn patchify(&self, patches: &mut Tensor, img: &Tensor, p: usize) -> Result<()> {
        let [b, c, h, w] = dims(img);
        let n = patches.numel();
        Patchify {
            patches,
            img,
            b,
            c,
            h,
            w,
            p: p as i32,
        }
        .launch(self, grid_stride(n))
    }
    fn unpatchify(&self, img: &mut Tensor, patches: &Tensor, p: usize) -> Result<()> {
        let [b, c, h, w] = dims(img);
        Unpatchify {
            img,
            patches,
            b,
            c,
            h,
            w,
            p: p as i32,
        }
        .launch(self, grid_stride(patches.numel()))
    }
    fn gather_rows(&self, out: &mut Tensor, a: GatherInput) -> Result<()> {
        let (src, idx) = (a.src, a.idx);
        let (ns, c, nd) = (src.shape[1], src.shape[2], idx.shape[1]);
        let rows = idx.numel();
        GatherRows {
            out,
            src,
            idx,
            fill: a.fill,
            ns: ns as i32,
            nd: nd as i32,
            c: c as i32,
        }
        .launch(self, rows_cfg(rows, c))
    }
    fn gather_rows_backward(&self, g: GatherGrads, dout: &Tensor, idx: &Tensor) -> Result<()> {
        let (dsrc, dfill) = (g.dsrc, g.dfill);
        let (ns, c, nd) = (dsrc.shape[1], dsrc.shape[2], idx.shape[1]);
        let batch = idx.numel() / nd.max(1);
        GatherRowsBackward {
            dsrc,
            dout,
            idx,
            ns: ns as i32,
            nd: nd as i32,
            c: c as i32,
        }
        .launch(self, rows_cfg(batch * ns, c))?;
        if let Some(dfill) = dfill {
            GatherFillBackward {
                dfill,
                dout,
                idx,
                rows: idx.numel() as i64,
                c: c as i32,
            }
            .launch(self, grid_1d(c, 128))?;
        }
        Ok(())
    }
}
