//! Log-mel spectrograms and mel images as tensor ops: the CPU reference (`dsp`) or the fused
//! CUDA kernels (`backend::cuda::stft_mel`), with the backward pass to the waveform.

use super::*;
use crate::backend::api::LogMelBackward;
use crate::dsp::images::{MelImageConfig, MelImagePlan};
use crate::dsp::mel::{LogKind, LogMel, MelParams};
use crate::dsp::stft::StftConfig;

/// What a log-mel transform computes: STFT framing, the filterbank and the compression.
#[derive(Clone, Debug, PartialEq)]
pub struct LogMelSpec {
    pub stft: StftConfig,
    pub mel: MelParams,
    pub log: LogKind,
}

impl LogMelSpec {
    pub fn plan(&self) -> Result<LogMel<f32>> {
        LogMel::new(&self.stft, &self.mel, self.log)
    }
}

/// `x` [..., T] as (traces, T), f32 only.
fn traces(op: &str, x: &Tensor) -> Result<(usize, usize)> {
    if x.dtype != DType::F32 {
        bail!("{op}: waveforms must be f32, found {}", x.dtype);
    }
    if x.rank() == 0 {
        bail!("{op}: expected waveforms [..., T], found a scalar");
    }
    let t = *x.shape.last().unwrap_or(&0);
    Ok((x.numel() / t.max(1), t))
}

/// log-mel of `x` [..., T] → [..., n_mels, F].
pub fn log_mel(x: &Tensor, spec: &LogMelSpec) -> Result<Tensor> {
    let (_b, t) = traces("log_mel", x)?;
    let lm = spec.plan()?;
    let f = lm.n_frames(t)?;
    let nm = lm.n_mels();
    let mut shape = x.shape[..x.rank() - 1].to_vec();
    shape.extend([nm, f]);
    let d = x.device();
    let mut out = alloc(&d, &shape, DType::F32)?;
    d.run().log_mel(&mut out, x, &lm)?;
    Ok(out)
}

/// dx = (∂ log_mel / ∂x)ᵀ dy, with dy [..., n_mels, F]; dx has x's shape.
pub fn log_mel_backward(x: &Tensor, dy: &Tensor, spec: &LogMelSpec) -> Result<Tensor> {
    let (_b, t) = traces("log_mel_backward", x)?;
    let d = check_device("log_mel_backward", &[x, dy])?;
    let lm = spec.plan()?;
    let f = lm.n_frames(t)?;
    let nm = lm.n_mels();
    let mut want = x.shape[..x.rank() - 1].to_vec();
    want.extend([nm, f]);
    if dy.shape != want || dy.dtype != DType::F32 {
        bail!(
            "log_mel_backward: dy must be f32 of shape {want:?}, found {} {:?}",
            dy.dtype,
            dy.shape
        );
    }
    let mut dx = alloc(&d, &x.shape, DType::F32)?;
    let a = LogMelBackward { dx: &mut dx, x, dy };
    d.run().log_mel_backward(a, &lm)?;
    Ok(dx)
}

/// Mel images of `x` [N, C, T] → [N, C, H, W] ([N, 1, H, W] when averaging channels); see
/// `dsp::images` for the recipe.
pub fn mel_images(x: &Tensor, cfg: &MelImageConfig) -> Result<Tensor> {
    if x.rank() != 3 {
        bail!(
            "mel_images: expected waveforms [N, C, T], found shape {:?}",
            x.shape
        );
    }
    traces("mel_images", x)?;
    let (n, c, t) = (x.shape[0], x.shape[1], x.shape[2]);
    let plan = MelImagePlan::new(cfg, t)?;
    let lm = plan.log_mel()?;
    let (h, w, f) = (cfg.height, cfg.width, plan.frames);
    let d = x.device();
    let mut logmel = alloc(&d, &[n * c, h, f], DType::F32)?;
    d.run().log_mel(&mut logmel, x, &lm)?;
    let mut imgs = alloc(&d, &[n, c, h, w], DType::F32)?;
    d.run().mel_image_finish(&mut imgs, &logmel, &plan)?;
    if cfg.average_channels && c > 1 {
        let mut avg = alloc(&d, &[n, 1, h, w], DType::F32)?;
        d.run().mean_over_channels(&mut avg, &imgs)?;
        return Ok(avg);
    }
    let oc = plan.out_channels(c);
    imgs.reshape(&[n, oc, h, w])
}
