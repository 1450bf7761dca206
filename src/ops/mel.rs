//! Log-mel spectrograms and mel images as tensor ops: the CPU reference (`dsp`) or the fused
//! CUDA kernels (`backend::cuda::stft_mel`), with the backward pass to the waveform.

use super::*;
use crate::backend::cuda::stft_mel as gpu;
use crate::dsp::images::{self, MelImageConfig, MelImagePlan, Normalize};
use crate::dsp::mel::{LogKind, LogMel, MelParams};
use crate::dsp::stft::StftConfig;
use rayon::prelude::*;

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
    let (b, t) = traces("log_mel", x)?;
    let lm = spec.plan()?;
    let f = lm.n_frames(t)?;
    let nm = lm.n_mels();
    let mut shape = x.shape[..x.rank() - 1].to_vec();
    shape.extend([nm, f]);
    let d = x.device();
    if !d.is_cuda() {
        let xs = x.f32s()?;
        let mut out = vec![0f32; b * nm * f];
        out.par_chunks_mut(nm * f)
            .enumerate()
            .try_for_each(|(i, o)| lm.forward_into(&xs[i * t..(i + 1) * t], o))?;
        return Tensor::from_f32(&shape, out);
    }
    let be = backend(&d)?;
    let tables = gpu::LogMelDevice::new(be, &lm)?;
    let out = output(&shape, DType::F32, &d)?;
    gpu::log_mel_frames(be, &tables, dev(&out)?, dev(x)?, b, t, f)?;
    Ok(out)
}

/// dx = (∂ log_mel / ∂x)ᵀ dy, with dy [..., n_mels, F]; dx has x's shape.
pub fn log_mel_backward(x: &Tensor, dy: &Tensor, spec: &LogMelSpec) -> Result<Tensor> {
    let (b, t) = traces("log_mel_backward", x)?;
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
    if !d.is_cuda() {
        let (xs, dys) = (x.f32s()?, dy.f32s()?);
        let mut dx = vec![0f32; b * t];
        dx.par_chunks_mut(t).enumerate().try_for_each(|(i, o)| {
            lm.backward_into(
                &xs[i * t..(i + 1) * t],
                &dys[i * nm * f..(i + 1) * nm * f],
                o,
            )
        })?;
        return Tensor::from_f32(&x.shape, dx);
    }
    let be = backend(&d)?;
    let tables = gpu::LogMelDevice::new(be, &lm)?;
    let dx = output(&x.shape, DType::F32, &d)?;
    gpu::log_mel_frames_backward(be, &tables, dev(&dx)?, dev(x)?, dev(dy)?, b, t, f)?;
    Ok(dx)
}

fn normalize_code(n: Normalize) -> i32 {
    match n {
        Normalize::None => 0,
        Normalize::MinMax => 1,
        Normalize::ZScore => 2,
    }
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
    let d = x.device();
    if !d.is_cuda() {
        let (v, shape) = images::mel_images(&x.f32s()?, n, c, t, cfg)?;
        return Tensor::from_f32(&shape, v);
    }
    let plan = MelImagePlan::new(cfg, t)?;
    let lm = plan.log_mel()?;
    let be = backend(&d)?;
    let tables = gpu::LogMelDevice::new(be, &lm)?;
    let (h, w, f) = (cfg.height, cfg.width, plan.frames);
    let logmel = output(&[n * c, h, f], DType::F32, &d)?;
    gpu::log_mel_frames(be, &tables, dev(&logmel)?, dev(x)?, n * c, t, f)?;
    let imgs = output(&[n, c, h, w], DType::F32, &d)?;
    gpu::mel_image_finish(
        be,
        dev(&imgs)?,
        dev(&logmel)?,
        n * c,
        h,
        f,
        w,
        cfg.top_db,
        normalize_code(cfg.normalize),
    )?;
    if cfg.average_channels && c > 1 {
        let avg = output(&[n, 1, h, w], DType::F32, &d)?;
        gpu::mean_over_channels(be, dev(&avg)?, dev(&imgs)?, n, c, h * w)?;
        return Ok(avg);
    }
    let oc = plan.out_channels(c);
    imgs.reshape(&[n, oc, h, w])
}
