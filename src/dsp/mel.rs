//! Mel filterbanks (HTK and Slaney scales, optional Slaney area normalisation), mel
//! spectrograms, log / dB compression, and the log-mel transform with its backward pass.
//!
//! The filterbank is librosa's `filters.mel` (identical to torchaudio's `melscale_fbanks`
//! transposed, except that torchaudio spaces the FFT bins up to `sample_rate // 2`, an integer,
//! where this and librosa use `sample_rate / 2`): `n_mels + 2` points equally spaced on the mel
//! scale between `f_min` and `f_max`, triangles between neighbours, weights `[n_mels × n_freq]`.

use super::stft::{spectrogram, Stft, StftConfig};
use super::Real;
use anyhow::{bail, Result};
use rustfft::num_complex::Complex;

/// The mel scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MelScale {
    /// mel = 2595 log10(1 + f / 700) (torchaudio's default, librosa `htk=True`).
    Htk,
    /// Linear below 1 kHz (f / (200/3)), logarithmic above (librosa's default, Auditory Toolbox).
    Slaney,
}

from_keywords!(MelScale, |s| "unknown mel scale '{s}': expected htk or slaney",
    "htk" => Htk,
    "slaney" => Slaney,
);

/// Filter normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MelNorm {
    /// Triangles of peak 1 (torchaudio's default `norm=None`).
    None,
    /// Each triangle scaled by 2 / (upper edge − lower edge) in Hz, so its area is constant
    /// (librosa's default `norm='slaney'`).
    Slaney,
}

const SLANEY_F_SP: f64 = 200.0 / 3.0;
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;

fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

pub fn hz_to_mel(f: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
        MelScale::Slaney => {
            if f >= SLANEY_MIN_LOG_HZ {
                SLANEY_MIN_LOG_HZ / SLANEY_F_SP + (f / SLANEY_MIN_LOG_HZ).ln() / slaney_logstep()
            } else {
                f / SLANEY_F_SP
            }
        }
    }
}

pub fn mel_to_hz(m: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
        MelScale::Slaney => {
            let min_log_mel = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;
            if m >= min_log_mel {
                SLANEY_MIN_LOG_HZ * (slaney_logstep() * (m - min_log_mel)).exp()
            } else {
                m * SLANEY_F_SP
            }
        }
    }
}

/// A mel filterbank: dense weights `[n_mels × n_freq]` and, per filter, the half-open range of
/// FFT bins where its weight is not zero (so products skip the zeros).
#[derive(Clone, Debug)]
pub struct MelFilterbank {
    pub n_mels: usize,
    pub n_freq: usize,
    pub weights: Vec<f32>,
    pub ranges: Vec<(usize, usize)>,
}

/// Filterbank parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct MelParams {
    pub sample_rate: f64,
    pub n_fft: usize,
    pub n_mels: usize,
    pub f_min: f64,
    /// `None` means the Nyquist frequency.
    pub f_max: Option<f64>,
    pub scale: MelScale,
    pub norm: MelNorm,
}

impl MelFilterbank {
    pub fn new(p: &MelParams) -> Result<Self> {
        if !(p.sample_rate > 0.0 && p.sample_rate.is_finite()) {
            bail!("sample rate must be positive, found {}", p.sample_rate);
        }
        if p.n_mels == 0 {
            bail!("n_mels must be at least 1");
        }
        if p.n_fft < 2 {
            bail!("n_fft must be at least 2, found {}", p.n_fft);
        }
        let nyquist = p.sample_rate / 2.0;
        let f_max = p.f_max.unwrap_or(nyquist);
        if !(p.f_min >= 0.0 && p.f_min < f_max) {
            bail!(
                "need 0 ≤ f_min < f_max, found f_min {} and f_max {f_max} Hz",
                p.f_min
            );
        }
        let n_freq = p.n_fft / 2 + 1;
        let fft_freqs: Vec<f64> = (0..n_freq)
            .map(|k| nyquist * k as f64 / (n_freq - 1) as f64)
            .collect();
        let (m_lo, m_hi) = (hz_to_mel(p.f_min, p.scale), hz_to_mel(f_max, p.scale));
        let pts: Vec<f64> = (0..p.n_mels + 2)
            .map(|i| {
                mel_to_hz(
                    m_lo + (m_hi - m_lo) * i as f64 / (p.n_mels + 1) as f64,
                    p.scale,
                )
            })
            .collect();
        let mut weights = vec![0f32; p.n_mels * n_freq];
        let mut ranges = Vec::with_capacity(p.n_mels);
        for m in 0..p.n_mels {
            let (lo, mid, hi) = (pts[m], pts[m + 1], pts[m + 2]);
            let enorm = match p.norm {
                MelNorm::None => 1.0,
                MelNorm::Slaney => 2.0 / (hi - lo),
            };
            let (mut first, mut last) = (n_freq, 0);
            for (k, &f) in fft_freqs.iter().enumerate() {
                let up = (f - lo) / (mid - lo);
                let down = (hi - f) / (hi - mid);
                let w = up.min(down).max(0.0) * enorm;
                if w > 0.0 {
                    weights[m * n_freq + k] = w as f32;
                    first = first.min(k);
                    last = k + 1;
                }
            }
            ranges.push(if first < last { (first, last) } else { (0, 0) });
        }
        Ok(MelFilterbank {
            n_mels: p.n_mels,
            n_freq,
            weights,
            ranges,
        })
    }

