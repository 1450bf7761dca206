//! The tasks of `seisfuse train`: each one a model (an encoder and its head, under the
//! checkpoint names of the published models), its loss, its metrics and its figures, behind
//! one trait so that the trainer, `eval` and `predict` treat them alike.

pub mod classify;
pub mod event;
pub mod fusion;
pub mod mae;
pub mod pick;
pub mod pretrain;
pub mod regress;
pub mod segment;
mod vit_grid;

use crate::data::dataset::Dataset;
use crate::data::loader::{build_batch, Batch};
use crate::nn::{Grads, ParamStore, Parameters};
use crate::tensor::Tensor;
use crate::train::config::TrainConfig;
use crate::train::data::Split;
use crate::Device;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Where a training step stands (dropout, masks and negatives are drawn from it).
#[derive(Clone, Copy, Debug)]
pub struct StepCtx {
    pub step: u64,
    pub total_steps: u64,
    pub seed: u64,
    /// Micro-batch within the step's global batch: `rank × accum + micro` (gradient
    /// accumulation, data-parallel ranks). Random masks and dropout are keyed by it, so ranks
    /// draw different ones and N ranks × accum a draw what one process with accum N·a draws.
    pub micro: u64,
    /// Micro-batches per step across the ranks, rounded up to a power of two, at least 64.
    pub micro_slots: u64,
}

impl StepCtx {
    /// The key of this micro-batch's random draws (masks, negatives, dropout): distinct for
    /// every (step, micro-batch) until it wraps at 2³² micro-batches.
    pub fn key(&self) -> u32 {
        self.step
            .wrapping_mul(self.micro_slots)
            .wrapping_add(self.micro) as u32
    }

    /// `micro_slots` for `n` micro-batches per step.
    pub fn slots_for(n: u64) -> u64 {
        n.next_power_of_two().max(64)
    }
}

/// Metrics of one split, by name, and a confusion matrix where the task has classes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    pub metrics: BTreeMap<String, f64>,
    pub confusion: Option<Vec<Vec<u64>>>,
    pub class_names: Vec<String>,
    pub samples: usize,
}

impl Evaluation {
    /// The evaluation of `samples` samples with these metrics (no confusion matrix).
    pub fn of<const N: usize>(samples: usize, metrics: [(&str, f64); N]) -> Self {
        Evaluation {
            samples,
            metrics: metrics.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
            ..Default::default()
        }
    }
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).copied()
    }
}

/// One named output array of `predict`.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Output {
    pub fn of(name: &'static str, t: &Tensor) -> Result<Self> {
        Ok(Output {
            name,
            shape: t.shape.clone(),
            values: t.to_vec_f32()?,
        })
    }
}

/// Softmax over the last axis, as an output.
pub fn probabilities(name: &'static str, logits: &Tensor) -> Result<Output> {
    Output::of(name, &crate::ops::softmax(logits)?)
}

/// A task's model: its parameters, and its train and eval modes.
pub trait TaskModel: Parameters {
    /// Train mode (batch statistics, dropout) or eval mode; nothing to switch by default (a
    /// model without batch norm or dropout).
    fn set_training(&mut self, _training: bool) {}
}

/// The models whose heads have batch norm or dropout: train and eval mode are the head's.
macro_rules! head_modes {
    ($($model:ty),*) => {$(
        impl TaskModel for $model {
            fn set_training(&mut self, training: bool) {
                self.head.set_training(training);
            }
        }
    )*};
}
head_modes!(
    regress::RegModel,
    segment::SegModel,
    event::EventModel,
    crate::models::seislm_heads::SeislmPicker
);
impl TaskModel for classify::ClsModel {}
impl TaskModel for crate::models::mae::Mae {}
impl TaskModel for crate::models::seislm_pretrain::SeislmPretrain {}
impl TaskModel for crate::models::fusion::Binding {}
impl TaskModel for crate::models::fusion::LateFusion {}
impl TaskModel for crate::models::fusion::MidFusion {}
impl TaskModel for crate::models::fusion::EarlyFusion {}

