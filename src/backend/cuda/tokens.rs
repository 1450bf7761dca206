//! kernels/tokens.cu: declarations and the CUDA implementation of [`TokenOps`].

use super::launch::{kernels, Planned};
use super::reduce::{colsum_plan, partials_pass, ColsumPlan};
use super::{block_per, grid_1d, grid_stride, CudaBackend};
use crate::backend::api::tokens::{GatherGrads, GatherInput, TokenOps};
use crate::backend::api::Backend;
use crate::tensor::{DType, Tensor};
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
    /// One thread per column, accumulating into dfill (`colsum` variant 1).
    GatherFillBackward = gather_fill_backward<T>(dfill: out T, dout: inp T, idx: inp i32,
        rows: val i64, c: val i32);
    /// The fill gradient as `colsum` variant 2's pass 1 over the rows whose idx is negative
    /// (block: 64-column tile × row split, 256 threads); reduce.cu's `colsum_final` adds the
    /// partials into dfill.
    GatherFillPartials = gather_fill_partials<T>(partials: out f32, dout: inp T, idx: inp i32,
        rows: val i32, cols: val i32, rows_per_split: val i32);
}

/// The fill gradient's launches under `colsum` variant 2: partials over the rows of `dout`
/// ([rows, cols], rows = idx.numel()) whose index is negative, then the ordered final pass
/// accumulating into `dfill`. `partials` holds `plan.partials_len(1)` f32.
pub fn fill_grad_plans<'a>(
    plan: &ColsumPlan,
    dfill: &'a Tensor,
    dout: &'a Tensor,
    idx: &'a Tensor,
    partials: &'a Tensor,
) -> Vec<Planned<'a>> {
    vec![
        partials_pass!(
            plan,
            GatherFillPartials {
                partials,
                dout,
                idx
            }
        ),
        plan.finish(dfill, None, partials, true),
    ]
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
            if crate::backend::variants::variant("colsum")? == 2 {
                let plan = colsum_plan(idx.numel(), c)?;
                let partials = self.alloc(&[plan.partials_len(1)], DType::F32)?;
                for p in fill_grad_plans(&plan, dfill, dout, idx, &partials) {
                    p.launch(self)?;
                }
                return Ok(());
            }
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