    /// `[n_mels × frames]` = weights · spec, where spec is `[n_freq × frames]`.
    pub fn apply(&self, spec: &[f32], frames: usize) -> Result<Vec<f32>> {
        if spec.len() != self.n_freq * frames {
            bail!(
                "a spectrogram of {} bins × {frames} frames needs {} values, found {}",
                self.n_freq,
                self.n_freq * frames,
                spec.len()
            );
        }
        let mut out = vec![0f32; self.n_mels * frames];
        for m in 0..self.n_mels {
            let (a, b) = self.ranges[m];
            let row = &mut out[m * frames..(m + 1) * frames];
            for k in a..b {
                let w = self.weights[m * self.n_freq + k];
                for (o, s) in row.iter_mut().zip(&spec[k * frames..(k + 1) * frames]) {
                    *o += w * s;
                }
            }
        }
        Ok(out)
    }
}

/// Mel spectrogram parameters (librosa.feature.melspectrogram / torchaudio MelSpectrogram).
#[derive(Clone, Debug, PartialEq)]
pub struct MelConfig {
    pub stft: StftConfig,
    pub mel: MelParams,
    /// Exponent of the magnitude: 2 = power (the default of both references), 1 = magnitude.
    pub power: f32,
}

/// The mel spectrogram `[n_mels × n_frames]` of one signal.
pub fn mel_spectrogram(x: &[f32], cfg: &MelConfig) -> Result<Vec<f32>> {
    if cfg.mel.n_fft != cfg.stft.n_fft {
        bail!(
            "the filterbank is for n_fft {} but the STFT uses {}",
            cfg.mel.n_fft,
            cfg.stft.n_fft
        );
    }
    let frames = cfg.stft.n_frames(x.len())?;
    let spec = spectrogram(x, &cfg.stft, cfg.power)?;
    MelFilterbank::new(&cfg.mel)?.apply(&spec, frames)
}

/// 10·log10(max(S, amin)) − 10·log10(max(ref, amin)), then, with `top_db`, values below
/// (maximum − top_db) raised to it — librosa.power_to_db over the whole slice (torchaudio's
/// AmplitudeToDB("power") takes the maximum per spectrogram, i.e. call this per image).
pub fn power_to_db(s: &mut [f32], ref_value: f32, amin: f32, top_db: Option<f32>) {
    let offset = 10.0 * ref_value.max(amin).log10();
    let mut mx = f32::NEG_INFINITY;
    for v in s.iter_mut() {
        *v = 10.0 * v.max(amin).log10() - offset;
        mx = mx.max(*v);
    }
    if let Some(t) = top_db {
        clip_top_db(s, mx, t);
    }
}

/// Raises values below `max − top_db` to that level.
pub fn clip_top_db(s: &mut [f32], max: f32, top_db: f32) {
    let lo = max - top_db;
    for v in s.iter_mut() {
        *v = v.max(lo);
    }
}

/// How mel power is compressed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LogKind {
    /// No compression.
    Linear,
    /// ln(max(M, floor)).
    Ln { floor: f32 },
    /// 10·log10(max(M, amin)) − 10·log10(max(ref, amin)) (top_db clipping is a separate,
    /// per-image step; see `images`).
    Db { amin: f32, ref_value: f32 },
}

