//! GELU (erf form) and its derivative on the CPU, written so that the compiler vectorises them:
//! f32 arithmetic, 8 lanes with AVX2 and FMA (checked at run time), no calls, no branches.
//! musl's `erf` through the `libm` crate is a call per element with branches on the input's
//! range, and made 6–13 % of a training step of the tiny presets.
//!
//! With z = |x|/√2, erfc(z) = e^(−z²) · erfcx(z), where erfcx (the scaled complementary error
//! function) is smooth and between 0.06 and 1 on [0, 9.5]. erfcx(z) = t · h(u), t = 2/(2 + z),
//! u = (t − t₀)·s − 1 ∈ [−1, 1], with h a degree-10 polynomial fitted at Chebyshev nodes in
//! 40-digit arithmetic by `tools/fit_gelu.py` (h lies in [0.28, 1], so Horner's steps do not
//! cancel; evaluated in f32 the product is within 2.6e-7 of erfcx). Beyond z = 9.5, e^(−z²) is below the smallest
//! normal f32 and the result is 0. The exponent x²/2 is carried as a rounded value plus its
//! exact rounding error (one FMA), so e^(−x²/2) keeps its relative accuracy in the tail.
//! Then Φ(x) = erfc(z)/2 for x < 0 and 1 − erfc(z)/2 otherwise, so the far negative tail keeps
//! its relative accuracy too, and for z < 1/2, Φ(x) = (1 ± erf(z))/2 with erf from its own
//! polynomial (both are computed and one is selected, to stay branch-free).
//! gelu(x) = x Φ(x), gelu'(x) = Φ(x) + x e^(−x²/2)/√(2π).
//!
//! Accuracy (tests below, 400,001 points on [−20, 20]): gelu within 2 ulp of the reference
//! (`gelu_scalar`: libm's f64 erf, rounded once) for x ≥ 0 and within 6 ulp for −5 ≤ x < 0,
//! where Φ is small and the errors of e^(−z²) and erfcx add up; below −5, where the reference
//! itself cancels (1 + erf), within 1.5e-6 relative of erfc's continued fraction. gelu' is
//! within 4e-7 of the larger of its two terms (they cancel near x = −0.75). PyTorch's CPU GELU
//! uses an erf with an absolute error of ~1e-7. NaN stays NaN; gelu(−∞) is NaN (−∞ · 0), as
//! PyTorch's.

use super::expf::exp;
use rayon::prelude::*;

/// u = (t − T0) · SCALE − 1 maps t ∈ [T0, 1] (z ∈ [0, Z_MAX]) onto [−1, 1].
const Z_MAX: f32 = 9.5;
const T0: f32 = 0.173_913_05;
const SCALE: f32 = 2.421_052_7;
/// h(u) = erfcx(z)/t, highest power first.
const H: [f32; 11] = [
    4.485_235e-6,
    6.578_492_5e-6,
    -6.036_074_8e-5,
    1.524_403_2e-7,
    5.653_172e-4,
    -5.634_483_5e-4,
    -5.968_066e-3,
    5.599_661e-3,
    1.004_131_7e-1,
    3.251_461e-1,
    5.748_564e-1,
];

/// Below z = Z_SMALL, Φ = (1 ± erf(z))/2 with erf(z) = z · q(z²), q of degree 4 fitted as h
/// (`tools/fit_gelu.py`; relative error 1.6e-7 in f32): there erfc's relative error would
/// show in Φ ≈ 1/2.
const Z_SMALL: f32 = 0.5;
const Q: [f32; 5] = [
    4.719_505_6e-3,
    -2.675_794_4e-2,
    1.128_283_4e-1,
    -3.761_260_8e-1,
    // The fit's constant term, one ulp below 2/√π in f32.
    #[allow(clippy::approx_constant)]
    1.128_379_1,
];

