//! The fusion tasks on paired image + waveform samples: `bind` (ImageBind-style symmetric
//! InfoNCE; evaluated by retrieval recall@1 and a linear probe on the frozen embeddings, with
//! zero-shot transfer from one modality's probe to the other's embeddings), `fuse-late`,
//! `fuse-mid`, `fuse-early`, and the single-modality baselines `image-only` and `wave-only`
//! (late fusion reading one encoder), all classifying the paired label.
//!
//! A paired sample reaches the task as one flat input: the section's H·W values then the
//! waveform's 3·T; the task splits it and normalises each part as its encoder expects.

use super::classify::class_evaluation;
use super::{for_batches, targets_of, Evaluation, StepCtx, Task, TaskModel};
use crate::data::loader::Batch;
use crate::models::fusion::{
    self, Binding, BindingConfig, EarlyFusion, EarlyFusionConfig, EncoderConfig, FusionModel,
    Inputs, LateFusion, LateFusionConfig, MidFusion, MidFusionConfig, Objective,
};
use crate::nn::Grads;
use crate::ops;
use crate::tensor::Tensor;
use crate::train::config::TrainConfig;
use crate::train::data::{image_side, wave_samples, Split};
use crate::Device;
use anyhow::{bail, Result};
use std::path::Path;

/// Is this a fusion task?
pub fn is_fusion(task: &str) -> bool {
    matches!(
        task,
        "bind" | "fuse-late" | "fuse-mid" | "fuse-early" | "image-only" | "wave-only"
    )
}

/// Splits flat paired inputs [B, H·W + 3·T] into normalised images [B, 1, H, W] and waveforms
/// [B, 3, T] on `device`.
pub fn split_pair(
    x: &Tensor,
    hw: (usize, usize),
    t: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let b = x.shape[0];
    let (h, w) = hw;
    let per = h * w + 3 * t;
    let v = x.to_vec_f32()?;
    if v.len() != b * per {
        bail!(
            "paired inputs of {} values for {b} samples of {per}",
            v.len()
        );
    }
    let mut img = Vec::with_capacity(b * h * w);
    let mut wav = Vec::with_capacity(b * 3 * t);
    for s in v.chunks(per) {
        let mut i = s[..h * w].to_vec();
        crate::models::sfm::normalize_images(&mut i, h * w);
        img.extend(i);
        for c in s[h * w..].chunks(t) {
            let n = c.len() as f64;
            let mean = c.iter().map(|&x| x as f64).sum::<f64>() / n;
            let sd = (c.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            wav.extend(c.iter().map(|&x| ((x as f64 - mean) / (sd + 1e-6)) as f32));
        }
    }
    Ok((
        Tensor::from_f32(&[b, 1, h, w], img)?.to_device(device)?,
        Tensor::from_f32(&[b, 3, t], wav)?.to_device(device)?,
    ))
}

pub struct FusionTask<M: FusionModel> {
    pub model: M,
    device: Device,
    classes: usize,
    hw: (usize, usize),
    samples: usize,
    names: Vec<String>,
}

/// The fusion task named in `cfg`.
pub fn build(cfg: &TrainConfig, classes: usize, device: &Device) -> Result<Box<dyn Task>> {
    let side = image_side(cfg)?;
    let (ip, wp) = presets(cfg)?;
    let enc = EncoderConfig::preset(&ip, &wp)?.with_image(side, side)?;
    let samples = wave_samples(cfg);
    let head = |c: usize| -> fusion::HeadConfig {
        let mut h = LateFusionConfig::tiny(c).head;
        h.classes = c;
        h
    };
    let seed = cfg.seed;
    Ok(match cfg.task.as_str() {
        "bind" => {
            let mut bc = BindingConfig::tiny();
            bc.encoders = enc;
            wrap(Binding::new(bc, seed)?, cfg, classes, device, side, samples)
        }
        "fuse-late" | "image-only" | "wave-only" => {
            let mut lc = LateFusionConfig::new(enc, head(classes));
            lc.inputs = match cfg.task.as_str() {
                "image-only" => Inputs::Image,
                "wave-only" => Inputs::Wave,
                _ => Inputs::Both,
            };
            wrap(
                LateFusion::new(lc, seed)?,
                cfg,
                classes,
                device,
                side,
                samples,
            )
        }
        "fuse-mid" => {
            let mut mc = MidFusionConfig::tiny(classes);
            mc.encoders = enc;
            mc.head = head(classes);
            wrap(
                MidFusion::new(mc, seed)?,
                cfg,
                classes,
                device,
                side,
                samples,
            )
        }
        "fuse-early" => {
            let ec = EarlyFusionConfig::new(enc.image, true, head(classes));
            wrap(
                EarlyFusion::new(ec, seed)?,
                cfg,
                classes,
                device,
                side,
                samples,
            )
        }
        t => bail!("{t} is not a fusion task"),
    })
}

/// The image and waveform presets of a fusion run: `preset` names the size (`tiny`, `base`,
/// `large`, or either encoder's preset name).
pub fn presets(cfg: &TrainConfig) -> Result<(String, String)> {
    let size = cfg
        .preset
        .trim_start_matches("sfm-")
        .trim_start_matches("seislm-");
    if !matches!(size, "tiny" | "base" | "large") {
        bail!(
            "fusion preset must be tiny, base or large, found {}",
            cfg.preset
        );
    }
    Ok((format!("sfm-{size}"), format!("seislm-{size}")))
}

fn wrap<M: FusionModel + TaskModel + 'static>(
    model: M,
    cfg: &TrainConfig,
    classes: usize,
    device: &Device,
    side: usize,
    samples: usize,
) -> Box<dyn Task> {
    let names = if classes == 2 {
        vec!["no LVL".into(), "LVL".into()]
    } else {
        (0..classes).map(|c| format!("class {c}")).collect()
    };
    let _ = cfg;
    Box::new(FusionTask {
        model,
        device: device.clone(),
        classes,
        hw: (side, side),
        samples,
        names,
    })
}

