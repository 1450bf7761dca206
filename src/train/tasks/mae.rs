//! `mae`: SFM's masked-autoencoder pretraining (timm/MAE names: encoder at the top level,
//! `decoder_*`, `mask_token`); the loss is the MSE on the masked patches. The dev metric is
//! that loss with the masks of a fixed seed, next to the loss of predicting zero (the trivial
//! baseline for normalised sections, ≈ 1).

use super::{for_batches, inputs_on, Evaluation, StepCtx, Task, TaskModel};
use crate::data::loader::Batch;
use crate::models::mae::{Mae, MaeConfig, Masking};
use crate::nn::Grads;
use crate::ops;
use crate::train::config::TrainConfig;
use crate::train::data::{image_side, Split};
use crate::Device;
use anyhow::Result;
use std::path::Path;

pub struct MaeTask {
    pub model: Mae,
    device: Device,
    seed: u64,
}

impl MaeTask {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        let side = image_side(cfg)?;
        let mut mc = MaeConfig::preset(&cfg.preset)?;
        mc.encoder = mc.encoder.with_image(side, side)?;
        Ok(MaeTask {
            model: Mae::new(mc, cfg.seed)?,
            device: device.clone(),
            seed: cfg.seed,
        })
    }

    fn masking(&self, seed: u64, step: u32, b: usize) -> Result<Masking> {
        let c = &self.model.cfg;
        Masking::random(seed, step, b, c.encoder.num_patches(), c.len_keep())
    }
}

impl Task for MaeTask {
    fn model(&mut self) -> &mut dyn TaskModel {
        &mut self.model
    }
    fn train_batch(&mut self, batch: &Batch, ctx: &StepCtx, grads: &mut Grads) -> Result<f32> {
        let img = inputs_on(batch, &self.device)?;
        let step = ctx.key();
        let m = self.masking(ctx.seed, step, img.shape[0])?;
        let out = self.model.forward(&img, m)?;
        self.model.backward(&out.cache, grads)?;
        Ok(out.loss)
    }
    fn evaluate_split(&mut self, split: &Split, batch: usize) -> Result<Evaluation> {
        let (mut loss, mut zero, mut n, mut i) = (0f64, 0f64, 0usize, 0u32);
        let seed = self.seed ^ 0xe7a1;
        for_batches(split, batch, |b| {
            let img = inputs_on(b, &self.device)?;
            let k = img.shape[0];
            let m = self.masking(seed, i, k)?;
            i += 1;
            let out = self.model.forward(&img, m)?;
            loss += out.loss as f64 * k as f64;
            let x = b.inputs.to_vec_f32()?;
            zero += x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64
                * k as f64;
            n += k;
            Ok(())
        })?;
        let nf = n.max(1) as f64;
        Ok(Evaluation::of(
            n,
            [("loss", loss / nf), ("loss_predict_zero", zero / nf)],
        ))
    }
    fn predict(&mut self, x: &crate::tensor::Tensor) -> Result<Vec<super::Output>> {
        let m = self.masking(self.seed ^ 0xe7a1, 0, x.shape[0])?;
        let mask = m.mask.clone();
        let out = self.model.forward(x, m)?;
        let c = &self.model.cfg.encoder;
        let rec = ops::unpatchify(&out.cache.pred, c.in_chans, c.img_h, c.img_w, c.patch)?;
        Ok(vec![
            super::Output::of("reconstruction", &rec)?,
            super::Output {
                name: "patch_mask",
                shape: vec![x.shape[0], c.num_patches()],
                values: mask,
            },
        ])
    }
    fn primary(&self) -> (&'static str, bool) {
        ("loss", false)
    }
    fn head_prefixes(&self) -> Vec<String> {
        vec!["decoder_".into(), "mask_token".into()]
    }
    fn figures(&mut self, split: &Split, dir: &Path, count: usize) -> Result<Vec<String>> {
        let (b, img) = super::first_samples(split, count, &self.device)?;
        let k = img.shape[0];
        let m = self.masking(self.seed ^ 0xe7a1, 0, k)?;
        let mask = m.mask.clone();
        let out = self.model.forward(&img, m)?;
        let c = &self.model.cfg.encoder;
        let rec = ops::unpatchify(&out.cache.pred, c.in_chans, c.img_h, c.img_w, c.patch)?
            .to_vec_f32()?;
        let x = b.inputs.to_vec_f32()?;
        let (h, w, p) = (c.img_h, c.img_w, c.patch);
        let (gw, n) = (w / p, c.num_patches());
        let px = h * w;
        super::sample_figures(dir, "mae", k, |i, path| {
            let xi = &x[i * px..(i + 1) * px];
            let masked: Vec<f32> = (0..px)
                .map(|q| {
                    let (r, col) = (q / w, q % w);
                    let patch = (r / p) * gw + col / p;
                    if mask[i * n + patch] > 0.5 {
                        f32::NAN
                    } else {
                        xi[q]
                    }
                })
                .collect();
            crate::train::figures::mae(path, xi, &masked, &rec[i * px..(i + 1) * px], (h, w))
        })
    }
}
