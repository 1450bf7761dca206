//! Cutting a `[3, npts]` window (Z, N, E) out of a station's continuous recording, at its own
//! rate or resampled.

use super::streams::{Seg, Stream};
use rustfft::num_complex::Complex;

/// Why no window could be cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// The window reaches before the first or past the last sample of the station.
    Outside,
    /// A gap in the data inside the window.
    Gap,
    /// Records that overlap in time inside the window.
    Overlap,
    /// The station lacks a component (Z, N or E).
    MissingComponent,
}

impl Skip {
    pub fn describe(self) -> &'static str {
        match self {
            Skip::Outside => "window outside the recorded time",
            Skip::Gap => "gap in the data",
            Skip::Overlap => "overlapping records",
            Skip::MissingComponent => "missing component",
        }
    }
}

/// A cut window.
pub struct Window {
    /// `[3, npts]`, Z, N, E.
    pub data: Vec<f32>,
    /// Time of the first sample.
    pub start: f64,
}

/// Why the span [t0, t1) of one component is not inside one segment.
fn classify(stream: &Stream, segs: &[Seg], t0: f64, t1: f64) -> Skip {
    match stream.span() {
        Some((a, b)) if t0 >= a && t1 <= b => {}
        _ => return Skip::Outside,
    }
    let rate = stream.rate;
    let touching: Vec<&Seg> = segs
        .iter()
        .filter(|s| s.start < t1 && s.end(rate) > t0)
        .collect();
    let overlap = touching
        .windows(2)
        .any(|w| w[1].start < w[0].end(rate) - 0.5 / rate);
    if overlap {
        Skip::Overlap
    } else {
        Skip::Gap
    }
}

/// The segment of `segs` holding samples `[t0 - margin, t1 + margin]`, with the index of the
/// sample nearest `t0 - margin`.
fn holding(segs: &[Seg], rate: f64, t0: f64, n: usize) -> Option<(&Seg, usize)> {
    segs.iter().find_map(|s| {
        let i = ((t0 - s.start) * rate).round();
        let end = (i as usize).checked_add(n)?;
        (i >= 0.0 && end <= s.samples.len()).then_some((s, i as usize))
    })
}

/// Cuts `npts` samples at `rate` (the stream's own rate) starting at the sample nearest `t0`.
pub fn cut(stream: &Stream, t0: f64, npts: usize) -> Result<Window, Skip> {
    if !stream.missing().is_empty() {
        return Err(Skip::MissingComponent);
    }
    let rate = stream.rate;
    let t1 = t0 + npts as f64 / rate;
    let Some((z, iz)) = holding(&stream.comps[0], rate, t0, npts) else {
        return Err(classify(stream, &stream.comps[0], t0, t1));
    };
    let start = z.start + iz as f64 / rate;
    let mut data = Vec::with_capacity(3 * npts);
    data.extend_from_slice(&z.samples[iz..iz + npts]);
    for c in 1..3 {
        let Some((s, i)) = holding(&stream.comps[c], rate, start, npts) else {
            return Err(classify(
                stream,
                &stream.comps[c],
                start,
                start + npts as f64 / rate,
            ));
        };
        data.extend_from_slice(&s.samples[i..i + npts]);
    }
    Ok(Window { data, start })
}

/// Cuts `npts` samples at `target` Hz starting exactly at `t0`, from a stream at another rate:
/// the data around the window (plus a margin of 2 s) are low-passed below the target's Nyquist
/// frequency when downsampling (by zeroing FFT bins), then interpolated linearly at the
/// target's sample times.
pub fn cut_resampled(stream: &Stream, t0: f64, npts: usize, target: f64) -> Result<Window, Skip> {
    if !stream.missing().is_empty() {
        return Err(Skip::MissingComponent);
    }
    let rate = stream.rate;
    let margin = 2.0;
    let t1 = t0 + npts as f64 / target;
    let (a, b) = (t0 - margin, t1 + margin);
    let n_src = ((b - a) * rate).ceil() as usize + 2;
    let mut data = Vec::with_capacity(3 * npts);
    for c in 0..3 {
        let Some((s, i0)) = holding(&stream.comps[c], rate, a, n_src) else {
            return Err(classify(stream, &stream.comps[c], a, b));
        };
        let mut x: Vec<f32> = s.samples[i0..i0 + n_src].to_vec();
        if target < rate {
            lowpass(&mut x, rate, 0.5 * target);
        }
        let t_first = s.start + i0 as f64 / rate;
        for j in 0..npts {
            let pos = ((t0 + j as f64 / target) - t_first) * rate;
            let k = (pos.floor().max(0.0) as usize).min(n_src - 2);
            let f = (pos - k as f64).clamp(0.0, 1.0) as f32;
            data.push(x[k] * (1.0 - f) + x[k + 1] * f);
        }
    }
    Ok(Window { data, start: t0 })
}

