//! Image + waveform pairs from one earth model.
//!
//! Each sample is a layered 1-D velocity model (P velocity, S velocity = P/1.73, Gardner
//! density) with gentle lateral variation for the image. Class 1 models hold a low-velocity
//! layer (a layer slower than the one above it); class 0 models get faster with depth
//! everywhere. The same layers give
//! - the image: the zero-offset reflectivity section in two-way time convolved with a Ricker
//!   wavelet, plus noise (the top of a low-velocity layer is a negative reflection);
//! - the waveform: a local event below the model recorded by a station at the surface above
//!   the centre trace: direct P and S whose travel times are integrated through the layers
//!   (a slow layer lengthens S−P), and P-to-S conversions at every interface on the horizontals,
//!   whose polarity follows the sign of the S-velocity contrast (negative at the top of a
//!   low-velocity layer), as in a receiver function.

use super::waveforms::{background, envelope, Band};
use super::{convolve_same, mean_std, ricker, Rng};

#[derive(Clone, Debug)]
pub struct PairedConfig {
    pub height: usize,
    pub width: usize,
    pub samples: usize,
    pub sampling_rate: f64,
    /// Probability of a low-velocity layer (class 1).
    pub lvl_probability: f64,
    /// Two-way time covered by the image, seconds.
    pub image_seconds: f64,
    /// Image noise std relative to the clean section's, drawn in this range.
    pub image_noise: (f64, f64),
    /// Waveform SNR range in dB.
    pub snr_db: (f64, f64),
}

impl PairedConfig {
    pub fn new(height: usize, width: usize, samples: usize) -> Self {
        PairedConfig {
            height,
            width,
            samples,
            sampling_rate: 100.0,
            lvl_probability: 0.5,
            image_seconds: 2.0,
            image_noise: (0.05, 0.4),
            snr_db: (10.0, 40.0),
        }
    }
}

/// One layer of the model (the last one is a half-space).
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub thickness_km: f64,
    pub vp: f64,
    pub vs: f64,
    pub rho: f64,
}

#[derive(Clone, Debug)]
pub struct PairedSample {
    pub height: usize,
    pub width: usize,
    pub samples: usize,
    /// Noisy section, `height × width`, scaled to a peak clean amplitude of 1.
    pub image: Vec<f32>,
    /// Reflectivity section.
    pub reflectivity: Vec<f32>,
    /// `[3, samples]`, components Z, N, E.
    pub waveform: Vec<f32>,
    /// 1 when the model holds a low-velocity layer.
    pub label: i32,
    pub p_sample: Option<usize>,
    pub s_sample: Option<usize>,
    pub layers: Vec<Layer>,
    /// Index of the low-velocity layer, if any.
    pub lvl_index: Option<usize>,
    /// Travel-time-weighted mean P velocity over the layers above the half-space, km/s.
    pub mean_vp: f64,
}

/// Draws the velocity model: 4 to 7 layers over a half-space, P velocity increasing with
/// depth, one layer made 12–30% slower than the one above it when `lvl`. Thicknesses are
/// drawn at random and then scaled together so that the layered part spans 50–85% of
/// `image_seconds` of two-way time: every interface lies inside the image.
pub fn draw_model(rng: &mut Rng, lvl: bool, image_seconds: f64) -> (Vec<Layer>, Option<usize>) {
    let n = rng.int(4, 8) as usize + 1;
    let mut vp = Vec::with_capacity(n);
    let mut v = rng.range(1.8, 2.6);
    for _ in 0..n {
        vp.push(v);
        v += rng.range(0.25, 0.7);
    }
    let lvl_index = lvl.then(|| {
        let k = rng.int(1, n as i64 - 2) as usize;
        vp[k] = vp[k - 1] * rng.range(0.7, 0.88);
        k
    });
    let mut layers: Vec<Layer> = vp
        .iter()
        .map(|&vp| {
            let vs = vp / 1.73;
            // Gardner: rho = 0.31 vp^0.25, vp in m/s, rho in g/cm3.
            let rho = 0.31 * (vp * 1000.0).powf(0.25);
            Layer {
                thickness_km: rng.range(0.2, 1.0),
                vp,
                vs,
                rho,
            }
        })
        .collect();
    let above = layers.len() - 1;
    let twt: f64 = layers[..above]
        .iter()
        .map(|l| 2.0 * l.thickness_km / l.vp)
        .sum();
    let k = rng.range(0.5, 0.85) * image_seconds / twt;
    layers.iter_mut().for_each(|l| l.thickness_km *= k);
    (layers, lvl_index)
}

