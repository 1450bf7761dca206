//! kernels/reduce.cu: deterministic two-pass sums, and the CUDA implementation of
//! [`ReduceOps`].

use super::launch::{kernels, Planned};
use super::CudaBackend;
use crate::backend::api::{Backend, ReduceOps};
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

kernels! { file "reduce";
    /// One partial sum per block; the grid size depends only on n.
    SumPartials = sum_partials<T>(partials: out f32, x: inp T, n: val i64);
    SumsqPartials = sumsq_partials<T>(partials: out f32, x: inp T, n: val i64);
    /// One block sums the partials.
    SumFinal = sum_final(out: out f32, partials: inp f32, count: val i32, scale: val f32);
    /// Column sums, pass 1: block (64-column tile, row split), 256 threads; one partial per
    /// (split, column).
    ColsumPartials = colsum_partials<T>(partials: out f32, x: inp T, rows: val i32,
        cols: val i32, rows_per_split: val i32);
    /// Column sums, pass 2: blocks of 32 columns × 8 warps; warp w sums every 8th split from
    /// w in order, then the 8 warp sums add in warp order into out0 (and, given out1, the
    /// second set into out1).
    ColsumFinal = colsum_final<T>(out0: out T, out1: opt_out T, partials: inp f32,
        splits: val i32, cols: val i32, accumulate: val i32);
}

/// Columns per block of the column-sum kernels (`COLSUM_TILE` in kernels/common.cuh).
pub const COLSUM_TILE: usize = 64;
/// Threads per block of the partial-sum pass (`COLSUM_THREADS`).
pub const COLSUM_THREADS: u32 = 256;
/// The partial pass aims at about this many blocks (8 per SM fit; ~1 wave on 132 SMs).
const COLSUM_BLOCKS: usize = 1024;
/// No split gets fewer rows than this (short sums are not worth a partial each).
const COLSUM_MIN_ROWS: usize = 32;

/// How the deterministic column sum over the rows of a [rows, cols] matrix is split:
/// `tiles` column tiles × `splits` row ranges of `rows_per_split` rows. A function of
/// (rows, cols) only, so the order of additions, and the result, repeat on every run and card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColsumPlan {
    pub rows: usize,
    pub cols: usize,
    pub tiles: usize,
    pub splits: usize,
    pub rows_per_split: usize,
}

/// Plans the column sum (bias gradients, LayerNorm's dw and db); errors past the kernels'
/// 32-bit row and column indices.
pub fn colsum_plan(rows: usize, cols: usize) -> Result<ColsumPlan> {
    if rows > i32::MAX as usize || cols > i32::MAX as usize {
        bail!("column sum of {rows} × {cols}: exceeds the kernels' 32-bit indices");
    }
    let tiles = cols.div_ceil(COLSUM_TILE).max(1);
    let want = (COLSUM_BLOCKS / tiles).max(1);
    let splits = want.min(rows.div_ceil(COLSUM_MIN_ROWS)).max(1);
    let rows_per_split = rows.div_ceil(splits).max(1);
    let splits = rows.div_ceil(rows_per_split).max(1);
    Ok(ColsumPlan {
        rows,
        cols,
        tiles,
        splits,
        rows_per_split,
    })
}

impl ColsumPlan {
    /// f32 elements of the partials buffer for `sums` sums per column.
    pub fn partials_len(&self, sums: usize) -> usize {
        sums * self.splits * self.cols
    }
    /// The partial pass's grid: (tiles, splits), 256 threads.
    pub fn partials_cfg(&self) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (self.tiles as u32, self.splits as u32, 1),
            block_dim: (COLSUM_THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }
    /// The final pass over this plan's partials (see [`colsum_finish`]).
    pub fn finish<'a>(
        &self,
        out0: &'a Tensor,
        out1: Option<&'a Tensor>,
        partials: &'a Tensor,
        accumulate: bool,
    ) -> Planned<'a> {
        colsum_finish(out0, out1, partials, self.splits, self.cols, accumulate)
    }
}

/// Pass 1 of a `colsum` variant 2 sum: the launch struct `$K` with the plan's `rows`, `cols`
/// and `rows_per_split` plus the fields given by name, planned on the plan's partials grid.
macro_rules! partials_pass {
    ($plan:expr, $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }) => {{
        let plan: &$crate::backend::cuda::reduce::ColsumPlan = $plan;
        $K {
            $($f $(: $v)?,)*
            rows: plan.rows as i32,
            cols: plan.cols as i32,
            rows_per_split: plan.rows_per_split as i32,
        }
        .planned(plan.partials_cfg())
    }};
}
pub(crate) use partials_pass;

/// `out0[c] (+)= Σ_s partials[s, c]` for `cols` columns and `splits` rows of f32 partials, in
/// an order fixed by `splits` (see [`colsum_final_cfg`]); with `out1`, the next `splits` rows
/// go to it.
pub fn colsum_finish<'a>(
    out0: &'a Tensor,
    out1: Option<&'a Tensor>,
    partials: &'a Tensor,
    splits: usize,
    cols: usize,
    accumulate: bool,
) -> Planned<'a> {
    ColsumFinal {
        out0,
        out1,
        partials,
        splits: splits as i32,
        cols: cols as i32,
        accumulate: accumulate as i32,
    }
    .planned(colsum_final_cfg(cols))
}

/// Columns per block of the final pass (`COLSUM_FINAL_COLS` in kernels/reduce.cu).
pub const COLSUM_FINAL_COLS: usize = 32;

/// The final pass's grid: a block of 8 warps per 32 columns (warp w adds splits w, w + 8, …).
pub fn colsum_final_cfg(cols: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (cols.div_ceil(COLSUM_FINAL_COLS).max(1) as u32, 1, 1),
        block_dim: (COLSUM_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `out[c] (+)= Σ_r x[r, c]` (x row-major [rows, out.numel()]) as two planned launches;
/// `partials` holds `plan.partials_len(1)` f32.
pub fn sum_rows_plans<'a>(
    plan: &ColsumPlan,
    out: &'a Tensor,
    x: &'a Tensor,
    partials: &'a Tensor,
    accumulate: bool,
) -> Vec<Planned<'a>> {
    vec![
        partials_pass!(plan, ColsumPartials { partials, x }),
        plan.finish(out, None, partials, accumulate),
    ]
}

const THREADS: u32 = 256;

/// The number of partial sums for n elements (a function of n only, so results are
/// reproducible run to run).
pub(crate) fn blocks_for(n: usize) -> u32 {
    (n.div_ceil(THREADS as usize * 8)).clamp(1, 1024) as u32
}

impl ReduceOps for CudaBackend {
    fn sum(&self, out: &mut Tensor, x: &Tensor, square: bool, scale: f32) -> Result<()> {
        let n = x.numel();
        let g = blocks_for(n);
        let mut partials = self.alloc(&[g as usize], DType::F32)?;
        let cfg = LaunchConfig {
            grid_dim: (g, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let p = &mut partials;
        if square {
            SumsqPartials {
                partials: p,
                x,
                n: n as i64,
            }
            .launch(self, cfg)?;
        } else {
            SumPartials {
                partials: p,
                x,
                n: n as i64,
            }
            .launch(self, cfg)?;
        }
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        SumFinal {
            out,
            partials: &partials,
            count: g as i32,
            scale,
        }
        .launch(self, one)
    }
}
