//! kernels/layer_norm.cu: declarations and the CUDA implementation of [`LayerNormOps`].

use super::launch::{kernels, Planned};
use super::reduce::{colsum_plan, partials_pass, ColsumPlan};
use super::softmax::tiered_row_cfg;
use super::{grid_1d, CudaBackend};
use crate::backend::api::layer_norm::{
    LayerNormOps, LayerNormOut, NormBackward, NormInput, Residual, ADD_NORM_MAX_COLS,
};
use crate::backend::api::Backend;
use crate::tensor::{DType, Tensor};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "layer_norm";
    /// One block per row (rows wider than `ADD_NORM_MAX_COLS`; narrower ones take the
    /// warp-per-row `add_layer_norm` without a residual).
    LayerNormForward = layer_norm_forward<T>(y: out T, mean: out f32, rstd: out f32,
        x: inp T, w: inp T, b: inp T, cols: val i32, eps: val f32);
    /// One block per row.
    LayerNormBackwardDx = layer_norm_backward_dx<T>(dx: out T, dy: inp T, x: inp T, w: inp T,
        mean: inp f32, rstd: inp f32, dres: opt_inp T, cols: val i32);
    /// One warp per row, [`ADD_LN_ROWS`] rows per block: s = x + r, y = LayerNorm(s) (or
    /// y = LayerNorm(x) with s and r null);
    /// `vec` 1 for 16-byte loads ([`warp_norm_plan`]); rows of at most
    /// `ADD_NORM_MAX_COLS` (32 lanes × `LN_MAX_PER_LANE`).
    AddLayerNorm = add_layer_norm<T>(s: opt_out T, y: out T, mean: out f32, rstd: out f32,
        x: inp T, r: opt_inp T, w: inp T, b: inp T, rows: val i64, cols: val i32, eps: val f32,
        vec: val i32);
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

/// Rows per block of `add_layer_norm` (one warp each; `LN_WARP_ROWS` in the .cu file).
pub const ADD_LN_ROWS: usize = 8;

/// The warp-per-row launch of `add_layer_norm`: y, mean and rstd from `a` (x, w, b, eps),
/// with `res` = (sum, r) the residual add before the norm (sum = x + r written, then
/// normalised), or None for a plain LayerNorm. None when a row is wider than
/// [`ADD_NORM_MAX_COLS`]. 16-byte loads (`vec`) when the row length and every tensor's element
/// offset are multiples of 16 bytes' worth of elements (buffers are allocated 256-byte
/// aligned).
pub fn warp_norm_plan<'a>(
    [y, mean, rstd]: [&'a Tensor; 3],
    a: NormInput<'a>,
    res: Option<(&'a Tensor, &'a Tensor)>,
) -> Option<Planned<'a>> {
    let cols = a.w.numel();
    if cols == 0 || cols > ADD_NORM_MAX_COLS {
        return None;
    }
    let rows = a.x.numel() / cols;
    let per16 = 16 / a.x.dtype.size_bytes();
    let (s, r) = (res.map(|p| p.0), res.map(|p| p.1));
    let all = [Some(y), Some(a.x), s, r, Some(a.w), Some(a.b)];
    let aligned = all
        .iter()
        .flatten()
        .all(|v| v.offset().is_multiple_of(per16));
    let k = AddLayerNorm {
        s,
        y,
        mean,
        rstd,
        x: a.x,
        r,
        w: a.w,
        b: a.b,
        rows: rows as i64,
        cols: cols as i32,
        eps: a.eps,
        vec: (aligned && cols.is_multiple_of(per16)) as i32,
    };
    let threads = 32 * ADD_LN_ROWS;
    Some(k.planned(grid_1d(
        rows.div_ceil(ADD_LN_ROWS) * threads,
        threads as u32,
    )))
}

/// One block per row; narrow rows get fewer threads.
pub fn row_cfg(rows: usize, cols: usize) -> LaunchConfig {
    tiered_row_cfg(rows, cols, &[(512, 256), (128, 128)], 64)
}

impl LayerNormOps for CudaBackend {
    fn layer_norm(&self, out: LayerNormOut, a: NormInput) -> Result<()> {
        let cols = a.w.numel();
        let rows = a.x.numel() / cols;
        if let Some(p) = warp_norm_plan([&*out.y, &*out.mean, &*out.rstd], a, None) {
            return p.launch(self);
        }
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
    fn add_layer_norm(&self, out: LayerNormOut, a: NormInput, res: Residual) -> Result<()> {
        let t = [&*out.y, &*out.mean, &*out.rstd];
        warp_norm_plan(t, a, Some((&*res.sum, res.r)))
            .ok_or_else(|| anyhow::anyhow!("add_layer_norm: rows wider than {ADD_NORM_MAX_COLS}"))?
            .launch(self)
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
            dres: a.dres,
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