/// (Φ(x), e^(−x²/2)).
#[inline(always)]
fn phi(x: f32) -> (f32, f32) {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    // A comparison, not min: min would turn a NaN into the bound.
    let zc = if z > Z_MAX { Z_MAX } else { z };
    let t = 2.0 / (2.0 + zc);
    let u = (t - T0).mul_add(SCALE, -1.0);
    let mut h = H[0];
    for &c in &H[1..] {
        h = h.mul_add(u, c);
    }
    // x² = hi + lo exactly (lo from one FMA; 0 when x² overflows, where the result is 0 anyway).
    let hi = x * x;
    let lo = if hi < 1e30 { x.mul_add(x, -hi) } else { 0.0 };
    let e_hi = exp(-0.5 * hi);
    // e^(−hi/2 − lo/2) = e^(−hi/2) (1 − lo/2) to far below an ulp (|lo/2| < 1e-5 here).
    let e = (-e_hi).mul_add(0.5 * lo, e_hi);
    let half_erfc = 0.5 * e * (t * h);
    let cdf_tail = if x < 0.0 { half_erfc } else { 1.0 - half_erfc };
    let w = z * z;
    let mut q = Q[0];
    for &c in &Q[1..] {
        q = q.mul_add(w, c);
    }
    let erf = z * q;
    let cdf_small = (if x < 0.0 { -erf } else { erf }).mul_add(0.5, 0.5);
    (if z < Z_SMALL { cdf_small } else { cdf_tail }, e)
}

#[inline(always)]
fn gelu_one(x: f32) -> f32 {
    x * phi(x).0
}

#[inline(always)]
fn gelu_grad_one(x: f32) -> f32 {
    /// 1/√(2π).
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let (cdf, e) = phi(x);
    (x * e).mul_add(INV_SQRT_2PI, cdf)
}

/// Elements computed side by side: 4 vectors of 8 lanes, whose polynomial chains the CPU
/// interleaves (one alone would wait on each step's latency).
const LANES: usize = 32;

#[inline(always)]
fn gelu_any(out: &mut [f32], x: &[f32]) {
    let mut o = out.chunks_exact_mut(LANES);
    let mut i = x.chunks_exact(LANES);
    for (ob, xb) in (&mut o).zip(&mut i) {
        for (d, &v) in ob.iter_mut().zip(xb) {
            *d = gelu_one(v);
        }
    }
    for (d, &v) in o.into_remainder().iter_mut().zip(i.remainder()) {
        *d = gelu_one(v);
    }
}

#[inline(always)]
fn gelu_backward_any(dx: &mut [f32], x: &[f32], dy: &[f32]) {
    let mut o = dx.chunks_exact_mut(LANES);
    let mut i = x.chunks_exact(LANES);
    let mut g = dy.chunks_exact(LANES);
    for ((ob, xb), gb) in (&mut o).zip(&mut i).zip(&mut g) {
        for ((d, &v), &gv) in ob.iter_mut().zip(xb).zip(gb) {
            *d = gv * gelu_grad_one(v);
        }
    }
    for ((d, &v), &gv) in o
        .into_remainder()
        .iter_mut()
        .zip(i.remainder())
        .zip(g.remainder())
    {
        *d = gv * gelu_grad_one(v);
    }
}

// With FMA the multiply-adds are single instructions; without it `mul_add` is still a fused
// (correctly rounded) operation in software, so both paths give the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_avx2(out: &mut [f32], x: &[f32]) {
    gelu_any(out, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_backward_avx2(dx: &mut [f32], x: &[f32], dy: &[f32]) {
    gelu_backward_any(dx, x, dy)
}

/// Elements per parallel task.
const CHUNK: usize = 4096;

/// out = gelu(x) = x Φ(x).
pub fn gelu(out: &mut [f32], x: &[f32]) {
    let wide = super::expf::has_avx2_fma();
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, xs)| {
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                return unsafe { gelu_avx2(o, xs) };
            }
            let _ = wide;
            gelu_any(o, xs)
        });
}

