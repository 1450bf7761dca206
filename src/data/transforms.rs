//! Per-sample transforms applied by the loader's workers: SFM's per-image z-score, SeisLM's
//! demean + per-channel std, random windows of waveforms, Gaussian pick labels.
//!
//! A transform works in place on a sample's input and its target. It may shrink the input
//! (as a crop does): it then sets the new shape and leaves the kept values at the front of
//! the buffer. Randomness comes from the `Rng` the loader derives from (seed, epoch,
//! sample index), so results do not depend on which worker ran the transform.

use super::dataset::Target;
use super::synth::Rng;
use anyhow::{bail, Result};

pub trait Transform: Send + Sync {
    fn apply(
        &self,
        input: &mut [f32],
        shape: &mut Vec<usize>,
        target: &mut Target,
        rng: &mut Rng,
    ) -> Result<()>;
    /// The input shape this transform produces from `shape` (never more elements).
    fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        Ok(shape.to_vec())
    }
}

/// Sum and sum of squares over 16 independent f32 lanes (so the compiler can vectorise and
/// overlap the additions), flushed to f64 every 4096 values to bound rounding error.
fn sums(x: &[f32]) -> (f64, f64) {
    const L: usize = 16;
    let mut total = (0f64, 0f64);
    for block in x.chunks(4096) {
        let mut s = [0f32; L];
        let mut q = [0f32; L];
        let mut it = block.chunks_exact(L);
        for c in &mut it {
            let c: &[f32; L] = c.try_into().expect("L values");
            for k in 0..L {
                s[k] += c[k];
                q[k] += c[k] * c[k];
            }
        }
        for &v in it.remainder() {
            s[0] += v;
            q[0] += v * v;
        }
        total.0 += s.iter().map(|&v| v as f64).sum::<f64>();
        total.1 += q.iter().map(|&v| v as f64).sum::<f64>();
    }
    total
}

/// Mean and population standard deviation (as numpy's `x.mean()`, `x.std()`).
pub fn mean_std(x: &[f32]) -> (f32, f32) {
    if x.is_empty() {
        return (0.0, 0.0);
    }
    let n = x.len() as f64;
    let (s, q) = sums(x);
    let m = s / n;
    let var = (q / n - m * m).max(0.0);
    (m as f32, var.sqrt() as f32)
}

/// `(x − mean) / (std + eps)` over the whole input, in place (SFM: eps = 1e-6).
pub fn zscore_in_place(x: &mut [f32], eps: f32) {
    let (m, s) = mean_std(x);
    let inv = 1.0 / (s + eps);
    for v in x.iter_mut() {
        *v = (*v - m) * inv;
    }
}

/// SFM input normalisation: each image to zero mean and unit std, `(x − mean)/(std + 1e-6)`.
pub struct ZScore {
    pub eps: f32,
}

impl Default for ZScore {
    fn default() -> Self {
        ZScore { eps: 1e-6 }
    }
}

impl Transform for ZScore {
    fn apply(&self, x: &mut [f32], _: &mut Vec<usize>, _: &mut Target, _: &mut Rng) -> Result<()> {
        zscore_in_place(x, self.eps);
        Ok(())
    }
}

/// SeisLM input normalisation of a `[C, S]` waveform: remove each channel's mean, then divide
/// each channel by its standard deviation (+ eps; a dead channel stays zero).
pub struct DemeanStd {
    pub eps: f32,
}

impl Default for DemeanStd {
    fn default() -> Self {
        DemeanStd { eps: 1e-6 }
    }
}

impl Transform for DemeanStd {
    fn apply(
        &self,
        x: &mut [f32],
        shape: &mut Vec<usize>,
        _: &mut Target,
        _: &mut Rng,
    ) -> Result<()> {
        if shape.len() != 2 {
            bail!("demean/std expects a [channels, samples] waveform, got shape {shape:?}");
        }
        let s = shape[1];
        for ch in x.chunks_mut(s.max(1)) {
            zscore_in_place(ch, self.eps);
        }
        Ok(())
    }
}

/// A random window of `length` samples from a `[C, S]` waveform (S ≥ length). Picks are
/// shifted with the window and dropped when they fall outside it; dense `[K, S]` targets
/// are cropped alike.
pub struct RandomWindow {
    pub length: usize,
}

