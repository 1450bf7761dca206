//! kernels/attention_tc.cu: attention variant 2, forward and backward on bf16 tensor cores
//! (FlashAttention-2 style; see [`crate::backend::variants`]). [`plan`] and [`plan_backward`]
//! decide whether a call can take it and with which launches; the emulator test
//! (tests/attention_tc_emu.rs) runs the kernels with the same plans. `lse` has variant 1's
//! meaning (natural log, scale applied), so either backward can follow either forward.

use super::launch::{kernels, KernelSig};
use super::CudaBackend;
use crate::backend::api::attention::{AttentionBackward, AttnGrads, AttnShape, Qkv};
use crate::backend::api::Backend;
use crate::tensor::{DType, Tensor};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "attention_tc";
    /// Block (64 queries, batch·head), 128 threads, 5·64·D·2 B of dynamic shared memory;
    /// head dim 16.
    AttentionTcForwardD16 = attention_tc_forward_d16(o: out bf16, lse: out f32, q: inp bf16,
        k: inp bf16, v: inp bf16, heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32,
        qo: val i32, ks: val i32, ko: val i32, vs: val i32, vo: val i32, scale: val f32);
    /// As above, head dim 20, computed padded to 32 (8-byte cp.async copies).
    AttentionTcForwardD20 = attention_tc_forward_d20(o: out bf16, lse: out f32, q: inp bf16,
        k: inp bf16, v: inp bf16, heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32,
        qo: val i32, ks: val i32, ko: val i32, vs: val i32, vo: val i32, scale: val f32);
    /// As above, head dim 32.
    AttentionTcForwardD32 = attention_tc_forward_d32(o: out bf16, lse: out f32, q: inp bf16,
        k: inp bf16, v: inp bf16, heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32,
        qo: val i32, ks: val i32, ko: val i32, vs: val i32, vo: val i32, scale: val f32);
    /// As above, head dim 64.
    AttentionTcForwardD64 = attention_tc_forward_d64(o: out bf16, lse: out f32, q: inp bf16,
        k: inp bf16, v: inp bf16, heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32,
        qo: val i32, ks: val i32, ko: val i32, vs: val i32, vo: val i32, scale: val f32);
    /// As above, head dim 80.
    AttentionTcForwardD80 = attention_tc_forward_d80(o: out bf16, lse: out f32, q: inp bf16,
        k: inp bf16, v: inp bf16, heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32,
        qo: val i32, ks: val i32, ko: val i32, vs: val i32, vo: val i32, scale: val f32);
    /// As above, head dim 128.
    AttentionTcForwardD128 = attention_tc_forward_d128(o: out bf16, lse: out f32, q: inp bf16,
        k: inp bf16, v: inp bf16, heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32,
        qo: val i32, ks: val i32, ko: val i32, vs: val i32, vo: val i32, scale: val f32);
    /// delta[b, h, i] = dO·O over each query's row (the backward's pre-pass), one warp per
    /// (batch, query, head): grid ceil(B·Nq·H / 4), 128 threads, no shared memory.
    AttentionTcBackwardDelta = attention_tc_backward_delta(delta: out f32, o: inp bf16,
        dout: inp bf16, batch: val i32, heads: val i32, seq_q: val i32, head_dim: val i32);
    /// dK and dV; block (64 keys, batch·head), 128 threads, 6·64·D·2 + 1024 B of dynamic
    /// shared memory (D padded to 16); head dim 16.
    AttentionTcBackwardDkdvD16 = attention_tc_backward_dkdv_d16(dk: out bf16, dv: out bf16,
        q: inp bf16, k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32,
        heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32,
        ko: val i32, vs: val i32, vo: val i32, dks: val i32, dko: val i32, dvs: val i32,
        dvo: val i32, scale: val f32);
    /// dQ; block (64 queries, batch·head), 128 threads, 6·64·D·2 B of dynamic shared
    /// memory; head dim 16.
    AttentionTcBackwardDqD16 = attention_tc_backward_dq_d16(dq: out bf16, q: inp bf16,
        k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32, heads: val i32,
        seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32, ko: val i32,
        vs: val i32, vo: val i32, dqs: val i32, dqo: val i32, scale: val f32);
    /// dK and dV; as above; head dim 20.
    AttentionTcBackwardDkdvD20 = attention_tc_backward_dkdv_d20(dk: out bf16, dv: out bf16,
        q: inp bf16, k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32,
        heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32,
        ko: val i32, vs: val i32, vo: val i32, dks: val i32, dko: val i32, dvs: val i32,
        dvo: val i32, scale: val f32);
    /// dQ; as above; head dim 20.
    AttentionTcBackwardDqD20 = attention_tc_backward_dq_d20(dq: out bf16, q: inp bf16,
        k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32, heads: val i32,
        seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32, ko: val i32,
        vs: val i32, vo: val i32, dqs: val i32, dqo: val i32, scale: val f32);
    /// dK and dV; as above; head dim 32.
    AttentionTcBackwardDkdvD32 = attention_tc_backward_dkdv_d32(dk: out bf16, dv: out bf16,
        q: inp bf16, k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32,
        heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32,
        ko: val i32, vs: val i32, vo: val i32, dks: val i32, dko: val i32, dvs: val i32,
        dvo: val i32, scale: val f32);
    /// dQ; as above; head dim 32.
    AttentionTcBackwardDqD32 = attention_tc_backward_dq_d32(dq: out bf16, q: inp bf16,
        k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32, heads: val i32,
        seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32, ko: val i32,
        vs: val i32, vo: val i32, dqs: val i32, dqo: val i32, scale: val f32);
    /// dK and dV; as above; head dim 64.
    AttentionTcBackwardDkdvD64 = attention_tc_backward_dkdv_d64(dk: out bf16, dv: out bf16,
        q: inp bf16, k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32,
        heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32,
        ko: val i32, vs: val i32, vo: val i32, dks: val i32, dko: val i32, dvs: val i32,
        dvo: val i32, scale: val f32);
    /// dQ; as above; head dim 64.
    AttentionTcBackwardDqD64 = attention_tc_backward_dq_d64(dq: out bf16, q: inp bf16,
        k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32, heads: val i32,
        seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32, ko: val i32,
        vs: val i32, vo: val i32, dqs: val i32, dqo: val i32, scale: val f32);
    /// dK and dV; as above; head dim 80.
    AttentionTcBackwardDkdvD80 = attention_tc_backward_dkdv_d80(dk: out bf16, dv: out bf16,
        q: inp bf16, k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32,
        heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32,
        ko: val i32, vs: val i32, vo: val i32, dks: val i32, dko: val i32, dvs: val i32,
        dvo: val i32, scale: val f32);
    /// dQ; as above; head dim 80.
    AttentionTcBackwardDqD80 = attention_tc_backward_dq_d80(dq: out bf16, q: inp bf16,
        k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32, heads: val i32,
        seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32, ko: val i32,
        vs: val i32, vo: val i32, dqs: val i32, dqo: val i32, scale: val f32);
    /// dK and dV; as above; head dim 128.
    AttentionTcBackwardDkdvD128 = attention_tc_backward_dkdv_d128(dk: out bf16, dv: out bf16,
        q: inp bf16, k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32,
        heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32,
        ko: val i32, vs: val i32, vo: val i32, dks: val i32, dko: val i32, dvs: val i32,
        dvo: val i32, scale: val f32);
    /// dQ; as above; head dim 128.
    AttentionTcBackwardDqD128 = attention_tc_backward_dq_d128(dq: out bf16, q: inp bf16,
        k: inp bf16, v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32, heads: val i32,
        seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32, ko: val i32,
        vs: val i32, vo: val i32, dqs: val i32, dqo: val i32, scale: val f32);
}

