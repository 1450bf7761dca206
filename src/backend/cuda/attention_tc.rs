//! kernels/attention_tc.cu: attention variant 2, forward and backward on bf16 tensor cores
//! (FlashAttention-2 style; see [`crate::backend::variants`]). [`plan`] and [`plan_backward`]
//! decide whether a call can take it and with which launches; the emulator test
//! (tests/attention_tc_emu.rs) runs the kernels with the same plans. `lse` has variant 1's
//! meaning (natural log, scale applied), so either backward can follow either forward.

use super::attention::{grad_buffers, with_backward, with_layout};
use super::launch::{kernels, KernelSig, Planned};
use super::CudaBackend;
use crate::backend::api::attention::{AttentionBackward, AttnShape, Qkv};
use crate::backend::api::Backend;
use crate::tensor::{DType, Tensor};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

/// Declares variant 2's kernels: per head dim `d` (one of [`HEAD_DIMS`]) a forward, a dK/dV
/// and a dQ kernel (`attention_tc_{forward,backward_dkdv,backward_dq}_d{d}`), whose arguments
/// are the same at every head dim; and the lookups of a head dim's declarations.
macro_rules! per_head_dim {
    ($($d:literal: $Fwd:ident = $fwd:ident, $Dkdv:ident = $dkdv:ident, $Dq:ident = $dq:ident;)*) => {
        kernels! { file "attention_tc";
            $(
                /// Block (64 queries, batch·head), 128 threads, 5·64·D·2 B of dynamic shared
                /// memory (D padded to 16; head dim 20 is computed padded to 32, with 8-byte
                /// cp.async copies).
                $Fwd = $fwd(o: out bf16, lse: out f32, q: inp bf16, k: inp bf16, v: inp bf16,
                    heads: val i32, seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32,
                    ks: val i32, ko: val i32, vs: val i32, vo: val i32, scale: val f32);
                /// dK and dV; block (64 keys, batch·head), 128 threads, 6·64·D·2 + 1024 B of
                /// dynamic shared memory (D padded to 16).
                $Dkdv = $dkdv(dk: out bf16, dv: out bf16, q: inp bf16, k: inp bf16,
                    v: inp bf16, dout: inp bf16, lse: inp f32, delta: inp f32, heads: val i32,
                    seq_q: val i32, seq_k: val i32, qs: val i32, qo: val i32, ks: val i32,
                    ko: val i32, vs: val i32, vo: val i32, dks: val i32, dko: val i32,
                    dvs: val i32, dvo: val i32, scale: val f32);
                /// dQ; block (64 queries, batch·head), 128 threads, 6·64·D·2 B of dynamic
                /// shared memory.
                $Dq = $dq(dq: out bf16, q: inp bf16, k: inp bf16, v: inp bf16, dout: inp bf16,
                    lse: inp f32, delta: inp f32, heads: val i32, seq_q: val i32,
                    seq_k: val i32, qs: val i32, qo: val i32, ks: val i32, ko: val i32,
                    vs: val i32, vo: val i32, dqs: val i32, dqo: val i32, scale: val f32);
            )*
            /// delta[b, h, i] = dO·O over each query's row (the backward's pre-pass), one warp
            /// per (batch, query, head): grid ceil(B·Nq·H / 4), 128 threads, no shared memory.
            AttentionTcBackwardDelta = attention_tc_backward_delta(delta: out f32, o: inp bf16,
                dout: inp bf16, batch: val i32, heads: val i32, seq_q: val i32,
                head_dim: val i32);
        }

        /// Head dims with a kernel (20, SeisLM-base's, is computed padded to 32).
        pub const HEAD_DIMS: [usize; [$($d),*].len()] = [$($d),*];

        /// The declarations of the forward, dK/dV and dQ kernels for head dim `d`.
        fn sigs_of(d: usize) -> Option<[&'static KernelSig; 3]> {
            match d {
                $($d => Some([&$Fwd::SIG, &$Dkdv::SIG, &$Dq::SIG]),)*
                _ => None,
            }
        }
    };
}