impl<M: FusionModel + TaskModel + 'static> FusionTask<M> {
    fn pair(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        split_pair(x, self.hw, self.samples, &self.device)
    }

    /// The classification metrics of a pass.
    fn class_evaluation(&self, p: &Pass) -> Result<Evaluation> {
        let names = Some(self.names.clone());
        class_evaluation(&p.pred, &p.labels, self.classes, p.loss, names)
    }

    /// Class predictions, labels and summed loss over a split (classification objectives), or
    /// the embeddings and labels (binding).
    fn pass(&mut self, split: &Split, batch: usize) -> Result<Pass> {
        let mut p = Pass::default();
        for_batches(split, batch, |b| {
            let (img, wav) = self.pair(&b.inputs)?;
            let labels = targets_of(b)?;
            let (out, _) = self.model.forward(&img, &wav, false)?;
            let k = img.shape[0];
            p.labels
                .extend(labels.to_vec_i32()?.into_iter().map(|v| v.max(0) as usize));
            match self.model.objective() {
                Objective::Classify => {
                    let (l, _) = fusion::loss(Objective::Classify, &out.logits, labels)?;
                    p.loss += l.loss as f64 * k as f64;
                    p.pred
                        .extend(super::argmax_rows(&out.logits.to_vec_f32()?, self.classes));
                }
                Objective::Contrastive => {
                    let (l, _) = fusion::loss(Objective::Contrastive, &out.logits, labels)?;
                    p.loss += l.loss as f64 * k as f64;
                    let (r1, r2) = ops::recall_at_1(&out.logits)?;
                    p.recall += (r1 as f64 + r2 as f64) / 2.0 * k as f64;
                    if let Some((ei, ew)) = &out.embeddings {
                        p.dim = ei.shape[1];
                        p.img_emb.extend(ei.to_vec_f32()?);
                        p.wav_emb.extend(ew.to_vec_f32()?);
                    }
                }
            }
            p.n += k;
            Ok(())
        })?;
        Ok(p)
    }
}

#[derive(Default)]
struct Pass {
    pred: Vec<usize>,
    labels: Vec<usize>,
    loss: f64,
    recall: f64,
    n: usize,
    dim: usize,
    img_emb: Vec<f32>,
    wav_emb: Vec<f32>,
}