impl Transform for RandomWindow {
    fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        if shape.len() != 2 || shape[1] < self.length {
            bail!(
                "a window of {} samples needs a [channels, samples ≥ {}] waveform, got {shape:?}",
                self.length,
                self.length
            );
        }
        Ok(vec![shape[0], self.length])
    }
    fn apply(
        &self,
        x: &mut [f32],
        shape: &mut Vec<usize>,
        target: &mut Target,
        rng: &mut Rng,
    ) -> Result<()> {
        let out = self.output_shape(shape)?;
        let (c, s, l) = (shape[0], shape[1], self.length);
        let start = rng.below(s - l + 1);
        for ch in 0..c {
            x.copy_within(ch * s + start..ch * s + start + l, ch * l);
        }
        *shape = out;
        match target {
            Target::Picks { p, s: sp } => {
                let shift = |v: &mut Option<f32>| {
                    *v = v
                        .map(|t| t - start as f32)
                        .filter(|&t| t >= 0.0 && t < l as f32);
                };
                shift(p);
                shift(sp);
            }
            Target::Dense { values, shape: ts } if ts.len() == 2 && ts[1] == s => {
                let k = ts[0];
                for ch in 0..k {
                    values.copy_within(ch * s + start..ch * s + start + l, ch * l);
                }
                values.truncate(k * l);
                ts[1] = l;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Turns `Picks` into dense `[3, S]` labels (P, S, noise) as in SeisBench's probabilistic
/// labeller and SeisLM: a Gaussian of standard deviation `sigma` samples at each pick, and
/// noise = 1 − P − S (clamped at 0). Absent picks give all-zero rows.
pub struct GaussianPicks {
    pub sigma: f32,
}

impl Default for GaussianPicks {
    fn default() -> Self {
        GaussianPicks { sigma: 20.0 }
    }
}

/// One Gaussian label row of `len` samples centred on `at`.
pub fn gaussian_row(len: usize, at: Option<f32>, sigma: f32) -> Vec<f32> {
    let mut row = vec![0f32; len];
    if let Some(t) = at {
        let reach = (5.0 * sigma).ceil() as i64;
        let c = t.round() as i64;
        for i in (c - reach).max(0)..(c + reach + 1).min(len as i64) {
            let d = (i as f32 - t) / sigma;
            row[i as usize] = (-0.5 * d * d).exp();
        }
    }
    row
}

impl Transform for GaussianPicks {
    fn apply(
        &self,
        _: &mut [f32],
        shape: &mut Vec<usize>,
        target: &mut Target,
        _: &mut Rng,
    ) -> Result<()> {
        let Target::Picks { p, s } = *target else {
            bail!("Gaussian pick labels need pick targets, found {target:?}");
        };
        let Some(&len) = shape.last() else {
            bail!("Gaussian pick labels need a waveform input, got a scalar");
        };
        let pr = gaussian_row(len, p, self.sigma);
        let sr = gaussian_row(len, s, self.sigma);
        let noise: Vec<f32> = pr
            .iter()
            .zip(&sr)
            .map(|(a, b)| (1.0 - a - b).max(0.0))
            .collect();
        let mut values = pr;
        values.extend_from_slice(&sr);
        values.extend_from_slice(&noise);
        *target = Target::Dense {
            values,
            shape: vec![3, len],
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zscore_matches_a_plain_f64_loop() {
        let x: Vec<f32> = (0..1000)
            .map(|i| (i as f32 * 0.37).sin() * 3.0 + 2.0)
            .collect();
        let n = x.len() as f64;
        let m = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let s = (x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n).sqrt();
        let mut y = x.clone();
        zscore_in_place(&mut y, 1e-6);
        for (a, b) in x.iter().zip(&y) {
            let r = ((*a as f64 - m) / (s + 1e-6)) as f32;
            assert!((r - b).abs() < 1e-4, "{r} vs {b}");
        }
        // A constant image becomes zeros, not NaN.
        let mut c = vec![5.0f32; 10];
        zscore_in_place(&mut c, 1e-6);
        assert!(c.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn window_moves_picks_and_gaussians_peak_there() {
        let mut x: Vec<f32> = (0..300).map(|i| i as f32).collect();
        let mut shape = vec![3, 100];
        let mut t = Target::Picks {
            p: Some(50.0),
            s: Some(99.0),
        };
        let mut rng = Rng::new(3);
        RandomWindow { length: 60 }
            .apply(&mut x, &mut shape, &mut t, &mut rng)
            .unwrap();
        assert_eq!(shape, vec![3, 60]);
        let start = x[0] as usize;
        assert_eq!(x[60], (100 + start) as f32);
        let Target::Picks { p, .. } = t else { panic!() };
        assert_eq!(p, Some(50.0 - start as f32));
        GaussianPicks::default()
            .apply(&mut x, &mut shape, &mut t, &mut rng)
            .unwrap();
        let Target::Dense { values, shape: ts } = &t else {
            panic!()
        };
        assert_eq!(ts, &vec![3, 60]);
        let pk = 50 - start;
        assert!((values[pk] - 1.0).abs() < 1e-6);
        assert!((values[pk + 20] - (-0.5f32).exp()).abs() < 1e-6);
        assert!(values[120 + pk].abs() < 1e-6);
        assert!(RandomWindow { length: 200 }
            .output_shape(&[3, 100])
            .is_err());
    }
}