impl LogKind {
    /// The value and the derivative of the compression at `m` (in the working precision).
    pub fn eval<T: Real>(&self, m: T) -> (T, T) {
        let c = Compressor::<T>::new(*self);
        (c.value(m), c.grad(m))
    }
}

/// A [`LogKind`] with its constants converted once, for the per-element loops.
#[derive(Clone, Copy, Debug)]
pub struct Compressor<T> {
    /// 0 linear, 1 ln, 2 dB.
    kind: u8,
    floor: T,
    /// Value where the floor is active.
    floor_value: T,
    /// 10·log10(max(ref, amin)) for dB.
    offset: T,
}

impl<T: Real> Compressor<T> {
    pub fn new(log: LogKind) -> Self {
        let cv = |v: f64| T::from_f64(v).unwrap_or_else(T::zero);
        match log {
            LogKind::Linear => Compressor {
                kind: 0,
                floor: T::zero(),
                floor_value: T::zero(),
                offset: T::zero(),
            },
            LogKind::Ln { floor } => {
                let fl = cv(floor as f64);
                Compressor {
                    kind: 1,
                    floor: fl,
                    floor_value: fl.ln(),
                    offset: T::zero(),
                }
            }
            LogKind::Db { amin, ref_value } => {
                let ten = cv(10.0);
                let a = cv(amin as f64);
                let offset = ten * cv(ref_value.max(amin) as f64).log10();
                Compressor {
                    kind: 2,
                    floor: a,
                    floor_value: ten * a.log10() - offset,
                    offset,
                }
            }
        }
    }

    #[inline]
    pub fn value(&self, m: T) -> T {
        match self.kind {
            0 => m,
            _ if m <= self.floor => self.floor_value,
            1 => m.ln(),
            _ => T::from_f64(10.0).unwrap_or_else(T::one) * m.log10() - self.offset,
        }
    }

    /// The derivative (0 where the floor is active).
    #[inline]
    pub fn grad(&self, m: T) -> T {
        match self.kind {
            0 => T::one(),
            _ if m <= self.floor => T::zero(),
            1 => m.recip(),
            _ => T::from_f64(10.0 / std::f64::consts::LN_10).unwrap_or_else(T::one) / m,
        }
    }
}

/// The log-mel transform of a signal: STFT (window, framing, padding per `StftConfig`) →
/// power |X|² → mel filterbank → [`LogKind`], giving `[n_mels × n_frames]`. This is the
/// function the GPU kernel `log_mel_frames` computes, and it has an exact backward pass.
pub struct LogMel<T: Real> {
    pub stft: Stft<T>,
    pub fb: MelFilterbank,
    pub weights: Vec<T>,
    pub log: LogKind,
    compress: Compressor<T>,
}

impl<T: Real> LogMel<T> {
    pub fn new(stft: &StftConfig, mel: &MelParams, log: LogKind) -> Result<Self> {
        if mel.n_fft != stft.n_fft {
            bail!(
                "the filterbank is for n_fft {} but the STFT uses {}",
                mel.n_fft,
                stft.n_fft
            );
        }
        let fb = MelFilterbank::new(mel)?;
        let weights = fb
            .weights
            .iter()
            .map(|&w| T::from_f32(w).unwrap_or_else(T::zero))
            .collect();
        Ok(LogMel {
            stft: Stft::new(stft)?,
            fb,
            weights,
            log,
            compress: Compressor::new(log),
        })
    }

    pub fn n_mels(&self) -> usize {
        self.fb.n_mels
    }

    /// Frames for a signal of `len` samples (an error when the signal is too short).
    pub fn n_frames(&self, len: usize) -> Result<usize> {
        self.stft.cfg.n_frames(len)
    }

    /// Mel power of frame `f` into `mel` (length n_mels); `buf` keeps the frame's spectrum.
    fn frame_mel(
        &self,
        x: &[T],
        f: usize,
        buf: &mut [Complex<T>],
        scratch: &mut [Complex<T>],
        mel: &mut [T],
    ) {
        self.stft.frame_spectrum(x, f, buf, scratch);
        let nf = self.fb.n_freq;
        for (m, out) in mel.iter_mut().enumerate() {
            let (a, b) = self.fb.ranges[m];
            let w = &self.weights[m * nf + a..m * nf + b];
            *out = w
                .iter()
                .zip(&buf[a..b])
                .fold(T::zero(), |s, (&w, x)| s + w * x.norm_sqr());
        }
    }

