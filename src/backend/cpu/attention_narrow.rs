//! Attention for narrow heads (head dim ≤ 32: SeisLM's 12 and 20, sfm-tiny's 16) with
//! hand-written AVX2 + FMA tiles, used by `attention.rs` whenever the CPU has both.
//!
//! At such head dims a score product has an inner length of 12–20, so a general matrix product
//! spends most of its time packing operands and loading and storing its output tile rather than
//! multiplying: the gemm crate ran SeisLM-tiny's attention at about a third of the machine's
//! multiply-add rate. Here each head's K and V are laid out once for the tiles that read them,
//! and every product of a query block runs on registers:
//!
//! | product | tile | layout read |
//! |---|---|---|
//! | S = (scale·Q) Kᵀ, dP = dO Vᵀ | 4 rows × 16 keys | Kᵀ, Vᵀ as [D, 16] panels |
//! | O = P V, dQ = dS K | R rows × D' | V, K as [Nk, D'] |
//! | dK += dSᵀ (scale·Q), dV += Pᵀ dO | R keys × D' | the block's rows as [QB, D'] |
//!
//! Nk' is Nk rounded up to 16 and D' is D rounded up to 8, with zeros in the padding; R is 6,
//! 4, 3 or 2 for D' = 8, 16, 24 or 32, so that a tile's accumulators, operands and broadcast
//! fit in the 16 vector registers (more spills an accumulator to the stack). A tile
//! accumulates one output over the whole inner length in registers and stores it once.
//!
//! Work is shared out over (batch, head, group of query blocks); a group lays out its head once
//! for all its blocks. The forward's groups only share out work (each query row is computed
//! the same way in any group), so their count follows the thread count: two tasks per thread
//! where the blocks allow. In the backward a group adds its blocks' dK and dV terms in block
//! order into its own accumulators and the groups' sums are added in group order, so the group
//! count comes from the shape alone (at least [`MIN_BACKWARD_TASKS`] tasks where the blocks
//! allow) and the result is the same for any number of threads.

use super::attention::{with_scratch, AttnShape, HeadLayout, OutPtr, QkvHost, QB};
use super::expf::exp8;
use rayon::prelude::*;
use std::arch::x86_64::*;

/// The widest head these tiles take (4 vectors of 8 lanes).
pub const MAX_HEAD_DIM: usize = 32;
/// Keys per score tile.
const KT: usize = 16;
/// Rows (or keys) per tile.
const RT: usize = 4;
/// Backward tasks to aim for, so that a machine with many cores has work for each of them.
const MIN_BACKWARD_TASKS: usize = 32;

/// Whether [`forward`] and [`backward`] take this shape on this CPU.
pub fn usable(s: &AttnShape) -> bool {
    (1..=MAX_HEAD_DIM).contains(&s.head_dim)
        && s.seq_q > 0
        && s.seq_k > 0
        && super::expf::has_avx2_fma()
}

/// The sizes every task works with.
#[derive(Clone, Copy)]
struct Dims {
    nq: usize,
    nk: usize,
    d: usize,
    /// Nk rounded up to [`KT`].
    nkp: usize,
    /// D rounded up to 8.
    dp: usize,
    blocks: usize,
    /// Query blocks per group (the last group may hold fewer).
    per_group: usize,
    groups: usize,
}

impl Dims {
    /// The sizes of `s`, with its query blocks in groups such that there are at least
    /// `min_tasks` (batch, head, group) tasks where the blocks allow.
    fn new(s: &AttnShape, min_tasks: usize) -> Dims {
        let blocks = s.seq_q.div_ceil(QB);
        let wanted = min_tasks.div_ceil(s.batch * s.heads).clamp(1, blocks);
        let per_group = blocks.div_ceil(wanted);
        Dims {
            nq: s.seq_q,
            nk: s.seq_k,
            d: s.head_dim,
            nkp: s.seq_k.next_multiple_of(KT),
            dp: s.head_dim.next_multiple_of(8),
            blocks,
            per_group,
            groups: blocks.div_ceil(per_group),
        }
    }
    /// The query blocks of group `g`.
    fn group_blocks(&self, g: usize) -> std::ops::Range<usize> {
        g * self.per_group..((g + 1) * self.per_group).min(self.blocks)
    }
    /// First query row and row count of block `blk`.
    fn block_rows(&self, blk: usize) -> (usize, usize) {
        (blk * QB, QB.min(self.nq - blk * QB))
    }
}

