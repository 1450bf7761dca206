//! Launch wrappers for kernels/attention.cu.

use super::launch::KArg;
use super::{CudaBackend, CudaBuf};
use crate::backend::cpu::attention::AttnShape;
use crate::tensor::DType;
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;
use std::sync::Arc;

const FILE: &str = "attention";
const ROWS: usize = 16; // ATT_WARPS * ATT_QPW
const KT: usize = 32;
const THREADS: u32 = 128;

fn check(s: &AttnShape) -> Result<()> {
    if s.head_dim == 0 || s.head_dim > 128 {
        bail!(
            "attention kernels support head_dim 1..=128, found {}",
            s.head_dim
        );
    }
    if s.batch * s.heads > 65535 {
        bail!(
            "attention: batch·heads = {} exceeds 65535",
            s.batch * s.heads
        );
    }
    Ok(())
}

fn cfg(rows: usize, s: &AttnShape, smem_floats: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(ROWS) as u32, (s.batch * s.heads) as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: (smem_floats * 4) as u32,
    }
}

fn layout_args(s: &AttnShape) -> [KArg; 10] {
    [
        KArg::I32(s.heads as i32),
        KArg::I32(s.seq_q as i32),
        KArg::I32(s.seq_k as i32),
        KArg::I32(s.head_dim as i32),
        KArg::I32(s.q.stride as i32),
        KArg::I32(s.q.offset as i32),
        KArg::I32(s.k.stride as i32),
        KArg::I32(s.k.offset as i32),
        KArg::I32(s.v.stride as i32),
        KArg::I32(s.v.offset as i32),
    ]
}

#[allow(clippy::too_many_arguments)]
pub fn forward(
    b: &CudaBackend,
    o: &CudaBuf,
    lse: &CudaBuf,
    q: &CudaBuf,
    k: &CudaBuf,
    v: &CudaBuf,
    s: &AttnShape,
) -> Result<()> {
    check(s)?;
    let d = s.head_dim;
    let mut args = vec![
        KArg::Ptr(o.ptr(b)),
        KArg::Ptr(lse.ptr(b)),
        KArg::Ptr(q.ptr(b)),
        KArg::Ptr(k.ptr(b)),
        KArg::Ptr(v.ptr(b)),
    ];
    args.extend(layout_args(s));
    args.push(KArg::F32(s.scale));
    let smem = KT * (d + 1) + KT * d + ROWS * d;
    b.launch(
        FILE,
        crate::kname!("attention_forward", o.dtype()),
        cfg(s.seq_q, s, smem),
        &args,
    )
}

/// Gradients: dq, dk, dv written on their own layouts (possibly one fused buffer).
pub struct GradTargets<'a> {
    pub dq: (&'a CudaBuf, crate::backend::cpu::attention::HeadLayout),
    pub dk: (&'a CudaBuf, crate::backend::cpu::attention::HeadLayout),
    pub dv: (&'a CudaBuf, crate::backend::cpu::attention::HeadLayout),
}

#[allow(clippy::too_many_arguments)]
pub fn backward(
    b: &Arc<CudaBackend>,
    g: GradTargets,
    q: &CudaBuf,
    k: &CudaBuf,
    v: &CudaBuf,
    o: &CudaBuf,
    dout: &CudaBuf,
    lse: &CudaBuf,
    s: &AttnShape,
) -> Result<()> {
    check(s)?;
    let d = s.head_dim;
    let dt = o.dtype();
    let dvec = b.zeros(DType::F32, s.batch * s.heads * s.seq_q)?;
    let mut args = vec![
        KArg::Ptr(g.dq.0.ptr(b)),
        KArg::Ptr(dvec.buf.ptr(b)),
        KArg::Ptr(q.ptr(b)),
        KArg::Ptr(k.ptr(b)),
        KArg::Ptr(v.ptr(b)),
        KArg::Ptr(o.ptr(b)),
        KArg::Ptr(dout.ptr(b)),
        KArg::Ptr(lse.ptr(b)),
    ];
    args.extend(layout_args(s));
    args.extend([
        KArg::I32(g.dq.1.stride as i32),
        KArg::I32(g.dq.1.offset as i32),
        KArg::F32(s.scale),
    ]);
    let smem = 2 * KT * (d + 1) + 2 * ROWS * d;
    b.launch(
        FILE,
        crate::kname!("attention_backward_dq", dt),
        cfg(s.seq_q, s, smem),
        &args,
    )?;

    let mut args = vec![
        KArg::Ptr(g.dk.0.ptr(b)),
        KArg::Ptr(g.dv.0.ptr(b)),
        KArg::Ptr(q.ptr(b)),
        KArg::Ptr(k.ptr(b)),
        KArg::Ptr(v.ptr(b)),
        KArg::Ptr(dout.ptr(b)),
        KArg::Ptr(lse.ptr(b)),
        KArg::Ptr(dvec.buf.ptr(b)),
    ];
    args.extend(layout_args(s));
    args.extend([
        KArg::I32(g.dk.1.stride as i32),
        KArg::I32(g.dk.1.offset as i32),
        KArg::I32(g.dv.1.stride as i32),
        KArg::I32(g.dv.1.offset as i32),
        KArg::F32(s.scale),
    ]);
    let smem = 2 * KT * (d + 1) + 2 * KT + 2 * ROWS * d;
    b.launch(
        FILE,
        crate::kname!("attention_backward_dkdv", dt),
        cfg(s.seq_k, s, smem),
        &args,
    )
}
