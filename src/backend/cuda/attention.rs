//! kernels/attention.cu: declarations and the CUDA implementation of [`AttentionOps`].

use super::launch::kernels;
use super::CudaBackend;
use crate::backend::api::attention::{AttentionBackward, AttentionOps, AttnGrads, AttnShape};
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

/// The shape and layout arguments every attention kernel takes, in the kernels' order.
#[derive(Clone, Copy)]
struct Layout {
    heads: i32,
    seq_q: i32,
    seq_k: i32,
    head_dim: i32,
    qs: i32,
    qo: i32,
    ks: i32,
    ko: i32,
    vs: i32,
    vo: i32,
}

fn layout(s: &AttnShape) -> Layout {
    Layout {
        heads: s.heads as i32,
        seq_q: s.seq_q as i32,
        seq_k: s.seq_k as i32,
        head_dim: s.head_dim as i32,
        qs: s.q.stride as i32,
        qo: s.q.offset as i32,
        ks: s.k.stride as i32,
        ko: s.k.offset as i32,
        vs: s.v.stride as i32,
        vo: s.v.offset as i32,
    }
}

impl AttentionOps for CudaBackend {
    fn attention(
        &self,
        out: &mut Tensor,
        lse: &mut Tensor,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        s: &AttnShape,
    ) -> Result<()> {
        check(s)?;
        let d = s.head_dim;
        let l = layout(s);
        let smem = KT * (d + 1) + KT * d + ROWS * d;
        AttentionForward {
            o: out,
            lse,
            q,
            k,
            v,
            heads: l.heads,
            seq_q: l.seq_q,
            seq_k: l.seq_k,
            head_dim: l.head_dim,
            qs: l.qs,
            qo: l.qo,
            ks: l.ks,
            ko: l.ko,
            vs: l.vs,
            vo: l.vo,
            scale: s.scale,
        }
        .launch(self, cfg(s.seq_q, s, smem))
    }
    fn attention_backward(&self, a: AttentionBackward, s: &AttnShape) -> Result<()> {
        check(s)?;
        let d = s.head_dim;
        let l = layout(s);
        // The gradients' buffers: one fused buffer on the operands' layouts, or three.
        let (dq, dk, dv): (&Tensor, &Tensor, &Tensor) = match &a.grads {
            AttnGrads::Fused(g) => (g, g, g),
            AttnGrads::Separate { dq, dk, dv } => (dq, dk, dv),
        };
        // delta_i = dO_i · O_i, written by the dq kernel for every query.
        let mut delta = self.alloc(&[s.batch * s.heads * s.seq_q], DType::F32)?;
        let smem = 2 * KT * (d + 1) + 2 * ROWS * d;
        AttentionBackwardDq {
            dq,
            delta: &mut delta,
            q: a.q,
            k: a.k,
            v: a.v,
            o: a.out,
            dout: a.dout,
            lse: a.lse,
            heads: l.heads,
            seq_q: l.seq_q,
            seq_k: l.seq_k,
            head_dim: l.head_dim,
            qs: l.qs,
            qo: l.qo,
            ks: l.ks,
            ko: l.ko,
            vs: l.vs,
            vo: l.vo,
            dqs: s.q.stride as i32,
            dqo: s.q.offset as i32,
            scale: s.scale,
        }
        .launch(self, cfg(s.seq_q, s, smem))?;
        let smem = 2 * KT * (d + 1) + 2 * KT + 2 * ROWS * d;
        AttentionBackwardDkdv {
            dk,
            dv,
            q: a.q,
            k: a.k,
            v: a.v,
            dout: a.dout,
            lse: a.lse,
            delta: &delta,
            heads: l.heads,
            seq_q: l.seq_q,
            seq_k: l.seq_k,
            head_dim: l.head_dim,
            qs: l.qs,
            qo: l.qo,
            ks: l.ks,
            ko: l.ko,
            vs: l.vs,
            vo: l.vo,
            dks: s.k.stride as i32,
            dko: s.k.offset as i32,
            dvs: s.v.stride as i32,
            dvo: s.v.offset as i32,
            scale: s.scale,
        }
        .launch(self, cfg(s.seq_k, s, smem))
    }
}
