//! Signal processing on the CPU (the reference the GPU kernels are checked against): windows,
//! framing and STFT (rustfft), mel filterbanks, log/dB, and mel images for the image encoder.
//! See docs/dsp.md.

pub mod images;
pub mod mel;
pub mod stft;
pub mod windows;

pub use images::{mel_images, MelImageConfig, MelImagePlan, Normalize};
pub use mel::{
    mel_spectrogram, power_to_db, LogKind, LogMel, MelConfig, MelFilterbank, MelNorm, MelParams,
    MelScale,
};
pub use stft::{spectrogram, stft, PadMode, Stft, StftConfig};
pub use windows::{padded_window, window, WindowKind};

/// The floating-point types the reference runs in: f32 (what users run) and f64 (gradient
/// checks).
pub trait Real: rustfft::FftNum + rustfft::num_traits::Float {}
impl<T: rustfft::FftNum + rustfft::num_traits::Float> Real for T {}
