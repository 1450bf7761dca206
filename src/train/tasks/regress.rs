//! `denoise`, `interpolation` and `inversion`: SFM's regression model, the ViT encoder with the
//! TransUNet-like decoder (`decoder.*`, `segmentation_head.*`) on the final tokens and a skip
//! branch from the image; MSE or a·MSE + (1 − a)·(1 − MS-SSIM) (a = 0.9 for interpolation, 0.5
//! otherwise, as SFM); MSE, PSNR, SSIM and MS-SSIM (where the image is large enough).

use super::vit_grid::{finetune_vit, Grid, VitForward, VitModel};
use super::{
    for_batches, inputs_on, inputs_targets_on, targets_of, Evaluation, StepCtx, Task, TaskModel,
};
use crate::data::loader::Batch;
use crate::models::sfm_heads::{TransUnetCache, TransUnetConfig, TransUnetHead};
use crate::nn::Grads;
use crate::ops;
use crate::tensor::Tensor;
use crate::train::config::TrainConfig;
use crate::train::data::{image_side, Split};
use crate::Device;
use anyhow::{bail, Result};
use std::path::Path;

/// MS-SSIM needs 5 scales of an 11-tap window: a side of at least 161 pixels.
const MS_SSIM_MIN: usize = 161;

/// The encoder and the TransUNet-like decoder, its names at the top level.
pub type RegModel = VitModel<TransUnetHead>;

impl RegModel {
    pub fn new(cfg: &TrainConfig) -> Result<Self> {
        // The decoder upsamples the token grid 16×: the encoder must use 16-pixel patches.
        let vit = finetune_vit(cfg, |vc| vc.patch = 16)?;
        let dim = vit.cfg.dim;
        let mut hc = TransUnetConfig::sfm(dim);
        if dim < 256 {
            // a small decoder for small encoders
            hc.channels = [dim, dim / 2, dim / 4, dim / 4];
            hc.skip_channels = (dim / 4).max(4);
        }
        let head = TransUnetHead::new(hc, cfg.seed ^ 0x7e6)?;
        Ok(VitModel {
            vit,
            head,
            head_prefix: "",
        })
    }

    fn forward(&mut self, img: &Tensor) -> Result<VitForward<TransUnetCache, Grid>> {
        let (gh, gw) = self.vit.cfg.grid();
        let grid = Grid::new(img.shape[0], gh, gw, &img.device())?;
        let (tokens, vc) = self.vit.forward(img, None)?;
        let maps = grid.to_maps(&tokens)?;
        let (pred, hc) = self.head.forward(&maps, img)?;
        Ok((pred, vc, hc, grid))
    }
}

pub struct RegressTask {
    pub model: RegModel,
    device: Device,
    /// Weight of the MSE in the loss; 1 for plain MSE.
    mse_weight: f32,
    task: String,
}

impl RegressTask {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        let side = image_side(cfg)?;
        let mse_weight = match cfg.loss.as_str() {
            "mse" => 1.0,
            _ if side < MS_SSIM_MIN => bail!(
                "loss mse+msssim needs images of at least {MS_SSIM_MIN} pixels (MS-SSIM's 5 scales), found {side}; use loss = \"mse\""
            ),
            _ if cfg.task == "interpolation" => 0.9,
            _ => 0.5,
        };
        Ok(RegressTask {
            model: RegModel::new(cfg)?,
            device: device.clone(),
            mse_weight,
            task: cfg.task.clone(),
        })
    }

    fn loss(&self, pred: &Tensor, target: &Tensor) -> Result<(f32, Tensor)> {
        if self.mse_weight >= 1.0 {
            let l = ops::mse(pred, target)?;
            Ok((l.loss, ops::mse_backward(pred, target, 1.0)?))
        } else {
            let l = ops::mse_ms_ssim_loss(pred, target, self.mse_weight, 2.0)?;
            let d = ops::mse_ms_ssim_loss_backward(pred, target, self.mse_weight, 2.0, 1.0)?;
            Ok((l.loss, d))
        }
    }
}