/// dx = dy · gelu'(x).
pub fn gelu_backward(dx: &mut [f32], x: &[f32], dy: &[f32]) {
    let wide = super::expf::has_avx2_fma();
    dx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(d, (xs, gs))| {
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                return unsafe { gelu_backward_avx2(d, xs, gs) };
            }
            let _ = wide;
            gelu_backward_any(d, xs, gs)
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::elementwise::{gelu_grad_scalar, gelu_scalar};

    /// f32 values from −20 to 20 (and a few beyond) on a fine grid.
    fn sweep() -> Vec<f32> {
        let n = 400_000;
        let mut v: Vec<f32> = (0..=n)
            .map(|i| -20.0 + 40.0 * i as f32 / n as f32)
            .collect();
        v.extend([
            -40.0, -38.5, -30.0, -26.0, 25.0, 1e10, -1e10, 1e-30, -1e-30, 0.0, -0.0,
        ]);
        v
    }

    fn ulps(a: f32, b: f32) -> i64 {
        (a.to_bits() as i32 as i64 - b.to_bits() as i32 as i64).abs()
    }

    /// Φ(x) for x ≤ −5 by erfc's continued fraction in f64 (converged to ~1e-16 there):
    /// erfc(z) = e^(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))).
    fn tail_cdf(x: f64) -> f64 {
        let z = -x * std::f64::consts::FRAC_1_SQRT_2;
        let mut f = z;
        for k in (1..=80).rev() {
            f = z + (k as f64 / 2.0) / f;
        }
        0.5 * (-z * z).exp() / std::f64::consts::PI.sqrt() / f
    }

    #[test]
    fn gelu_and_its_gradient_match_the_references() {
        let x = sweep();
        let mut got = vec![0.0; x.len()];
        let mut dgot = vec![0.0; x.len()];
        let ones = vec![1.0; x.len()];
        gelu(&mut got, &x);
        gelu_backward(&mut dgot, &x, &ones);
        // Worst gelu error in ulp for x ≥ −5; worst gradient error relative to the larger of
        // its two terms (they cancel near x = −0.75); worst relative error in the tail.
        let (mut ulp_max, mut ulp_pos, mut dgrad_max) = (0, 0, 0.0f64);
        let (mut tail_max, mut dtail_max) = (0.0f64, 0.0f64);
        for ((&v, &g), &dg) in x.iter().zip(&got).zip(&dgot) {
            let xv = v as f64;
            let pdf = (-0.5 * xv * xv).exp() / (2.0 * std::f64::consts::PI).sqrt();
            if v < -5.0 {
                // libm's 1 + erf cancels out here; check the tail against the continued
                // fraction, in relative terms while the result is a normal f32.
                let want = xv * tail_cdf(xv);
                let dwant = tail_cdf(xv) + xv * pdf;
                if want.abs() > f32::MIN_POSITIVE as f64 {
                    tail_max = tail_max.max((g as f64 / want - 1.0).abs());
                    dtail_max = dtail_max.max((dg as f64 / dwant - 1.0).abs());
                } else {
                    assert!(g.abs() < 1e-37 && dg.abs() < 1e-36, "gelu({v}) = {g:e}");
                }
                continue;
            }
            ulp_max = ulp_max.max(ulps(gelu_scalar(v), g));
            if v >= 0.0 {
                ulp_pos = ulp_pos.max(ulps(gelu_scalar(v), g));
            }
            let terms = (0.5 * (1.0 + libm::erf(xv * std::f64::consts::FRAC_1_SQRT_2)))
                .max((xv * pdf).abs());
            dgrad_max = dgrad_max.max((dg as f64 - gelu_grad_scalar(v) as f64).abs() / terms);
        }
        eprintln!(
            "gelu: {ulp_max} ulp ({ulp_pos} for x ≥ 0); gelu': {dgrad_max:e} of its terms; \
             tail: {tail_max:e}, {dtail_max:e}"
        );
        assert!(
            ulp_max <= 6 && ulp_pos <= 2,
            "gelu: {ulp_max} ulp, {ulp_pos} for x ≥ 0"
        );
        assert!(dgrad_max < 4e-7, "gelu': {dgrad_max:e}");
        assert!(
            tail_max < 1.5e-6 && dtail_max < 1e-6,
            "tail: {tail_max:e}, {dtail_max:e}"
        );
    }

    #[test]
    fn nan_and_infinities_behave_as_the_reference() {
        let x = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
        ];
        let mut got = [0.0; 5];
        let mut dgot = [0.0; 5];
        gelu(&mut got, &x);
        gelu_backward(&mut dgot, &x, &[1.0; 5]);
        for (i, &v) in x.iter().enumerate() {
            let (want, dwant) = (gelu_scalar(v), gelu_grad_scalar(v));
            assert!(want.to_bits() == got[i].to_bits() || (want.is_nan() && got[i].is_nan()));
            assert!(dwant.to_bits() == dgot[i].to_bits() || (dwant.is_nan() && dgot[i].is_nan()));
        }
        assert!(got[0].is_nan() && got[2].is_nan());
        assert_eq!(got[1], f32::INFINITY);
    }

    #[test]
    fn the_wide_path_gives_the_same_bits() {
        let x = sweep();
        let (mut a, mut b) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        gelu(&mut a, &x);
        gelu_any(&mut b, &x);
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
        gelu_backward(&mut a, &x, &x);
        gelu_backward_any(&mut b, &x, &x);
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}
