//! bf16 gradient communication: f32 → bf16 with round-to-nearest-even, and back.
//!
//! Gradients sent as bf16 halve the bytes on the wire; they are summed in f32 (the TCP
//! communicator widens every rank's values and rounds the sum once; NCCL reduces bf16 in its
//! own way) and widened back to f32 before the optimizer sees them.

use half::bf16;

/// f32 → bf16, round to nearest, ties to even; NaN stays NaN (quiet), ±inf stays ±inf, and
/// values beyond bf16's range round to ±inf as IEEE rounding does.
#[inline]
pub fn f32_to_bf16(x: f32) -> bf16 {
    let b = x.to_bits();
    if x.is_nan() {
        return bf16::from_bits(((b >> 16) as u16) | 0x0040);
    }
    let lsb = (b >> 16) & 1;
    bf16::from_bits((b.wrapping_add(0x7FFF + lsb) >> 16) as u16)
}

/// bf16 → f32 (exact).
#[inline]
pub fn bf16_to_f32(h: bf16) -> f32 {
    f32::from_bits((h.to_bits() as u32) << 16)
}

/// Rounds `src` into `dst` (same length).
pub fn compress(src: &[f32], dst: &mut [bf16]) {
    assert_eq!(src.len(), dst.len(), "compress: lengths differ");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32_to_bf16(s);
    }
}

/// Widens `src` into `dst`, multiplied by `scale` (1 for none).
pub fn decompress_scaled(src: &[bf16], dst: &mut [f32], scale: f32) {
    assert_eq!(src.len(), dst.len(), "decompress: lengths differ");
    if scale == 1.0 {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = bf16_to_f32(s);
        }
    } else {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = bf16_to_f32(s) * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_half_and_ties_go_to_even() {
        let mut rng = crate::data::synth::Rng::new(3);
        for _ in 0..200_000 {
            let x = f32::from_bits(rng.next_u64() as u32);
            let ours = f32_to_bf16(x);
            let theirs = bf16::from_f32(x);
            if x.is_nan() {
                assert!(bf16_to_f32(ours).is_nan());
            } else {
                assert_eq!(
                    ours.to_bits(),
                    theirs.to_bits(),
                    "{x:e} ({:#x})",
                    x.to_bits()
                );
            }
        }
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        // 1 + 3·2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        assert_eq!(
            bf16_to_f32(f32_to_bf16(1.0 + 3.0 / 256.0)),
            1.0 + 1.0 / 64.0
        );
        assert_eq!(bf16_to_f32(f32_to_bf16(f32::MAX)), f32::INFINITY);
        assert_eq!(
            bf16_to_f32(f32_to_bf16(f32::NEG_INFINITY)),
            f32::NEG_INFINITY
        );
        assert_eq!(
            bf16_to_f32(f32_to_bf16(-0.0)).to_bits(),
            (-0.0f32).to_bits()
        );
    }

    #[test]
    fn roundtrip_error_is_half_an_ulp() {
        let src: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
        let mut h = vec![bf16::ZERO; src.len()];
        compress(&src, &mut h);
        let mut back = vec![0.0; src.len()];
        decompress_scaled(&h, &mut back, 0.5);
        for (a, b) in src.iter().zip(&back) {
            assert!(
                (a * 0.5 - b).abs() <= (a * 0.5).abs() * 2f32.powi(-8),
                "{a} {b}"
            );
        }
    }
}
