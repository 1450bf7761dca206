//! Multi-head scaled dot-product attention on fused qkv (the ViT) or separate q, k, v
//! (SeisLM, cross-attention), with the fused kernels of kernels/attention.cu.

use super::*;
use crate::backend::api::attention::{
    AttentionBackward, AttentionOut, AttnGrads, AttnShape, HeadLayout, Qkv,
};

/// The output [B, Nq, C] and each query's log-sum-exp [B, H, Nq] (for the backward pass).
pub struct AttnOut {
    pub out: Tensor,
    pub lse: Tensor,
}

fn dims3(op: &str, what: &str, t: &Tensor) -> Result<(usize, usize, usize)> {
    check_float(op, what, t)?;
    match t.shape[..] {
        [b, n, c] => Ok((b, n, c)),
        _ => bail!(
            "{op}: {what} must be [batch, seq, width], found {:?}",
            t.shape
        ),
    }
}

fn head_dim(op: &str, c: usize, heads: usize) -> Result<usize> {
    if heads == 0 || !c.is_multiple_of(heads) {
        bail!("{op}: width {c} is not divisible by {heads} heads");
    }
    Ok(c / heads)
}

fn run_forward(q: &Tensor, k: &Tensor, v: &Tensor, s: &AttnShape) -> Result<AttnOut> {
    let d = check_device("attention", &[q, k, v])?;
    let mut out = alloc(&d, &[s.batch, s.seq_q, s.width()], q.dtype)?;
    let mut lse = alloc(&d, &[s.batch, s.heads, s.seq_q], DType::F32)?;
    let o = AttentionOut {
        out: &mut out,
        lse: &mut lse,
    };
    d.run().attention(o, Qkv { q, k, v }, s)?;
    Ok(AttnOut { out, lse })
}

/// softmax(q kᵀ / √d) v per head, with q, k, v read from one [B, N, 3C] tensor (timm's fused
/// qkv projection, order q, k, v) → [B, N, C].
pub fn attention_qkv(qkv: &Tensor, heads: usize) -> Result<AttnOut> {
    let (b, n, c3) = dims3("attention_qkv", "qkv", qkv)?;
    if c3 % 3 != 0 {
        bail!("attention_qkv: the last dim {c3} of qkv must be 3 × width");
    }
    let c = c3 / 3;
    let s = fused_shape(b, n, c, heads)?;
    run_forward(qkv, qkv, qkv, &s)
}

fn fused_shape(b: usize, n: usize, c: usize, heads: usize) -> Result<AttnShape> {
    let hd = head_dim("attention_qkv", c, heads)?;
    let l = |off| HeadLayout {
        stride: 3 * c,
        offset: off,
    };
    Ok(AttnShape {
        batch: b,
        heads,
        seq_q: n,
        seq_k: n,
        head_dim: hd,
        q: l(0),
        k: l(c),
        v: l(2 * c),
        scale: 1.0 / (hd as f32).sqrt(),
    })
}

/// The gradient with respect to the fused qkv input, [B, N, 3C].
pub fn attention_qkv_backward(
    qkv: &Tensor,
    fwd: &AttnOut,
    dout: &Tensor,
    heads: usize,
) -> Result<Tensor> {
    let (b, n, c3) = dims3("attention_qkv_backward", "qkv", qkv)?;
    let c = c3 / 3;
    let s = fused_shape(b, n, c, heads)?;
    if dout.shape != [b, n, c] {
        bail!(
            "attention_qkv_backward: dout must be {:?}, found {:?}",
            [b, n, c],
            dout.shape
        );
    }
    let d = check_device("attention_qkv_backward", &[qkv, dout, &fwd.out, &fwd.lse])?;
    let mut g = alloc(&d, &qkv.shape, qkv.dtype)?;
    let a = AttentionBackward {
        grads: AttnGrads::Fused(&mut g),
        qkv: Qkv {
            q: qkv,
            k: qkv,
            v: qkv,
        },
        out: &fwd.out,
        lse: &fwd.lse,
        dout,
    };
    d.run().attention_backward(a, &s)?;
    Ok(g)
}

fn separate_shape(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<AttnShape> {
    let (b, nq, c) = dims3("attention", "q", q)?;
    let (bk, nk, ck) = dims3("attention", "k", k)?;
    if (bk, ck) != (b, c) || v.shape != k.shape {
        bail!("attention: q {:?}, k {:?} and v {:?} must share batch and width, and k and v their shape", q.shape, k.shape, v.shape);
    }
    check_same_dtype("attention", q, k)?;
    check_same_dtype("attention", q, v)?;
    let hd = head_dim("attention", c, heads)?;
    let l = HeadLayout {
        stride: c,
        offset: 0,
    };
    Ok(AttnShape {
        batch: b,
        heads,
        seq_q: nq,
        seq_k: nk,
        head_dim: hd,
        q: l,
        k: l,
        v: l,
        scale: 1.0 / (hd as f32).sqrt(),
    })
}

/// Attention with separate q [B, Nq, C], k and v [B, Nk, C] (cross-attention when Nq ≠ Nk).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<AttnOut> {
    let s = separate_shape(q, k, v, heads)?;
    run_forward(q, k, v, &s)
}

/// (dq, dk, dv) for `attention`.
pub fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    fwd: &AttnOut,
    dout: &Tensor,
    heads: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    let s = separate_shape(q, k, v, heads)?;
    if dout.shape != fwd.out.shape {
        bail!(
            "attention_backward: dout must be {:?}, found {:?}",
            fwd.out.shape,
            dout.shape
        );
    }
    let d = check_device("attention_backward", &[q, k, v, dout])?;
    let (mut gq, mut gk, mut gv) = (
        alloc(&d, &q.shape, q.dtype)?,
        alloc(&d, &k.shape, k.dtype)?,
        alloc(&d, &v.shape, v.dtype)?,
    );
    let a = AttentionBackward {
        grads: AttnGrads::Separate {
            dq: &mut gq,
            dk: &mut gk,
            dv: &mut gv,
        },
        qkv: Qkv { q, k, v },
        out: &fwd.out,
        lse: &fwd.lse,
        dout,
    };
    d.run().attention_backward(a, &s)?;
    Ok((gq, gk, gv))
}
