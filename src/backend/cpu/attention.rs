//! Multi-head scaled dot-product attention, forward and backward, on strided layouts.
//!
//! Q, K and V are read straight from the projections' output: element (b, n, h, d) of Q is
//! `q[(b·Nq + n)·q_stride + q_off + h·D + d]`, so the fused qkv projection of the ViT
//! ([B, N, 3C], offsets 0, C, 2C, stride 3C) and SeisLM's separate q/k/v projections
//! ([B, N, C], stride C) need no permute. The output is [B, Nq, H·D]; `lse` [B, H, Nq] is the
//! log-sum-exp of each query's scaled scores, kept for the backward pass.
//!
//! Head dims up to 32 go to `attention_narrow.rs` (AVX2 + FMA register tiles) when the CPU has
//! both; this file's blocked products take every other shape and CPU.
//!
//! Both passes work on blocks of [`QB`] queries of one (batch, head), in parallel over
//! (batch, head, query block): a block's score rows [QB, Nk] stay in L2 and each row in L1
//! while it is exponentiated and summed, where the whole [Nq, Nk] matrix of a head (2.2 MB at
//! SeisLM's 749 frames) did not fit and was swept several times. The products go through the
//! gemm crate on strided views of the inputs (no gather), single-threaded inside a block, with
//! the softmax scale folded into the score product. The backward takes the forward's
//! log-sum-exp, so P = exp(S·scale − lse) in one pass. dK and dV are sums over query blocks:
//! each block's share is computed on its own and the shares are added in block order, so the
//! result is the same for any number of threads.

