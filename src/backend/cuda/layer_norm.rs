//! kernels/layer_norm.cu: declarations and the CUDA implementation of [`LayerNormOps`].

use super::launch::{kernels, Planned};
use super::reduce::{colsum_plan, partials_pass, ColsumPlan};
use super::softmax::tiered_row_cfg;
use super::{grid_1d, CudaBackend};
use crate::backend::api::layer_norm::{LayerNormOps, LayerNormOut, NormBackward, NormInput};
use crate::backend::api::Backend;
use crate::tensor::{DType, Tensor};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "layer_norm";
    /// One block per row.
    LayerNormForward = layer_norm_forward<T>(y: out T, mean: out f32, rstd: out f32,
        x: inp T, w: inp T, b: inp T, cols: val i32, eps: val f32);
    /// One block per row.
    LayerNormBackwardDx = layer_norm_backward_dx<T>(dx: out T, dy: inp T, x: inp T, w: inp T,
        mean: inp f32, rstd: inp f32, cols: val i32);
    /// One thread per column, accumulating into dw and db (`colsum` variant 1).
    LayerNormBackwardDwdb = layer_norm_backward_dwdb<T>(dw: out T, db: out T, dy: inp T,
        x: inp T, mean: inp f32, rstd: inp f32, rows: val i32, cols: val i32);
    /// Pass 1 of dw, db (`colsum` variant 2): block (64-column tile, row split), 256 threads;
    /// partials [2][splits][cols]. Pass 2 is reduce.cu's `colsum_final`.
    LayerNormDwdbPartials = layer_norm_dwdb_partials<T>(partials: out f32, dy: inp T, x: inp T,
        mean: inp f32, rstd: inp f32, rows: val i32, cols: val i32, rows_per_split: val i32);
}

/// dw += Σ_r dy·x̂ and db += Σ_r dy as two planned launches (`colsum` variant 2);
/// `partials` holds `plan.partials_len(2)` f32.
pub fn dwdb_plans<'a>(
    plan: &ColsumPlan,
    a: &'a NormBackward<'_>,
    partials: &'a Tensor,
) -> Vec<Planned<'a>> {
    let (dy, x, mean, rstd) = (a.dy, a.x, a.mean, a.rstd);
    vec![
        partials_pass!(
            plan,
            LayerNormDwdbPartials {
                partials,
                dy,
                x,
                mean,
                rstd
            }
        ),
        plan.finish(a.dw, Some(a.db), partials, true),
    ]
}

/// One block per row; narrow rows get fewer threads.
pub(crate) fn row_cfg(rows: usize, cols: usize) -> LaunchConfig {
    tiered_row_cfg(rows, cols, &[(512, 256), (128, 128)], 64)
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
        if crate::backend::variants::variant("colsum")? == 2 {
            let plan = colsum_plan(rows, cols)?;
            let partials = self.alloc(&[plan.partials_len(2)], DType::F32)?;
            for p in dwdb_plans(&plan, &a, &partials) {
                p.launch(self)?;
            }
            return Ok(());
        }
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
