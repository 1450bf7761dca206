//! Synthetic data, deterministic from a seed: seismic images with labels (`images`),
//! 3-component earthquake waveforms with picks (`waveforms`), and image+waveform pairs made
//! from one earth model (`paired`). What each modality can and cannot see of its labels is in
//! `docs/data.md`.

pub mod continuous;
pub mod export;
pub mod images;
pub mod paired;
pub mod rng;
pub mod waveforms;

pub use rng::Rng;

/// A Ricker wavelet of peak frequency `f` (cycles per sample), sampled on
/// `-half..=half` with `half = ceil(1.5 / f)`, peak value 1.
pub fn ricker(f: f64) -> Vec<f32> {
    let half = (1.5 / f).ceil() as i64;
    (-half..=half)
        .map(|i| {
            let a = (std::f64::consts::PI * f * i as f64).powi(2);
            ((1.0 - 2.0 * a) * (-a).exp()) as f32
        })
        .collect()
}

/// `x` convolved with the centred, odd-length kernel `k` ("same" length, zero outside).
pub fn convolve_same(x: &[f32], k: &[f32]) -> Vec<f32> {
    let n = x.len() as i64;
    let h = (k.len() / 2) as i64;
    let mut out = vec![0f32; x.len()];
    for (i, xi) in x.iter().enumerate() {
        if *xi == 0.0 {
            continue;
        }
        for (j, kj) in k.iter().enumerate() {
            let o = i as i64 + j as i64 - h;
            if o >= 0 && o < n {
                out[o as usize] += xi * kj;
            }
        }
    }
    out
}

/// Mean and (population) standard deviation.
pub fn mean_std(x: &[f32]) -> (f32, f32) {
    if x.is_empty() {
        return (0.0, 0.0);
    }
    let n = x.len() as f64;
    let m = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let v = x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
    (m as f32, v.sqrt() as f32)
}

/// Train/dev/test split of sample `i` of `n`: the first 70% train, next 15% dev, rest test.
/// Samples are independent draws, so a contiguous split is as random as a shuffled one and
/// stays the same when `n` grows only at the end.
pub fn split_of(i: usize, n: usize) -> &'static str {
    let f = (i as f64 + 0.5) / n.max(1) as f64;
    if f < 0.7 {
        "train"
    } else if f < 0.85 {
        "dev"
    } else {
        "test"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ricker_is_symmetric_with_unit_peak() {
        let w = ricker(0.05);
        let n = w.len();
        assert_eq!(n % 2, 1);
        assert!((w[n / 2] - 1.0).abs() < 1e-6);
        for i in 0..n {
            assert!((w[i] - w[n - 1 - i]).abs() < 1e-6);
        }
        let y = convolve_same(&[0.0, 0.0, 1.0, 0.0, 0.0], &[1.0, 2.0, 3.0]);
        assert_eq!(y, vec![0.0, 1.0, 2.0, 3.0, 0.0]);
    }
}