use super::{input, Cpu, HostOut};
use crate::backend::api::attention::{
    AttentionBackward, AttentionOps, AttentionOut, AttnGrads, Qkv,
};
use anyhow::Result;
use gemm::Parallelism;
use rayon::prelude::*;
use std::cell::RefCell;

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
        let lse = input(a.lse)?;
        let layouts = [s.q, s.k, s.v];
        let seq = |which: usize| if which == 0 { s.seq_q } else { s.seq_k };
        match a.grads {
            AttnGrads::Fused(g) => {
                let mut gv = HostOut::new(g)?;
                attention_backward((&qv, &kv, &vv), &dout, &lse, s, |which, b, h, src| {
                    put_head(&mut gv, s, layouts[which], seq(which), b, h, src);
                });
                gv.finish()
            }
            AttnGrads::Separate { dq, dk, dv } => {
                let mut g = [HostOut::new(dq)?, HostOut::new(dk)?, HostOut::new(dv)?];
                attention_backward((&qv, &kv, &vv), &dout, &lse, s, |which, b, h, src| {
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
    /// Where element (b, n, h, 0) of an operand with layout `l` and `seq` rows per sample is.
    #[inline]
    pub(super) fn at(&self, l: HeadLayout, seq: usize, b: usize, n: usize, h: usize) -> usize {
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
    /// The dense [B, Nq, H·D] layout of the output and its gradient.
    fn out_layout(&self) -> HeadLayout {
        HeadLayout {
            stride: self.width(),
            offset: 0,
        }
    }
}

/// Writes a dense head block [seq, d] into a strided buffer (used by `attention_backward`'s
/// callers).
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

/// [`Qkv`] read on the host: the q, k and v buffers (one buffer three times when fused).
pub type QkvHost<'a> = (&'a [f32], &'a [f32], &'a [f32]);

/// Queries per block. Two [QB, Nk] f32 blocks (the backward's P and dP) take 192 KB at
/// Nk = 749, well inside a 1 MB L2, and Nq = 749 still gives 24 blocks per head to share out.
pub(super) const QB: usize = 32;

/// A row-major matrix in memory: element (i, j) at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

// SAFETY: a `Mat` is a read-only view into a slice that the call borrows for as long as any
// task runs (the inputs of `attention_forward` / `attention_backward`).
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

impl Mat {
    fn t(self) -> Mat {
        Mat {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// A pointer into an output that parallel blocks write in disjoint parts.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: every task writes its own rows (forward) — see `forward_blocked` and
// `attention_narrow::forward`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The element `i` places on (a method, so that closures capture the whole `OutPtr`).
    pub(super) fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// dst [m, n] (row stride `dst_rs`, columns contiguous) = beta · A [m, k] · B [k, n], on this
/// thread.
///
/// # Safety
/// Every element addressed through `dst`, `a` and `b` must be in bounds, `dst` writable and
/// not aliased.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    a: Mat,
    b: Mat,
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n).fill(0.0);
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        a.ptr,
        a.cs,
        a.rs,
        b.ptr,
        b.cs,
        b.rs,
        0.0f32,
        beta,
        false,
        false,
        false,
        Parallelism::None,
    );
}

thread_local! {
    /// Per-thread scratch for a block's [QB, Nk] rows (or a narrow task's layouts and rows),
    /// reused across blocks and calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f` on `len` floats of this thread's scratch (contents unspecified).
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|c| match c.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        // Only if a block ever ran inside another on one thread; never here.
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// The operands of one (batch, head) as strided matrices.
struct Head {
    q: Mat,
    k: Mat,
    v: Mat,
}

fn head(qkv: QkvHost, s: &AttnShape, b: usize, h: usize) -> Head {
    let m = |buf: &[f32], l: HeadLayout, seq: usize| Mat {
        // wrapping_add: an empty operand may point one past its buffer.
        ptr: buf.as_ptr().wrapping_add(s.at(l, seq, b, 0, h)),
        rs: l.stride as isize,
        cs: 1,
    };
    Head {
        q: m(qkv.0, s.q, s.seq_q),
        k: m(qkv.1, s.k, s.seq_k),
        v: m(qkv.2, s.v, s.seq_k),
    }
}

/// Checks that every element the shape addresses is inside the buffers (the raw-pointer
/// products rely on it).
fn check_lens(qkv: QkvHost, s: &AttnShape) {
    assert!(
        qkv.0.len() >= s.needed_len(s.q, s.seq_q),
        "attention: q too short"
    );
    assert!(
        qkv.1.len() >= s.needed_len(s.k, s.seq_k),
        "attention: k too short"
    );
    assert!(
        qkv.2.len() >= s.needed_len(s.v, s.seq_k),
        "attention: v too short"
    );
}

/// Softmax rows of a forward block, in place, one row at a time while it is in L1: each row
/// of `p` (scaled scores) becomes e^(x − max), and 1/Σ goes to `inv`, max + ln Σ to `lse`.
#[inline(always)]
fn forward_rows_body(p: &mut [f32], nk: usize, inv: &mut [f32], lse: &mut [f32]) {
    for ((row, iv), l) in p.chunks_mut(nk).zip(inv.iter_mut()).zip(lse.iter_mut()) {
        let m = row_max(row);
        for v in row.iter_mut() {
            *v = super::expf::exp(*v - m);
        }
        let sum = super::expf::sum_f64(row);
        // An empty row (no keys) gives a zero output, as a zero-length product would.
        *iv = if row.is_empty() {
            0.0
        } else {
            (1.0 / sum) as f32
        };
        *l = m + (sum as f32).ln();
    }
}

fn forward_rows(p: &mut [f32], nk: usize, inv: &mut [f32], lse: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::expf::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { forward_rows_avx2(p, nk, inv, lse) };
    }
    forward_rows_body(p, nk, inv, lse)
}

/// The same code 8 lanes wide, with the same bits (`the_wide_rows_give_the_same_bits`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_rows_avx2(p: &mut [f32], nk: usize, inv: &mut [f32], lse: &mut [f32]) {
    forward_rows_body(p, nk, inv, lse)
}

/// The largest element of a row (NaNs skipped, so that a NaN row still turns into NaNs
/// below, not a NaN shift); −∞ for an empty row. Eight lanes, so it vectorises.
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    for &v in rest {
        acc[0] = if v > acc[0] { v } else { acc[0] };
    }
    acc.iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a })
}