/// Splits `buf` into consecutive parts of the given lengths.
fn carve<const N: usize>(mut buf: &mut [f32], lens: [usize; N]) -> [&mut [f32]; N] {
    lens.map(|n| {
        let (a, b) = std::mem::take(&mut buf).split_at_mut(n);
        buf = b;
        a
    })
}

/// One operand's rows of head h of sample b: row n starts at `base + n·stride`.
struct HeadRows<'a> {
    buf: &'a [f32],
    base: usize,
    stride: usize,
}

impl<'a> HeadRows<'a> {
    fn new(buf: &'a [f32], s: &AttnShape, l: HeadLayout, seq: usize, b: usize, h: usize) -> Self {
        HeadRows {
            buf,
            base: s.at(l, seq, b, 0, h),
            stride: l.stride,
        }
    }
    fn row(&self, n: usize, d: usize) -> &[f32] {
        let i = self.base + n * self.stride;
        &self.buf[i..i + d]
    }
}

/// dst = the rows' transpose [D, Nk'] in panels of 16 keys: panel p is the [D, 16] block of
/// keys 16p..16p+16, stored contiguously, so that a score tile reads one stretch of memory.
/// Zero past Nk. Eight rows at a time, so that each store fills eight consecutive floats.
fn lay_transposed(dst: &mut [f32], src: &HeadRows, z: &Dims) {
    let d = z.d;
    let panel = d * KT;
    let at = |n: usize, dd: usize| (n / KT) * panel + dd * KT + n % KT;
    let mut n0 = 0;
    while n0 + 8 <= z.nk {
        let rows: [&[f32]; 8] = std::array::from_fn(|j| src.row(n0 + j, d));
        for dd in 0..d {
            let i = at(n0, dd);
            for (o, row) in dst[i..i + 8].iter_mut().zip(&rows) {
                *o = row[dd];
            }
        }
        n0 += 8;
    }
    for n in n0..z.nk {
        for (dd, &x) in src.row(n, d).iter().enumerate() {
            dst[at(n, dd)] = x;
        }
    }
    for n in z.nk..z.nkp {
        for dd in 0..d {
            dst[at(n, dd)] = 0.0;
        }
    }
}

/// dst [rows, D'] = scale · rows n0..n0+rows, zero past D.
fn lay_rows(dst: &mut [f32], src: &HeadRows, n0: usize, rows: usize, scale: f32, z: &Dims) {
    for (r, out) in dst.chunks_exact_mut(z.dp).take(rows).enumerate() {
        let (val, pad) = out.split_at_mut(z.d);
        for (o, &x) in val.iter_mut().zip(src.row(n0 + r, z.d)) {
            *o = scale * x;
        }
        pad.fill(0.0);
    }
}

// ---- The tiles. Every `unsafe fn` below reads and writes through raw pointers; its caller
// ---- (`scores`, `rows_times`, `keys_times`) checks the slice lengths once.