/// One task: a model, its loss and its metrics.
pub trait Task {
    /// The model, for packing into a parameter store and for checkpoints.
    fn model(&mut self) -> &mut dyn TaskModel;
    /// Train mode (batch statistics, dropout) or eval mode: the model's.
    fn set_training(&mut self, training: bool) {
        self.model().set_training(training)
    }
    /// Forward, loss and backward of one micro-batch; parameter gradients are added into
    /// `grads`. Returns the batch's mean loss.
    fn train_batch(&mut self, batch: &Batch, ctx: &StepCtx, grads: &mut Grads) -> Result<f32>;
    /// The papers' metrics on a split (the model in eval mode), by forward passes alone.
    fn evaluate_split(&mut self, split: &Split, batch: usize) -> Result<Evaluation>;
    /// The metrics the trainer reports: [`Task::evaluate_split`] unless the task's evaluation
    /// runs the training objective (pretraining); `store` is there for those, which must
    /// leave the gradients as they found them: zero.
    fn evaluate(
        &mut self,
        split: &Split,
        batch: usize,
        _store: &mut ParamStore,
    ) -> Result<Evaluation> {
        self.evaluate_split(split, batch)
    }
    /// The metric that chooses the best checkpoint and early stopping; true when higher is
    /// better.
    fn primary(&self) -> (&'static str, bool);
    /// Prefixes of the head's parameters (what `freeze_encoder` leaves trainable).
    fn head_prefixes(&self) -> Vec<String>;
    /// Layer-wise learning-rate scales (prefix, scale) for a decay factor (SFM fine-tuning);
    /// empty where the task has none.
    fn layer_scales(&self, _decay: f32) -> Vec<(String, f32)> {
        Vec::new()
    }
    /// Predictions for a batch of inputs: named arrays (name, shape, values), e.g. class maps,
    /// regression outputs, probabilities.
    fn predict(&mut self, x: &Tensor) -> Result<Vec<Output>>;
    /// Figures of a few samples of `split` into `dir` (PNG); returns the files written.
    fn figures(&mut self, split: &Split, dir: &Path, count: usize) -> Result<Vec<String>>;
}

/// The task named in `cfg`, its model on `device`, with `classes` classes where it has them.
pub fn build(cfg: &TrainConfig, classes: usize, device: &Device) -> Result<Box<dyn Task>> {
    Ok(match cfg.task.as_str() {
        "mae" => Box::new(mae::MaeTask::new(cfg, device)?),
        "facies" | "salt" => Box::new(segment::SegmentTask::new(cfg, classes, device)?),
        "denoise" | "interpolation" | "inversion" => {
            Box::new(regress::RegressTask::new(cfg, device)?)
        }
        "classify" => Box::new(classify::ClassifyTask::new(cfg, classes, device)?),
        "seislm-pretrain" => Box::new(pretrain::PretrainTask::new(cfg, device)?),
        "pick" => Box::new(pick::PickTask::new(cfg, device)?),
        "event-class" => Box::new(event::EventTask::new(cfg, classes, device)?),
        t if fusion::is_fusion(t) => fusion::build(cfg, classes, device)?,
        t => bail!("unknown task {t}"),
    })
}

/// Calls `f` on consecutive batches of a split, in order, the last one possibly short.
pub fn for_batches(
    split: &Split,
    batch: usize,
    mut f: impl FnMut(&Batch) -> Result<()>,
) -> Result<()> {
    let shape = split.input_shape();
    let mut scratch = Vec::new();
    let n = split.len();
    let mut start = 0;
    while start < n {
        let end = (start + batch.max(1)).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let b = build_batch(split, &[], &idx, &shape, 0, 0, &mut scratch, Vec::new())?;
        f(&b)?;
        start = end;
    }
    Ok(())
}

/// The batch's inputs on `device`.
pub fn inputs_on(batch: &Batch, device: &Device) -> Result<Tensor> {
    batch.inputs.to_device(device)
}

/// The batch's inputs and targets on `device`.
pub fn inputs_targets_on(batch: &Batch, device: &Device) -> Result<(Tensor, Tensor)> {
    Ok((
        inputs_on(batch, device)?,
        targets_of(batch)?.to_device(device)?,
    ))
}

/// The batch's targets, which a task needs.
pub fn targets_of(batch: &Batch) -> Result<&Tensor> {
    batch
        .targets
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("this task needs targets, but the samples have none"))
}

/// Index of the largest value in each row of `[rows, k]`.
pub fn argmax_rows(v: &[f32], k: usize) -> Vec<usize> {
    v.chunks(k.max(1))
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
                    if x > bv {
                        (i, x)
                    } else {
                        (bi, bv)
                    }
                })
                .0
        })
        .collect()
}

/// One figure per sample `i < count`, `{stem}-{i}.png` in `dir`, drawn by `draw(i, path)`;
/// returns the file names.
pub fn sample_figures(
    dir: &Path,
    stem: &str,
    count: usize,
    mut draw: impl FnMut(usize, &Path) -> Result<()>,
) -> Result<Vec<String>> {
    (0..count)
        .map(|i| {
            let name = format!("{stem}-{i}.png");
            draw(i, &dir.join(&name))?;
            Ok(name)
        })
        .collect()
}

/// [`sample_figures`] for an image task whose inputs, targets and predictions are planes of
/// h × w (`img` [n, 1, h, w] on the device, `b` its batch): `draw(path, input, target,
/// prediction, (h, w))` for each sample.
pub fn plane_figures<T, U>(
    dir: &Path,
    stem: &str,
    (b, img): (&Batch, &Tensor),
    (truth, pred): (&[T], &[U]),
    mut draw: impl FnMut(&Path, &[f32], &[T], &[U], (usize, usize)) -> Result<()>,
) -> Result<Vec<String>> {
    let x = b.inputs.to_vec_f32()?;
    let (h, w) = (img.shape[2], img.shape[3]);
    let plane = |i: usize| i * h * w..(i + 1) * h * w;
    sample_figures(dir, stem, img.shape[0], |i, path| {
        draw(
            path,
            &x[plane(i)],
            &truth[plane(i)],
            &pred[plane(i)],
            (h, w),
        )
    })
}

/// The confusion-matrix figure of a classification (`confusion.png` in `dir`).
pub fn confusion_figure(dir: &Path, e: &Evaluation) -> Result<Vec<String>> {
    crate::train::figures::confusion(&dir.join("confusion.png"), e)?;
    Ok(vec!["confusion.png".into()])
}

/// The samples of a split for figures, the first `count`, and their inputs on `device`.
pub fn first_samples(split: &Split, count: usize, device: &Device) -> Result<(Batch, Tensor)> {
    let n = count.min(split.len());
    if n == 0 {
        bail!("the split is empty; nothing to draw");
    }
    let shape = split.input_shape();
    let idx: Vec<usize> = (0..n).collect();
    let b = build_batch(split, &[], &idx, &shape, 0, 0, &mut Vec::new(), Vec::new())?;
    let x = inputs_on(&b, device)?;
    Ok((b, x))
}
