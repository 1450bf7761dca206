//! Mel images: a batch of waveforms `N × C × T` → images `N × C × H × W` (or `N × 1 × H × W`
//! with channel averaging), the early-fusion input of the image encoder.
//!
//! Per trace (one component of one waveform):
//! 1. log-mel `[H × F]` with `H = n_mels` ([`LogMel`]: periodic Hann, centred, reflect padding,
//!    power spectrogram, mel filterbank, ln or dB). By default `n_fft = 2·H` and
//!    `hop = max(1, round(T / W))`, so `F = 1 + T / hop ≈ W` (T = 6000, W = 224: n_fft 448,
//!    hop 27, F = 223).
//! 2. dB only, with `top_db`: values below (image maximum − top_db) are raised to it.
//! 3. time axis resampled from F frames to W columns by linear interpolation with the end
//!    frames on the end columns: column w reads frame position w·(F−1)/(W−1) (an identity when
//!    F = W).
//! 4. normalisation over the H×W image: min-max to [0, 1] (a constant image becomes 0) or
//!    z-score (x − mean) / (std + 1e-6) with the population std, as SFM normalises its inputs.
//! 5. optionally the C normalised images of a waveform are averaged into one channel.
//!
//! Row h of an image is mel bin h (row 0 the lowest frequency); PNGs are drawn flipped so that
//! low frequencies are at the bottom.

use super::mel::{LogKind, LogMel, MelNorm, MelParams, MelScale};
use super::stft::{PadMode, StftConfig};
use anyhow::{bail, Result};
use rayon::prelude::*;

/// Per-image normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalize {
    /// (x − min) / (max − min), 0 for a constant image.
    MinMax,
    /// (x − mean) / (std + 1e-6), population std.
    ZScore,
    /// Leave the values as they are.
    None,
}

from_keywords!(Normalize, |s| "unknown normalisation '{s}': expected minmax, zscore or none",
    "minmax" | "min-max" => MinMax,
    "zscore" | "z-score" => ZScore,
    "none" => None,
);

/// The z-score's epsilon (as SFM's `(x − mean) / (std + 1e-6)`).
pub const ZSCORE_EPS: f32 = 1e-6;

/// Mel image parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct MelImageConfig {
    /// Image height = number of mel bins.
    pub height: usize,
    /// Image width (time columns).
    pub width: usize,
    /// FFT size; `None` means 2·height.
    pub n_fft: Option<usize>,
    /// Hop in samples; `None` means max(1, round(T / width)).
    pub hop: Option<usize>,
    pub sample_rate: f64,
    pub f_min: f64,
    /// `None` means the Nyquist frequency.
    pub f_max: Option<f64>,
    pub scale: MelScale,
    pub norm: MelNorm,
    pub pad_mode: PadMode,
    pub log: LogKind,
    /// dB only: clip at (image maximum − top_db).
    pub top_db: Option<f32>,
    pub normalize: Normalize,
    /// Average the C components' images into one channel.
    pub average_channels: bool,
}

impl Default for MelImageConfig {
    fn default() -> Self {
        MelImageConfig {
            height: 224,
            width: 224,
            n_fft: None,
            hop: None,
            sample_rate: 100.0,
            f_min: 0.0,
            f_max: None,
            scale: MelScale::Htk,
            norm: MelNorm::None,
            pad_mode: PadMode::Reflect,
            log: LogKind::Ln { floor: 1e-10 },
            top_db: None,
            normalize: Normalize::MinMax,
            average_channels: false,
        }
    }
}

impl MelImageConfig {
    /// dB (10·log10, amin 1e-10, ref 1) with top_db clipping, as librosa.power_to_db.
    pub fn with_db(mut self, top_db: Option<f32>) -> Self {
        self.log = LogKind::Db {
            amin: 1e-10,
            ref_value: 1.0,
        };
        self.top_db = top_db;
        self
    }
}

/// A configuration resolved for traces of `t` samples.
#[derive(Clone, Debug)]
pub struct MelImagePlan {
    pub cfg: MelImageConfig,
    pub t: usize,
    pub n_fft: usize,
    pub hop: usize,
    /// STFT frames F before resampling to the width.
    pub frames: usize,
    pub stft: StftConfig,
    pub mel: MelParams,
}

impl MelImagePlan {
    pub fn new(cfg: &MelImageConfig, t: usize) -> Result<Self> {
        if cfg.height == 0 || cfg.width == 0 {
            bail!(
                "image height and width must be at least 1, found {}×{}",
                cfg.height,
                cfg.width
            );
        }
        if t == 0 {
            bail!("the traces are empty (0 samples)");
        }
        if cfg.top_db.is_some() && !matches!(cfg.log, LogKind::Db { .. }) {
            bail!("top_db clipping applies to dB images only; choose dB or drop top_db");
        }
        if let Some(td) = cfg.top_db {
            if !(td >= 0.0 && td.is_finite()) {
                bail!("top_db must be a non-negative number of dB, found {td}");
            }
        }
        let n_fft = cfg.n_fft.unwrap_or(2 * cfg.height);
        let hop = cfg
            .hop
            .unwrap_or_else(|| ((t as f64 / cfg.width as f64).round() as usize).max(1));
        let mut stft = StftConfig::new(n_fft, hop);
        stft.pad_mode = cfg.pad_mode;
        let frames = stft.n_frames(t)?;
        let mel = MelParams {
            sample_rate: cfg.sample_rate,
            n_fft,
            n_mels: cfg.height,
            f_min: cfg.f_min,
            f_max: cfg.f_max,
            scale: cfg.scale,
            norm: cfg.norm,
        };
        Ok(MelImagePlan {
            cfg: cfg.clone(),
            t,
            n_fft,
            hop,
            frames,
            stft,
            mel,
        })
    }

