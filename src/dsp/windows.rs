//! Analysis windows (Hann, Hamming), periodic or symmetric, and their centring inside an
//! FFT frame longer than the window (as librosa's `pad_center` and torch.stft do).

use anyhow::{bail, Result};

/// The window family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// 0.5 − 0.5 cos(2πn/M).
    Hann,
    /// 0.54 − 0.46 cos(2πn/M).
    Hamming,
    /// All ones (no taper).
    Rectangular,
}

from_keywords!(WindowKind, |s| "unknown window '{s}': expected hann, hamming or rectangular",
    "hann" | "hanning" => Hann,
    "hamming" => Hamming,
    "rect" | "rectangular" | "boxcar" | "ones" => Rectangular,
);

/// A window of `len` samples in f64.
///
/// `periodic` (the default of torch.hann_window and of librosa/scipy `fftbins=True`) divides by
/// `len`, so the window is one period of a `len`-periodic sequence; symmetric divides by
/// `len − 1`, so the first and last samples are equal.
pub fn window(kind: WindowKind, len: usize, periodic: bool) -> Vec<f64> {
    if len == 0 {
        return Vec::new();
    }
    if len == 1 {
        return vec![1.0];
    }
    let m = if periodic { len } else { len - 1 } as f64;
    let (a0, a1) = match kind {
        WindowKind::Hann => (0.5, 0.5),
        WindowKind::Hamming => (0.54, 0.46),
        WindowKind::Rectangular => (1.0, 0.0),
    };
    (0..len)
        .map(|n| a0 - a1 * (2.0 * std::f64::consts::PI * n as f64 / m).cos())
        .collect()
}

/// A window of `win_length` samples centred in `n_fft` samples with zeros either side (left
/// padding `(n_fft − win_length) / 2`, rounded down, as librosa and torch.stft do).
pub fn padded_window(
    kind: WindowKind,
    win_length: usize,
    n_fft: usize,
    periodic: bool,
) -> Result<Vec<f64>> {
    if win_length == 0 || win_length > n_fft {
        bail!("win_length must be between 1 and n_fft ({n_fft}), found {win_length}");
    }
    let w = window(kind, win_length, periodic);
    let left = (n_fft - win_length) / 2;
    let mut out = vec![0.0; n_fft];
    out[left..left + win_length].copy_from_slice(&w);
    Ok(out)
}
