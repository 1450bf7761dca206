//! `facies` and `salt`: SFM's segmentation model, the ViT encoder with the SETR-MLA head on the
//! outputs of blocks depth/4, depth/2, 3·depth/4 and depth; pixel cross-entropy; PA, CPA,
//! mPA, IoU and mIoU.

use super::vit_grid::{finetune_vit, Grid, VitForward, VitModel};
use super::{
    for_batches, inputs_on, inputs_targets_on, targets_of, Evaluation, StepCtx, Task, TaskModel,
};
use crate::data::loader::Batch;
use crate::metrics::{confusion_matrix, segmentation_scores};
use crate::models::sfm_heads::{SetrMlaCache, SetrMlaConfig, SetrMlaHead};
use crate::nn::Grads;
use crate::ops;
use crate::tensor::Tensor;
use crate::train::config::TrainConfig;
use crate::train::data::Split;
use crate::Device;
use anyhow::{bail, Result};
use std::path::Path;

/// Encoder at the top level (timm names), head under `decoder.` (SFM-Finetune's names).
pub type SegModel = VitModel<SetrMlaHead>;

/// The 0-based blocks whose outputs feed the head.
fn taps(depth: usize) -> Result<[usize; 4]> {
    if depth < 4 || !depth.is_multiple_of(4) {
        bail!("the SETR-MLA head needs an encoder depth divisible by 4, found {depth}");
    }
    let q = depth / 4;
    Ok([q - 1, 2 * q - 1, 3 * q - 1, 4 * q - 1])
}

impl SegModel {
    pub fn new(cfg: &TrainConfig, classes: usize, device: &Device) -> Result<Self> {
        let vit = finetune_vit(cfg, |_| {})?;
        let dim = vit.cfg.dim;
        taps(vit.cfg.depth)?;
        let head = SetrMlaHead::new(
            SetrMlaConfig {
                in_channels: dim,
                width: (dim / 2).min(128),
                classes,
                branch_upsample: 4,
            },
            cfg.seed ^ 0x5e7,
        )?;
        let _ = device;
        Ok(VitModel {
            vit,
            head,
            head_prefix: "",
        })
    }

    /// Logits [B, classes, H, W] and what backward needs.
    pub fn forward(&mut self, img: &Tensor) -> Result<VitForward<SetrMlaCache, Grid>> {
        let b = img.shape[0];
        let (gh, gw) = self.vit.cfg.grid();
        let grid = Grid::new(b, gh, gw, &img.device())?;
        let (_, vc) = self.vit.forward(img, None)?;
        let t = taps(self.vit.cfg.depth)?;
        let mut maps = Vec::with_capacity(4);
        for &i in &t {
            let o = vc
                .block_output(i)
                .ok_or_else(|| anyhow::anyhow!("block {i} has no output"))?;
            maps.push(grid.to_maps(o)?);
        }
        let (logits, hc) = self.head.forward(
            [&maps[0], &maps[1], &maps[2], &maps[3]],
            (self.vit.cfg.img_h, self.vit.cfg.img_w),
        )?;
        Ok((logits, vc, hc, grid))
    }
}

pub struct SegmentTask {
    pub model: SegModel,
    classes: usize,
    device: Device,
    class_names: Vec<String>,
}

impl SegmentTask {
    pub fn new(cfg: &TrainConfig, classes: usize, device: &Device) -> Result<Self> {
        if classes < 2 {
            bail!("segmentation needs at least 2 classes, the data has {classes}");
        }
        let class_names = if cfg.task == "salt" {
            vec!["background".into(), "salt".into()]
        } else if classes == crate::data::synth::images::N_FACIES {
            crate::data::synth::images::FACIES_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            (0..classes).map(|c| format!("class {c}")).collect()
        };
        Ok(SegmentTask {
            model: SegModel::new(cfg, classes, device)?,
            classes,
            device: device.clone(),
            class_names,
        })
    }

    fn class_map(&mut self, img: &Tensor) -> Result<Vec<usize>> {
        let (logits, ..) = self.model.forward(img)?;
        let [b, k, h, w] = logits.shape[..] else {
            bail!("logits {:?}", logits.shape);
        };
        let l = ops::nchw_to_nhwc(&logits)?.to_vec_f32()?;
        let p = super::argmax_rows(&l, k);
        debug_assert_eq!(p.len(), b * h * w);
        Ok(p)
    }
}

