//! Launch wrappers for kernels/reduce.cu: deterministic two-pass sums.

use super::launch::KArg;
use super::{CudaBackend, CudaBuf};
use crate::tensor::DType;
use anyhow::Result;
use cudarc::driver::LaunchConfig;

const FILE: &str = "reduce";
const THREADS: u32 = 256;

/// The number of partial sums for n elements (a function of n only, so results are
/// reproducible run to run).
fn blocks_for(n: usize) -> u32 {
    (n.div_ceil(THREADS as usize * 8)).clamp(1, 1024) as u32
}

/// out[0] = scale · Σ x (or Σ x² when `square`); `out` is a 1-element f32 buffer.
pub fn sum_into(
    b: &std::sync::Arc<CudaBackend>,
    out: &CudaBuf,
    x: &CudaBuf,
    square: bool,
    scale: f32,
) -> Result<()> {
    let n = x.len();
    let g = blocks_for(n);
    let partials = b.zeros(DType::F32, g as usize)?;
    let k = match (square, x.dtype()) {
        (false, DType::BF16) => "sum_partials_bf16",
        (true, DType::BF16) => "sumsq_partials_bf16",
        (false, _) => "sum_partials_f32",
        (true, _) => "sumsq_partials_f32",
    };
    let cfg = LaunchConfig {
        grid_dim: (g, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    b.launch(
        FILE,
        k,
        cfg,
        &[
            KArg::Ptr(partials.buf.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I64(n as i64),
        ],
    )?;
    let one = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (1024, 1, 1),
        shared_mem_bytes: 0,
    };
    b.launch(
        FILE,
        "sum_final",
        one,
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(partials.buf.ptr(b)),
            KArg::I32(g as i32),
            KArg::F32(scale),
        ],
    )
}
