//! Multi-head scaled dot-product attention, forward and backward, on strided layouts.
//!
//! Q, K and V are read straight from the projections' output: element (b, n, h, d) of Q is
//! `q[(b·Nq + n)·q_stride + q_off + h·D + d]`, so the fused qkv projection of the ViT
//! ([B, N, 3C], offsets 0, C, 2C, stride 3C) and SeisLM's separate q/k/v projections
//! ([B, N, C], stride C) need no permute. The output is [B, Nq, H·D]; `lse` [B, H, Nq] is the
//! log-sum-exp of each query's scaled scores, kept for the backward pass.

use rayon::prelude::*;

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

fn scatter(
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

/// Probabilities P [Nq, Nk] of one head and the per-query log-sum-exp.
fn probs(q: &[f32], k: &[f32], s: &AttnShape) -> (Vec<f32>, Vec<f32>) {
    let (nq, nk, d) = (s.seq_q, s.seq_k, s.head_dim);
    let mut p = vec![0.0f32; nq * nk];
    let mut lse = vec![0.0f32; nq];
    for i in 0..nq {
        let row = &mut p[i * nk..(i + 1) * nk];
        for j in 0..nk {
            let mut acc = 0.0f32;
            for t in 0..d {
                acc += q[i * d + t] * k[j * d + t];
            }
            row[j] = acc * s.scale;
        }
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0f64;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            sum += *v as f64;
        }
        let inv = (1.0 / sum) as f32;
        row.iter_mut().for_each(|v| *v *= inv);
        lse[i] = m + (sum as f32).ln();
    }
    (p, lse)
}

/// o [B, Nq, H·D] and lse [B, H, Nq].
pub fn attention_forward(
    o: &mut [f32],
    lse: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: &AttnShape,
) {
    let (nq, nk, d, hh) = (s.seq_q, s.seq_k, s.head_dim, s.heads);
    let heads: Vec<(Vec<f32>, Vec<f32>)> = (0..s.batch * hh)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / hh, bh % hh);
            let (qh, kh, vh) = (
                gather(q, s, s.q, nq, b, h),
                gather(k, s, s.k, nk, b, h),
                gather(v, s, s.v, nk, b, h),
            );
            let (p, l) = probs(&qh, &kh, s);
            let mut out = vec![0.0f32; nq * d];
            for i in 0..nq {
                for j in 0..nk {
                    let pij = p[i * nk + j];
                    for t in 0..d {
                        out[i * d + t] += pij * vh[j * d + t];
                    }
                }
            }
            (out, l)
        })
        .collect();
    let ol = HeadLayout {
        stride: s.width(),
        offset: 0,
    };
    for (bh, (out, l)) in heads.into_iter().enumerate() {
        let (b, h) = (bh / hh, bh % hh);
        scatter(o, s, ol, nq, b, h, &out);
        lse[bh * nq..(bh + 1) * nq].copy_from_slice(&l);
    }
}

/// Gradients of one head: (dq, dk, dv), dense.
type HeadGrads = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Writes dq, dk, dv through `put(which, b, h, dense)` (which = 0, 1, 2), so that they can land
/// in one fused buffer or in three.
pub fn attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
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
            let (qh, kh, vh) = (
                gather(q, s, s.q, nq, b, h),
                gather(k, s, s.k, nk, b, h),
                gather(v, s, s.v, nk, b, h),
            );
            let doh = gather(dout, s, ol, nq, b, h);
            let (p, _) = probs(&qh, &kh, s);
            let (mut dq, mut dk, mut dv) = (
                vec![0.0f32; nq * d],
                vec![0.0f32; nk * d],
                vec![0.0f32; nk * d],
            );
            for i in 0..nq {
                // dP_ij = dO_i · v_j ; dS_ij = P_ij (dP_ij − Σ_j P_ij dP_ij)
                let mut dp = vec![0.0f32; nk];
                for (j, dpj) in dp.iter_mut().enumerate() {
                    *dpj = (0..d).map(|t| doh[i * d + t] * vh[j * d + t]).sum();
                }
                let di: f32 = (0..nk).map(|j| p[i * nk + j] * dp[j]).sum();
                for j in 0..nk {
                    let pij = p[i * nk + j];
                    let ds = pij * (dp[j] - di) * s.scale;
                    for t in 0..d {
                        dq[i * d + t] += ds * kh[j * d + t];
                        dk[j * d + t] += ds * qh[i * d + t];
                        dv[j * d + t] += pij * doh[i * d + t];
                    }
                }
            }
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

/// Writes a dense head block into a strided buffer (used by `attention_backward`'s callers).
pub fn put_head(
    buf: &mut [f32],
    s: &AttnShape,
    l: HeadLayout,
    seq: usize,
    b: usize,
    h: usize,
    src: &[f32],
) {
    scatter(buf, s, l, seq, b, h, src)
}
