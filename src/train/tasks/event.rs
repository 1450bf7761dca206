//! `event-class`: SeisLM's sequence classifier (encoder under `wav2vec2.`, the head as
//! SeisLM's `head.{1,2,4}.*`): event vs noise, or the periods of an earthquake sequence
//! (foreshock / aftershocks); cross-entropy; accuracy, macro-F1, MCC, the confusion matrix and
//! the majority-class baseline.

use super::classify::evaluate_classes;
use super::{inputs_targets_on, Evaluation, StepCtx, Task, TaskModel};
use crate::data::loader::Batch;
use crate::models::seislm::{Seislm, SeislmConfig};
use crate::models::seislm_heads::{EventHead, HeadConfig, SeislmWithHead};
use crate::nn::Grads;
use crate::ops;
use crate::tensor::Tensor;
use crate::train::config::TrainConfig;
use crate::train::data::Split;
use crate::Device;
use anyhow::{bail, Result};
use std::path::Path;

/// The encoder under `wav2vec2.` and the event head at the top.
pub type EventModel = SeislmWithHead<EventHead>;

impl EventModel {
    /// Logits [B, classes] in eval mode.
    fn logits(&mut self, wave: &Tensor) -> Result<Tensor> {
        let (out, _) = self.encoder.forward(wave, None)?;
        Ok(self.head.forward(&out.last_hidden_state)?.0)
    }
}

pub struct EventTask {
    pub model: EventModel,
    classes: usize,
    names: Vec<String>,
    device: Device,
}

impl EventTask {
    pub fn new(cfg: &TrainConfig, classes: usize, device: &Device) -> Result<Self> {
        if classes < 2 {
            bail!("event classification needs at least 2 classes, the data has {classes}");
        }
        let mut ec = SeislmConfig::preset(&cfg.preset)?;
        ec.masked_spec_embed = false;
        let hidden = ec.hidden;
        let mut head = EventHead::new(
            HeadConfig {
                hidden,
                in_chans: 3,
                channels: (hidden / 2).max(8),
                classes,
                dropout: 0.2,
            },
            cfg.seed ^ 0xe7e7,
        )?;
        head.seed = cfg.seed;
        let names = if cfg.labels == "event" {
            vec!["noise".into(), "event".into()]
        } else {
            (0..classes)
                .map(|c| {
                    if c == 0 {
                        "foreshock".to_string()
                    } else {
                        format!("aftershock {c}")
                    }
                })
                .collect()
        };
        Ok(EventTask {
            model: SeislmWithHead {
                encoder: Seislm::new(ec, cfg.seed)?,
                head,
            },
            classes,
            names,
            device: device.clone(),
        })
    }
}

impl Task for EventTask {
    fn model(&mut self) -> &mut dyn TaskModel {
        &mut self.model
    }
    fn train_batch(&mut self, batch: &Batch, ctx: &StepCtx, grads: &mut Grads) -> Result<f32> {
        let (wave, t) = inputs_targets_on(batch, &self.device)?;
        self.model.head.step = ctx.key();
        self.model.train_step(&wave, grads, |head, hidden, grads| {
            let (logits, hc) = head.forward(hidden)?;
            let l = ops::cross_entropy(&logits, &t)?;
            let dl = ops::cross_entropy_backward(&logits, &t, l.count, 1.0)?;
            Ok((l.loss, head.backward(&hc, &dl, grads)?))
        })
    }
    fn evaluate_split(&mut self, split: &Split, batch: usize) -> Result<Evaluation> {
        let model = &mut self.model;
        let names = Some(self.names.clone());
        evaluate_classes(split, batch, &self.device, self.classes, names, |x| {
            model.logits(x)
        })
    }
    fn predict(&mut self, x: &Tensor) -> Result<Vec<super::Output>> {
        let logits = self.model.logits(x)?;
        Ok(vec![super::probabilities("probabilities", &logits)?])
    }
    fn primary(&self) -> (&'static str, bool) {
        ("accuracy", true)
    }
    fn head_prefixes(&self) -> Vec<String> {
        vec!["head.".into()]
    }
    fn figures(&mut self, split: &Split, dir: &Path, _count: usize) -> Result<Vec<String>> {
        super::confusion_figure(dir, &self.evaluate_split(split, 16)?)
    }
}
