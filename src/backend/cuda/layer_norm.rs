//! Launch wrappers for kernels/layer_norm.cu.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

const FILE: &str = "layer_norm";

fn row_cfg(rows: usize, cols: usize) -> LaunchConfig {
    let threads = if cols >= 512 {
        256
    } else if cols >= 128 {
        128
    } else {
        64
    };
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn forward(
    b: &CudaBackend,
    y: &CudaBuf,
    mean: &CudaBuf,
    rstd: &CudaBuf,
    x: &CudaBuf,
    w: &CudaBuf,
    bias: &CudaBuf,
    eps: f32,
) -> Result<()> {
    let cols = w.len();
    let rows = x.len() / cols;
    let k = crate::kname!("layer_norm_forward", x.dtype());
    b.launch(
        FILE,
        k,
        row_cfg(rows, cols),
        &[
            KArg::Ptr(y.ptr(b)),
            KArg::Ptr(mean.ptr(b)),
            KArg::Ptr(rstd.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(w.ptr(b)),
            KArg::Ptr(bias.ptr(b)),
            KArg::I32(cols as i32),
            KArg::F32(eps),
        ],
    )
}

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
) -> Result<()> {
    let cols = w.len();
    let rows = x.len() / cols;
    let dt = x.dtype();
    b.launch(
        FILE,
        crate::kname!("layer_norm_backward_dx", dt),
        row_cfg(rows, cols),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(dy.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(w.ptr(b)),
            KArg::Ptr(mean.ptr(b)),
            KArg::Ptr(rstd.ptr(b)),
            KArg::I32(cols as i32),
        ],
    )?;
    b.launch(
        FILE,
        crate::kname!("layer_norm_backward_dwdb", dt),
        grid_1d(cols, 128),
        &[
            KArg::Ptr(dw.ptr(b)),
            KArg::Ptr(db.ptr(b)),
            KArg::Ptr(dy.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(mean.ptr(b)),
            KArg::Ptr(rstd.ptr(b)),
            KArg::I32(rows as i32),
            KArg::I32(cols as i32),
        ],
    )
}