/// Threads per block (the kernel's `__launch_bounds__`, ATC_THREADS).
pub const THREADS: u32 = 128;
/// Query rows per block (ATC_BQ) and keys per shared tile (ATC_BK).
pub const BQ: usize = 64;
pub const BK: usize = 64;
/// Head dims with a kernel (20, SeisLM-base's, is computed padded to 32).
pub const HEAD_DIMS: [usize; 6] = [16, 20, 32, 64, 80, 128];

/// Dynamic shared memory for head dim `d`: the Q tile and two K and two V tiles, 64 × d bf16,
/// d rounded up to a multiple of 16.
pub fn smem_bytes(d: usize) -> u32 {
    (5 * 64 * d.next_multiple_of(16) * 2) as u32
}

/// The alignment, in elements, the copies need of strides and offsets at head dim `d`: 16-byte
/// cp.async where d is a multiple of 8, 8-byte ones at d = 20.
fn align(d: usize) -> usize {
    if d.is_multiple_of(8) {
        8
    } else {
        4
    }
}

/// The declaration of the kernel for head dim `d` (one of [`HEAD_DIMS`]).
pub fn sig(d: usize) -> Option<KernelSig> {
    Some(match d {
        16 => AttentionTcForwardD16::SIG,
        20 => AttentionTcForwardD20::SIG,
        32 => AttentionTcForwardD32::SIG,
        64 => AttentionTcForwardD64::SIG,
        80 => AttentionTcForwardD80::SIG,
        128 => AttentionTcForwardD128::SIG,
        _ => return None,
    })
}