/// Σ a·b in f32 with eight interleaved partial sums added in a fixed order.
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((a, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// The backward's rows of one block, in place: with `p` holding scaled scores and `dp` dO·Vᵀ,
/// p becomes P = e^(x − lse) and dp becomes P ⊙ (dP − rowsum(P ⊙ dP)) (dS without its scale).
#[inline(always)]
fn backward_rows_body(p: &mut [f32], dp: &mut [f32], nk: usize, lse: &[f32]) {
    for ((pr, dr), &l) in p.chunks_mut(nk).zip(dp.chunks_mut(nk)).zip(lse) {
        for v in pr.iter_mut() {
            *v = super::expf::exp(*v - l);
        }
        let di = dot8(pr, dr);
        for (x, &pv) in dr.iter_mut().zip(pr.iter()) {
            *x = pv * (*x - di);
        }
    }
}

fn backward_rows(p: &mut [f32], dp: &mut [f32], nk: usize, lse: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::expf::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { backward_rows_avx2(p, dp, nk, lse) };
    }
    backward_rows_body(p, dp, nk, lse)
}

/// The same code 8 lanes wide, with the same bits (`the_wide_rows_give_the_same_bits`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_rows_avx2(p: &mut [f32], dp: &mut [f32], nk: usize, lse: &[f32]) {
    backward_rows_body(p, dp, nk, lse)
}

/// o [B, Nq, H·D] and lse [B, H, Nq].
/// Narrow heads go to `attention_narrow` where the CPU has AVX2 and FMA, the rest to the
/// blocked products below.
pub fn attention_forward(o: &mut [f32], lse: &mut [f32], qkv: QkvHost, s: &AttnShape) {
    check_lens(qkv, s);
    assert!(
        o.len() >= s.batch * s.seq_q * s.width(),
        "attention: out too short"
    );
    assert!(
        lse.len() >= s.batch * s.heads * s.seq_q,
        "attention: lse too short"
    );
    #[cfg(target_arch = "x86_64")]
    if super::attention_narrow::usable(s) {
        return super::attention_narrow::forward(o, lse, qkv, s);
    }
    forward_blocked(o, lse, qkv, s)
}

/// `attention_forward` through the gemm crate (any head dim), after its checks.
fn forward_blocked(o: &mut [f32], lse: &mut [f32], qkv: QkvHost, s: &AttnShape) {
    let (nq, nk, d, hh) = (s.seq_q, s.seq_k, s.head_dim, s.heads);
    let blocks = nq.div_ceil(QB);
    let width = s.width();
    let (op, lp) = (OutPtr(o.as_mut_ptr()), OutPtr(lse.as_mut_ptr()));
    (0..s.batch * hh * blocks).into_par_iter().for_each(|t| {
        let (bh, blk) = (t / blocks, t % blocks);
        let (b, h) = (bh / hh, bh % hh);
        let (n0, rows) = (blk * QB, QB.min(nq - blk * QB));
        let x = head(qkv, s, b, h);
        let q = Mat {
            ptr: x.q.ptr.wrapping_offset(n0 as isize * x.q.rs),
            ..x.q
        };
        with_scratch(rows * nk, |p| {
            let mut inv = [0.0f32; QB];
            // SAFETY: check_lens bounds q, k, v; this task alone writes rows n0..n0+rows of
            // head h of sample b of o (columns h·D..(h+1)·D) and the same rows of lse.
            unsafe {
                // S = scale · Q Kᵀ
                gemm_into(rows, nk, d, p.as_mut_ptr(), nk, q, x.k.t(), s.scale);
                let l = std::slice::from_raw_parts_mut(lp.at(bh * nq + n0), rows);
                forward_rows(p, nk, &mut inv[..rows], l);
                // O = (e^(S − max) V) / Σ
                let out = op.at((b * nq + n0) * width + h * d);
                let e = Mat {
                    ptr: p.as_ptr(),
                    rs: nk as isize,
                    cs: 1,
                };
                gemm_into(rows, d, nk, out, width, e, x.v, 1.0);
                for (r, &iv) in inv[..rows].iter().enumerate() {
                    let row = std::slice::from_raw_parts_mut(out.add(r * width), d);
                    row.iter_mut().for_each(|v| *v *= iv);
                }
            }
        });
    });
}

