//! kernels/attention_tc.cu: attention variant 2, the forward pass on bf16 tensor cores
//! (FlashAttention-2 style; see [`crate::backend::variants`]). [`plan`] decides whether a call
//! can take it and with which launch; the emulator test (tests/attention_tc_emu.rs) runs the
//! kernel with the same plan. The backward pass stays variant 1's kernels, which read this
//! forward's `lse` (same meaning: natural log, scale applied).

use super::launch::{kernels, KernelSig};
use super::CudaBackend;
use crate::backend::api::attention::{AttnShape, Qkv};
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