/// Generates pair `index` of the dataset with `seed`.
pub fn generate(cfg: &PairedConfig, seed: u64, index: u64) -> PairedSample {
    let mut rng = Rng::for_sample(seed, 3, index);
    let label = rng.chance(cfg.lvl_probability);
    let (layers, lvl_index) = draw_model(&mut rng, label, cfg.image_seconds);
    let (h, w) = (cfg.height, cfg.width);

    // Interfaces: two-way time to the top of layer k (k ≥ 1) and its reflection coefficient.
    let mut twt = Vec::new();
    let mut rc = Vec::new();
    let mut t = 0.0;
    for k in 1..layers.len() {
        t += 2.0 * layers[k - 1].thickness_km / layers[k - 1].vp;
        let (za, zb) = (
            layers[k - 1].vp * layers[k - 1].rho,
            layers[k].vp * layers[k].rho,
        );
        twt.push(t);
        rc.push((zb - za) / (zb + za));
    }
    // Gentle lateral variation, zero at the centre trace where the station stands.
    let dip = rng.range(-0.15, 0.15) * cfg.image_seconds;
    let bend = rng.range(0.0, 0.05) * cfg.image_seconds;
    let kx = rng.range(1.0, 3.0) * std::f64::consts::TAU;
    let dt_img = cfg.image_seconds / h as f64;
    let mut reflectivity = vec![0f32; h * w];
    for c in 0..w {
        let x = (c as f64 + 0.5) / w as f64 - 0.5;
        let shift = dip * x + bend * (kx * x).sin();
        for (tk, r) in twt.iter().zip(&rc) {
            let row = ((tk + shift * (tk / cfg.image_seconds)) / dt_img).round();
            if row >= 0.0 && (row as usize) < h {
                reflectivity[row as usize * w + c] += *r as f32;
            }
        }
    }
    let wavelet = ricker(rng.range(0.06, 0.11));
    let mut clean = vec![0f32; h * w];
    let mut col = vec![0f32; h];
    for c in 0..w {
        for r in 0..h {
            col[r] = reflectivity[r * w + c];
        }
        for (r, v) in convolve_same(&col, &wavelet).into_iter().enumerate() {
            clean[r * w + c] = v;
        }
    }
    let peak = clean.iter().fold(0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        clean.iter_mut().for_each(|v| *v /= peak);
    }
    let (_, cstd) = mean_std(&clean);
    let ratio = rng.range(cfg.image_noise.0, cfg.image_noise.1) as f32;
    let mut white: Vec<f32> = (0..h * w).map(|_| rng.normal() as f32).collect();
    for c in 0..w {
        for r in 0..h {
            col[r] = white[r * w + c];
        }
        for (r, v) in convolve_same(&col, &wavelet).into_iter().enumerate() {
            white[r * w + c] = v;
        }
    }
    let (_, nstd) = mean_std(&white);
    let k = if nstd > 0.0 { ratio * cstd / nstd } else { 0.0 };
    let image: Vec<f32> = clean.iter().zip(&white).map(|(c, n)| c + k * n).collect();

    // Waveform: event below the model, vertical-ish ray through every layer.
    let n = cfg.samples;
    let fs = cfg.sampling_rate;
    let extra_km = rng.range(2.0, 30.0);
    let half = layers.last().expect("at least one layer");
    let above = &layers[..layers.len() - 1];
    let tp_travel: f64 =
        above.iter().map(|l| l.thickness_km / l.vp).sum::<f64>() + extra_km / half.vp;
    let ts_travel: f64 =
        above.iter().map(|l| l.thickness_km / l.vs).sum::<f64>() + extra_km / half.vs;
    let p_time = rng.range(0.05, 0.3) * n as f64 / fs;
    let s_time = p_time + (ts_travel - tp_travel);
    // Ps conversion delays after P for the interface at the base of each layer above the
    // half-space, with the S-velocity contrast (below − above) / (below + above) as amplitude.
    let mut conversions = Vec::new();
    for k in 1..layers.len() {
        let d: f64 = layers[..k]
            .iter()
            .map(|l| l.thickness_km * (1.0 / l.vs - 1.0 / l.vp))
            .sum();
        let c = (layers[k].vs - layers[k - 1].vs) / (layers[k].vs + layers[k - 1].vs);
        conversions.push((d, c));
    }
    let back_azimuth = rng.range(0.0, std::f64::consts::TAU);
    let f0 = rng.range(3.0, 6.0);
    let pulse = |t: f64, t0: f64| {
        let a = (std::f64::consts::PI * f0 * (t - t0)).powi(2);
        (1.0 - 2.0 * a) * (-a).exp()
    };
    let s_band: Vec<Band> = (0..3).map(|_| Band::new(&mut rng, f0 * 0.5)).collect();
    let tau_s = rng.range(1.0, 3.0);
    let mut sig = vec![[0f64; 3]; n];
    for (i, s) in sig.iter_mut().enumerate() {
        let t = i as f64 / fs;
        let mut radial = 0.3 * pulse(t, p_time);
        for &(d, c) in &conversions {
            radial += 4.0 * c * pulse(t, p_time + d);
        }
        let z = pulse(t, p_time);
        let es = envelope(t, s_time, 0.1, tau_s);
        s[0] = z + 0.3 * es * s_band[0].at(t);
        s[1] = radial * back_azimuth.cos() + 2.0 * es * s_band[1].at(t);
        s[2] = radial * back_azimuth.sin() + 2.0 * es * s_band[2].at(t);
    }
    let peak = sig
        .iter()
        .flat_map(|s| s.iter())
        .fold(0f64, |m, v| m.max(v.abs()));
    let snr_db = rng.range(cfg.snr_db.0, cfg.snr_db.1);
    let sigma = peak / 10f64.powf(snr_db / 20.0);
    let mut waveform = vec![0f32; 3 * n];
    for c in 0..3 {
        let noise = background(&mut rng, n, fs);
        for i in 0..n {
            waveform[c * n + i] = (sig[i][c] + sigma * noise[i]) as f32;
        }
    }
    let p_sample = (p_time * fs).round() as usize;
    let s_sample = (s_time * fs).round() as usize;
    let total_t: f64 = above.iter().map(|l| l.thickness_km / l.vp).sum();
    let total_z: f64 = above.iter().map(|l| l.thickness_km).sum();
    PairedSample {
        height: h,
        width: w,
        samples: n,
        image,
        reflectivity,
        waveform,
        label: label as i32,
        p_sample: (p_sample < n).then_some(p_sample),
        s_sample: (s_sample < n).then_some(s_sample),
        layers,
        lvl_index,
        mean_vp: total_z / total_t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_classes_are_what_they_say() {
        let mut rng = Rng::new(5);
        for i in 0..50 {
            let lvl = i % 2 == 0;
            let (layers, k) = draw_model(&mut rng, lvl, 3.0);
            let slower = (1..layers.len())
                .filter(|&j| layers[j].vp < layers[j - 1].vp)
                .collect::<Vec<_>>();
            if lvl {
                assert_eq!(slower, vec![k.unwrap()]);
            } else {
                assert!(slower.is_empty() && k.is_none());
            }
        }
    }

    #[test]
    fn both_modalities_carry_the_lvl() {
        let cfg = PairedConfig::new(64, 32, 1000);
        let (mut lvl, mut seen) = (0, 0);
        for i in 0..30 {
            let s = generate(&cfg, 9, i);
            assert_eq!(s.image.len(), 64 * 32);
            assert_eq!(s.waveform.len(), 3000);
            assert!(s.waveform.iter().all(|v| v.is_finite()));
            assert!(s.p_sample.is_some());
            let centre_neg = (0..64).any(|r| s.reflectivity[r * 32 + 16] < -1e-4);
            if s.label == 0 {
                assert!(s.reflectivity.iter().all(|&r| r >= 0.0));
            } else {
                lvl += 1;
                seen += centre_neg as usize;
            }
        }
        assert!(lvl > 5 && seen * 10 >= lvl * 9, "{seen} of {lvl} LVLs seen");
    }
}
