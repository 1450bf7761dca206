//! Launch wrappers for kernels/upsample.cu.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use crate::kname;
use anyhow::Result;

const FILE: &str = "upsample";

fn cfg(n: usize) -> cudarc::driver::LaunchConfig {
    let mut c = grid_1d(n, 256);
    c.grid_dim.0 = c.grid_dim.0.min(65535 * 4);
    c
}

/// Nearest ×k of `planes` planes of [h, w].
pub fn nearest_forward(
    b: &CudaBackend,
    out: &CudaBuf,
    x: &CudaBuf,
    planes: usize,
    h: usize,
    w: usize,
    k: usize,
) -> Result<()> {
    b.launch(
        FILE,
        kname!("upsample_nearest_forward", x.dtype()),
        cfg(out.len()),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I64(planes as i64),
            KArg::I32(h as i32),
            KArg::I32(w as i32),
            KArg::I32(k as i32),
        ],
    )
}

#[allow(clippy::too_many_arguments)]
pub fn nearest_backward(
    b: &CudaBackend,
    dx: &CudaBuf,
    dy: &CudaBuf,
    planes: usize,
    h: usize,
    w: usize,
    k: usize,
) -> Result<()> {
    b.launch(
        FILE,
        kname!("upsample_nearest_backward", dy.dtype()),
        cfg(dx.len()),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(dy.ptr(b)),
            KArg::I64(planes as i64),
            KArg::I32(h as i32),
            KArg::I32(w as i32),
            KArg::I32(k as i32),
        ],
    )
}

/// Bilinear [h, w] → [ho, wo], with PyTorch's `align_corners` (passed as 0/1).
pub fn bilinear_forward(
    b: &CudaBackend,
    out: &CudaBuf,
    x: &CudaBuf,
    planes: usize,
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
    align_corners: bool,
) -> Result<()> {
    b.launch(
        FILE,
        kname!("upsample_bilinear_forward", x.dtype()),
        cfg(out.len()),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I64(planes as i64),
            KArg::I32(h as i32),
            KArg::I32(w as i32),
            KArg::I32(ho as i32),
            KArg::I32(wo as i32),
            KArg::I32(align_corners as i32),
        ],
    )
}

pub fn bilinear_backward(
    b: &CudaBackend,
    dx: &CudaBuf,
    dy: &CudaBuf,
    planes: usize,
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
    align_corners: bool,
) -> Result<()> {
    b.launch(
        FILE,
        kname!("upsample_bilinear_backward", dy.dtype()),
        cfg(dx.len()),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(dy.ptr(b)),
            KArg::I64(planes as i64),
            KArg::I32(h as i32),
            KArg::I32(w as i32),
            KArg::I32(ho as i32),
            KArg::I32(wo as i32),
            KArg::I32(align_corners as i32),
        ],
    )
}