impl<M: FusionModel + TaskModel + 'static> Task for FusionTask<M> {
    fn model(&mut self) -> &mut dyn TaskModel {
        &mut self.model
    }
    fn train_batch(&mut self, batch: &Batch, ctx: &StepCtx, grads: &mut Grads) -> Result<f32> {
        let (img, wav) = self.pair(&batch.inputs)?;
        let labels = targets_of(batch)?.to_device(&self.device)?;
        self.model.set_step(ctx.key());
        let s = self.model.loss_and_backward(&img, &wav, &labels, grads)?;
        Ok(s.loss.loss)
    }
    fn evaluate_split(&mut self, split: &Split, batch: usize) -> Result<Evaluation> {
        let p = self.pass(split, batch)?;
        match self.model.objective() {
            Objective::Classify => self.class_evaluation(&p),
            Objective::Contrastive => {
                let nf = p.n.max(1) as f64;
                Ok(Evaluation::of(
                    p.n,
                    [
                        ("loss", p.loss / nf),
                        ("recall_at_1", p.recall / nf),
                        ("recall_chance", 1.0 / batch.min(p.n).max(1) as f64),
                    ],
                ))
            }
        }
    }
    fn primary(&self) -> (&'static str, bool) {
        match self.model.objective() {
            Objective::Classify => ("accuracy", true),
            Objective::Contrastive => ("loss", false),
        }
    }
    fn head_prefixes(&self) -> Vec<String> {
        vec!["fusion.".into(), "head.".into()]
    }
    fn predict(&mut self, x: &Tensor) -> Result<Vec<super::Output>> {
        let (img, wav) = self.pair(x)?;
        let (out, _) = self.model.forward(&img, &wav, false)?;
        match (self.model.objective(), &out.embeddings) {
            (Objective::Contrastive, Some((ei, ew))) => Ok(vec![
                super::Output::of("image_embeddings", ei)?,
                super::Output::of("wave_embeddings", ew)?,
            ]),
            _ => Ok(vec![super::probabilities("probabilities", &out.logits)?]),
        }
    }
    fn figures(&mut self, split: &Split, dir: &Path, _count: usize) -> Result<Vec<String>> {
        if self.model.objective() == Objective::Classify {
            let p = self.pass(split, 16)?;
            return super::confusion_figure(dir, &self.class_evaluation(&p)?);
        }
        Ok(Vec::new())
    }
}

/// Embeddings of the train and eval splits of a binding run and the linear probe on them:
/// softmax regression fitted on the train embeddings of one modality, accuracy on the eval
/// embeddings of the same modality and (zero-shot transfer) of the other.
pub fn linear_probe(
    train: (&[f32], &[usize]),
    eval_same: (&[f32], &[usize]),
    eval_other: &[f32],
    dim: usize,
    classes: usize,
) -> Result<(f64, f64)> {
    let (x, y) = train;
    let n = y.len();
    if n == 0 || x.len() != n * dim {
        bail!(
            "linear probe: {} values for {n} embeddings of {dim}",
            x.len()
        );
    }
    let mut w = vec![0f64; classes * (dim + 1)];
    let lr = 0.5;
    for _ in 0..300 {
        let mut g = vec![0f64; w.len()];
        for (i, &yi) in y.iter().enumerate() {
            let xi = &x[i * dim..(i + 1) * dim];
            let z: Vec<f64> = (0..classes)
                .map(|c| {
                    let wc = &w[c * (dim + 1)..(c + 1) * (dim + 1)];
                    wc[dim] + xi.iter().zip(wc).map(|(a, b)| *a as f64 * b).sum::<f64>()
                })
                .collect();
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            for c in 0..classes {
                let d = e[c] / s - (c == yi) as u8 as f64;
                let gc = &mut g[c * (dim + 1)..(c + 1) * (dim + 1)];
                for (j, &xj) in xi.iter().enumerate() {
                    gc[j] += d * xj as f64;
                }
                gc[dim] += d;
            }
        }
        for (wi, gi) in w.iter_mut().zip(&g) {
            *wi -= lr * gi / n as f64;
        }
    }
    let acc = |x: &[f32], y: &[usize]| -> f64 {
        let right = y
            .iter()
            .enumerate()
            .filter(|(i, &yi)| {
                let xi = &x[i * dim..(i + 1) * dim];
                let best = (0..classes)
                    .map(|c| {
                        let wc = &w[c * (dim + 1)..(c + 1) * (dim + 1)];
                        wc[dim] + xi.iter().zip(wc).map(|(a, b)| *a as f64 * b).sum::<f64>()
                    })
                    .enumerate()
                    .fold(
                        (0, f64::NEG_INFINITY),
                        |a, (c, v)| if v > a.1 { (c, v) } else { a },
                    )
                    .0;
                best == yi
            })
            .count();
        right as f64 / y.len().max(1) as f64
    };
    Ok((acc(eval_same.0, eval_same.1), acc(eval_other, eval_same.1)))
}
