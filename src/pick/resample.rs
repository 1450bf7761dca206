//! Band-limited resampling of a trace to another rate (the model's 100 Hz): a polyphase
//! windowed-sinc (Kaiser) filter evaluated at every output sample.
//!
//! The output sample k lies at input position k·fs_in/fs_out (the first output sample is the
//! first input sample). When fs_out/fs_in is a ratio L/M of small integers (every rate a
//! miniSEED header usually holds: 200, 40, 50, 250, 20, 1000 Hz…) the L phases of the filter
//! are tabulated and the positions are exact; otherwise 1024 phases are tabulated and the
//! nearest is used (a timing error under 0.0005 of an input sample, no drift: positions are
//! computed from k, not accumulated).
//!
//! The filter: a sinc whose cutoff is 0.478 × the lower of the two Nyquist rates (so at 100 Hz
//! output the passband reaches ≈ 45 Hz and everything above 50 Hz is attenuated by about
//! 80 dB), under a Kaiser window (β = 8) of ±64 samples at the lower rate. Every phase is
//! scaled to sum to 1 (a constant stays that constant). Beyond the ends of the trace the first
//! and last samples are repeated, so a trace with an offset has no step at its edges.

use anyhow::{bail, Result};

/// Half length of the filter in samples at the lower of the two rates.
const HALF_WIDTH: f64 = 64.0;
/// Kaiser window shape (≈ 80 dB stopband).
const BETA: f64 = 8.0;
/// Cutoff as a fraction of the lower rate (0.5 would be its Nyquist frequency).
const CUTOFF: f64 = 0.478;
/// Phases tabulated when the rate ratio is not a ratio of small integers.
const FREE_PHASES: usize = 1024;
/// Largest numerator tried for an exact ratio.
const MAX_EXACT_PHASES: u64 = 4096;
/// The most a trace may be up- or down-sampled.
pub const MAX_RATIO: f64 = 50.0;

/// A resampler from one rate to another.
#[derive(Clone, Debug)]
pub struct Resampler {
    pub rate_in: f64,
    pub rate_out: f64,
    /// `Some((l, m))` when fs_out/fs_in = l/m exactly (positions k·m/l).
    exact: Option<(u64, u64)>,
    /// Number of tabulated phases.
    phases: usize,
    /// Taps per phase.
    taps: usize,
    /// Index of the first tap relative to floor(position): floor(position) − `first`.
    first: usize,
    /// `phases × taps` coefficients.
    table: Vec<f32>,
}

/// The modified Bessel function of the first kind, order 0 (series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// `l/m` with l ≤ `MAX_EXACT_PHASES` equal to `ratio` within 1e-12 (relative), by continued
/// fractions.
fn small_ratio(ratio: f64) -> Option<(u64, u64)> {
    let (mut h0, mut h1, mut k0, mut k1) = (0u64, 1u64, 1u64, 0u64);
    let mut x = ratio;
    for _ in 0..40 {
        let a = x.floor();
        if !(a.is_finite() && a < 1e12) {
            return None;
        }
        let a = a as u64;
        let h2 = a.checked_mul(h1)?.checked_add(h0)?;
        let k2 = a.checked_mul(k1)?.checked_add(k0)?;
        if h2 > MAX_EXACT_PHASES * 64 || k2 > MAX_EXACT_PHASES * 64 {
            return None;
        }
        (h0, h1, k0, k1) = (h1, h2, k1, k2);
        if ((h1 as f64 / k1 as f64) - ratio).abs() <= 1e-12 * ratio {
            return (h1 <= MAX_EXACT_PHASES).then_some((h1, k1));
        }
        let f = x - a as f64;
        if f < 1e-15 {
            return None;
        }
        x = 1.0 / f;
    }
    None
}

