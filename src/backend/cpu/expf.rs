//! exp for the CPU's softmax rows (attention) and GELU, written so that the compiler
//! vectorises it (no calls, no branches) inside callers compiled for AVX2 and FMA (checked at
//! run time): libm's `expf` is a call per element and made a quarter of a SeisLM training step
//! on the CPU, whose attention covers 749 frames. Its multiply-adds are `mul_add`, one
//! instruction with FMA; a caller compiled without FMA gets the same bits from a software fused
//! multiply-add, slowly (x86 CPUs without AVX2 and FMA take that path).
//!
//! Cephes' method: e^x = 2^n · e^r with n = round(x / ln 2) and |r| ≤ ln 2 / 2, ln 2 split in
//! two parts so that r is exact, and e^r from Cephes' degree-5 polynomial. Relative error
//! below 2.5e-7 over the normal range (tests below, against f64); NaN stays NaN; below −87.3
//! (where e^x is no longer a normal f32) the result is 0.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 · 2^23: adding and subtracting it rounds an f32 of magnitude < 2^22 to an integer.
const ROUND: f32 = 12_582_912.0;
const MIN_X: f32 = -87.3;

/// e^x (see the module documentation).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let under = x < MIN_X;
    // Comparisons, not min/max: those would turn a NaN into the bound.
    let xc = if under {
        MIN_X
    } else if x > 88.0 {
        88.0
    } else {
        x
    };
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    // n as an integer from t's low mantissa bits (an `as` conversion would not vectorise).
    let ni = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, xc));
    let mut p = 1.987_569_2e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5); // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let er = p.mul_add(r * r, r) + 1.0;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    if under {
        0.0
    } else {
        er * scale
    }
}

/// [`exp`] on eight lanes with AVX2 intrinsics: the same operations in the same order, so the
/// same bits (`the_eight_lane_exp_gives_the_same_bits`). For loops that the compiler would not
/// vectorise around `exp`, such as one that also adds the results up in f64.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub unsafe fn exp8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let c = _mm256_set1_ps;
    let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, c(MIN_X));
    // max_ps and min_ps return their second operand when either is NaN, so a NaN passes.
    let xc = _mm256_min_ps(c(88.0), _mm256_max_ps(c(MIN_X), x));
    let t = _mm256_add_ps(_mm256_mul_ps(xc, c(LOG2E)), c(ROUND));
    let n = _mm256_sub_ps(t, c(ROUND));
    let ni = _mm256_sub_epi32(
        _mm256_castps_si256(t),
        _mm256_set1_epi32(ROUND.to_bits() as i32),
    );
    // fnmadd(n, c, x) = x − n·c with one rounding, the same as fma(−n, c, x).
    let r = _mm256_fnmadd_ps(n, c(LN2_LO), _mm256_fnmadd_ps(n, c(LN2_HI), xc));
    let mut p = c(1.987_569_2e-4);
    p = _mm256_fmadd_ps(p, r, c(1.398_199_9e-3));
    p = _mm256_fmadd_ps(p, r, c(8.333_452e-3));
    p = _mm256_fmadd_ps(p, r, c(4.166_579_6e-2));
    p = _mm256_fmadd_ps(p, r, c(1.666_666_5e-1));
    p = _mm256_fmadd_ps(p, r, c(0.5));
    let er = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), c(1.0));
    let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(ni, _mm256_set1_epi32(127)));
    _mm256_andnot_ps(under, _mm256_mul_ps(er, _mm256_castsi256_ps(scale)))
}

/// Whether the 8-lane paths (AVX2 with FMA) of this module's callers can run here.
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Σ row in f64, in a fixed order (four interleaved partial sums, then added in order), so the
/// result does not depend on threads and the loop is not one long dependency chain.
pub fn sum_f64(row: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = row.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v as f64;
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for &v in rest {
        s += v as f64;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_2_5e_7_of_f64_over_the_normal_range() {
        let mut worst = 0.0f64;
        let n = 2_000_000;
        for i in 0..=n {
            let x = -87.0 + (88.0 + 87.0) * i as f32 / n as f32;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "max relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn exp_keeps_nan_and_sends_minus_infinity_to_zero() {
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_eight_lane_exp_gives_the_same_bits() {
        // Checks the AVX2 code itself, so it needs a CPU that runs it (x86-64 since 2013).
        assert!(has_avx2_fma(), "this test needs a CPU with AVX2 and FMA");
        let mut xs: Vec<f32> = (0..=400_000)
            .map(|i| -100.0 + 200.0 * i as f32 / 4e5)
            .collect();
        xs.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            MIN_X,
            88.0,
            -87.31,
        ]);
        xs.extend((0..1000).map(|i| f32::from_bits(0x3f80_0000 + i * 7919)));
        while !xs.len().is_multiple_of(8) {
            xs.push(0.5);
        }
        for c in xs.chunks_exact(8) {
            let mut got = [0.0f32; 8];
            // SAFETY: AVX2 and FMA are present (checked above); both pointers hold 8 floats.
            unsafe {
                use std::arch::x86_64::*;
                _mm256_storeu_ps(got.as_mut_ptr(), exp8(_mm256_loadu_ps(c.as_ptr())));
            }
            for (&x, &g) in c.iter().zip(&got) {
                assert_eq!(
                    g.to_bits(),
                    exp(x).to_bits(),
                    "exp8({x:e}) = {g:e}, exp = {:e}",
                    exp(x)
                );
            }
        }
    }

    #[test]
    fn the_interleaved_sum_is_the_sum() {
        let v: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin()).collect();
        let want: f64 = v.iter().map(|&x| x as f64).sum();
        assert!((sum_f64(&v) - want).abs() < 1e-12);
        assert_eq!(sum_f64(&[]), 0.0);
    }
}
