//! Log-mel spectrograms and mel images on the CPU: the reference of `src/dsp` (mel.rs,
//! images.rs), trace by trace on rayon's pool.

use super::Cpu;
use crate::backend::api::{LogMelBackward, StftMelOps};
use crate::dsp::images::{self, MelImagePlan};
use crate::dsp::mel::LogMel;
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

impl StftMelOps for Cpu {
    fn log_mel(&self, out: &mut Tensor, x: &Tensor, lm: &LogMel<f32>) -> Result<()> {
        let t = *x.shape.last().unwrap_or(&0);
        let per = lm.n_mels() * lm.n_frames(t)?;
        let xs = x.f32s()?;
        out.f32s_mut()?
            .par_chunks_mut(per)
            .enumerate()
            .try_for_each(|(i, o)| lm.forward_into(&xs[i * t..(i + 1) * t], o))
    }
    fn log_mel_backward(&self, a: LogMelBackward, lm: &LogMel<f32>) -> Result<()> {
        let t = *a.x.shape.last().unwrap_or(&0);
        let per = lm.n_mels() * lm.n_frames(t)?;
        let (xs, dys) = (a.x.f32s()?, a.dy.f32s()?);
        a.dx.f32s_mut()?
            .par_chunks_mut(t)
            .enumerate()
            .try_for_each(|(i, o)| {
                lm.backward_into(&xs[i * t..(i + 1) * t], &dys[i * per..(i + 1) * per], o)
            })
    }
    fn mel_image_finish(
        &self,
        out: &mut Tensor,
        logmel: &Tensor,
        plan: &MelImagePlan,
    ) -> Result<()> {
        let (h, w, f) = (plan.cfg.height, plan.cfg.width, plan.frames);
        let lm = logmel.f32s()?;
        out.f32s_mut()?
            .par_chunks_mut(h * w)
            .zip(lm.par_chunks(h * f))
            .try_for_each(|(img, l)| images::finish_image(l, plan, img))
    }
    fn mean_over_channels(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        let c = x.shape[1];
        let v = images::average_channels(&x.f32s()?, c, out.numel() / x.shape[0].max(1));
        out.f32s_mut()?.copy_from_slice(&v);
        Ok(())
    }
}
