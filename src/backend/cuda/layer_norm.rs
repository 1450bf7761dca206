//! kernels/layer_norm.cu: declarations and the CUDA implementation of [`LayerNormOps`].

use super::launch::kernels;
use super::{block_per, grid_1d, CudaBackend};
use crate::backend::api::layer_norm::{LayerNormOps, LayerNormOut, NormBackward, NormInput};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "layer_norm";
    /// One block per row.
    LayerNormForward = layer_norm_forward<T>(y: out T, mean: out f32, rstd: out f32,
        x: inp T, w: inp T, b: inp T, cols: val i32, eps: val f32);
    /// One block per row.
    LayerNormBackwardDx = layer_norm_backward_dx<T>(dx: out T, dy: inp T, x: inp T, w: inp T,
        mean: inp f32, rstd: inp f32, cols: val i32);
    /// One thread per column, accumulating into dw and db.
    LayerNormBackwardDwdb = layer_norm_backward_dwdb<T>(dw: out T, db: out T, dy: inp T,
        x: inp T, mean: inp f32, rstd: inp f32, rows: val i32, cols: val i32);
}

pub(crate) fn row_cfg(rows: usize, cols: usize) -> LaunchConfig {
    let threads = if cols >= 512 {
        256
    } else if cols >= 128 {
        128
    } else {
        64
    };
    block_per(rows, threads, 0)
}

impl LayerNormOps for CudaBackend {
    fn layer_norm(&self, out: LayerNormOut, a: NormInput) -> Result<()> {
        let cols = a.w.numel();
        let rows = a.x.numel() / cols;
        LayerNormForward {
            y: out.y,
            mean: out.mean,
            rstd: out.rstd,
            x: a.x,
            w: a.w,
            b: a.b,
            cols: cols as i32,
            eps: a.eps,
        }
        .launch(self, row_cfg(rows, cols))
    }
    fn layer_norm_backward(&self, a: NormBackward) -> Result<()> {
        let cols = a.w.numel();
        let rows = a.x.numel() / cols;
        LayerNormBackwardDx {
            dx: a.dx,
            dy: a.dy,
            x: a.x,
            w: a.w,
            mean: a.mean,
            rstd: a.rstd,
            cols: cols as i32,
        }
        .launch(self, row_cfg(rows, cols))?;
        LayerNormBackwardDwdb {
            dw: a.dw,
            db: a.db,
            dy: a.dy,
            x: a.x,
            mean: a.mean,
            rstd: a.rstd,
            rows: rows as i32,
            cols: cols as i32,
        }
        .launch(self, grid_1d(cols, 128))
    }
}
