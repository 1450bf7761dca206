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

    #[test]
    fn the_interleaved_sum_is_the_sum() {
        let v: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin()).collect();
        let want: f64 = v.iter().map(|&x| x as f64).sum();
        assert!((sum_f64(&v) - want).abs() < 1e-12);
        assert_eq!(sum_f64(&[]), 0.0);
    }
}