/// One query block's share of a head's gradients: its rows of dq, and its terms of dk and dv.
struct BlockGrads {
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
}

/// Gradients of one head: (dq, dk, dv), dense.
type HeadGrads = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Writes dq, dk, dv through `put(which, b, h, dense)` (which = 0, 1, 2), so that they can land
/// in one fused buffer or in three. `lse` [B, H, Nq] is the forward's.
pub fn attention_backward(
    qkv: QkvHost,
    dout: &[f32],
    lse: &[f32],
    s: &AttnShape,
    put: impl FnMut(usize, usize, usize, &[f32]),
) {
    check_lens(qkv, s);
    assert!(
        dout.len() >= s.needed_len(s.out_layout(), s.seq_q),
        "attention: dout too short"
    );
    assert!(
        lse.len() >= s.batch * s.heads * s.seq_q,
        "attention: lse too short"
    );
    #[cfg(target_arch = "x86_64")]
    if super::attention_narrow::usable(s) {
        return super::attention_narrow::backward(qkv, dout, lse, s, put);
    }
    backward_blocked(qkv, dout, lse, s, put)
}

/// `attention_backward` through the gemm crate (any head dim), after its checks.
fn backward_blocked(
    qkv: QkvHost,
    dout: &[f32],
    lse: &[f32],
    s: &AttnShape,
    mut put: impl FnMut(usize, usize, usize, &[f32]),
) {
    let (nq, nk, d, hh) = (s.seq_q, s.seq_k, s.head_dim, s.heads);
    let ol = s.out_layout();
    let blocks = nq.div_ceil(QB);
    let grads: Vec<HeadGrads> = (0..s.batch * hh)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / hh, bh % hh);
            let x = head(qkv, s, b, h);
            let dob = Mat {
                ptr: dout.as_ptr().wrapping_add(s.at(ol, nq, b, 0, h)),
                rs: ol.stride as isize,
                cs: 1,
            };
            let lh = &lse[bh * nq..(bh + 1) * nq];
            let parts: Vec<BlockGrads> = (0..blocks)
                .into_par_iter()
                .map(|blk| backward_block(&x, dob, lh, s, blk))
                .collect();
            // dq: the blocks' rows in order; dk, dv: the blocks' terms added in block order.
            let mut dq = Vec::with_capacity(nq * d);
            let (mut dk, mut dv) = (vec![0.0f32; nk * d], vec![0.0f32; nk * d]);
            for (i, part) in parts.into_iter().enumerate() {
                dq.extend_from_slice(&part.dq);
                if i == 0 {
                    (dk, dv) = (part.dk, part.dv);
                } else {
                    dk.iter_mut().zip(&part.dk).for_each(|(a, b)| *a += b);
                    dv.iter_mut().zip(&part.dv).for_each(|(a, b)| *a += b);
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

/// Query block `blk` of one head: S and dP for its rows, then its dq rows and dk, dv terms.
fn backward_block(x: &Head, dob: Mat, lse: &[f32], s: &AttnShape, blk: usize) -> BlockGrads {
    let (nq, nk, d) = (s.seq_q, s.seq_k, s.head_dim);
    let (n0, rows) = (blk * QB, QB.min(nq - blk * QB));
    let shift = |m: Mat| Mat {
        ptr: m.ptr.wrapping_offset(n0 as isize * m.rs),
        ..m
    };
    let (q, dob) = (shift(x.q), shift(dob));
    let mut g = BlockGrads {
        dq: vec![0.0; rows * d],
        dk: vec![0.0; nk * d],
        dv: vec![0.0; nk * d],
    };
    with_scratch(2 * rows * nk, |buf| {
        let (p, dp) = buf.split_at_mut(rows * nk);
        let dense = |m: &[f32]| Mat {
            ptr: m.as_ptr(),
            rs: nk as isize,
            cs: 1,
        };
        // SAFETY: the callers' length checks bound q, k, v and dout; the destinations are
        // this block's own buffers of the sizes given.
        unsafe {
            // S = scale · Q Kᵀ, dP = dO Vᵀ
            gemm_into(rows, nk, d, p.as_mut_ptr(), nk, q, x.k.t(), s.scale);
            gemm_into(rows, nk, d, dp.as_mut_ptr(), nk, dob, x.v.t(), 1.0);
        }
        backward_rows(p, dp, nk, &lse[n0..n0 + rows]);
        let (pm, dsm) = (dense(p), dense(dp));
        // SAFETY: as above.
        unsafe {
            // dQ = scale · dS K, dK = scale · dSᵀ Q, dV = Pᵀ dO
            gemm_into(rows, d, nk, g.dq.as_mut_ptr(), d, dsm, x.k, s.scale);
            gemm_into(nk, d, rows, g.dk.as_mut_ptr(), d, dsm.t(), q, s.scale);
            gemm_into(nk, d, rows, g.dv.as_mut_ptr(), d, pm.t(), dob, 1.0);
        }
    });
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform in [−1, 1) from the backend's own Philox stream.
    fn rand(n: usize, seed: u64) -> Vec<f32> {
        let mut s = super::super::philox::PhiloxStream::new(seed, 0, 0);
        (0..n).map(|_| 2.0 * s.next_f32() - 1.0).collect()
    }

    /// Cross-attention: q [B, Nq, C] alone, k and v side by side in one [B, Nk, 2C] buffer.
    fn cross_shape(b: usize, h: usize, nq: usize, nk: usize, d: usize) -> AttnShape {
        let c = h * d;
        AttnShape {
            batch: b,
            heads: h,
            seq_q: nq,
            seq_k: nk,
            head_dim: d,
            q: HeadLayout {
                stride: c,
                offset: 0,
            },
            k: HeadLayout {
                stride: 2 * c,
                offset: 0,
            },
            v: HeadLayout {
                stride: 2 * c,
                offset: c,
            },
            scale: 1.0 / (d as f32).sqrt(),
        }
    }

    /// (o, lse, dq, dk, dv) with dq, dk, dv dense [B, N, C].
    type All = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

    /// Which implementation a test runs.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Path {
        /// `attention_forward` / `attention_backward`: whichever they pick.
        Chosen,
        /// The gemm crate's blocked products.
        Blocked,
        /// The AVX2 tiles of `attention_narrow`.
        #[cfg(target_arch = "x86_64")]
        Narrow,
    }

    /// The paths to check at head dim `d` on this CPU.
    fn paths(d: usize) -> Vec<Path> {
        let mut v = vec![Path::Chosen, Path::Blocked];
        #[cfg(target_arch = "x86_64")]
        if d <= super::super::attention_narrow::MAX_HEAD_DIM && super::super::expf::has_avx2_fma() {
            v.push(Path::Narrow);
        }
        v
    }

    fn run_on(path: Path, s: &AttnShape, q: &[f32], kv: &[f32], dout: &[f32]) -> All {
        let c = s.width();
        let mut o = vec![0.0; s.batch * s.seq_q * c];
        let mut lse = vec![0.0; s.batch * s.heads * s.seq_q];
        let qkv = (q, kv, kv);
        match path {
            Path::Chosen => attention_forward(&mut o, &mut lse, qkv, s),
            Path::Blocked => forward_blocked(&mut o, &mut lse, qkv, s),
            #[cfg(target_arch = "x86_64")]
            Path::Narrow => super::super::attention_narrow::forward(&mut o, &mut lse, qkv, s),
        }
        let mut g = [
            vec![0.0; s.batch * s.seq_q * c],
            vec![0.0; s.batch * s.seq_k * c],
            vec![0.0; s.batch * s.seq_k * c],
        ];
        let dense = HeadLayout {
            stride: c,
            offset: 0,
        };
        let put = |w: usize, b, h, src: &[f32]| {
            let seq = if w == 0 { s.seq_q } else { s.seq_k };
            put_head(&mut g[w], s, dense, seq, b, h, src);
        };
        match path {
            Path::Chosen => attention_backward(qkv, dout, &lse, s, put),
            Path::Blocked => backward_blocked(qkv, dout, &lse, s, put),
            #[cfg(target_arch = "x86_64")]
            Path::Narrow => super::super::attention_narrow::backward(qkv, dout, &lse, s, put),
        }
        let [dq, dk, dv] = g;
        (o, lse, dq, dk, dv)
    }

    /// The same in f64, one head at a time on whole [N, N] matrices.
    fn reference(s: &AttnShape, q: &[f32], kv: &[f32], dout: &[f32]) -> Vec<Vec<f64>> {
        let (nq, nk, d, c) = (s.seq_q, s.seq_k, s.head_dim, s.width());
        let mut r = vec![
            vec![0.0; s.batch * nq * c],
            vec![0.0; s.batch * s.heads * nq],
            vec![0.0; s.batch * nq * c],
            vec![0.0; s.batch * nk * c],
            vec![0.0; s.batch * nk * c],
        ];
        for b in 0..s.batch {
            for h in 0..s.heads {
                let qa = |i: usize, e: usize| q[s.at(s.q, nq, b, i, h) + e] as f64;
                let ka = |j: usize, e: usize| kv[s.at(s.k, nk, b, j, h) + e] as f64;
                let va = |j: usize, e: usize| kv[s.at(s.v, nk, b, j, h) + e] as f64;
                let doa = |i: usize, e: usize| dout[(b * nq + i) * c + h * d + e] as f64;
                for i in 0..nq {
                    let sc: Vec<f64> = (0..nk)
                        .map(|j| (0..d).map(|e| qa(i, e) * ka(j, e)).sum::<f64>() * s.scale as f64)
                        .collect();
                    let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = sc.iter().map(|x| (x - m).exp()).sum();
                    let p: Vec<f64> = sc.iter().map(|x| (x - m).exp() / z).collect();
                    r[1][(b * s.heads + h) * nq + i] = m + z.ln();
                    let dp: Vec<f64> = (0..nk)
                        .map(|j| (0..d).map(|e| doa(i, e) * va(j, e)).sum())
                        .collect();
                    let di: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                    for j in 0..nk {
                        let ds = p[j] * (dp[j] - di) * s.scale as f64;
                        for e in 0..d {
                            r[0][(b * nq + i) * c + h * d + e] += p[j] * va(j, e);
                            r[2][(b * nq + i) * c + h * d + e] += ds * ka(j, e);
                            r[3][(b * nk + j) * c + h * d + e] += ds * qa(i, e);
                            r[4][(b * nk + j) * c + h * d + e] += p[j] * doa(i, e);
                        }
                    }
                }
            }
        }
        r
    }

    /// Random q and kv (scaled by 2, so that the softmax is not flat) and dout for `s`.
    fn inputs(s: &AttnShape) -> [Vec<f32>; 3] {
        let c = s.width();
        let kv = rand(s.batch * s.seq_k * 2 * c, 2);
        [
            rand(s.batch * s.seq_q * c, 1),
            kv.iter().map(|x| 2.0 * x).collect(),
            rand(s.batch * s.seq_q * c, 3),
        ]
    }

    fn assert_close(path: Path, got: &All, want: &[Vec<f64>]) {
        let got = [&got.0, &got.1, &got.2, &got.3, &got.4];
        let names = ["o", "lse", "dq", "dk", "dv"];
        for ((g, w), name) in got.iter().zip(want).zip(names) {
            assert_eq!(g.len(), w.len());
            let scale = w.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            for (i, (&g, &w)) in g.iter().zip(w.iter()).enumerate() {
                let err = (g as f64 - w).abs();
                assert!(
                    err <= 2e-6 * scale.max(1.0),
                    "{path:?} {name}[{i}]: {g} vs {w} (err {err:e})"
                );
            }
        }
    }

    #[test]
    fn cross_attention_matches_an_f64_reference_on_every_path() {
        // Nq, Nk not multiples of the block or of a tile, Nq ≠ Nk, several blocks per head;
        // head dims on both sides of each vector width the narrow tiles use, and one above.
        for d in [1, 5, 8, 12, 20, 27, 32, 40] {
            let s = cross_shape(2, 3, 2 * QB + 13, 3 * QB + 7, d);
            let [q, kv, dout] = inputs(&s);
            let want = reference(&s, &q, &kv, &dout);
            for path in paths(d) {
                assert_close(path, &run_on(path, &s, &q, &kv, &dout), &want);
            }
        }
    }

    #[test]
    fn every_path_ignores_the_thread_count() {
        // Two heads of four blocks: the narrow backward's sums run over several groups.
        for d in [12, 40] {
            let s = cross_shape(1, 2, 3 * QB + 5, 2 * QB + 9, d);
            let [q, kv, dout] = inputs(&s);
            for path in paths(d) {
                let bits = |threads: usize| -> Vec<Vec<u32>> {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let r = pool.install(|| run_on(path, &s, &q, &kv, &dout));
                    [r.0, r.1, r.2, r.3, r.4]
                        .iter()
                        .map(|v| v.iter().map(|x| x.to_bits()).collect())
                        .collect()
                };
                let one = bits(1);
                assert_eq!(one, bits(2), "{path:?}, head dim {d}");
                assert_eq!(one, bits(3), "{path:?}, head dim {d}");
            }
        }
    }

    #[test]
    fn the_wide_rows_give_the_same_bits() {
        let (rows, nk) = (5, 37);
        let x = rand(rows * nk, 11);
        let lse: Vec<f32> = rand(rows, 12).iter().map(|v| v + 3.0).collect();
        let (mut a, mut b) = (x.clone(), x.clone());
        let (mut ia, mut ib, mut la, mut lb) = ([0.0; 5], [0.0; 5], [0.0; 5], [0.0; 5]);
        forward_rows(&mut a, nk, &mut ia, &mut la);
        forward_rows_body(&mut b, nk, &mut ib, &mut lb);
        assert_eq!((a, ia, la), (b, ib, lb));
        let dp0 = rand(rows * nk, 13);
        let (mut pa, mut pb, mut da, mut db) = (x.clone(), x, dp0.clone(), dp0);
        backward_rows(&mut pa, &mut da, nk, &lse);
        backward_rows_body(&mut pb, &mut db, nk, &lse);
        assert_eq!((pa, da), (pb, db));
    }

    #[test]
    fn a_nan_input_gives_nan_not_a_panic() {
        let s = cross_shape(1, 1, QB + 3, 9, 4);
        let c = s.width();
        let mut q = rand(s.seq_q * c, 4);
        q[(QB + 1) * c] = f32::NAN;
        let kv = rand(s.seq_k * 2 * c, 5);
        let dout = rand(s.seq_q * c, 6);
        for path in paths(s.head_dim) {
            let (o, lse, dq, _, _) = run_on(path, &s, &q, &kv, &dout);
            let row = (QB + 1) * c;
            assert!(
                o[row].is_nan() && lse[QB + 1].is_nan() && dq[row].is_nan(),
                "{path:?}"
            );
            assert!(
                o[0].is_finite() && lse[0].is_finite() && dq[0].is_finite(),
                "{path:?}"
            );
        }
    }
}
