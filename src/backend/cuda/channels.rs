//! Launch wrappers for kernels/channels.cu.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use crate::kname;
use anyhow::Result;

const FILE: &str = "channels";

fn cfg(n: usize) -> cudarc::driver::LaunchConfig {
    let mut c = grid_1d(n, 256);
    c.grid_dim.0 = c.grid_dim.0.min(65535 * 4);
    c
}

/// See `backend::cpu::channels::copy_strided`.
#[allow(clippy::too_many_arguments)]
pub fn copy_strided(
    b: &CudaBackend,
    dst: &CudaBuf,
    src: &CudaBuf,
    batch: usize,
    len: usize,
    dst_stride: usize,
    dst_off: usize,
    src_stride: usize,
    src_off: usize,
) -> Result<()> {
    b.launch(
        FILE,
        kname!("copy_strided", src.dtype()),
        cfg(batch * len),
        &[
            KArg::Ptr(dst.ptr(b)),
            KArg::Ptr(src.ptr(b)),
            KArg::I64(batch as i64),
            KArg::I64(len as i64),
            KArg::I64(dst_stride as i64),
            KArg::I64(dst_off as i64),
            KArg::I64(src_stride as i64),
            KArg::I64(src_off as i64),
        ],
    )
}

/// out[b, c, r] = x[b, r, c].
pub fn transpose_last2(
    b: &CudaBackend,
    out: &CudaBuf,
    x: &CudaBuf,
    batch: usize,
    rows: usize,
    cols: usize,
) -> Result<()> {
    b.launch(
        FILE,
        kname!("transpose_last2", x.dtype()),
        cfg(x.len()),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I64(batch as i64),
            KArg::I64(rows as i64),
            KArg::I64(cols as i64),
        ],
    )
}