/// out[i][k..k+16] = Σ_d a[i·a_rs + d] · Bᵀ[d][k..k+16] for i < R, for every tile of keys (`bt`
/// in `lay_transposed`'s panels),
/// and maxes[i] = the largest of out[i][..nk] (NaNs skipped, as `attention::row_max`).
#[target_feature(enable = "avx2,fma")]
unsafe fn score_tiles<const R: usize>(
    a: *const f32,
    a_rs: usize,
    bt: *const f32,
    z: &Dims,
    out: *mut f32,
    maxes: *mut f32,
) {
    let (d, nkp) = (z.d, z.nkp);
    let mut mx = [_mm256_set1_ps(f32::NEG_INFINITY); R];
    for k in (0..nkp).step_by(KT) {
        let panel = bt.add(k * d);
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for dd in 0..d {
            let b0 = _mm256_loadu_ps(panel.add(dd * KT));
            let b1 = _mm256_loadu_ps(panel.add(dd * KT + 8));
            for (i, c) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*a.add(i * a_rs + dd));
                c[0] = _mm256_fmadd_ps(x, b0, c[0]);
                c[1] = _mm256_fmadd_ps(x, b1, c[1]);
            }
        }
        // The padding's lanes of the last tile take no part in the maxima.
        let (keep0, keep1) = if k + KT <= z.nk {
            (_mm256_set1_ps(f32::NAN), _mm256_set1_ps(f32::NAN))
        } else {
            let left = _mm256_set1_epi32((z.nk - k) as i32);
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let hi = _mm256_add_epi32(lanes, _mm256_set1_epi32(8));
            (
                _mm256_castsi256_ps(_mm256_cmpgt_epi32(left, lanes)),
                _mm256_castsi256_ps(_mm256_cmpgt_epi32(left, hi)),
            )
        };
        let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
        for (i, c) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(i * nkp + k), c[0]);
            _mm256_storeu_ps(out.add(i * nkp + k + 8), c[1]);
            // max_ps(x, m) gives m where x is NaN, so NaN scores are skipped.
            let c0 = _mm256_blendv_ps(ninf, c[0], keep0);
            let c1 = _mm256_blendv_ps(ninf, c[1], keep1);
            mx[i] = _mm256_max_ps(c0, _mm256_max_ps(c1, mx[i]));
        }
    }
    for (i, m) in mx.iter().enumerate() {
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), *m);
        *maxes.add(i) = lanes
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    }
}

/// out [rows, Nk'] = a [rows, D] (row stride `a_rs`) · Bᵀ [D, Nk'] (`bt` in `lay_transposed`'s
/// panels), and each row's largest
/// score (of its first Nk) in `maxes`.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn scores(
    a: &[f32],
    a_rs: usize,
    bt: &[f32],
    rows: usize,
    z: &Dims,
    out: &mut [f32],
    maxes: &mut [f32],
) {
    assert!(rows == 0 || a.len() >= (rows - 1) * a_rs + z.d);
    assert!(bt.len() >= z.d * z.nkp && out.len() >= rows * z.nkp && z.nkp.is_multiple_of(KT));
    assert!(maxes.len() >= rows && z.nk > 0 && z.nk <= z.nkp);
    let (a, bt, out, mx) = (
        a.as_ptr(),
        bt.as_ptr(),
        out.as_mut_ptr(),
        maxes.as_mut_ptr(),
    );
    let mut r = 0;
    while r + RT <= rows {
        score_tiles::<RT>(a.add(r * a_rs), a_rs, bt, z, out.add(r * z.nkp), mx.add(r));
        r += RT;
    }
    for r in r..rows {
        score_tiles::<1>(a.add(r * a_rs), a_rs, bt, z, out.add(r * z.nkp), mx.add(r));
    }
}

