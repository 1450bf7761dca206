//! Log-mel spectrograms of waveforms (STFT, power, mel filterbank, compression), their backward
//! pass to the waveform, and the steps that turn log-mels into mel images.

use crate::dsp::images::MelImagePlan;
use crate::dsp::mel::LogMel;
use crate::tensor::Tensor;
use anyhow::Result;

/// The tensors of the log-mel backward pass (f32).
pub struct LogMelBackward<'a> {
    /// Written: the waveforms' gradient [batch, t].
    pub dx: &'a mut Tensor,
    /// The waveforms [batch, t] and the log-mels' gradient [batch, n_mels, frames].
    pub x: &'a Tensor,
    pub dy: &'a Tensor,
}

pub trait StftMelOps {
    /// out [batch, n_mels, frames] = the log-mel transform `lm` of each trace of x [batch, t]
    /// (f32, written).
    fn log_mel(&self, out: &mut Tensor, x: &Tensor, lm: &LogMel<f32>) -> Result<()>;
    /// dx [batch, t] = (∂ log-mel / ∂x)ᵀ dy with dy [batch, n_mels, frames] (f32, written).
    fn log_mel_backward(&self, a: LogMelBackward, lm: &LogMel<f32>) -> Result<()>;
    /// images [n, height, width] from log-mels [n, height, frames] per `plan`: top_db clipping,
    /// resampling of the frames to the width, normalisation (written).
    fn mel_image_finish(
        &self,
        images: &mut Tensor,
        logmel: &Tensor,
        plan: &MelImagePlan,
    ) -> Result<()>;
    /// out [n, ..] = the mean over c of x [n, c, ..] (written).
    fn mean_over_channels(&self, out: &mut Tensor, x: &Tensor) -> Result<()>;
}
