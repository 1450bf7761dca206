//! Framing and the short-time Fourier transform (real input, onesided), through rustfft.
//!
//! Layout follows librosa: a spectrogram is `[n_freq × n_frames]`, row-major, with
//! `n_freq = n_fft / 2 + 1`. Frame `f` starts at sample `f · hop − pad` of the signal, where
//! `pad = n_fft / 2` when `center` is set (the signal is padded on both sides) and 0 otherwise.

use super::windows::{padded_window, WindowKind};
use super::Real;
use anyhow::{bail, Result};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// How a centred STFT pads the signal ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// Mirror without repeating the edge sample (numpy `reflect`, torch `reflect`).
    Reflect,
    /// Zeros.
    Constant,
}

from_keywords!(PadMode, |s| "unknown pad mode '{s}': expected reflect or constant",
    "reflect" => Reflect,
    "constant" | "zero" | "zeros" => Constant,
);

/// STFT parameters (defaults: periodic Hann over the whole frame, centred, reflect padding).
#[derive(Clone, Debug, PartialEq)]
pub struct StftConfig {
    pub n_fft: usize,
    pub hop: usize,
    /// Window length (≤ n_fft, centred in the frame); `None` means n_fft.
    pub win_length: Option<usize>,
    pub window: WindowKind,
    pub periodic: bool,
    pub center: bool,
    pub pad_mode: PadMode,
}

impl StftConfig {
    pub fn new(n_fft: usize, hop: usize) -> Self {
        StftConfig {
            n_fft,
            hop,
            win_length: None,
            window: WindowKind::Hann,
            periodic: true,
            center: true,
            pad_mode: PadMode::Reflect,
        }
    }

    pub fn n_freq(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Samples added before the signal (and after it) by centring.
    pub fn pad(&self) -> usize {
        if self.center {
            self.n_fft / 2
        } else {
            0
        }
    }

    /// The window, zero-padded to n_fft.
    pub fn window_f64(&self) -> Result<Vec<f64>> {
        padded_window(
            self.window,
            self.win_length.unwrap_or(self.n_fft),
            self.n_fft,
            self.periodic,
        )
    }

    /// Checks the parameters against a signal of `len` samples.
    pub fn validate(&self, len: usize) -> Result<()> {
        if self.n_fft < 2 {
            bail!("n_fft must be at least 2, found {}", self.n_fft);
        }
        if self.hop == 0 {
            bail!("hop must be at least 1");
        }
        if let Some(w) = self.win_length {
            if w == 0 || w > self.n_fft {
                bail!(
                    "win_length must be between 1 and n_fft ({}), found {w}",
                    self.n_fft
                );
            }
        }
        if len == 0 {
            bail!("the signal is empty");
        }
        if self.center && self.pad_mode == PadMode::Reflect && self.pad() >= len {
            bail!(
                "reflect padding of n_fft/2 = {} samples needs a signal longer than that, found {len} samples; use a smaller n_fft or constant padding",
                self.pad()
            );
        }
        if !self.center && len < self.n_fft {
            bail!(
                "without centring the signal must hold at least n_fft = {} samples, found {len}",
                self.n_fft
            );
        }
        Ok(())
    }

    /// Frames for a signal of `len` samples: `1 + len / hop` centred, `1 + (len − n_fft) / hop`
    /// otherwise (the same count as librosa and torch.stft).
    pub fn n_frames(&self, len: usize) -> Result<usize> {
        self.validate(len)?;
        Ok(if self.center {
            1 + len / self.hop
        } else {
            1 + (len - self.n_fft) / self.hop
        })
    }
}

/// The signal index read at position `p` of the (virtually) padded signal, `p` counted from
/// the first real sample; `None` for a zero of constant padding. Reflect padding needs
/// `−p < len` and `p < 2·len − 1` (guaranteed by [`StftConfig::validate`]).
#[inline]
pub fn source_index(p: isize, len: usize, mode: PadMode) -> Option<usize> {
    let n = len as isize;
    if (0..n).contains(&p) {
        return Some(p as usize);
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Reflect => {
            let q = if p < 0 { -p } else { 2 * (n - 1) - p };
            Some(q.clamp(0, n - 1) as usize)
        }
    }
}

/// A planned STFT: window and FFT plan, reusable across signals and threads.
pub struct Stft<T: Real> {
    pub cfg: StftConfig,
    pub window: Vec<T>,
    fft: Arc<dyn Fft<T>>,
    ifft: Arc<dyn Fft<T>>,
}

impl<T: Real> Stft<T> {
    pub fn new(cfg: &StftConfig) -> Result<Self> {
        if cfg.n_fft < 2 || cfg.hop == 0 {
            bail!(
                "n_fft must be ≥ 2 and hop ≥ 1, found n_fft {} and hop {}",
                cfg.n_fft,
                cfg.hop
            );
        }
        let window = cfg
            .window_f64()?
            .into_iter()
            .map(|w| T::from_f64(w).unwrap_or_else(T::zero))
            .collect();
        let mut planner = FftPlanner::<T>::new();
        Ok(Stft {
            cfg: cfg.clone(),
            window,
            fft: planner.plan_fft_forward(cfg.n_fft),
            ifft: planner.plan_fft_inverse(cfg.n_fft),
        })
    }

