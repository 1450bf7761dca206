//! `classify`: the ViT encoder with a linear head (`head.*`, timm's name) on the final cls
//! token; cross-entropy; accuracy, macro-F1, MCC and the confusion matrix.

use super::vit_grid::{finetune_vit, VitForward, VitModel};
use super::{
    for_batches, inputs_on, inputs_targets_on, targets_of, Evaluation, StepCtx, Task, TaskModel,
};
use crate::data::loader::Batch;
use crate::metrics::{confusion_matrix, macro_f1, mcc};
use crate::models::sfm_heads::{ClassificationCache, ClassificationHead};
use crate::nn::Grads;
use crate::ops;
use crate::tensor::Tensor;
use crate::train::config::TrainConfig;
use crate::train::data::Split;
use crate::Device;
use anyhow::{bail, Result};
use std::path::Path;

/// The encoder and a linear head on the final cls token, under `head.` (timm's name).
pub type ClsModel = VitModel<ClassificationHead>;

/// Row 0 (the cls token) of every sample.
fn cls_index(b: usize, device: &Device) -> Result<Tensor> {
    Tensor::from_i32(&[b, 1], vec![0; b])?.to_device(device)
}

impl ClsModel {
    /// Logits [B, classes] and the caches.
    fn forward(&self, img: &Tensor) -> Result<VitForward<ClassificationCache, (Tensor, usize)>> {
        let b = img.shape[0];
        let (tokens, vc) = self.vit.forward(img, None)?;
        let rows = tokens.shape[1];
        let idx = cls_index(b, &img.device())?;
        let cls = ops::gather_rows(&tokens, &idx, None)?.reshape(&[b, self.vit.cfg.dim])?;
        let (logits, hc) = self.head.forward(&cls)?;
        Ok((logits, vc, hc, (idx, rows)))
    }
}

pub struct ClassifyTask {
    pub model: ClsModel,
    classes: usize,
    device: Device,
}

impl ClassifyTask {
    pub fn new(cfg: &TrainConfig, classes: usize, device: &Device) -> Result<Self> {
        if classes < 2 {
            bail!("classification needs at least 2 classes, the data has {classes}");
        }
        let vit = finetune_vit(cfg, |_| {})?;
        let head = ClassificationHead::new(vit.cfg.dim, classes, cfg.seed ^ 0xc1a5)?;
        Ok(ClassifyTask {
            model: VitModel {
                vit,
                head,
                head_prefix: "head.",
            },
            classes,
            device: device.clone(),
        })
    }
}

impl Task for ClassifyTask {
    fn model(&mut self) -> &mut dyn TaskModel {
        &mut self.model
    }
    fn train_batch(&mut self, batch: &Batch, _ctx: &StepCtx, grads: &mut Grads) -> Result<f32> {
        let (img, t) = inputs_targets_on(batch, &self.device)?;
        let (logits, vc, hc, (idx, rows)) = self.model.forward(&img)?;
        let l = ops::cross_entropy(&logits, &t)?;
        let dl = ops::cross_entropy_backward(&logits, &t, l.count, 1.0)?;
        let dcls = self.model.head.backward(&hc, &dl, grads)?;
        let b = img.shape[0];
        let dcls = dcls.reshape(&[b, 1, self.model.vit.cfg.dim])?;
        let dtok = ops::gather_rows_backward(&dcls, &idx, rows, None)?;
        self.model.vit.backward(&vc, &dtok, &[], false, grads)?;
        Ok(l.loss)
    }
    fn evaluate_split(&mut self, split: &Split, batch: usize) -> Result<Evaluation> {
        let model = &self.model;
        let (device, classes) = (&self.device, self.classes);
        evaluate_classes(split, batch, device, classes, None, |x| {
            Ok(model.forward(x)?.0)
        })
    }
    fn predict(&mut self, x: &Tensor) -> Result<Vec<super::Output>> {
        let (logits, ..) = self.model.forward(x)?;
        Ok(vec![super::probabilities("probabilities", &logits)?])
    }
    fn primary(&self) -> (&'static str, bool) {
        ("accuracy", true)
    }
    fn head_prefixes(&self) -> Vec<String> {
        vec!["head.".into()]
    }
    fn layer_scales(&self, decay: f32) -> Vec<(String, f32)> {
        self.model.layer_scales(decay)
    }
    fn figures(&mut self, split: &Split, dir: &Path, _count: usize) -> Result<Vec<String>> {
        super::confusion_figure(dir, &self.evaluate_split(split, 16)?)
    }
}

/// A batch's class labels (negative ones as class 0).
pub fn class_labels(t: &Tensor) -> Result<Vec<usize>> {
    Ok(t.to_vec_i32()?
        .into_iter()
        .map(|v| v.max(0) as usize)
        .collect())
}

/// [`class_evaluation`] of a split: `logits` maps a batch's inputs (on `device`) to its logits
/// [B, classes]; the loss is their cross-entropy.
pub fn evaluate_classes(
    split: &Split,
    batch: usize,
    device: &Device,
    classes: usize,
    names: Option<Vec<String>>,
    mut logits: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Evaluation> {
    let (mut pred, mut truth, mut loss) = (Vec::new(), Vec::new(), 0f64);
    for_batches(split, batch, |b| {
        let x = inputs_on(b, device)?;
        let t = targets_of(b)?;
        let logits = logits(&x)?;
        let l = ops::cross_entropy(&logits, &t.to_device(device)?)?;
        loss += l.loss as f64 * x.shape[0] as f64;
        pred.extend(super::argmax_rows(&logits.to_vec_f32()?, classes));
        truth.extend(class_labels(t)?);
        Ok(())
    })?;
    class_evaluation(&pred, &truth, classes, loss, names)
}

/// Accuracy, macro-F1, MCC, the majority-class baseline and the confusion matrix of class
/// predictions.
pub fn class_evaluation(
    pred: &[usize],
    truth: &[usize],
    classes: usize,
    loss_sum: f64,
    names: Option<Vec<String>>,
) -> Result<Evaluation> {
    let n = truth.len();
    let m = confusion_matrix(pred, truth, classes)?;
    let right: u64 = (0..classes).map(|i| m[i][i]).sum();
    let majority = m.iter().map(|r| r.iter().sum::<u64>()).max().unwrap_or(0);
    let mut e = Evaluation {
        samples: n,
        class_names: names.unwrap_or_else(|| (0..classes).map(|c| format!("class {c}")).collect()),
        ..Default::default()
    };
    let nf = n.max(1) as f64;
    e.metrics.insert("loss".into(), loss_sum / nf);
    e.metrics.insert("accuracy".into(), right as f64 / nf);
    e.metrics.insert("macro_f1".into(), macro_f1(&m)?);
    e.metrics.insert("mcc".into(), mcc(&m)?);
    e.metrics
        .insert("majority_baseline".into(), majority as f64 / nf);
    e.confusion = Some(m);
    Ok(e)
}