per_head_dim! {
    16: AttentionTcForwardD16 = attention_tc_forward_d16,
        AttentionTcBackwardDkdvD16 = attention_tc_backward_dkdv_d16,
        AttentionTcBackwardDqD16 = attention_tc_backward_dq_d16;
    20: AttentionTcForwardD20 = attention_tc_forward_d20,
        AttentionTcBackwardDkdvD20 = attention_tc_backward_dkdv_d20,
        AttentionTcBackwardDqD20 = attention_tc_backward_dq_d20;
    32: AttentionTcForwardD32 = attention_tc_forward_d32,
        AttentionTcBackwardDkdvD32 = attention_tc_backward_dkdv_d32,
        AttentionTcBackwardDqD32 = attention_tc_backward_dq_d32;
    64: AttentionTcForwardD64 = attention_tc_forward_d64,
        AttentionTcBackwardDkdvD64 = attention_tc_backward_dkdv_d64,
        AttentionTcBackwardDqD64 = attention_tc_backward_dq_d64;
    80: AttentionTcForwardD80 = attention_tc_forward_d80,
        AttentionTcBackwardDkdvD80 = attention_tc_backward_dkdv_d80,
        AttentionTcBackwardDqD80 = attention_tc_backward_dq_d80;
    128: AttentionTcForwardD128 = attention_tc_forward_d128,
        AttentionTcBackwardDkdvD128 = attention_tc_backward_dkdv_d128,
        AttentionTcBackwardDqD128 = attention_tc_backward_dq_d128;
}

/// Threads per block (the kernel's `__launch_bounds__`, ATC_THREADS).
pub const THREADS: u32 = 128;
/// Query rows per block (ATC_BQ) and keys per shared tile (ATC_BK).
pub const BQ: usize = 64;
pub const BK: usize = 64;

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

/// The declaration of the forward kernel for head dim `d` (one of [`HEAD_DIMS`]).
pub fn sig(d: usize) -> Option<KernelSig> {
    sigs_of(d).map(|[f, ..]| *f)
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
    let Some([forward, ..]) = sigs_of(s.head_dim) else {
        return Ok(false);
    };
    let k = with_layout!(
        @no_head_dim AttentionTcForwardD16 {
            o: out,
            lse,
            q: x.q,
            k: x.k,
            v: x.v,
        },
        s
    );
    launch_as(be, forward, k.planned(cfg))?;
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
    sigs_of(d).map(|[_, dkdv, dq]| (*dkdv, *dq))
}

/// Launches `k` (planned with the head-dim-16 kernel's struct: every head dim's kernel takes
/// the same arguments) as the kernel `sig`.
fn launch_as(be: &CudaBackend, sig: &'static KernelSig, k: Planned) -> Result<()> {
    Planned { sig, ..k }.launch(be)
}

/// Runs the backward pass with variant 2 when every tensor is bf16 (lse f32) and
/// [`plan_backward`] accepts the shape; returns false (nothing launched) otherwise.
pub fn try_attention_backward(
    be: &CudaBackend,
    a: &AttentionBackward,
    s: &AttnShape,
) -> Result<bool> {
    let (dq, dk, dv) = grad_buffers(&a.grads);
    let bf16 = [a.qkv.q, a.qkv.k, a.qkv.v, a.out, a.dout, dq, dk, dv];
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
    let Some([_, dkdv, dq_sig]) = sigs_of(s.head_dim) else {
        return Ok(false);
    };
    let k = with_backward!(dkdv @no_head_dim AttentionTcBackwardDkdvD16 { dk, dv, delta }, a, s);
    launch_as(be, dkdv, k.planned(p.dkdv))?;
    let k = with_backward!(dq @no_head_dim AttentionTcBackwardDqD16 { dq, delta }, a, s);
    launch_as(be, dq_sig, k.planned(p.dq))?;
    Ok(true)
}
