//! kernels/attention.cu: declarations and the CUDA implementation of [`AttentionOps`]
//! (attention variant 1; variant 2, on tensor cores, is in `attention_tc.rs`).

use super::launch::kernels;
use super::CudaBackend;
use crate::backend::api::attention::{
    AttentionBackward, AttentionOps, AttentionOut, AttnGrads, AttnShape, Qkv,
};
use crate::backend::api::Backend;
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

kernels! { file "attention";
    /// Block (16 query rows, batch·head), 128 threads; keys and values stream through
    /// dynamic shared memory.
    AttentionForward = attention_forward<T>(o: out T, lse: out f32, q: inp T, k: inp T,
        v: inp T, heads: val i32, seq_q: val i32, seq_k: val i32, head_dim: val i32,
        qs: val i32, qo: val i32, ks: val i32, ko: val i32, vs: val i32, vo: val i32,
        scale: val f32);
    /// dq, and delta_i = dO_i · O_i for the dk/dv kernel; block (16 query rows, batch·head).
    AttentionBackwardDq = attention_backward_dq<T>(dq: out T, delta: out f32, q: inp T,
        k: inp T, v: inp T, o: inp T, dout: inp T, lse: inp f32, heads: val i32,
        seq_q: val i32, seq_k: val i32, head_dim: val i32, qs: val i32, qo: val i32,
        ks: val i32, ko: val i32, vs: val i32, vo: val i32, dqs: val i32, dqo: val i32,
        scale: val f32);
    /// dk and dv; block (16 key rows, batch·head).
    AttentionBackwardDkdv = attention_backward_dkdv<T>(dk: out T, dv: out T, q: inp T,
        k: inp T, v: inp T, dout: inp T, lse: inp f32, delta: inp f32, heads: val i32,
        seq_q: val i32, seq_k: val i32, head_dim: val i32, qs: val i32, qo: val i32,
        ks: val i32, ko: val i32, vs: val i32, vo: val i32, dks: val i32, dko: val i32,
        dvs: val i32, dvo: val i32, scale: val f32);
}

pub(crate) const ROWS: usize = 16; // ATT_WARPS * ATT_QPW
pub(crate) const KT: usize = 32;
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

pub(crate) fn cfg(rows: usize, s: &AttnShape, smem_floats: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(ROWS) as u32, (s.batch * s.heads) as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: (smem_floats * 4) as u32,
    }
}

/// The launch struct `$K` with the shape, layout and scale arguments every attention kernel
/// takes (heads, seq_q, seq_k, head_dim, the stride and offset of q, k and v, scale), taken
/// from the `AttnShape` `$s`, and the others given by name; `@no_head_dim` leaves head_dim out
/// (variant 2's kernels are compiled per head dim). The order of fields in a struct literal
/// does not change the launch's argument order, which `kernels!` fixes.
macro_rules! with_layout {
    ($K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $s:expr) => {{
        let s: &AttnShape = $s;
        $crate::backend::cuda::attention::with_layout!(
            @no_head_dim $K { $($f $(: $v)?,)* head_dim: s.head_dim as i32 },
            s
        )
    }};
    (@no_head_dim $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $s:expr) => {{
        let s: &AttnShape = $s;
        $K {
            $($f $(: $v)?,)*
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
    }};
}
pub(crate) use with_layout;

/// [`with_layout!`] for a backward kernel (`dq` or `dkdv`, of either variant) with the inputs
/// every one takes (q, k, v, dout, lse from the `AttentionBackward` `$a`) and the layout of
/// its gradients (dq on q's; dk and dv on k's and v's), and the others given by name.
macro_rules! with_backward {
    (dq $($rest:tt)*) => {
        $crate::backend::cuda::attention::with_backward!(
            @grads { dqs: q.stride, dqo: q.offset } $($rest)*
        )
    };
    (dkdv $($rest:tt)*) => {
        $crate::backend::cuda::attention::with_backward!(
            @grads { dks: k.stride, dko: k.offset, dvs: v.stride, dvo: v.offset } $($rest)*
        )
    };
    (@grads { $($g:ident: $op:ident.$m:ident),* } $(@$mode:ident)?
     $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $a:expr, $s:expr) => {{
        let (a, s): (&AttentionBackward, &AttnShape) = ($a, $s);
        $crate::backend::cuda::attention::with_layout!(
            $(@$mode)? $K {
                $($f $(: $v)?,)*
                q: a.qkv.q,
                k: a.qkv.k,
                v: a.qkv.v,
                dout: a.dout,
                lse: a.lse,
                $($g: s.$op.$m as i32,)*
            },
            s
        )
    }};
}
pub(crate) use with_backward;

/// The gradients' buffers (dq, dk, dv) of a backward pass: one fused buffer on the operands'
/// layouts, or three.
pub(crate) fn grad_buffers<'a>(g: &'a AttnGrads) -> (&'a Tensor, &'a Tensor, &'a Tensor) {
    match g {
        AttnGrads::Fused(g) => (g, g, g),
        AttnGrads::Separate { dq, dk, dv } => (dq, dk, dv),
    }
}

impl AttentionOps for CudaBackend {
    fn attention(&self, o: AttentionOut, x: Qkv, s: &AttnShape) -> Result<()> {
        // Variant 2 (bf16 tensor cores) where chosen and where it can take the call.
        if crate::backend::variants::variant("attention")? == 2
            && super::attention_tc::try_attention(self, o.out, o.lse, x, s)?
        {
            return Ok(());
        }
        check(s)?;
        let d = s.head_dim;
        let smem = KT * (d + 1) + KT * d + ROWS * d;
        let forward = with_layout!(
            AttentionForward {
                o: o.out,
                lse: o.lse,
                q: x.q,
                k: x.k,
                v: x.v,
            },
            s
        );
        forward.launch(self, cfg(s.seq_q, s, smem))
    }
    fn attention_backward(&self, a: AttentionBackward, s: &AttnShape) -> Result<()> {
        // Variant 2 (bf16 tensor cores) where chosen and where it can take the call.
        if crate::backend::variants::variant("attention")? == 2
            && super::attention_tc::try_attention_backward(self, &a, s)?
        {
            return Ok(());
        }
        check(s)?;
        let d = s.head_dim;
        let (dq, dk, dv) = grad_buffers(&a.grads);
        // delta_i = dO_i · O_i, written by the dq kernel for every query.
        let mut delta = self.alloc(&[s.batch * s.heads * s.seq_q], DType::F32)?;
        let smem = 2 * KT * (d + 1) + 2 * ROWS * d;
        let dq_kernel = with_backward!(
            dq AttentionBackwardDq { dq, delta: &mut delta, o: a.out },
            &a,
            s
        );
        dq_kernel.launch(self, cfg(s.seq_q, s, smem))?;
        let smem = 2 * KT * (d + 1) + 2 * KT + 2 * ROWS * d;
        let dkdv_kernel = with_backward!(
            dkdv AttentionBackwardDkdv { dk, dv, delta: &delta },
            &a,
            s
        );
        dkdv_kernel.launch(self, cfg(s.seq_k, s, smem))
    }
}
