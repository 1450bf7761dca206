//! Launch wrappers for kernels/softmax.cu.

use super::launch::KArg;
use super::{CudaBackend, CudaBuf};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

const FILE: &str = "softmax";

/// One block per row; narrow rows get fewer threads.
pub fn row_cfg(rows: usize, cols: usize) -> LaunchConfig {
    let threads = if cols >= 1024 {
        256
    } else if cols >= 128 {
        128
    } else {
        32
    };
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

pub fn forward(b: &CudaBackend, y: &CudaBuf, x: &CudaBuf, cols: usize) -> Result<()> {
    let rows = x.len() / cols;
    let k = crate::kname!("softmax_forward", x.dtype());
    b.launch(
        FILE,
        k,
        row_cfg(rows, cols),
        &[
            KArg::Ptr(y.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I32(cols as i32),
        ],
    )
}

pub fn backward(
    b: &CudaBackend,
    dx: &CudaBuf,
    y: &CudaBuf,
    dy: &CudaBuf,
    cols: usize,
) -> Result<()> {
    let rows = y.len() / cols;
    let k = crate::kname!("softmax_backward", y.dtype());
    b.launch(
        FILE,
        k,
        row_cfg(rows, cols),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(y.ptr(b)),
            KArg::Ptr(dy.ptr(b)),
            KArg::I32(cols as i32),
        ],
    )
}