/// out[i][..] = Σ_{k<nk} p[i·nkp + k] · v[k·V..] for i < R, where V = 8·NV.
#[target_feature(enable = "avx2,fma")]
unsafe fn row_tile<const R: usize, const NV: usize>(
    p: *const f32,
    nkp: usize,
    v: *const f32,
    nk: usize,
    out: *mut f32,
) {
    let mut acc = [[_mm256_setzero_ps(); NV]; R];
    for k in 0..nk {
        let mut vv = [_mm256_setzero_ps(); NV];
        for (j, x) in vv.iter_mut().enumerate() {
            *x = _mm256_loadu_ps(v.add(k * 8 * NV + 8 * j));
        }
        for (i, c) in acc.iter_mut().enumerate() {
            let x = _mm256_broadcast_ss(&*p.add(i * nkp + k));
            for (cj, &vj) in c.iter_mut().zip(&vv) {
                *cj = _mm256_fmadd_ps(x, vj, *cj);
            }
        }
    }
    for (i, c) in acc.iter().enumerate() {
        for (j, &cj) in c.iter().enumerate() {
            _mm256_storeu_ps(out.add(i * 8 * NV + 8 * j), cj);
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn rows_times_nv<const R: usize, const NV: usize>(
    p: &[f32],
    v: &[f32],
    rows: usize,
    z: &Dims,
    out: &mut [f32],
) {
    let (pp, vp, op) = (p.as_ptr(), v.as_ptr(), out.as_mut_ptr());
    let mut r = 0;
    while r + R <= rows {
        row_tile::<R, NV>(pp.add(r * z.nkp), z.nkp, vp, z.nk, op.add(r * z.dp));
        r += R;
    }
    for r in r..rows {
        row_tile::<1, NV>(pp.add(r * z.nkp), z.nkp, vp, z.nk, op.add(r * z.dp));
    }
}

/// out [rows, D'] = p [rows, Nk'] (the first Nk columns) · v [Nk, D'].
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_times(p: &[f32], v: &[f32], rows: usize, z: &Dims, out: &mut [f32]) {
    assert!(p.len() >= rows * z.nkp && v.len() >= z.nk * z.dp && out.len() >= rows * z.dp);
    match z.dp / 8 {
        1 => rows_times_nv::<6, 1>(p, v, rows, z, out),
        2 => rows_times_nv::<RT, 2>(p, v, rows, z, out),
        3 => rows_times_nv::<3, 3>(p, v, rows, z, out),
        4 => rows_times_nv::<2, 4>(p, v, rows, z, out),
        _ => unreachable!("head dim above {MAX_HEAD_DIM}"),
    }
}

/// acc[i][..] += Σ_{r<rows} p[r·nkp + i] · a[r·V..] for i < R, where V = 8·NV.
#[target_feature(enable = "avx2,fma")]
unsafe fn key_tile<const R: usize, const NV: usize>(
    p: *const f32,
    nkp: usize,
    a: *const f32,
    rows: usize,
    acc: *mut f32,
) {
    let mut c = [[_mm256_setzero_ps(); NV]; R];
    for (i, ci) in c.iter_mut().enumerate() {
        for (j, cj) in ci.iter_mut().enumerate() {
            *cj = _mm256_loadu_ps(acc.add(i * 8 * NV + 8 * j));
        }
    }
    for r in 0..rows {
        let mut av = [_mm256_setzero_ps(); NV];
        for (j, x) in av.iter_mut().enumerate() {
            *x = _mm256_loadu_ps(a.add(r * 8 * NV + 8 * j));
        }
        for (i, ci) in c.iter_mut().enumerate() {
            let x = _mm256_broadcast_ss(&*p.add(r * nkp + i));
            for (cj, &aj) in ci.iter_mut().zip(&av) {
                *cj = _mm256_fmadd_ps(x, aj, *cj);
            }
        }
    }
    for (i, ci) in c.iter().enumerate() {
        for (j, &cj) in ci.iter().enumerate() {
            _mm256_storeu_ps(acc.add(i * 8 * NV + 8 * j), cj);
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn keys_times_nv<const R: usize, const NV: usize>(
    p: &[f32],
    a: &[f32],
    rows: usize,
    z: &Dims,
    acc: &mut [f32],
) {
    let (pp, ap, cp) = (p.as_ptr(), a.as_ptr(), acc.as_mut_ptr());
    let mut k = 0;
    while k + R <= z.nk {
        key_tile::<R, NV>(pp.add(k), z.nkp, ap, rows, cp.add(k * z.dp));
        k += R;
    }
    for k in k..z.nk {
        key_tile::<1, NV>(pp.add(k), z.nkp, ap, rows, cp.add(k * z.dp));
    }
}

/// acc [Nk, D'] += p [rows, Nk']ᵀ (the first Nk columns) · a [rows, D'].
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn keys_times(p: &[f32], a: &[f32], rows: usize, z: &Dims, acc: &mut [f32]) {
    assert!(p.len() >= rows * z.nkp && a.len() >= rows * z.dp && acc.len() >= z.nk * z.dp);
    match z.dp / 8 {
        1 => keys_times_nv::<6, 1>(p, a, rows, z, acc),
        2 => keys_times_nv::<RT, 2>(p, a, rows, z, acc),
        3 => keys_times_nv::<3, 3>(p, a, rows, z, acc),
        4 => keys_times_nv::<2, 4>(p, a, rows, z, acc),
        _ => unreachable!("head dim above {MAX_HEAD_DIM}"),
    }
}

/// All ones in the lanes below `left`, zeros from there on.
#[target_feature(enable = "avx2")]
unsafe fn lanes_below(left: usize) -> __m256 {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_castsi256_ps(_mm256_cmpgt_epi32(
        _mm256_set1_epi32(left.min(8) as i32),
        lanes,
    ))
}

/// The eight lanes' sum, added pairwise in a fixed order.
#[target_feature(enable = "avx2")]
unsafe fn sum8(v: __m256) -> f32 {
    let mut l = [0.0f32; 8];
    _mm256_storeu_ps(l.as_mut_ptr(), v);
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// A forward block's softmax, in place: the first Nk scores x of each of its `rows` rows (row
/// stride Nk') become e^(x − max) and the rest of the row up to a multiple of 8 becomes 0; 1/Σ
/// goes to `inv` and max + ln Σ to `lse`. Σ is added in f64, in a fixed order.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows(
    p: &mut [f32],
    rows: usize,
    z: &Dims,
    maxes: &[f32],
    inv: &mut [f32],
    lse: &mut [f32],
) {
    assert!(p.len() >= rows * z.nkp && maxes.len() >= rows);
    assert!(inv.len() >= rows && lse.len() >= rows && z.nk.next_multiple_of(8) <= z.nkp);
    for r in 0..rows {
        let row = p.as_mut_ptr().add(r * z.nkp);
        let shift = _mm256_set1_ps(maxes[r]);
        // Stretches of 64 are added in f32 (8 terms of at most 1 per lane), the stretches'
        // sums in f64: f64's accuracy without converting every element.
        let mut acc = [_mm256_setzero_pd(); 2];
        let mut k = 0;
        while k < z.nk {
            let end = (k + 64).min(z.nk);
            let mut part = [_mm256_setzero_ps(); 2];
            // Two vectors per step: two independent exponentials in flight.
            while k + 16 <= end {
                let e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(row.add(k)), shift));
                let e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(row.add(k + 8)), shift));
                _mm256_storeu_ps(row.add(k), e0);
                _mm256_storeu_ps(row.add(k + 8), e1);
                part[0] = _mm256_add_ps(part[0], e0);
                part[1] = _mm256_add_ps(part[1], e1);
                k += 16;
            }
            while k < end {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row.add(k)), shift));
                let e = _mm256_and_ps(e, lanes_below(z.nk - k));
                _mm256_storeu_ps(row.add(k), e);
                part[0] = _mm256_add_ps(part[0], e);
                k += 8;
            }
            let part = _mm256_add_ps(part[0], part[1]);
            acc[0] = _mm256_add_pd(acc[0], _mm256_cvtps_pd(_mm256_castps256_ps128(part)));
            acc[1] = _mm256_add_pd(acc[1], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(part)));
        }
        let mut l = [0.0f64; 4];
        _mm256_storeu_pd(l.as_mut_ptr(), _mm256_add_pd(acc[0], acc[1]));
        let sum = (l[0] + l[1]) + (l[2] + l[3]);
        inv[r] = (1.0 / sum) as f32;
        lse[r] = maxes[r] + (sum as f32).ln();
    }
}

