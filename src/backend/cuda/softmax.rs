//! kernels/softmax.cu: declarations and the CUDA implementation of [`SoftmaxOps`].

use super::launch::{kernels, launch_rows};
use super::{block_per, CudaBackend};
use crate::backend::api::SoftmaxOps;
use crate::tensor::Tensor;
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "softmax";
    /// One block per row.
    SoftmaxForward = softmax_forward<T>(y: out T, x: inp T, cols: val i32);
    /// One block per row.
    SoftmaxBackward = softmax_backward<T>(dx: out T, y: inp T, dy: inp T, cols: val i32);
}

/// One block per row with the threads of the first `(min_cols, threads)` tier that `cols`
/// reaches, else `narrow`: narrow rows get fewer threads.
pub(crate) fn tiered_row_cfg(
    rows: usize,
    cols: usize,
    tiers: &[(usize, u32)],
    narrow: u32,
) -> LaunchConfig {
    let threads = tiers
        .iter()
        .find(|&&(min_cols, _)| cols >= min_cols)
        .map_or(narrow, |&(_, threads)| threads);
    block_per(rows, threads, 0)
}

/// One block per row; narrow rows get fewer threads.
pub fn row_cfg(rows: usize, cols: usize) -> LaunchConfig {
    tiered_row_cfg(rows, cols, &[(1024, 256), (128, 128)], 32)
}

/// The length of the last axis (`ops` checked it is non-zero).
pub(crate) fn last_axis(t: &Tensor) -> usize {
    t.shape.last().copied().unwrap_or(1)
}

/// (rows, cols) of a tensor reduced along its last axis.
pub(crate) fn rows_cols(t: &Tensor) -> (usize, usize) {
    let cols = last_axis(t);
    (t.numel() / cols, cols)
}

impl SoftmaxOps for CudaBackend {
    fn softmax(&self, y: &mut Tensor, x: &Tensor) -> Result<()> {
        launch_rows!(self, row_cfg, rows_cols(x), cols, SoftmaxForward { y, x })
    }
    fn softmax_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()> {
        launch_rows!(
            self,
            row_cfg,
            rows_cols(y),
            cols,
            SoftmaxBackward { dx, y, dy }
        )
    }
}
