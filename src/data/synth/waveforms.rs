//! Synthetic 3-component earthquake waveforms (Z, N, E) with P and S picks.
//!
//! An event trace holds a P arrival (higher frequency, strongest on the vertical), an S arrival
//! S−P seconds later (lower frequency, strongest on the horizontals), and an exponentially
//! decaying coda, over coloured background noise at a chosen signal-to-noise ratio. A noise
//! trace holds the background only. S−P follows the event distance: S−P = d (1/vs − 1/vp).
//!
//! With `sequence_classes` = K > 0, every event also belongs to one of K consecutive periods of
//! an earthquake sequence (class 0 = foreshocks, then aftershock periods, as SeisLM's
//! foreshock/aftershock task on the 2016 Norcia sequence). The mainshock moves the active part
//! of the fault, so each period has its own source cluster: distance (hence S−P), back azimuth,
//! focal mechanism (through the S/P amplitude ratio) and P corner frequency drift with the class,
//! with overlapping spreads, so the class is learnable from the waveform but not trivially.

use super::Rng;

/// P and S velocities of the crust used for S−P (km/s).
pub const VP_KM_S: f64 = 6.0;
pub const VS_KM_S: f64 = 3.5;

#[derive(Clone, Debug)]
pub struct WaveformConfig {
    /// Samples per component (SeisLM: 3001).
    pub samples: usize,
    /// Sampling rate in Hz (SeisLM: 100).
    pub sampling_rate: f64,
    /// Probability that a trace holds an event (the rest are noise only).
    pub event_probability: f64,
    /// Signal-to-noise ratio range in dB (peak signal over noise standard deviation).
    pub snr_db: (f64, f64),
    /// Epicentral distance range in km.
    pub distance_km: (f64, f64),
    /// Periods of an earthquake sequence an event can belong to (0 = no sequence labels).
    pub sequence_classes: usize,
}

impl WaveformConfig {
    pub fn new(samples: usize) -> Self {
        WaveformConfig {
            samples,
            sampling_rate: 100.0,
            event_probability: 0.8,
            snr_db: (10.0, 40.0),
            distance_km: (5.0, 120.0),
            sequence_classes: 0,
        }
    }
}

/// One 3-component trace with labels.
#[derive(Clone, Debug)]
pub struct WaveformSample {
    /// `[3, samples]` row-major, components Z, N, E.
    pub data: Vec<f32>,
    pub samples: usize,
    pub is_event: bool,
    /// P onset sample, when there is an event.
    pub p_sample: Option<usize>,
    /// S onset sample, when there is an event and S falls inside the window.
    pub s_sample: Option<usize>,
    pub distance_km: f32,
    pub snr_db: f32,
    pub back_azimuth_deg: f32,
    /// The sequence period of an event (0 = foreshock, 1.. = aftershock periods), when the
    /// config asks for `sequence_classes`.
    pub sequence_class: Option<usize>,
}

/// The source cluster of sequence period `k` of `classes`: centres of distance (as a fraction
/// of the configured range), back azimuth (degrees), S/P amplitude ratio, P corner frequency
/// (Hz).
struct Cluster {
    distance_frac: f64,
    back_azimuth: f64,
    s_ratio: f64,
    fp: f64,
}

fn cluster(k: usize, classes: usize) -> Cluster {
    let f = if classes > 1 {
        k as f64 / (classes - 1) as f64
    } else {
        0.5
    };
    Cluster {
        distance_frac: 0.25 + 0.5 * f,
        back_azimuth: 40.0 + 90.0 * f,
        s_ratio: 1.6 + 1.2 * f,
        fp: 10.0 - 5.0 * f,
    }
}

/// A band of a few sinusoids around `f0` Hz with random phases, for one component.
pub(crate) struct Band {
    parts: Vec<(f64, f64, f64)>,
}

impl Band {
    pub(crate) fn new(rng: &mut Rng, f0: f64) -> Self {
        let parts = (0..6)
            .map(|_| {
                (
                    std::f64::consts::TAU * f0 * rng.range(0.7, 1.4),
                    rng.range(0.0, std::f64::consts::TAU),
                    rng.range(0.5, 1.0),
                )
            })
            .collect();
        Band { parts }
    }
    pub(crate) fn at(&self, t: f64) -> f64 {
        self.parts
            .iter()
            .map(|&(w, p, a)| a * (w * t + p).sin())
            .sum::<f64>()
            / 3.0
    }
}

