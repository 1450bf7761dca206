//! Launch wrappers for kernels/relu.cu.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use crate::kname;
use anyhow::Result;

const FILE: &str = "relu";

fn cfg(n: usize) -> cudarc::driver::LaunchConfig {
    let mut c = grid_1d(n, 256);
    c.grid_dim.0 = c.grid_dim.0.min(65535 * 4);
    c
}

pub fn forward(b: &CudaBackend, y: &CudaBuf, x: &CudaBuf) -> Result<()> {
    let n = x.len();
    b.launch(
        FILE,
        kname!("relu_forward", x.dtype()),
        cfg(n),
        &[
            KArg::Ptr(y.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I64(n as i64),
        ],
    )
}

pub fn backward(b: &CudaBackend, dx: &CudaBuf, y: &CudaBuf, dy: &CudaBuf) -> Result<()> {
    let n = y.len();
    b.launch(
        FILE,
        kname!("relu_backward", y.dtype()),
        cfg(n),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(y.ptr(b)),
            KArg::Ptr(dy.ptr(b)),
            KArg::I64(n as i64),
        ],
    )
}