/// A backward block's rows, in place: with `p` holding scaled scores and `dp` dO·Vᵀ, the
/// first Nk elements of each row of p become P = e^(x − lse) and those of dp become
/// P ⊙ (dP − rowsum(P ⊙ dP)) (dS without its scale); up to a multiple of 8, the rest of both
/// rows becomes 0.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn grad_rows(p: &mut [f32], dp: &mut [f32], rows: usize, z: &Dims, lse: &[f32]) {
    assert!(p.len() >= rows * z.nkp && dp.len() >= rows * z.nkp && lse.len() >= rows);
    assert!(z.nk.next_multiple_of(8) <= z.nkp);
    for (r, &l) in lse.iter().enumerate().take(rows) {
        let (pr, dr) = (
            p.as_mut_ptr().add(r * z.nkp),
            dp.as_mut_ptr().add(r * z.nkp),
        );
        let shift = _mm256_set1_ps(l);
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut k = 0;
        while k + 16 <= z.nk {
            let e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k)), shift));
            let e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k + 8)), shift));
            _mm256_storeu_ps(pr.add(k), e0);
            _mm256_storeu_ps(pr.add(k + 8), e1);
            acc[0] = _mm256_fmadd_ps(e0, _mm256_loadu_ps(dr.add(k)), acc[0]);
            acc[1] = _mm256_fmadd_ps(e1, _mm256_loadu_ps(dr.add(k + 8)), acc[1]);
            k += 16;
        }
        while k < z.nk {
            let keep = lanes_below(z.nk - k);
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k)), shift));
            let e = _mm256_and_ps(e, keep);
            _mm256_storeu_ps(pr.add(k), e);
            let d = _mm256_and_ps(_mm256_loadu_ps(dr.add(k)), keep);
            _mm256_storeu_ps(dr.add(k), d);
            acc[0] = _mm256_fmadd_ps(e, d, acc[0]);
            k += 8;
        }
        let di = _mm256_set1_ps(sum8(_mm256_add_ps(acc[0], acc[1])));
        for k in (0..z.nk).step_by(8) {
            let e = _mm256_loadu_ps(pr.add(k));
            let ds = _mm256_mul_ps(e, _mm256_sub_ps(_mm256_loadu_ps(dr.add(k)), di));
            _mm256_storeu_ps(dr.add(k), ds);
        }
    }
}

