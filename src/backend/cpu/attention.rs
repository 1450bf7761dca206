//! Multi-head scaled dot-product attention, forward and backward, on strided layouts.
//!
//! Q, K and V are read straight from the projections' output: element (b, n, h, d) of Q is
//! `q[(b·Nq + n)·q_stride + q_off + h·D + d]`, so the fused qkv projection of the ViT
//! ([B, N, 3C], offsets 0, C, 2C, stride 3C) and SeisLM's separate q/k/v projections
//! ([B, N, C], stride C) need no permute. The output is [B, Nq, H·D]; `lse` [B, H, Nq] is the
//! log-sum-exp of each query's scaled scores, kept for the backward pass.

use super::{input, Cpu, HostOut};
use crate::backend::api::attention::{
    AttentionBackward, AttentionOps, AttentionOut, AttnGrads, Qkv,
};
use anyhow::Result;
use rayon::prelude::*;

impl AttentionOps for Cpu {
    fn attention(&self, o: AttentionOut, x: Qkv, s: &AttnShape) -> Result<()> {
        let (qv, kv, vv) = (input(x.q)?, input(x.k)?, input(x.v)?);
        let mut out = HostOut::new(o.out)?;
        attention_forward(&mut out, &mut o.lse.f32s_mut()?, (&qv, &kv, &vv), s);
        out.finish()
    }
    fn attention_backward(&self, a: AttentionBackward, s: &AttnShape) -> Result<()> {
        let Qkv { q, k, v } = a.qkv;
        let (qv, kv, vv, dout) = (input(q)?, input(k)?, input(v)?, input(a.dout)?);
        let layouts = [s.q, s.k, s.v];
        let seq = |which: usize| if which == 0 { s.seq_q } else { s.seq_k };
        match a.grads {
            AttnGrads::Fused(g) => {
                let mut gv = HostOut::new(g)?;
                attention_backward((&qv, &kv, &vv), &dout, s, |which, b, h, src| {
                    put_head(&mut gv, s, layouts[which], seq(which), b, h, src);
                });
                gv.finish()
            }
            AttnGrads::Separate { dq, dk, dv } => {
                let mut g = [HostOut::new(dq)?, HostOut::new(dk)?, HostOut::new(dv)?];
                attention_backward((&qv, &kv, &vv), &dout, s, |which, b, h, src| {
                    put_head(&mut g[which], s, layouts[which], seq(which), b, h, src);
                });
                let [gq, gk, gv] = g;
                gq.finish()?;
                gk.finish()?;
                gv.finish()
            }
        }
    }
}

/// Where one operand's heads live in its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLayout {
    pub stride: usize,
    pub offset: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnShape {
    pub batch: usize,
    pub heads: usize,
    pub seq_q: usize,
    pub seq_k: usize,
    pub head_dim: usize,
    pub q: HeadLayout,
    pub k: HeadLayout,
    pub v: HeadLayout,
    pub scale: f32,
}

impl AttnShape {
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }
    #[inline]
    fn at(&self, l: HeadLayout, seq: usize, b: usize, n: usize, h: usize) -> usize {
        (b * seq + n) * l.stride + l.offset + h * self.head_dim
    }
    /// The smallest buffer length each layout addresses.
    pub fn needed_len(&self, l: HeadLayout, seq: usize) -> usize {
        if self.batch * seq == 0 {
            return 0;
        }
        (self.batch * seq - 1) * l.stride + l.offset + self.width()
    }
    pub fn flops_forward(&self) -> f64 {
        4.0 * (self.batch * self.heads * self.seq_q * self.seq_k * self.head_dim) as f64
    }
}

/// Dense [Nq, D] blocks of one (batch, head).
fn gather(buf: &[f32], s: &AttnShape, l: HeadLayout, seq: usize, b: usize, h: usize) -> Vec<f32> {
    let d = s.head_dim;
    let mut out = vec![0.0; seq * d];
    for n in 0..seq {
        let i = s.at(l, seq, b, n, h);
        out[n * d..(n + 1) * d].copy_from_slice(&buf[i..i + d]);
    }
    out
}

/// Writes a dense head block [seq, d] into a strided buffer (the inverse of `gather`; also
/// used by `attention_backward`'s callers).
pub fn put_head(
    buf: &mut [f32],
    s: &AttnShape,
    l: HeadLayout,
    seq: usize,
    b: usize,
    h: usize,
    src: &[f32],
) {
    let d = s.head_dim;
    for n in 0..seq {
        let i = s.at(l, seq, b, n, h);
        buf[i..i + d].copy_from_slice(&src[n * d..(n + 1) * d]);
    }
}

/// C = op(A) · op(B) for dense row-major blocks (the gemm crate, on this thread).
#[allow(clippy::too_many_arguments)]
fn mm(c: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize, ta: bool, tb: bool) {
    let s = super::matmul::MatmulShape {
        batch: 1,
        m,
        n,
        k,
        ta,
        tb,
        a_stride: 0,
        b_stride: 0,
    };
    super::matmul::matmul(c, a, b, None, &s, false);
}