/// Zeroes the FFT bins of `x` (sampled at `rate`) above `cutoff` Hz. The line through the
/// first and last sample is taken out first and put back after, so that an offset or a trend
/// does not ring at the edges.
pub fn lowpass(x: &mut [f32], rate: f64, cutoff: f64) {
    let n = x.len();
    if n < 2 {
        return;
    }
    let (a, b) = (x[0], x[n - 1]);
    let line = |i: usize| a + (b - a) * i as f32 / (n - 1) as f32;
    let mut planner = rustfft::FftPlanner::<f32>::new();
    let mut buf: Vec<Complex<f32>> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| Complex::new(v - line(i), 0.0))
        .collect();
    planner.plan_fft_forward(n).process(&mut buf);
    for (k, b) in buf.iter_mut().enumerate() {
        let f = k.min(n - k) as f64 * rate / n as f64;
        if f > cutoff {
            *b = Complex::new(0.0, 0.0);
        }
    }
    planner.plan_fft_inverse(n).process(&mut buf);
    for (i, (v, c)) in x.iter_mut().zip(&buf).enumerate() {
        *v = c.re / n as f32 + line(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rate: f64, segs: [Vec<(f64, Vec<f32>)>; 3]) -> Stream {
        let mk = |v: Vec<(f64, Vec<f32>)>| {
            v.into_iter()
                .map(|(start, samples)| Seg {
                    start,
                    samples,
                    file: 0,
                })
                .collect()
        };
        let [z, n, e] = segs;
        Stream {
            instrument: "HH".into(),
            rate,
            comps: [mk(z), mk(n), mk(e)],
        }
    }

    #[test]
    fn cuts_and_says_why_not() {
        let ramp: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let s = stream(
            10.0,
            [
                vec![(0.0, ramp.clone())],
                vec![(0.0, ramp[..500].to_vec()), (60.0, ramp[600..].to_vec())],
                vec![(0.0, ramp[..500].to_vec()), (45.0, ramp[450..].to_vec())],
            ],
        );
        let w = cut(&s, 10.0, 100).unwrap();
        assert_eq!(
            (w.start, w.data[0], w.data[100], w.data[299]),
            (10.0, 100.0, 100.0, 199.0)
        );
        assert_eq!(cut(&s, 95.0, 100).err(), Some(Skip::Outside));
        assert_eq!(cut(&s, -1.0, 100).err(), Some(Skip::Outside));
        assert_eq!(cut(&s, 48.0, 30).err(), Some(Skip::Gap));
        let mut s2 = s.clone();
        s2.comps.swap(1, 2);
        assert_eq!(cut(&s2, 44.0, 70).err(), Some(Skip::Overlap));
        s2.comps[2].clear();
        assert_eq!(cut(&s2, 10.0, 10).err(), Some(Skip::MissingComponent));
        // Resampled to 5 Hz: a ramp stays a ramp away from the edges (low-passed).
        let r = cut_resampled(&s, 10.0, 50, 5.0).unwrap();
        assert_eq!(r.start, 10.0);
        assert!((r.data[25] - 150.0).abs() < 2.0, "{}", r.data[25]);
        // Upsampled to 20 Hz: exact linear interpolation.
        let r = cut_resampled(&s, 10.0, 50, 20.0).unwrap();
        assert_eq!(r.data[1], 100.5);
    }
}