/// o [B, Nq, H·D] and lse [B, H, Nq], as `attention::attention_forward` (which checked the
/// lengths and that the shape is [`usable`]).
pub fn forward(o: &mut [f32], lse: &mut [f32], qkv: QkvHost, s: &AttnShape) {
    let z = Dims::new(s, 2 * rayon::current_num_threads());
    let (hh, width) = (s.heads, s.width());
    assert!(o.len() >= s.batch * z.nq * width && lse.len() >= s.batch * hh * z.nq);
    let (op, lp) = (OutPtr(o.as_mut_ptr()), OutPtr(lse.as_mut_ptr()));
    let scratch = z.d * z.nkp + z.nk * z.dp + QB * (2 * z.dp + z.nkp);
    (0..s.batch * hh * z.groups).into_par_iter().for_each(|t| {
        let (bh, g) = (t / z.groups, t % z.groups);
        let (b, h) = (bh / hh, bh % hh);
        let q = HeadRows::new(qkv.0, s, s.q, z.nq, b, h);
        with_scratch(scratch, |buf| {
            let [kt, vr, qs, p, ob] = carve(
                buf,
                [z.d * z.nkp, z.nk * z.dp, QB * z.dp, QB * z.nkp, QB * z.dp],
            );
            lay_transposed(kt, &HeadRows::new(qkv.1, s, s.k, z.nk, b, h), &z);
            lay_rows(
                vr,
                &HeadRows::new(qkv.2, s, s.v, z.nk, b, h),
                0,
                z.nk,
                1.0,
                &z,
            );
            for blk in z.group_blocks(g) {
                let (n0, rows) = z.block_rows(blk);
                let (mut inv, mut maxes) = ([0.0f32; QB], [0.0f32; QB]);
                lay_rows(qs, &q, n0, rows, s.scale, &z);
                // SAFETY: `usable` checked AVX2 and FMA; this task alone writes rows
                // n0..n0+rows of head h of sample b of o (columns h·D..(h+1)·D) and the same
                // rows of lse, which the lengths asserted above hold.
                unsafe {
                    scores(qs, z.dp, kt, rows, &z, p, &mut maxes);
                    let l = std::slice::from_raw_parts_mut(lp.at(bh * z.nq + n0), rows);
                    softmax_rows(p, rows, &z, &maxes, &mut inv, l);
                    rows_times(p, vr, rows, &z, ob);
                    for (r, &iv) in inv[..rows].iter().enumerate() {
                        let out = op.at((b * z.nq + n0 + r) * width + h * z.d);
                        let row = std::slice::from_raw_parts_mut(out, z.d);
                        for (o, &x) in row.iter_mut().zip(&ob[r * z.dp..]) {
                            *o = x * iv;
                        }
                    }
                }
            }
        });
    });
}

/// One group's share of a head's gradients: its rows of dq [rows, D], and its sums of the dk
/// and dv terms [Nk, D'].
struct GroupGrads {
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
}