impl Resampler {
    /// A resampler from `rate_in` to `rate_out` Hz; rates must be positive and within a factor
    /// of [`MAX_RATIO`] of each other.
    pub fn new(rate_in: f64, rate_out: f64) -> Result<Self> {
        if !(rate_in.is_finite() && rate_in > 0.0 && rate_out.is_finite() && rate_out > 0.0) {
            bail!("cannot resample from {rate_in} Hz to {rate_out} Hz: rates must be positive");
        }
        let ratio = rate_out / rate_in;
        if !(1.0 / MAX_RATIO..=MAX_RATIO).contains(&ratio) {
            bail!(
                "cannot resample from {rate_in} Hz to {rate_out} Hz: more than a factor of {MAX_RATIO} \
                 (data at {rate_in} Hz cannot be picked at {rate_out} Hz)"
            );
        }
        let exact = small_ratio(ratio);
        let phases = match exact {
            Some((l, _)) => l as usize,
            None => FREE_PHASES,
        };
        // Filter in input samples: cutoff (cycles per input sample) and half length.
        let scale = ratio.min(1.0); // lower rate / input rate
        let fc = CUTOFF * scale;
        let half = HALF_WIDTH / scale;
        let first = half.ceil() as usize - 1;
        let taps = 2 * (first + 1);
        let norm = bessel_i0(BETA);
        let mut table = vec![0f32; phases * taps];
        for p in 0..phases {
            let frac = p as f64 / phases as f64;
            let row = &mut table[p * taps..(p + 1) * taps];
            let mut w = vec![0f64; taps];
            for (i, wi) in w.iter_mut().enumerate() {
                // Tap i sits at input index floor(pos) − first + i; its distance from pos:
                let t = i as f64 - first as f64 - frac;
                let r = t / half;
                if r.abs() >= 1.0 {
                    continue;
                }
                let x = 2.0 * fc * t;
                let sinc = if x.abs() < 1e-12 {
                    1.0
                } else {
                    (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
                };
                let win = bessel_i0(BETA * (1.0 - r * r).sqrt()) / norm;
                *wi = sinc * win;
            }
            let sum: f64 = w.iter().sum();
            for (o, v) in row.iter_mut().zip(&w) {
                *o = (v / sum) as f32;
            }
        }
        Ok(Resampler {
            rate_in,
            rate_out,
            exact,
            phases,
            taps,
            first,
            table,
        })
    }

    /// Whether the rates are equal (the trace is copied as it is).
    pub fn is_identity(&self) -> bool {
        self.exact == Some((1, 1))
    }

    /// Output samples for `n` input samples: those at positions up to the last input sample,
    /// ⌈n · fs_out / fs_in⌉ (rounded as the exact ratio when there is one).
    pub fn out_len(&self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        match self.exact {
            Some((l, m)) => ((n as u128 * l as u128).div_ceil(m as u128)) as usize,
            None => {
                let v = n as f64 * self.rate_out / self.rate_in;
                (v - 1e-9).ceil().max(1.0) as usize
            }
        }
    }

    /// Resamples `x` (samples at `rate_in`, the first at time 0) to `out_len(x.len())` samples
    /// at `rate_out`, the first at time 0.
    pub fn process(&self, x: &[f32]) -> Vec<f32> {
        let n = x.len();
        if self.is_identity() || n == 0 {
            return x.to_vec();
        }
        let out_n = self.out_len(n);
        let mut out = Vec::with_capacity(out_n);
        for k in 0..out_n {
            let (base, phase) = match self.exact {
                Some((l, m)) => {
                    let num = k as u128 * m as u128;
                    ((num / l as u128) as usize, (num % l as u128) as usize)
                }
                None => {
                    let pos = k as f64 * self.rate_in / self.rate_out;
                    let b = pos.floor();
                    let mut p = ((pos - b) * self.phases as f64).round() as usize;
                    let mut b = b as usize;
                    if p == self.phases {
                        p = 0;
                        b += 1;
                    }
                    (b, p)
                }
            };
            let h = &self.table[phase * self.taps..(phase + 1) * self.taps];
            let lo = base as isize - self.first as isize;
            let hi = lo + self.taps as isize;
            let acc = if lo >= 0 && hi <= n as isize {
                dot(&x[lo as usize..hi as usize], h)
            } else {
                h.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let j = (lo + i as isize).clamp(0, n as isize - 1) as usize;
                        x[j] * c
                    })
                    .sum()
            };
            out.push(acc);
        }
        out
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums, which the compiler vectorises.
    let mut s = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            s[i] += x[i] * y[i];
        }
    }
    let mut t: f32 = s.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        t += x * y;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: f64, f: f64, n: usize, phase: f64) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * f * i as f64 / rate + phase).sin() as f32)
            .collect()
    }

    /// Largest error against the sine at the output rate, away from the ends.
    fn worst(y: &[f32], rate: f64, f: f64, skip: usize) -> f32 {
        let want = sine(rate, f, y.len(), 0.3);
        y[skip..y.len() - skip]
            .iter()
            .zip(&want[skip..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    fn rms(y: &[f32]) -> f32 {
        (y.iter().map(|v| v * v).sum::<f32>() / y.len() as f32).sqrt()
    }

    #[test]
    fn ratios() {
        assert_eq!(small_ratio(2.0), Some((2, 1)));
        assert_eq!(small_ratio(0.5), Some((1, 2)));
        assert_eq!(small_ratio(100.0 / 40.0), Some((5, 2)));
        assert_eq!(small_ratio(100.0 / 250.0), Some((2, 5)));
        assert_eq!(small_ratio(100.0 / (100.0 / 3.0)), Some((3, 1)));
        assert_eq!(small_ratio(100.0 / 100.0003), None);
        assert!(Resampler::new(100.0, 100.0).unwrap().is_identity());
    }

    #[test]
    fn lengths() {
        let r = Resampler::new(50.0, 100.0).unwrap();
        assert_eq!(r.out_len(1000), 2000);
        let r = Resampler::new(200.0, 100.0).unwrap();
        assert_eq!(r.out_len(1001), 501);
        let r = Resampler::new(40.0, 100.0).unwrap();
        assert_eq!(r.out_len(3), 8);
        assert!(Resampler::new(1.0, 100.0).is_err());
        assert!(Resampler::new(0.0, 100.0).is_err());
        assert!(Resampler::new(f64::NAN, 100.0).is_err());
    }

    #[test]
    fn sine_50_to_100_hz() {
        let x = sine(50.0, 7.0, 2000, 0.3);
        let r = Resampler::new(50.0, 100.0).unwrap();
        let y = r.process(&x);
        assert_eq!(y.len(), 4000);
        let e = worst(&y, 100.0, 7.0, 200);
        assert!(e < 1e-3, "50→100 Hz: error {e}");
        // The input samples are kept (even output samples sit on them).
        for k in (200..3800).step_by(2) {
            assert!((y[k] - x[k / 2]).abs() < 1e-3);
        }
        // 20 Hz is inside the passband of a 50 Hz input (Nyquist 25 Hz, cutoff 23.9 Hz).
        let y = r.process(&sine(50.0, 20.0, 2000, 0.3));
        assert!(worst(&y, 100.0, 20.0, 200) < 1e-2);
    }

    #[test]
    fn sine_200_to_100_hz_and_aliasing() {
        let r = Resampler::new(200.0, 100.0).unwrap();
        // 10 Hz and 40 Hz pass.
        for f in [10.0, 40.0] {
            let y = r.process(&sine(200.0, f, 8000, 0.3));
            let e = worst(&y, 100.0, f, 100);
            assert!(e < 2e-3, "{f} Hz: error {e}");
        }
        // 70 Hz would alias to 30 Hz at 100 Hz: it is suppressed (−60 dB at least), and so
        // are 55 and 90 Hz.
        for f in [55.0, 70.0, 90.0] {
            let y = r.process(&sine(200.0, f, 8000, 0.3));
            let a = rms(&y[100..3900]);
            assert!(
                a < 1e-3 * std::f32::consts::FRAC_1_SQRT_2,
                "{f} Hz leaks {a}"
            );
        }
        // Decimation without a filter would keep it: every other sample of 70 Hz at 200 Hz
        // is a 30 Hz sine of full amplitude.
        let x = sine(200.0, 70.0, 8000, 0.3);
        let naive: Vec<f32> = x.iter().step_by(2).copied().collect();
        assert!(rms(&naive) > 0.6);
    }

    #[test]
    fn other_ratios_and_constants() {
        // 40 → 100 (5/2), 250 → 100 (2/5), and a rate with no small ratio.
        for (fs, f) in [(40.0, 8.0), (250.0, 12.0), (100.37, 9.0), (1000.0, 15.0)] {
            let r = Resampler::new(fs, 100.0).unwrap();
            let n = (fs * 60.0) as usize;
            let y = r.process(&sine(fs, f, n, 0.3));
            assert_eq!(y.len(), r.out_len(n));
            let e = worst(&y, 100.0, f, 300);
            assert!(e < 2e-3, "{fs} Hz: error {e}");
        }
        // A constant stays exactly constant, ends included (the edges are extended).
        let r = Resampler::new(200.0, 100.0).unwrap();
        let y = r.process(&[5.0f32; 999]);
        assert!(y.iter().all(|v| (v - 5.0).abs() < 1e-4), "{y:?}");
        // Short traces: fewer samples than the filter.
        let y = Resampler::new(50.0, 100.0)
            .unwrap()
            .process(&[1.0, 2.0, 3.0]);
        assert_eq!(y.len(), 6);
        assert!(y.iter().all(|v| v.is_finite()));
        assert_eq!(
            Resampler::new(100.0, 100.0).unwrap().process(&[1.0, 2.0]),
            vec![1.0, 2.0]
        );
    }
}