impl Task for RegressTask {
    fn model(&mut self) -> &mut dyn TaskModel {
        &mut self.model
    }
    fn train_batch(&mut self, batch: &Batch, _ctx: &StepCtx, grads: &mut Grads) -> Result<f32> {
        let (img, target) = inputs_targets_on(batch, &self.device)?;
        let target = target.reshape(&img.shape)?;
        let (pred, vc, hc, grid) = self.model.forward(&img)?;
        let (loss, dpred) = self.loss(&pred, &target)?;
        let dmaps = self.model.head.backward(&hc, &dpred, grads)?;
        let dtok = grid.to_tokens(&dmaps)?;
        self.model.vit.backward(&vc, &dtok, &[], false, grads)?;
        Ok(loss)
    }
    fn evaluate_split(&mut self, split: &Split, batch: usize) -> Result<Evaluation> {
        let (mut mse, mut ssim, mut ms, mut id_mse, mut n) = (0f64, 0f64, 0f64, 0f64, 0usize);
        let mut zero = 0f64;
        let mut loss = 0f64;
        let big =
            self.model.vit.cfg.img_h >= MS_SSIM_MIN && self.model.vit.cfg.img_w >= MS_SSIM_MIN;
        for_batches(split, batch, |b| {
            let img = inputs_on(b, &self.device)?;
            let target = targets_of(b)?
                .to_device(&self.device)?
                .reshape(&img.shape)?;
            let (pred, ..) = self.model.forward(&img)?;
            let k = img.shape[0] as f64;
            let (l, _) = self.loss(&pred, &target)?;
            loss += l as f64 * k;
            mse += ops::mse(&pred, &target)?.loss as f64 * k;
            id_mse += ops::mse(&img, &target)?.loss as f64 * k;
            let tv = target.to_vec_f32()?;
            zero +=
                tv.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / tv.len().max(1) as f64 * k;
            ssim += ops::ssim(&pred, &target, 2.0)? as f64 * k;
            if big {
                ms += ops::ms_ssim(&pred, &target, 2.0)? as f64 * k;
            }
            n += img.shape[0];
            Ok(())
        })?;
        let n = n.max(1) as f64;
        let mse = mse / n;
        let mut e = Evaluation::of(
            n as usize,
            [
                ("loss", loss / n),
                ("mse", mse),
                // amplitudes lie in [−1, 1]: a data range of 2
                ("psnr", 10.0 * (4.0 / mse.max(1e-20)).log10()),
                ("ssim", ssim / n),
                // the trivial baseline: the input returned unchanged
                ("mse_identity", id_mse / n),
                // and predicting zero everywhere
                ("mse_zero", zero / n),
            ],
        );
        if big {
            e.metrics.insert("ms_ssim".into(), ms / n);
        }
        Ok(e)
    }
    fn predict(&mut self, x: &Tensor) -> Result<Vec<super::Output>> {
        let (pred, ..) = self.model.forward(x)?;
        Ok(vec![super::Output::of("output", &pred)?])
    }
    fn primary(&self) -> (&'static str, bool) {
        ("psnr", true)
    }
    fn head_prefixes(&self) -> Vec<String> {
        vec!["decoder.".into(), "segmentation_head.".into()]
    }
    fn layer_scales(&self, decay: f32) -> Vec<(String, f32)> {
        self.model.layer_scales(decay)
    }
    fn figures(&mut self, split: &Split, dir: &Path, count: usize) -> Result<Vec<String>> {
        let (b, img) = super::first_samples(split, count, &self.device)?;
        let (pred, ..) = self.model.forward(&img)?;
        let pred = pred.to_vec_f32()?;
        let truth = targets_of(&b)?.to_vec_f32()?;
        super::plane_figures(
            dir,
            &self.task,
            (&b, &img),
            (&truth, &pred),
            crate::train::figures::regression,
        )
    }
}