/// As `attention::attention_backward` (which checked the lengths and that the shape is
/// [`usable`]): dq, dk, dv of each head, dense, through `put(which, b, h, dense)`.
pub fn backward(
    qkv: QkvHost,
    dout: &[f32],
    lse: &[f32],
    s: &AttnShape,
    mut put: impl FnMut(usize, usize, usize, &[f32]),
) {
    let z = Dims::new(s, MIN_BACKWARD_TASKS);
    let hh = s.heads;
    let ol = HeadLayout {
        stride: s.width(),
        offset: 0,
    };
    let parts: Vec<GroupGrads> = (0..s.batch * hh * z.groups)
        .into_par_iter()
        .map(|t| {
            let (bh, g) = (t / z.groups, t % z.groups);
            let (b, h) = (bh / hh, bh % hh);
            let rows = |buf, l, seq| HeadRows::new(buf, s, l, seq, b, h);
            let (q, dob) = (rows(qkv.0, s.q, z.nq), rows(dout, ol, z.nq));
            let lh = &lse[bh * z.nq..(bh + 1) * z.nq];
            let mine = z.group_blocks(g);
            let first_row = mine.start * QB;
            let end_row = (mine.end * QB).min(z.nq);
            let mut gg = GroupGrads {
                dq: vec![0.0; (end_row - first_row) * z.d],
                dk: vec![0.0; z.nk * z.dp],
                dv: vec![0.0; z.nk * z.dp],
            };
            let (lt, lr, lq, lp) = (z.d * z.nkp, z.nk * z.dp, QB * z.dp, QB * z.nkp);
            with_scratch(2 * lt + lr + 3 * lq + 2 * lp, |buf| {
                let [kt, vt, kr, qs, dos, dqb, p, dp] =
                    carve(buf, [lt, lt, lr, lq, lq, lq, lp, lp]);
                lay_transposed(kt, &rows(qkv.1, s.k, z.nk), &z);
                lay_transposed(vt, &rows(qkv.2, s.v, z.nk), &z);
                lay_rows(kr, &rows(qkv.1, s.k, z.nk), 0, z.nk, 1.0, &z);
                // The backward takes the forward's log-sum-exp instead of the maxima.
                let mut unused = [0.0f32; QB];
                for blk in mine {
                    let (n0, nr) = z.block_rows(blk);
                    lay_rows(qs, &q, n0, nr, s.scale, &z);
                    lay_rows(dos, &dob, n0, nr, 1.0, &z);
                    // SAFETY: `usable` checked AVX2 and FMA; the slices are this task's own.
                    unsafe {
                        // S = (scale·Q) Kᵀ, dP = dO Vᵀ
                        scores(qs, z.dp, kt, nr, &z, p, &mut unused);
                        scores(dos, z.dp, vt, nr, &z, dp, &mut unused);
                        grad_rows(p, dp, nr, &z, &lh[n0..n0 + nr]);
                        // dQ = scale · dS K, dK += dSᵀ (scale·Q), dV += Pᵀ dO
                        rows_times(dp, kr, nr, &z, dqb);
                        keys_times(dp, qs, nr, &z, &mut gg.dk);
                        keys_times(p, dos, nr, &z, &mut gg.dv);
                    }
                    let dq = &mut gg.dq[(n0 - first_row) * z.d..];
                    for (o, x) in dq
                        .chunks_exact_mut(z.d)
                        .zip(dqb.chunks_exact(z.dp))
                        .take(nr)
                    {
                        for (o, &x) in o.iter_mut().zip(x) {
                            *o = s.scale * x;
                        }
                    }
                }
            });
            gg
        })
        .collect();
    let (mut dk, mut dv) = (vec![0.0f32; z.nk * z.d], vec![0.0f32; z.nk * z.d]);
    let mut dq = Vec::with_capacity(z.nq * z.d);
    for (bh, head) in parts.chunks(z.groups).enumerate() {
        dq.clear();
        for (i, gg) in head.iter().enumerate() {
            dq.extend_from_slice(&gg.dq);
            for (dst, src) in [(&mut dk, &gg.dk), (&mut dv, &gg.dv)] {
                for (o, x) in dst.chunks_exact_mut(z.d).zip(src.chunks_exact(z.dp)) {
                    for (o, &x) in o.iter_mut().zip(x) {
                        *o = if i == 0 { x } else { *o + x };
                    }
                }
            }
        }
        let (b, h) = (bh / hh, bh % hh);
        put(0, b, h, &dq);
        put(1, b, h, &dk);
        put(2, b, h, &dv);
    }
}