/// Envelope of an arrival at `t0` (s): a fast rise over `rise` s, then exponential decay `tau`.
pub(crate) fn envelope(t: f64, t0: f64, rise: f64, tau: f64) -> f64 {
    let dt = t - t0;
    if dt < 0.0 {
        0.0
    } else if dt < rise {
        dt / rise
    } else {
        (-(dt - rise) / tau).exp()
    }
}

/// Coloured background noise for `n` samples: white plus an AR(1) low-frequency part
/// (microseism-like), unit standard deviation before scaling.
pub(crate) fn background(rng: &mut Rng, n: usize, fs: f64) -> Vec<f64> {
    let a = (-std::f64::consts::TAU * 0.3 / fs).exp();
    let mix = rng.range(0.2, 0.8);
    let mut lo = 0.0;
    let norm = (1.0 - a * a).sqrt();
    (0..n)
        .map(|_| {
            lo = a * lo + norm * rng.normal();
            mix * lo + (1.0 - mix) * rng.normal()
        })
        .collect()
}

/// Generates trace `index` of the dataset with `seed`.
pub fn generate(cfg: &WaveformConfig, seed: u64, index: u64) -> WaveformSample {
    let mut rng = Rng::for_sample(seed, 2, index);
    let n = cfg.samples;
    let fs = cfg.sampling_rate;
    let is_event = rng.chance(cfg.event_probability);
    let mut distance = rng.range(cfg.distance_km.0, cfg.distance_km.1);
    let snr_db = rng.range(cfg.snr_db.0, cfg.snr_db.1);
    let mut back_azimuth = rng.range(0.0, 360.0);
    // Sequence labels draw after the draws above, so traces without them are unchanged.
    let sequence = (is_event && cfg.sequence_classes > 0).then(|| {
        let k = ((rng.range(0.0, 1.0) * cfg.sequence_classes as f64) as usize)
            .min(cfg.sequence_classes - 1);
        let c = cluster(k, cfg.sequence_classes);
        let (d0, d1) = cfg.distance_km;
        let spread = 0.12 * (d1 - d0);
        distance = (d0 + c.distance_frac * (d1 - d0) + rng.range(-spread, spread)).clamp(d0, d1);
        back_azimuth = (c.back_azimuth + rng.range(-25.0, 25.0)).rem_euclid(360.0);
        (k, c)
    });
    let mut data = vec![0f32; 3 * n];
    let mut p_sample = None;
    let mut s_sample = None;

    let mut signal = vec![[0f64; 3]; n];
    if is_event {
        let sp = distance * (1.0 / VS_KM_S - 1.0 / VP_KM_S);
        // P somewhere in the first half (at least 5% in), so a window usually holds both.
        let p = rng.range(0.05, 0.5) * n as f64;
        let s = p + sp * fs;
        p_sample = Some(p.round() as usize);
        if (s.round() as usize) < n {
            s_sample = Some(s.round() as usize);
        }
        let (tp, ts) = (p / fs, s / fs);
        let mut fp = rng.range(4.0, 12.0);
        let fsw = rng.range(1.0, 4.0);
        let b = back_azimuth.to_radians();
        let mut s_ratio = rng.range(1.5, 3.0);
        if let Some((_, c)) = &sequence {
            fp = c.fp * rng.range(0.8, 1.25);
            s_ratio = c.s_ratio * rng.range(0.8, 1.25);
        }
        // Radial particle motion for P, transverse-dominated for S.
        let p_amp = [1.0, 0.35 * b.cos(), 0.35 * b.sin()];
        let s_amp = [0.3, s_ratio * (-b.sin()), s_ratio * b.cos()];
        let tau_p = rng.range(0.3, 1.5);
        let tau_s = rng.range(1.0, 4.0);
        let tau_coda = rng.range(3.0, 10.0);
        for c in 0..3 {
            let bp = Band::new(&mut rng, fp);
            let bs = Band::new(&mut rng, fsw);
            let bc = Band::new(&mut rng, 0.5 * (fp + fsw));
            for (i, sig) in signal.iter_mut().enumerate() {
                let t = i as f64 / fs;
                let ep = envelope(t, tp, 0.05, tau_p);
                let es = envelope(t, ts, 0.1, tau_s);
                let ec = 0.3 * envelope(t, ts, 0.5, tau_coda);
                sig[c] = p_amp[c] * ep * bp.at(t)
                    + s_amp[c] * es * bs.at(t)
                    + s_amp[c].abs().max(0.5) * ec * bc.at(t);
            }
        }
    }
    let peak = signal
        .iter()
        .flat_map(|s| s.iter())
        .fold(0f64, |m, v| m.max(v.abs()));
    let sigma = if is_event && peak > 0.0 {
        peak / 10f64.powf(snr_db / 20.0)
    } else {
        1.0
    };
    for c in 0..3 {
        let noise = background(&mut rng, n, fs);
        for i in 0..n {
            data[c * n + i] = (signal[i][c] + sigma * noise[i]) as f32;
        }
    }
    WaveformSample {
        data,
        samples: n,
        is_event,
        p_sample,
        s_sample,
        distance_km: distance as f32,
        snr_db: if is_event {
            snr_db as f32
        } else {
            f32::NEG_INFINITY
        },
        back_azimuth_deg: back_azimuth as f32,
        sequence_class: sequence.map(|(k, _)| k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn picks_and_component_dominance() {
        let mut cfg = WaveformConfig::new(3001);
        cfg.event_probability = 1.0;
        cfg.snr_db = (40.0, 41.0);
        cfg.distance_km = (30.0, 40.0);
        let s = generate(&cfg, 11, 0);
        let n = s.samples;
        let p = s.p_sample.unwrap();
        let st = s.s_sample.unwrap();
        let sp = (st - p) as f64 / 100.0;
        assert!(sp > 30.0 * (1.0 / VS_KM_S - 1.0 / VP_KM_S) - 0.02);
        // P window: vertical dominates; S window: horizontals dominate.
        let w = |c: usize, a: usize, b: usize| rms(&s.data[c * n + a..c * n + b]);
        let pe = (p + 50).min(st);
        assert!(w(0, p, pe) > w(1, p, pe).max(w(2, p, pe)));
        let hs = w(1, st, st + 100).hypot(w(2, st, st + 100));
        assert!(hs > w(0, st, st + 100));
        // Before P: noise only, far below the arrivals.
        assert!(w(0, 0, p.saturating_sub(5).max(1)) < 0.1 * w(0, p, pe));
    }

    #[test]
    fn sequence_classes_label_events_and_move_their_sources() {
        let mut cfg = WaveformConfig::new(600);
        cfg.event_probability = 0.7;
        cfg.sequence_classes = 3;
        let all: Vec<_> = (0..300).map(|i| generate(&cfg, 5, i)).collect();
        let mut mean_d = [(0.0f64, 0usize); 3];
        for s in &all {
            assert_eq!(s.sequence_class.is_some(), s.is_event);
            if let Some(k) = s.sequence_class {
                mean_d[k].0 += s.distance_km as f64;
                mean_d[k].1 += 1;
            }
        }
        assert!(mean_d.iter().all(|&(_, n)| n > 40), "{mean_d:?}");
        let m: Vec<f64> = mean_d.iter().map(|&(d, n)| d / n as f64).collect();
        assert!(
            m[0] + 15.0 < m[1] && m[1] + 15.0 < m[2],
            "distances by class {m:?}"
        );
        // Without sequence labels the traces are those of before (same draws).
        cfg.sequence_classes = 0;
        let plain = generate(&cfg, 5, 7);
        assert!(plain.sequence_class.is_none());
        cfg.sequence_classes = 3;
        let labelled = generate(&cfg, 5, 7);
        assert_eq!(plain.is_event, labelled.is_event);
        assert_eq!(plain.snr_db, labelled.snr_db);
    }

    #[test]
    fn noise_traces_have_no_picks() {
        let mut cfg = WaveformConfig::new(500);
        cfg.event_probability = 0.0;
        let s = generate(&cfg, 1, 2);
        assert!(!s.is_event && s.p_sample.is_none() && s.s_sample.is_none());
        assert!(s.data.iter().all(|v| v.is_finite()));
    }
}
