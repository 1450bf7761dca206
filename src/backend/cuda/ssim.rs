//! Launch wrappers for kernels/ssim.cu (fp32 planes; see that file for the conventions).

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

const FILE: &str = "ssim";

fn cfg(n: usize) -> LaunchConfig {
    let mut c = grid_1d(n, 256);
    c.grid_dim.0 = c.grid_dim.0.min(65535 * 4);
    c
}

/// The size of an axis after 'valid' 11-tap filtering (unchanged when shorter than 11).
pub fn filtered(len: usize) -> usize {
    if len >= 11 {
        len - 10
    } else {
        len
    }
}

/// The size of an axis after 2×2 average pooling with padding len % 2.
pub fn pooled(len: usize) -> usize {
    (len + 2 * (len % 2) - 2) / 2 + 1
}

/// out [5][p][filtered(h)][w]: x, y, x², y², xy filtered along H.
pub fn filter_rows(
    b: &CudaBackend,
    out: &CudaBuf,
    x: &CudaBuf,
    y: &CudaBuf,
    p: usize,
    h: usize,
    w: usize,
) -> Result<()> {
    b.launch(
        FILE,
        "ssim_filter_rows",
        cfg(p * filtered(h) * w),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(y.ptr(b)),
            KArg::I64(p as i64),
            KArg::I32(h as i32),
            KArg::I32(w as i32),
        ],
    )
}

/// out [maps][p][h][filtered(w)] from in [maps][p][h][w].
#[allow(clippy::too_many_arguments)]
pub fn filter_cols(
    b: &CudaBackend,
    out: &CudaBuf,
    input: &CudaBuf,
    maps: usize,
    p: usize,
    h: usize,
    w: usize,
) -> Result<()> {
    b.launch(
        FILE,
        "ssim_filter_cols",
        cfg(maps * p * h * filtered(w)),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(input.ptr(b)),
            KArg::I32(maps as i32),
            KArg::I64(p as i64),
            KArg::I32(h as i32),
            KArg::I32(w as i32),
        ],
    )
}

/// The transpose of `filter_cols`: out [maps][p][h][w] from in [maps][p][h][filtered(w)].
#[allow(clippy::too_many_arguments)]
pub fn filter_cols_t(
    b: &CudaBackend,
    out: &CudaBuf,
    input: &CudaBuf,
    maps: usize,
    p: usize,
    h: usize,
    w: usize,
) -> Result<()> {
    b.launch(
        FILE,
        "ssim_filter_cols_t",
        cfg(maps * p * h * w),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(input.ptr(b)),
            KArg::I32(maps as i32),
            KArg::I64(p as i64),
            KArg::I32(h as i32),
            KArg::I32(w as i32),
        ],
    )
}

/// Per-plane means of the cs and ssim maps from the five filtered maps.
#[allow(clippy::too_many_arguments)]
pub fn plane_means(
    b: &CudaBackend,
    cs: &CudaBuf,
    ssim: &CudaBuf,
    f: &CudaBuf,
    p: usize,
    plane: usize,
    c1: f32,
    c2: f32,
) -> Result<()> {
    let cfg = LaunchConfig {
        grid_dim: (p as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    b.launch(
        FILE,
        "ssim_plane_means",
        cfg,
        &[
            KArg::Ptr(cs.ptr(b)),
            KArg::Ptr(ssim.ptr(b)),
            KArg::Ptr(f.ptr(b)),
            KArg::I64(p as i64),
            KArg::I32(plane as i32),
            KArg::F32(c1),
            KArg::F32(c2),
        ],
    )
}

/// out [3][p][plane]: gradients w.r.t. μx, E[x²], E[xy] of gs·mean(ssim) + gc·mean(cs).
#[allow(clippy::too_many_arguments)]
pub fn grad_maps(
    b: &CudaBackend,
    out: &CudaBuf,
    f: &CudaBuf,
    gs: &CudaBuf,
    gc: &CudaBuf,
    p: usize,
    plane: usize,
    c1: f32,
    c2: f32,
) -> Result<()> {
    b.launch(
        FILE,
        "ssim_grad_maps",
        cfg(p * plane),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(f.ptr(b)),
            KArg::Ptr(gs.ptr(b)),
            KArg::Ptr(gc.ptr(b)),
            KArg::I64(p as i64),
            KArg::I32(plane as i32),
            KArg::F32(c1),
            KArg::F32(c2),
        ],
    )
}

/// dx [p][h][w] (= or +=) from the three column-transposed maps [3][p][filtered(h)][w].
#[allow(clippy::too_many_arguments)]
pub fn filter_rows_t_combine(
    b: &CudaBackend,
    dx: &CudaBuf,
    input: &CudaBuf,
    x: &CudaBuf,
    y: &CudaBuf,
    p: usize,
    h: usize,
    w: usize,
    accumulate: bool,
) -> Result<()> {
    b.launch(
        FILE,
        "ssim_filter_rows_t_combine",
        cfg(p * h * w),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(input.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(y.ptr(b)),
            KArg::I64(p as i64),
            KArg::I32(h as i32),
            KArg::I32(w as i32),
            KArg::I32(accumulate as i32),
        ],
    )
}

/// out [p][pooled(h)][pooled(w)].
pub fn avg_pool(
    b: &CudaBackend,
    out: &CudaBuf,
    x: &CudaBuf,
    p: usize,
    h: usize,
    w: usize,
) -> Result<()> {
    b.launch(
        FILE,
        "ssim_avg_pool",
        cfg(p * pooled(h) * pooled(w)),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I64(p as i64),
            KArg::I32(h as i32),
            KArg::I32(w as i32),
        ],
    )
}

/// dx [p][h][w] += the transpose of `avg_pool` applied to d [p][pooled(h)][pooled(w)].
pub fn avg_pool_backward_add(
    b: &CudaBackend,
    dx: &CudaBuf,
    d: &CudaBuf,
    p: usize,
    h: usize,
    w: usize,
) -> Result<()> {
    b.launch(
        FILE,
        "ssim_avg_pool_backward_add",
        cfg(p * h * w),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(d.ptr(b)),
            KArg::I64(p as i64),
            KArg::I32(h as i32),
            KArg::I32(w as i32),
        ],
    )
}
