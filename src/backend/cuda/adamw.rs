//! Launch wrapper for kernels/adamw.cu.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use crate::backend::cpu::adamw::AdamWConfig;
use anyhow::Result;

#[allow(clippy::too_many_arguments)]
pub fn step(
    b: &CudaBackend,
    p: &CudaBuf,
    g: &CudaBuf,
    m: &CudaBuf,
    v: &CudaBuf,
    p_bf16: Option<&CudaBuf>,
    cfg: &AdamWConfig,
    t: u32,
) -> Result<()> {
    let n = p.len();
    let bc1 = 1.0 - (cfg.beta1 as f64).powi(t as i32);
    let bc2 = 1.0 - (cfg.beta2 as f64).powi(t as i32);
    let mut lc = grid_1d(n, 256);
    lc.grid_dim.0 = lc.grid_dim.0.min(65535 * 4);
    b.launch(
        "adamw",
        "adamw_step_f32",
        lc,
        &[
            KArg::Ptr(p.ptr(b)),
            KArg::Ptr(g.ptr(b)),
            KArg::Ptr(m.ptr(b)),
            KArg::Ptr(v.ptr(b)),
            KArg::Ptr(p_bf16.map_or(0, |x| x.ptr(b))),
            KArg::I64(n as i64),
            KArg::F32(cfg.lr),
            KArg::F32(cfg.beta1),
            KArg::F32(cfg.beta2),
            KArg::F32(cfg.eps),
            KArg::F32(cfg.weight_decay),
            KArg::F32(bc1 as f32),
            KArg::F32(bc2.sqrt() as f32),
        ],
    )
}