    /// Writes the log-mel of `x` into `out` (`[n_mels × frames]`, `frames` from [`Self::n_frames`]).
    pub fn forward_into(&self, x: &[T], out: &mut [T]) -> Result<()> {
        let frames = self.n_frames(x.len())?;
        let nm = self.n_mels();
        if out.len() != nm * frames {
            bail!(
                "log-mel output needs {} values ({nm} mels × {frames} frames), found {}",
                nm * frames,
                out.len()
            );
        }
        let zero = Complex::new(T::zero(), T::zero());
        let mut buf = vec![zero; self.stft.cfg.n_fft];
        let mut scratch = vec![zero; self.stft.scratch_len()];
        let mut mel = vec![T::zero(); nm];
        for f in 0..frames {
            self.frame_mel(x, f, &mut buf, &mut scratch, &mut mel);
            for (m, &v) in mel.iter().enumerate() {
                out[m * frames + f] = self.compress.value(v);
            }
        }
        Ok(())
    }

    pub fn forward(&self, x: &[T]) -> Result<Vec<T>> {
        let mut out = vec![T::zero(); self.n_mels() * self.n_frames(x.len())?];
        self.forward_into(x, &mut out)?;
        Ok(out)
    }

    /// dx = (∂ logmel / ∂x)ᵀ dy for one signal; `dy` is `[n_mels × frames]`, dx is written.
    ///
    /// Per frame: dM = dy · log'(M); dP_k = Σ_m W_mk dM_m; with a_n the windowed frame and
    /// X_k = Σ_n a_n e^{−2πikn/N}, ∂P_k/∂a_n = Re(2 X_k e^{+2πikn/N}), so
    /// da = Re(IFFT_unnormalised(2 dP ⊙ X)) over the onesided bins; then
    /// dframe_n = window_n · da_n is added back to the samples the frame read (padding included:
    /// a reflected sample receives the gradient of its mirror image).
    pub fn backward_into(&self, x: &[T], dy: &[T], dx: &mut [T]) -> Result<()> {
        let frames = self.n_frames(x.len())?;
        let nm = self.n_mels();
        if dy.len() != nm * frames || dx.len() != x.len() {
            bail!(
                "log-mel backward: dy must hold {} values and dx {}, found {} and {}",
                nm * frames,
                x.len(),
                dy.len(),
                dx.len()
            );
        }
        let cfg = &self.stft.cfg;
        let (n, nf) = (cfg.n_fft, self.fb.n_freq);
        let zero = Complex::new(T::zero(), T::zero());
        let two = T::one() + T::one();
        let mut buf = vec![zero; n];
        let mut scratch = vec![zero; self.stft.scratch_len()];
        let mut mel = vec![T::zero(); nm];
        let mut dp = vec![T::zero(); nf];
        dx.iter_mut().for_each(|v| *v = T::zero());
        for f in 0..frames {
            self.frame_mel(x, f, &mut buf, &mut scratch, &mut mel);
            dp.iter_mut().for_each(|v| *v = T::zero());
            for m in 0..nm {
                let dm = dy[m * frames + f] * self.compress.grad(mel[m]);
                let (a, b) = self.fb.ranges[m];
                let w = &self.weights[m * nf + a..m * nf + b];
                for (d, &w) in dp[a..b].iter_mut().zip(w) {
                    *d = *d + w * dm;
                }
            }
            for k in 0..n {
                buf[k] = if k < nf { buf[k] * (two * dp[k]) } else { zero };
            }
            self.stft.inverse(&mut buf, &mut scratch);
            let start = (f * cfg.hop) as isize - cfg.pad() as isize;
            for (i, (b, &w)) in buf.iter().zip(&self.stft.window).enumerate() {
                let p = start + i as isize;
                if let Some(j) = super::stft::source_index(p, x.len(), cfg.pad_mode) {
                    dx[j] = dx[j] + w * b.re;
                }
            }
        }
        Ok(())
    }

    pub fn backward(&self, x: &[T], dy: &[T]) -> Result<Vec<T>> {
        let mut dx = vec![T::zero(); x.len()];
        self.backward_into(x, dy, &mut dx)?;
        Ok(dx)
    }
}