/// The launch of variant 2 for attention of shape `s` whose q, k, v and output views start at
/// element offsets `offsets` ([q, k, v, out]) of 256-byte aligned buffers, or None when the
/// kernel cannot take it: head dim one of [`HEAD_DIMS`]; every stride, layout offset and view
/// offset a multiple of 8 elements (16-byte cp.async copies; 4-byte output stores), of 4 at
/// head dim 20 (8-byte copies); seq_q and seq_k at least 1; everything within the kernel's
/// 32-bit arguments and CUDA's grid limits.
pub fn plan(s: &AttnShape, offsets: [usize; 4]) -> Option<LaunchConfig> {
    let i32ok = |v: usize| v <= i32::MAX as usize;
    let layouts = [s.q, s.k, s.v];
    let al = align(s.head_dim);
    let ok = HEAD_DIMS.contains(&s.head_dim)
        && layouts
            .iter()
            .all(|l| l.stride.is_multiple_of(al) && l.offset.is_multiple_of(al))
        && layouts.iter().all(|l| i32ok(l.stride) && i32ok(l.offset))
        && offsets.iter().all(|o| o.is_multiple_of(al))
        && s.seq_q > 0
        && s.seq_k > 0
        && i32ok(s.seq_q)
        && i32ok(s.seq_k)
        && s.heads > 0
        && s.batch > 0
        && s.batch * s.heads <= 65535
        && s.seq_q.div_ceil(BQ) <= u32::MAX as usize;
    ok.then(|| LaunchConfig {
        grid_dim: (s.seq_q.div_ceil(BQ) as u32, (s.batch * s.heads) as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: smem_bytes(s.head_dim),
    })
}

/// Runs the forward pass with variant 2 when q, k, v and out are bf16 and [`plan`] accepts the
/// shape; returns false (nothing launched) otherwise.
pub fn try_attention(
    be: &CudaBackend,
    out: &Tensor,
    lse: &Tensor,
    x: Qkv,
    s: &AttnShape,
) -> Result<bool> {
    if [x.q, x.k, x.v, out].iter().any(|t| t.dtype != DType::BF16) || lse.dtype != DType::F32 {
        return Ok(false);
    }
    let offsets = [x.q.offset(), x.k.offset(), x.v.offset(), out.offset()];
    let Some(cfg) = plan(s, offsets) else {
        return Ok(false);
    };
    macro_rules! go {
        ($K:ident) => {
            $K {
                o: out,
                lse,
                q: x.q,
                k: x.k,
                v: x.v,
                heads: s.heads as i32,
                seq_q: s.seq_q as i32,
                seq_k: s.seq_k as i32,
                qs: s.q.stride as i32,
                qo: s.q.offset as i32,
                ks: s.k.stride as i32,
                ko: s.k.offset as i32,
                vs: s.v.stride as i32,
                vo: s.v.offset as i32,
                scale: s.scale,
            }
            .launch(be, cfg)
        };
    }
    match s.head_dim {
        16 => go!(AttentionTcForwardD16),
        20 => go!(AttentionTcForwardD20),
        32 => go!(AttentionTcForwardD32),
        64 => go!(AttentionTcForwardD64),
        80 => go!(AttentionTcForwardD80),
        128 => go!(AttentionTcForwardD128),
        _ => return Ok(false),
    }?;
    Ok(true)
}

/// Dynamic shared memory of the backward kernels at head dim `d` (padded to 16): dK/dV keeps
/// the block's K and V tiles and two Q and two dO tiles, 64 × d bf16 each, and two 64-query
/// rows of lse and delta (f32); dQ the block's Q and dO tiles and two K and two V tiles.
pub fn backward_smem_bytes(d: usize) -> (u32, u32) {
    let tiles = (6 * 64 * d.next_multiple_of(16) * 2) as u32;
    (tiles + 4 * 64 * 4, tiles)
}

/// The three launches of variant 2's backward pass.
#[derive(Clone, Copy, Debug)]
pub struct BackwardPlan {
    /// delta = rowsum(dO ∘ O), one warp per (batch, query, head).
    pub delta: LaunchConfig,
    /// dK and dV: (key tiles, batch·head).
    pub dkdv: LaunchConfig,
    /// dQ: (query tiles, batch·head).
    pub dq: LaunchConfig,
}

/// The launches of variant 2's backward pass for shape `s`, or None where it cannot take the
/// call: the forward's conditions ([`plan`]) with `offsets` the view offsets of q, k, v, out,
/// dout and of the gradients dq, dk, dv (each written on its operand's layout).
pub fn plan_backward(s: &AttnShape, offsets: [usize; 8]) -> Option<BackwardPlan> {
    let [q, k, v, o, ..] = offsets;
    let fwd = plan(s, [q, k, v, o])?;
    let al = align(s.head_dim);
    let rows = s.batch * s.seq_q * s.heads;
    if !offsets.iter().all(|o| o.is_multiple_of(al)) || rows.div_ceil(4) > i32::MAX as usize {
        return None;
    }
    let (dkdv_smem, dq_smem) = backward_smem_bytes(s.head_dim);
    Some(BackwardPlan {
        delta: LaunchConfig {
            grid_dim: (rows.div_ceil(4) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        },
        dkdv: LaunchConfig {
            grid_dim: (s.seq_k.div_ceil(BK) as u32, fwd.grid_dim.1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: dkdv_smem,
        },
        dq: LaunchConfig {
            shared_mem_bytes: dq_smem,
            ..fwd
        },
    })
}

/// The declarations of the backward's dK/dV and dQ kernels for head dim `d`.
pub fn backward_sigs(d: usize) -> Option<(KernelSig, KernelSig)> {
    Some(match d {
        16 => (
            AttentionTcBackwardDkdvD16::SIG,
            AttentionTcBackwardDqD16::SIG,
        ),
        20 => (
            AttentionTcBackwardDkdvD20::SIG,
            AttentionTcBackwardDqD20::SIG,
        ),
        32 => (
            AttentionTcBackwardDkdvD32::SIG,
            AttentionTcBackwardDqD32::SIG,
        ),
        64 => (
            AttentionTcBackwardDkdvD64::SIG,
            AttentionTcBackwardDqD64::SIG,
        ),
        80 => (
            AttentionTcBackwardDkdvD80::SIG,
            AttentionTcBackwardDqD80::SIG,
        ),
        128 => (
            AttentionTcBackwardDkdvD128::SIG,
            AttentionTcBackwardDqD128::SIG,
        ),
        _ => return None,
    })
}

/// Runs the backward pass with variant 2 when every tensor is bf16 (lse f32) and
/// [`plan_backward`] accepts the shape; returns false (nothing launched) otherwise.
pub fn try_attention_backward(
    be: &CudaBackend,
    a: &AttentionBackward,
    s: &AttnShape,
) -> Result<bool> {
    let (dq, dk, dv): (&Tensor, &Tensor, &Tensor) = match &a.grads {
        AttnGrads::Fused(g) => (g, g, g),
        AttnGrads::Separate { dq, dk, dv } => (dq, dk, dv),
    };
    let bf16 = [a.q, a.k, a.v, a.out, a.dout, dq, dk, dv];
    if bf16.iter().any(|t| t.dtype != DType::BF16) || a.lse.dtype != DType::F32 {
        return Ok(false);
    }
    let offsets = bf16.map(|t| t.offset());
    let Some(p) = plan_backward(s, offsets) else {
        return Ok(false);
    };
    let delta = be.alloc(&[s.batch * s.heads * s.seq_q], DType::F32)?;
    AttentionTcBackwardDelta {
        delta: &delta,
        o: a.out,
        dout: a.dout,
        batch: s.batch as i32,
        heads: s.heads as i32,
        seq_q: s.seq_q as i32,
        head_dim: s.head_dim as i32,
    }
    .launch(be, p.delta)?;
    let delta = &delta;
    macro_rules! go {
        ($Dkdv:ident, $Dq:ident) => {{
            $Dkdv {
                dk,
                dv,
                q: a.q,
                k: a.k,
                v: a.v,
                dout: a.dout,
                lse: a.lse,
                delta,
                heads: s.heads as i32,
                seq_q: s.seq_q as i32,
                seq_k: s.seq_k as i32,
                qs: s.q.stride as i32,
                qo: s.q.offset as i32,
                ks: s.k.stride as i32,
                ko: s.k.offset as i32,
                vs: s.v.stride as i32,
                vo: s.v.offset as i32,
                dks: s.k.stride as i32,
                dko: s.k.offset as i32,
                dvs: s.v.stride as i32,
                dvo: s.v.offset as i32,
                scale: s.scale,
            }
            .launch(be, p.dkdv)?;
            $Dq {
                dq,
                q: a.q,
                k: a.k,
                v: a.v,
                dout: a.dout,
                lse: a.lse,
                delta,
                heads: s.heads as i32,
                seq_q: s.seq_q as i32,
                seq_k: s.seq_k as i32,
                qs: s.q.stride as i32,
                qo: s.q.offset as i32,
                ks: s.k.stride as i32,
                ko: s.k.offset as i32,
                vs: s.v.stride as i32,
                vo: s.v.offset as i32,
                dqs: s.q.stride as i32,
                dqo: s.q.offset as i32,
                scale: s.scale,
            }
            .launch(be, p.dq)
        }};
    }
    match s.head_dim {
        16 => go!(AttentionTcBackwardDkdvD16, AttentionTcBackwardDqD16),
        20 => go!(AttentionTcBackwardDkdvD20, AttentionTcBackwardDqD20),
        32 => go!(AttentionTcBackwardDkdvD32, AttentionTcBackwardDqD32),
        64 => go!(AttentionTcBackwardDkdvD64, AttentionTcBackwardDqD64),
        80 => go!(AttentionTcBackwardDkdvD80, AttentionTcBackwardDqD80),
        128 => go!(AttentionTcBackwardDkdvD128, AttentionTcBackwardDqD128),
        _ => return Ok(false),
    }?;
    Ok(true)
}