/// Probabilities P [Nq, Nk] of one head and the per-query log-sum-exp.
fn probs(q: &[f32], k: &[f32], s: &AttnShape) -> (Vec<f32>, Vec<f32>) {
    let (nq, nk, d) = (s.seq_q, s.seq_k, s.head_dim);
    let mut p = vec![0.0f32; nq * nk];
    mm(&mut p, q, k, nq, nk, d, false, true);
    let mut lse = vec![0.0f32; nq];
    for (row, l) in p.chunks_mut(nk).zip(lse.iter_mut()) {
        row.iter_mut().for_each(|v| *v *= s.scale);
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        super::expf::exp_shifted(row, m);
        let sum = super::expf::sum_f64(row);
        let inv = (1.0 / sum) as f32;
        row.iter_mut().for_each(|v| *v *= inv);
        *l = m + (sum as f32).ln();
    }
    (p, lse)
}

/// Head h of sample b of q, k and v, dense.
/// [`Qkv`] read on the host: the q, k and v buffers (one buffer three times when fused).
pub type QkvHost<'a> = (&'a [f32], &'a [f32], &'a [f32]);

fn gather_qkv(
    (q, k, v): QkvHost,
    s: &AttnShape,
    b: usize,
    h: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (
        gather(q, s, s.q, s.seq_q, b, h),
        gather(k, s, s.k, s.seq_k, b, h),
        gather(v, s, s.v, s.seq_k, b, h),
    )
}

/// o [B, Nq, H·D] and lse [B, H, Nq].
pub fn attention_forward(o: &mut [f32], lse: &mut [f32], qkv: QkvHost, s: &AttnShape) {
    let (nq, nk, d, hh) = (s.seq_q, s.seq_k, s.head_dim, s.heads);
    let heads: Vec<(Vec<f32>, Vec<f32>)> = (0..s.batch * hh)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / hh, bh % hh);
            let (qh, kh, vh) = gather_qkv(qkv, s, b, h);
            let (p, l) = probs(&qh, &kh, s);
            let mut out = vec![0.0f32; nq * d];
            mm(&mut out, &p, &vh, nq, d, nk, false, false);
            (out, l)
        })
        .collect();
    let ol = HeadLayout {
        stride: s.width(),
        offset: 0,
    };
    for (bh, (out, l)) in heads.into_iter().enumerate() {
        let (b, h) = (bh / hh, bh % hh);
        put_head(o, s, ol, nq, b, h, &out);
        lse[bh * nq..(bh + 1) * nq].copy_from_slice(&l);
    }
}

/// Gradients of one head: (dq, dk, dv), dense.
type HeadGrads = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Writes dq, dk, dv through `put(which, b, h, dense)` (which = 0, 1, 2), so that they can land
/// in one fused buffer or in three.
pub fn attention_backward(
    qkv: QkvHost,
    dout: &[f32],
    s: &AttnShape,
    mut put: impl FnMut(usize, usize, usize, &[f32]),
) {
    let (nq, nk, d, hh) = (s.seq_q, s.seq_k, s.head_dim, s.heads);
    let ol = HeadLayout {
        stride: s.width(),
        offset: 0,
    };
    let grads: Vec<HeadGrads> = (0..s.batch * hh)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / hh, bh % hh);
            let (qh, kh, vh) = gather_qkv(qkv, s, b, h);
            let doh = gather(dout, s, ol, nq, b, h);
            let (p, _) = probs(&qh, &kh, s);
            // dP = dO Vᵀ; dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale
            let mut ds = vec![0.0f32; nq * nk];
            mm(&mut ds, &doh, &vh, nq, nk, d, false, true);
            for (dr, pr) in ds.chunks_mut(nk).zip(p.chunks(nk)) {
                let di: f32 = dr.iter().zip(pr).map(|(a, b)| a * b).sum();
                for (x, &pv) in dr.iter_mut().zip(pr) {
                    *x = pv * (*x - di) * s.scale;
                }
            }
            let (mut dq, mut dk, mut dv) = (
                vec![0.0f32; nq * d],
                vec![0.0f32; nk * d],
                vec![0.0f32; nk * d],
            );
            mm(&mut dq, &ds, &kh, nq, d, nk, false, false);
            mm(&mut dk, &ds, &qh, nk, d, nq, true, false);
            mm(&mut dv, &p, &doh, nk, d, nq, true, false);
            (dq, dk, dv)
        })
        .collect();
    for (bh, (dq, dk, dv)) in grads.into_iter().enumerate() {
        let (b, h) = (bh / hh, bh % hh);
        put(0, b, h, &dq);
        put(1, b, h, &dk);
        put(2, b, h, &dv);
    }
}