impl Task for SegmentTask {
    fn model(&mut self) -> &mut dyn TaskModel {
        &mut self.model
    }
    fn train_batch(&mut self, batch: &Batch, _ctx: &StepCtx, grads: &mut Grads) -> Result<f32> {
        let (img, t) = inputs_targets_on(batch, &self.device)?;
        let b = img.shape[0];
        let t = t.reshape(&[b, self.model.vit.cfg.img_h, self.model.vit.cfg.img_w])?;
        let (logits, vc, hc, grid) = self.model.forward(&img)?;
        let l = ops::pixel_cross_entropy(&logits, &t)?;
        let dl = ops::pixel_cross_entropy_backward(&logits, &t, l.count, 1.0)?;
        let dmaps = self.model.head.backward(&hc, &dl, grads)?;
        let taps = taps(self.model.vit.cfg.depth)?;
        let dtok: Vec<Tensor> = dmaps
            .iter()
            .map(|d| grid.to_tokens(d))
            .collect::<Result<_>>()?;
        let extra: Vec<(usize, &Tensor)> = taps.iter().copied().zip(dtok.iter()).collect();
        let last = vc
            .block_output(self.model.vit.cfg.depth - 1)
            .ok_or_else(|| anyhow::anyhow!("no encoder output"))?;
        let dout = self.device.backend().zeros(&last.shape, last.dtype)?;
        self.model.vit.backward(&vc, &dout, &extra, false, grads)?;
        Ok(l.loss)
    }
    fn evaluate_split(&mut self, split: &Split, batch: usize) -> Result<Evaluation> {
        let mut pred = Vec::new();
        let mut truth = Vec::new();
        let mut loss_sum = 0.0f64;
        let mut n = 0usize;
        for_batches(split, batch, |b| {
            let img = inputs_on(b, &self.device)?;
            let t = targets_of(b)?;
            let (logits, ..) = self.model.forward(&img)?;
            let tt =
                t.to_device(&self.device)?
                    .reshape(&[img.shape[0], img.shape[2], img.shape[3]])?;
            let l = ops::pixel_cross_entropy(&logits, &tt)?;
            loss_sum += l.loss as f64 * img.shape[0] as f64;
            n += img.shape[0];
            let k = logits.shape[1];
            let l = ops::nchw_to_nhwc(&logits)?.to_vec_f32()?;
            pred.extend(super::argmax_rows(&l, k));
            truth.extend(super::classify::class_labels(t)?);
            Ok(())
        })?;
        let m = confusion_matrix(&pred, &truth, self.classes)?;
        let s = segmentation_scores(&m);
        let mut e = Evaluation {
            class_names: self.class_names.clone(),
            ..Evaluation::of(
                n,
                [
                    ("loss", loss_sum / n.max(1) as f64),
                    ("pa", s.pa),
                    ("mpa", s.mpa),
                    ("miou", s.miou),
                ],
            )
        };
        for (c, name) in self.class_names.iter().enumerate() {
            let key = name.replace(' ', "_");
            e.metrics.insert(format!("iou_{key}"), s.iou[c]);
            e.metrics.insert(format!("cpa_{key}"), s.cpa[c]);
        }
        // the trivial baseline: the most frequent class everywhere
        let rows: Vec<u64> = m.iter().map(|r| r.iter().sum()).collect();
        let total = rows.iter().sum::<u64>().max(1) as f64;
        let present = rows.iter().filter(|&&r| r > 0).count().max(1) as f64;
        let top = rows.iter().copied().max().unwrap_or(0) as f64;
        e.metrics
            .insert("miou_majority".into(), top / total / present);
        e.confusion = Some(m);
        Ok(e)
    }
    fn predict(&mut self, x: &Tensor) -> Result<Vec<super::Output>> {
        let p = self.class_map(x)?;
        let (b, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        Ok(vec![super::Output {
            name: "classes",
            shape: vec![b, h, w],
            values: p.into_iter().map(|v| v as f32).collect(),
        }])
    }
    fn primary(&self) -> (&'static str, bool) {
        ("miou", true)
    }
    fn head_prefixes(&self) -> Vec<String> {
        vec!["decoder.".into()]
    }
    fn layer_scales(&self, decay: f32) -> Vec<(String, f32)> {
        self.model.layer_scales(decay)
    }
    fn figures(&mut self, split: &Split, dir: &Path, count: usize) -> Result<Vec<String>> {
        let (b, img) = super::first_samples(split, count, &self.device)?;
        let pred = self.class_map(&img)?;
        let truth = targets_of(&b)?.to_vec_i32()?;
        let names = &self.class_names;
        let draw = |path: &Path, x: &[f32], truth: &[i32], pred: &[usize], hw| {
            crate::train::figures::segmentation(path, x, truth, pred, hw, names)
        };
        super::plane_figures(dir, "segmentation", (&b, &img), (&truth, &pred), draw)
    }
}