    pub fn log_mel(&self) -> Result<LogMel<f32>> {
        LogMel::new(&self.stft, &self.mel, self.cfg.log)
    }

    /// Output channels for C input components.
    pub fn out_channels(&self, c: usize) -> usize {
        if self.cfg.average_channels {
            1
        } else {
            c
        }
    }
}

/// Linear-interpolation source of column `w` of `width` from `frames` frames: (f0, f1, t)
/// with value = `v[f0] + (v[f1] − v[f0])·t`. Computed in f32 exactly as the GPU kernel does.
#[inline]
pub fn column_source(w: usize, width: usize, frames: usize) -> (usize, usize, f32) {
    if width <= 1 || frames <= 1 {
        return (0, 0, 0.0);
    }
    let pos = w as f32 * ((frames - 1) as f32 / (width - 1) as f32);
    let f0 = (pos.floor() as usize).min(frames - 1);
    let f1 = (f0 + 1).min(frames - 1);
    (f0, f1, pos - f0 as f32)
}

/// Steps 2–4 for one trace: `logmel` `[H × F]` → `out` `[H × W]`.
pub fn finish_image(logmel: &[f32], plan: &MelImagePlan, out: &mut [f32]) -> Result<()> {
    let (h, w, f) = (plan.cfg.height, plan.cfg.width, plan.frames);
    if logmel.len() != h * f || out.len() != h * w {
        bail!(
            "finish_image: expected {h}×{f} log-mel values and a {h}×{w} image, found {} and {}",
            logmel.len(),
            out.len()
        );
    }
    let lo = match plan.cfg.top_db {
        Some(td) => logmel.iter().copied().fold(f32::NEG_INFINITY, f32::max) - td,
        None => f32::NEG_INFINITY,
    };
    for r in 0..h {
        let row = &logmel[r * f..(r + 1) * f];
        for c in 0..w {
            let (f0, f1, t) = column_source(c, w, f);
            let (a, b) = (row[f0].max(lo), row[f1].max(lo));
            out[r * w + c] = a + (b - a) * t;
        }
    }
    normalize_image(out, plan.cfg.normalize);
    Ok(())
}

/// Step 4 in place (statistics in f64).
pub fn normalize_image(img: &mut [f32], how: Normalize) {
    match how {
        Normalize::None => {}
        Normalize::MinMax => {
            let (mn, mx) = img
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let span = mx - mn;
            for v in img.iter_mut() {
                *v = if span > 0.0 { (*v - mn) / span } else { 0.0 };
            }
        }
        Normalize::ZScore => {
            let n = img.len().max(1) as f64;
            let mean = img.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = img
                .iter()
                .map(|&v| (v as f64 - mean) * (v as f64 - mean))
                .sum::<f64>()
                / n;
            let (mean, inv) = (mean as f32, 1.0 / (var.sqrt() as f32 + ZSCORE_EPS));
            for v in img.iter_mut() {
                *v = (*v - mean) * inv;
            }
        }
    }
}

/// Averages `c` consecutive images of `hw` values each: `[n·c × hw]` → `[n × hw]`.
pub fn average_channels(images: &[f32], c: usize, hw: usize) -> Vec<f32> {
    let n = images.len() / (c * hw).max(1);
    let mut out = vec![0f32; n * hw];
    out.par_chunks_mut(hw.max(1))
        .enumerate()
        .for_each(|(i, o)| {
            for ch in 0..c {
                let img = &images[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                for (a, b) in o.iter_mut().zip(img) {
                    *a += b;
                }
            }
            let s = 1.0 / c as f32;
            o.iter_mut().for_each(|a| *a *= s);
        });
    out
}

/// Mel images of `x` (`n × c × t`, row-major) on the CPU: returns the values and their shape
/// `[n, c or 1, height, width]`. Traces run in parallel on rayon's pool.
pub fn mel_images(
    x: &[f32],
    n: usize,
    c: usize,
    t: usize,
    cfg: &MelImageConfig,
) -> Result<(Vec<f32>, [usize; 4])> {
    if x.len() != n * c * t {
        bail!(
            "a batch of {n}×{c}×{t} needs {} samples, found {}",
            n * c * t,
            x.len()
        );
    }
    let plan = MelImagePlan::new(cfg, t)?;
    let lm = plan.log_mel()?;
    let (h, w, f) = (cfg.height, cfg.width, plan.frames);
    let mut images = vec![0f32; n * c * h * w];
    images.par_chunks_mut(h * w).enumerate().try_for_each_init(
        || vec![0f32; h * f],
        |logmel, (i, img)| -> Result<()> {
            lm.forward_into(&x[i * t..(i + 1) * t], logmel)?;
            finish_image(logmel, &plan, img)
        },
    )?;
    let oc = plan.out_channels(c);
    if cfg.average_channels && c > 1 {
        images = average_channels(&images, c, h * w);
    }
    Ok((images, [n, oc, h, w]))
}
