//! Synthetic seismic sections with labels, for the SFM image tasks.
//!
//! Each sample is a 2-D earth model made of layers (random thicknesses, each layer a rock type
//! with its own impedance), folded, cut by faults with throw, optionally pierced by a salt
//! body. Its reflectivity (vertical impedance contrast of each trace) is convolved with a Ricker
//! wavelet to give the clean section; band-limited noise gives the noisy one; random traces are
//! zeroed for the interpolation task. The vertical axis is two-way time, one pixel per sample.

use super::{convolve_same, mean_std, ricker, Rng};

/// Rock types of the layered part; the facies label of salt is `FACIES_SALT`.
pub const N_ROCK_FACIES: usize = 5;
/// Facies class of salt pixels.
pub const FACIES_SALT: i32 = N_ROCK_FACIES as i32;
/// Number of facies classes (5 rock types + salt).
pub const N_FACIES: usize = N_ROCK_FACIES + 1;
/// Names of the facies classes, in class order.
pub const FACIES_NAMES: [&str; N_FACIES] = [
    "shale",
    "silty shale",
    "sand",
    "carbonate",
    "tight sand",
    "salt",
];
/// Mean relative impedance of each rock type (shale, silty shale, sand, carbonate, tight sand).
const ROCK_IMPEDANCE: [f64; N_ROCK_FACIES] = [1.0, 1.15, 1.3, 1.6, 1.45];
const SALT_IMPEDANCE: f64 = 1.9;

#[derive(Clone, Debug)]
pub struct ImageConfig {
    pub height: usize,
    pub width: usize,
    /// Probability that a sample holds a salt body.
    pub salt_probability: f64,
    /// Noise standard deviation relative to the clean section's, drawn in this range.
    pub noise: (f64, f64),
    /// Fraction of trace groups zeroed in the decimated section.
    pub missing_fraction: f64,
    /// Width, in traces, of a zeroed group (1: single traces).
    pub missing_group: usize,
}

impl ImageConfig {
    pub fn new(height: usize, width: usize) -> Self {
        ImageConfig {
            height,
            width,
            salt_probability: 0.5,
            noise: (0.1, 0.6),
            missing_fraction: 0.5,
            missing_group: 1,
        }
    }
}

/// One synthetic section with every label; all grids are `height × width`, row-major,
/// row = time sample, column = trace.
#[derive(Clone, Debug)]
pub struct ImageSample {
    pub height: usize,
    pub width: usize,
    /// Clean section, scaled to a maximum absolute amplitude of 1.
    pub clean: Vec<f32>,
    /// Clean section plus band-limited noise (same scale).
    pub noisy: Vec<f32>,
    /// Reflectivity (impedance contrast per sample), the target of the inversion task.
    pub reflectivity: Vec<f32>,
    /// Relative acoustic impedance.
    pub impedance: Vec<f32>,
    /// Facies class per pixel, 0..N_FACIES (salt is `FACIES_SALT`).
    pub facies: Vec<i32>,
    /// 1 inside salt, else 0.
    pub salt: Vec<u8>,
    /// The noisy section with missing traces zeroed (the interpolation input).
    pub decimated: Vec<f32>,
    /// 1 where a trace was kept, 0 where it was zeroed (per pixel).
    pub trace_mask: Vec<u8>,
    pub has_salt: bool,
    pub n_faults: usize,
    /// Noise standard deviation over the clean section's.
    pub noise_ratio: f32,
}

struct Fault {
    x0: f64,
    z0: f64,
    /// Normal of the fault line (x, z).
    nx: f64,
    nz: f64,
    throw: f64,
}

struct Salt {
    xc: f64,
    zc: f64,
    rx: f64,
    rz: f64,
    stem: f64,
    wobble: f64,
    phase: f64,
}

impl Salt {
    fn contains(&self, x: f64, z: f64) -> bool {
        let dx = (x - self.xc) / self.rx;
        let ang = (z - self.zc).atan2(x - self.xc);
        let r = 1.0 + self.wobble * (3.0 * ang + self.phase).sin();
        let dz = (z - self.zc) / self.rz;
        dx * dx + dz * dz < r * r || (z > self.zc && (x - self.xc).abs() < self.stem * self.rx)
    }
}

