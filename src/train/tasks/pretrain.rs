//! `seislm-pretrain`: wav2vec2's contrastive objective with the Gumbel quantizer and the
//! codebook diversity term (HF names: `wav2vec2.*`, `quantizer.*`, `project_hid`,
//! `project_q`). The dev metrics are the objective's parts with the masks, negatives and
//! Gumbel noise of a fixed seed, next to the chance level of the contrastive loss on the same
//! frames: the mean of ln(1 + distinct negatives) (negatives quantized like their positive are
//! dropped, so chance lies below ln(1 + K) when codes are shared).

use super::{for_batches, inputs_on, Evaluation, StepCtx, Task, TaskModel};
use crate::data::loader::Batch;
use crate::models::seislm_pretrain::{PretrainConfig, SeislmPretrain};
use crate::nn::{Grads, ParamStore};
use crate::train::config::TrainConfig;
use crate::train::data::Split;
use crate::Device;
use anyhow::Result;
use std::path::Path;

pub struct PretrainTask {
    pub model: SeislmPretrain,
    device: Device,
    seed: u64,
}

impl PretrainTask {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        Ok(PretrainTask {
            model: SeislmPretrain::new(PretrainConfig::preset(&cfg.preset)?, cfg.seed)?,
            device: device.clone(),
            seed: cfg.seed,
        })
    }
}

impl Task for PretrainTask {
    fn model(&mut self) -> &mut dyn TaskModel {
        &mut self.model
    }
    fn train_batch(&mut self, batch: &Batch, ctx: &StepCtx, grads: &mut Grads) -> Result<f32> {
        let wave = inputs_on(batch, &self.device)?;
        let tau = self
            .model
            .cfg
            .tau(ctx.step as usize, ctx.total_steps as usize);
        let s = self
            .model
            .train_step(&wave, tau, ctx.seed, ctx.key(), grads)?;
        Ok(s.loss)
    }
    fn evaluate_split(&mut self, _split: &Split, _batch: usize) -> Result<Evaluation> {
        anyhow::bail!("pretraining evaluates its objective, which needs the parameter store")
    }
    fn evaluate(
        &mut self,
        split: &Split,
        batch: usize,
        store: &mut ParamStore,
    ) -> Result<Evaluation> {
        let (mut loss, mut con, mut ppl, mut n, mut i) = (0f64, 0f64, 0f64, 0usize, 0u32);
        let mut chance = 0f64;
        self.model.measure_chance = true;
        let tau = self.model.cfg.tau_end;
        let seed = self.seed ^ 0xde7;
        // The objective's forward runs with its backward; the gradients are thrown away.
        store.zero_grad()?;
        let r = for_batches(split, batch, |b| {
            let wave = inputs_on(b, &self.device)?;
            let k = wave.shape[0] as f64;
            let s = self
                .model
                .train_step(&wave, tau, seed, i, &mut store.grads)?;
            i += 1;
            loss += s.loss as f64 * k;
            con += s.contrastive as f64 * k;
            ppl += s.perplexity as f64 * k;
            chance += s.chance as f64 * k;
            n += wave.shape[0];
            Ok(())
        });
        self.model.measure_chance = false;
        r?;
        store.zero_grad()?;
        let nf = n.max(1) as f64;
        Ok(Evaluation::of(
            n,
            [
                ("loss", loss / nf),
                ("contrastive", con / nf),
                ("perplexity", ppl / nf),
                ("contrastive_chance", chance / nf),
            ],
        ))
    }
    fn predict(&mut self, _x: &crate::tensor::Tensor) -> Result<Vec<super::Output>> {
        anyhow::bail!(
            "a pretraining run predicts nothing by itself; use its encoder with `seisfuse embed` or --init for a downstream task"
        )
    }
    fn primary(&self) -> (&'static str, bool) {
        ("loss", false)
    }
    fn head_prefixes(&self) -> Vec<String> {
        vec!["quantizer.".into(), "project_".into()]
    }
    fn figures(&mut self, _split: &Split, _dir: &Path, _count: usize) -> Result<Vec<String>> {
        // Pretraining has no per-sample output to draw; its curves come from the log.
        Ok(Vec::new())
    }
}