    /// Scratch length needed by [`Self::frame_spectrum`] and [`Self::inverse`].
    pub fn scratch_len(&self) -> usize {
        self.fft
            .get_inplace_scratch_len()
            .max(self.ifft.get_inplace_scratch_len())
    }

    /// The full n_fft-point spectrum of frame `f` of `x`, in `buf` (length n_fft).
    pub fn frame_spectrum(
        &self,
        x: &[T],
        f: usize,
        buf: &mut [Complex<T>],
        scratch: &mut [Complex<T>],
    ) {
        let n = self.cfg.n_fft;
        let start = (f * self.cfg.hop) as isize - self.cfg.pad() as isize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let v = source_index(start + i as isize, x.len(), self.cfg.pad_mode)
                .map_or(T::zero(), |j| x[j]);
            *b = Complex::new(v * self.window[i], T::zero());
        }
        self.fft.process_with_scratch(&mut buf[..n], scratch);
    }

    /// In-place unnormalised inverse FFT: `buf[n] ← Σ_k buf[k] e^{+2πikn/N}`.
    pub fn inverse(&self, buf: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        self.ifft.process_with_scratch(buf, scratch);
    }

    /// The onesided STFT of `x`: `[n_freq × n_frames]` complex values.
    pub fn forward(&self, x: &[T]) -> Result<Vec<Complex<T>>> {
        let frames = self.cfg.n_frames(x.len())?;
        let nf = self.cfg.n_freq();
        let mut out = vec![Complex::new(T::zero(), T::zero()); nf * frames];
        let mut buf = vec![Complex::new(T::zero(), T::zero()); self.cfg.n_fft];
        let mut scratch = vec![Complex::new(T::zero(), T::zero()); self.scratch_len()];
        for f in 0..frames {
            self.frame_spectrum(x, f, &mut buf, &mut scratch);
            for k in 0..nf {
                out[k * frames + f] = buf[k];
            }
        }
        Ok(out)
    }
}

/// The onesided STFT of `x` as `[n_freq × n_frames]` (librosa.stft's layout and values).
pub fn stft(x: &[f32], cfg: &StftConfig) -> Result<Vec<Complex<f32>>> {
    Stft::<f32>::new(cfg)?.forward(x)
}

/// |STFT|^power as `[n_freq × n_frames]`: power 1 is the magnitude, 2 the power spectrogram
/// (torchaudio Spectrogram's `power`).
pub fn spectrogram(x: &[f32], cfg: &StftConfig, power: f32) -> Result<Vec<f32>> {
    if !(power > 0.0 && power.is_finite()) {
        bail!("power must be positive (1 = magnitude, 2 = power), found {power}");
    }
    Ok(stft(x, cfg)?
        .into_iter()
        .map(|c| {
            let p = c.norm_sqr();
            if power == 2.0 {
                p
            } else if power == 1.0 {
                p.sqrt()
            } else {
                p.powf(power / 2.0)
            }
        })
        .collect())
}
