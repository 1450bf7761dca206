//! Launch wrappers for kernels/batch_norm.cu.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use crate::kname;
use anyhow::Result;
use cudarc::driver::LaunchConfig;

const FILE: &str = "batch_norm";

fn channel_cfg(c: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (c as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn elementwise_cfg(n: usize) -> LaunchConfig {
    let mut c = grid_1d(n, 256);
    c.grid_dim.0 = c.grid_dim.0.min(65535 * 4);
    c
}

/// Train mode: batch statistics into mean/rstd, running statistics updated, y normalised.
#[allow(clippy::too_many_arguments)]
pub fn forward_train(
    b: &CudaBackend,
    y: &CudaBuf,
    mean: &CudaBuf,
    rstd: &CudaBuf,
    running_mean: &CudaBuf,
    running_var: &CudaBuf,
    x: &CudaBuf,
    w: &CudaBuf,
    bias: &CudaBuf,
    n: usize,
    hw: usize,
    eps: f32,
    momentum: f32,
) -> Result<()> {
    let c = w.len();
    let dt = x.dtype();
    b.launch(
        FILE,
        kname!("batch_norm_stats", dt),
        channel_cfg(c),
        &[
            KArg::Ptr(mean.ptr(b)),
            KArg::Ptr(rstd.ptr(b)),
            KArg::Ptr(running_mean.ptr(b)),
            KArg::Ptr(running_var.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I32(n as i32),
            KArg::I32(c as i32),
            KArg::I64(hw as i64),
            KArg::F32(eps),
            KArg::F32(momentum),
        ],
    )?;
    b.launch(
        FILE,
        kname!("batch_norm_apply", dt),
        elementwise_cfg(x.len()),
        &[
            KArg::Ptr(y.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(w.ptr(b)),
            KArg::Ptr(bias.ptr(b)),
            KArg::Ptr(mean.ptr(b)),
            KArg::Ptr(rstd.ptr(b)),
            KArg::I32(c as i32),
            KArg::I64(hw as i64),
            KArg::I64(x.len() as i64),
        ],
    )
}

/// Eval mode: y normalised with the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn forward_eval(
    b: &CudaBackend,
    y: &CudaBuf,
    x: &CudaBuf,
    w: &CudaBuf,
    bias: &CudaBuf,
    running_mean: &CudaBuf,
    running_var: &CudaBuf,
    hw: usize,
    eps: f32,
) -> Result<()> {
    let c = w.len();
    b.launch(
        FILE,
        kname!("batch_norm_eval", x.dtype()),
        elementwise_cfg(x.len()),
        &[
            KArg::Ptr(y.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(w.ptr(b)),
            KArg::Ptr(bias.ptr(b)),
            KArg::Ptr(running_mean.ptr(b)),
            KArg::Ptr(running_var.ptr(b)),
            KArg::I32(c as i32),
            KArg::I64(hw as i64),
            KArg::I64(x.len() as i64),
            KArg::F32(eps),
        ],
    )
}

/// Train-mode backward: dx written, dw and db accumulated.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    b: &CudaBackend,
    dx: &CudaBuf,
    dw: &CudaBuf,
    db: &CudaBuf,
    dy: &CudaBuf,
    x: &CudaBuf,
    w: &CudaBuf,
    mean: &CudaBuf,
    rstd: &CudaBuf,
    n: usize,
    hw: usize,
) -> Result<()> {
    let c = w.len();
    b.launch(
        FILE,
        kname!("batch_norm_backward", x.dtype()),
        channel_cfg(c),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(dw.ptr(b)),
            KArg::Ptr(db.ptr(b)),
            KArg::Ptr(dy.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(w.ptr(b)),
            KArg::Ptr(mean.ptr(b)),
            KArg::Ptr(rstd.ptr(b)),
            KArg::I32(n as i32),
            KArg::I32(c as i32),
            KArg::I64(hw as i64),
        ],
    )
}
