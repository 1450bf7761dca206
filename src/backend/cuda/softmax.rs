//! kernels/softmax.cu: declarations and the CUDA implementation of [`SoftmaxOps`].

use super::launch::kernels;
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

/// One block per row; narrow rows get fewer threads.
pub fn row_cfg(rows: usize, cols: usize) -> LaunchConfig {
    let threads = if cols >= 1024 {
        256
    } else if cols >= 128 {
        128
    } else {
        32
    };
    block_per(rows, threads, 0)
}

/// The length of the last axis (`ops` checked it is non-zero).
pub(crate) fn last_axis(t: &Tensor) -> usize {
    t.shape.last().copied().unwrap_or(1)
}

impl SoftmaxOps for CudaBackend {
    fn softmax(&self, y: &mut Tensor, x: &Tensor) -> Result<()> {
        let cols = last_axis(x);
        let rows = x.numel() / cols;
        SoftmaxForward {
            y,
            x,
            cols: cols as i32,
        }
        .launch(self, row_cfg(rows, cols))
    }
    fn softmax_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()> {
        let cols = last_axis(y);
        let rows = y.numel() / cols;
        SoftmaxBackward {
            dx,
            y,
            dy,
            cols: cols as i32,
        }
        .launch(self, row_cfg(rows, cols))
    }
}
