//! Launch wrapper for kernels/dropout.cu.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use anyhow::Result;

pub fn dropout(
    b: &CudaBackend,
    out: &CudaBuf,
    x: &CudaBuf,
    p: f32,
    seed: u64,
    step: u32,
    stream_id: u32,
) -> Result<()> {
    let n = x.len();
    let mut cfg = grid_1d(n, 256);
    cfg.grid_dim.0 = cfg.grid_dim.0.min(65535 * 4);
    let k = crate::kname!("dropout", x.dtype());
    b.launch(
        "dropout",
        k,
        cfg,
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I64(n as i64),
            KArg::F32(p),
            KArg::U64(seed),
            KArg::U32(step),
            KArg::U32(stream_id),
        ],
    )
}