/// Each column (trace) of the row-major [h, w] section `x` convolved with `wavelet`.
fn convolve_columns(x: &[f32], (h, w): (usize, usize), wavelet: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; h * w];
    let mut col = vec![0f32; h];
    for c in 0..w {
        for r in 0..h {
            col[r] = x[r * w + c];
        }
        let y = convolve_same(&col, wavelet);
        for r in 0..h {
            out[r * w + c] = y[r];
        }
    }
    out
}

/// Generates sample `index` of the dataset with `seed`.
pub fn generate(cfg: &ImageConfig, seed: u64, index: u64) -> ImageSample {
    let mut rng = Rng::for_sample(seed, 1, index);
    let (h, w) = (cfg.height, cfg.width);

    // Layers over an extended depth range so that folding and faults never run out of them.
    let mut tops = Vec::new();
    let mut z = -0.6;
    while z < 1.6 {
        tops.push(z);
        z += rng.range(0.03, 0.15);
    }
    let n_layers = tops.len();
    let mut facies_of = Vec::with_capacity(n_layers);
    let mut imp_of = Vec::with_capacity(n_layers);
    for top in &tops {
        let f = rng.below(N_ROCK_FACIES);
        facies_of.push(f as i32);
        let depth_trend = 0.25 * (top + 0.6) / 2.2;
        imp_of.push(ROCK_IMPEDANCE[f] * (1.0 + depth_trend) * (1.0 + 0.04 * rng.normal()));
    }

    // Folding: a few sinusoids whose amplitude grows with depth.
    let n_folds = rng.int(1, 4) as usize;
    let folds: Vec<(f64, f64, f64)> = (0..n_folds)
        .map(|_| {
            (
                rng.range(0.0, 0.06),
                rng.range(0.5, 3.0) * std::f64::consts::TAU,
                rng.range(0.0, std::f64::consts::TAU),
            )
        })
        .collect();
    let dip = rng.range(-0.15, 0.15);

    let n_faults = rng.int(0, 4) as usize;
    let faults: Vec<Fault> = (0..n_faults)
        .map(|_| {
            let angle = rng.range(50f64.to_radians(), 80f64.to_radians())
                * if rng.chance(0.5) { 1.0 } else { -1.0 };
            Fault {
                x0: rng.range(0.15, 0.85),
                z0: rng.range(0.2, 0.8),
                nx: angle.sin(),
                nz: -angle.cos(),
                throw: rng.range(0.02, 0.12) * if rng.chance(0.5) { 1.0 } else { -1.0 },
            }
        })
        .collect();

    let has_salt = rng.chance(cfg.salt_probability);
    let salt = has_salt.then(|| Salt {
        xc: rng.range(0.25, 0.75),
        zc: rng.range(0.35, 0.7),
        rx: rng.range(0.1, 0.25),
        rz: rng.range(0.1, 0.25),
        stem: rng.range(0.3, 0.7),
        wobble: rng.range(0.0, 0.15),
        phase: rng.range(0.0, std::f64::consts::TAU),
    });

    let mut impedance = vec![0f32; h * w];
    let mut facies = vec![0i32; h * w];
    let mut salt_mask = vec![0u8; h * w];
    for r in 0..h {
        let zn = (r as f64 + 0.5) / h as f64;
        for c in 0..w {
            let xn = (c as f64 + 0.5) / w as f64;
            let i = r * w + c;
            if salt.as_ref().is_some_and(|s| s.contains(xn, zn)) {
                impedance[i] = SALT_IMPEDANCE as f32;
                facies[i] = FACIES_SALT;
                salt_mask[i] = 1;
                continue;
            }
            // Restore the point to its pre-deformation depth.
            let mut z0 = zn - dip * (xn - 0.5);
            for &(a, k, p) in &folds {
                z0 -= a * (0.5 + zn) * (k * xn + p).sin();
            }
            for f in &faults {
                if (xn - f.x0) * f.nx + (zn - f.z0) * f.nz > 0.0 {
                    z0 -= f.throw;
                }
            }
            let k = tops.partition_point(|&t| t <= z0).saturating_sub(1);
            impedance[i] = imp_of[k] as f32;
            facies[i] = facies_of[k];
        }
    }

    // Reflectivity down each trace and the clean section.
    let mut reflectivity = vec![0f32; h * w];
    for c in 0..w {
        for r in 0..h.saturating_sub(1) {
            let (a, b) = (impedance[r * w + c], impedance[(r + 1) * w + c]);
            reflectivity[r * w + c] = (b - a) / (b + a);
        }
    }
    // Peak frequency in cycles per sample: a dominant period of 8 to 20 samples, so that
    // small test images still resolve individual layers.
    let f_peak = rng.range(0.05, 0.12);
    let wavelet = ricker(f_peak);
    let mut clean = convolve_columns(&reflectivity, (h, w), &wavelet);
    let peak = clean.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if peak > 0.0 { 1.0 / peak } else { 1.0 };
    clean.iter_mut().for_each(|v| *v *= scale);
    let (_, clean_std) = mean_std(&clean);

    // Band-limited noise: white noise through the wavelet vertically and a 3-trace smoother
    // laterally, scaled to the chosen ratio of the clean section's standard deviation.
    let noise_ratio = rng.range(cfg.noise.0, cfg.noise.1) as f32;
    let white: Vec<f32> = (0..h * w).map(|_| rng.normal() as f32).collect();
    let noise_wavelet = ricker(f_peak * rng.range(1.0, 2.0));
    let band = convolve_columns(&white, (h, w), &noise_wavelet);
    let mut noise = vec![0f32; h * w];
    for r in 0..h {
        for c in 0..w {
            let l = band[r * w + c.saturating_sub(1)];
            let rr = band[r * w + (c + 1).min(w - 1)];
            noise[r * w + c] = 0.25 * l + 0.5 * band[r * w + c] + 0.25 * rr;
        }
    }
    let (_, nstd) = mean_std(&noise);
    let k = if nstd > 0.0 {
        noise_ratio * clean_std.max(1e-6) / nstd
    } else {
        0.0
    };
    let noisy: Vec<f32> = clean.iter().zip(&noise).map(|(c, n)| c + k * n).collect();

    // Trace decimation.
    let group = cfg.missing_group.max(1);
    let mut keep_trace = vec![true; w];
    for g in 0..w.div_ceil(group) {
        if rng.chance(cfg.missing_fraction) {
            for t in keep_trace.iter_mut().skip(g * group).take(group) {
                *t = false;
            }
        }
    }
    let mut decimated = noisy.clone();
    let mut trace_mask = vec![1u8; h * w];
    for r in 0..h {
        for c in 0..w {
            if !keep_trace[c] {
                decimated[r * w + c] = 0.0;
                trace_mask[r * w + c] = 0;
            }
        }
    }

    ImageSample {
        height: h,
        width: w,
        clean,
        noisy,
        reflectivity,
        impedance,
        facies,
        salt: salt_mask,
        decimated,
        trace_mask,
        has_salt,
        n_faults,
        noise_ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_labelled() {
        let cfg = ImageConfig::new(48, 40);
        let a = generate(&cfg, 3, 5);
        let b = generate(&cfg, 3, 5);
        assert_eq!(a.clean, b.clean);
        assert_eq!(a.facies, b.facies);
        let c = generate(&cfg, 3, 6);
        assert_ne!(a.clean, c.clean);
        assert_eq!(a.clean.len(), 48 * 40);
        assert!(a.clean.iter().all(|v| v.is_finite()));
        let peak = a.clean.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((peak - 1.0).abs() < 1e-5);
        for (s, f) in a.salt.iter().zip(&a.facies) {
            assert_eq!(*s == 1, *f == FACIES_SALT);
        }
        assert!(a.facies.iter().all(|&f| (0..N_FACIES as i32).contains(&f)));
    }

    #[test]
    fn salt_appears_about_as_often_as_asked() {
        let cfg = ImageConfig::new(32, 32);
        let n = (0..40).filter(|&i| generate(&cfg, 1, i).has_salt).count();
        assert!((8..=32).contains(&n), "{n} of 40 had salt");
    }
}
