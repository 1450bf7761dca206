//! `pick`: SeisLM's phase picker (encoder under `wav2vec2.`, the DoubleConv head at the top
//! level: the file `seisfuse pick --weights` reads); soft cross-entropy against Gaussian P/S
//! curves (σ = 20 samples, noise = the rest); SeisBench's metrics: detection ROC AUC, onset
//! RMSE/MAE in seconds, the fraction of onsets within 0.1 s and 0.5 s — next to the
//! baseline of a constant pick at the split's median onset.

use super::{for_batches, inputs_on, targets_of, Evaluation, StepCtx, Task, TaskModel};
use crate::data::loader::Batch;
use crate::metrics::detection_auc;
use crate::metrics::picking::onset_sample;
use crate::models::seislm::SeislmConfig;
use crate::models::seislm_heads::{pick_loss, pick_targets, SeislmPicker};
use crate::nn::Grads;
use crate::ops;
use crate::tensor::Tensor;
use crate::train::config::TrainConfig;
use crate::train::data::Split;
use crate::Device;
use anyhow::Result;
use std::path::Path;

/// Width of the target Gaussians in samples (SeisBench's PhaseNet labeller default at 100 Hz).
pub const SIGMA: f32 = 20.0;
pub const SAMPLING_RATE: f64 = 100.0;

pub struct PickTask {
    pub model: SeislmPicker,
    device: Device,
    seed: u64,
}

impl PickTask {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        let hidden = SeislmConfig::preset(&cfg.preset)?.hidden;
        let mut model = SeislmPicker::new(&cfg.preset, hidden + 3, cfg.seed)?;
        model.head.seed = cfg.seed;
        Ok(PickTask {
            model,
            device: device.clone(),
            seed: cfg.seed,
        })
    }

    /// Soft targets [B, T, 3] from the batch's [B, 2] (P, S; −1 for none).
    fn targets(batch: &Batch, len: usize) -> Result<Tensor> {
        let ps = targets_of(batch)?.to_vec_f32()?;
        let mut v = Vec::with_capacity(ps.len() / 2 * len * 3);
        for r in ps.chunks(2) {
            let at = |x: f32| (x >= 0.0).then_some(x);
            v.extend(pick_targets(len, at(r[0]), at(r[1]), SIGMA));
        }
        Tensor::from_f32(&[ps.len() / 2, len, 3], v)
    }

    /// Probabilities [B, T, 3] in eval mode.
    fn probabilities(&mut self, wave: &Tensor) -> Result<Vec<f32>> {
        let (out, _) = self.model.encoder.forward(wave, None)?;
        let (logits, _) = self.model.head.forward(&out.last_hidden_state, wave)?;
        ops::softmax(&logits)?.to_vec_f32()
    }
}

impl Task for PickTask {
    fn model(&mut self) -> &mut dyn TaskModel {
        &mut self.model
    }
    fn train_batch(&mut self, batch: &Batch, ctx: &StepCtx, grads: &mut Grads) -> Result<f32> {
        let wave = inputs_on(batch, &self.device)?;
        let len = wave.shape[2];
        let t = Self::targets(batch, len)?.to_device(&self.device)?;
        self.model.head.step = ctx.key();
        self.model.train_step(&wave, grads, |head, hidden, grads| {
            let (logits, hc) = head.forward(hidden, &wave)?;
            let (l, dl) = pick_loss(&logits, &t)?;
            Ok((l.loss, head.backward(&hc, &dl, grads)?))
        })
    }
    fn evaluate_split(&mut self, split: &Split, batch: usize) -> Result<Evaluation> {
        let mut noise: Vec<Vec<f32>> = Vec::new();
        let mut has_event = Vec::new();
        let mut onsets: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
        let mut loss = 0f64;
        let mut n = 0usize;
        for_batches(split, batch, |b| {
            let wave = inputs_on(b, &self.device)?;
            let (k, len) = (wave.shape[0], wave.shape[2]);
            let t = Self::targets(b, len)?.to_device(&self.device)?;
            let (out, _) = self.model.encoder.forward(&wave, None)?;
            let (logits, _) = self.model.head.forward(&out.last_hidden_state, &wave)?;
            loss += pick_loss(&logits, &t)?.0.loss as f64 * k as f64;
            let p = ops::softmax(&logits)?.to_vec_f32()?;
            let ps = targets_of(b)?.to_vec_f32()?;
            for i in 0..k {
                let tr = &p[i * len * 3..(i + 1) * len * 3];
                noise.push(tr.chunks(3).map(|r| r[2]).collect());
                has_event.push(ps[2 * i] >= 0.0);
                for (ph, list) in onsets.iter_mut().enumerate() {
                    let truth = ps[2 * i + ph];
                    if truth >= 0.0 {
                        let curve: Vec<f32> = tr.chunks(3).map(|r| r[ph]).collect();
                        let at = onset_sample(&curve).map(|s| s as f64).unwrap_or(-1e9);
                        list.push((at, truth as f64));
                    }
                }
            }
            n += k;
            Ok(())
        })?;
        let mut e = Evaluation::of(n, [("loss", loss / n.max(1) as f64)]);
        if has_event.iter().any(|&x| x) && has_event.iter().any(|&x| !x) {
            let refs: Vec<&[f32]> = noise.iter().map(|v| v.as_slice()).collect();
            e.metrics
                .insert("detection_auc".into(), detection_auc(&refs, &has_event)?);
        }
        for (ph, name) in ["p", "s"].iter().enumerate() {
            let list = &onsets[ph];
            if list.is_empty() {
                continue;
            }
            let res: Vec<f64> = list.iter().map(|(a, t)| (a - t) / SAMPLING_RATE).collect();
            let m = res.len() as f64;
            e.metrics.insert(
                format!("{name}_rmse_s"),
                (res.iter().map(|r| r * r).sum::<f64>() / m).sqrt(),
            );
            e.metrics.insert(
                format!("{name}_mae_s"),
                res.iter().map(|r| r.abs()).sum::<f64>() / m,
            );
            for tol in [0.1, 0.5] {
                e.metrics.insert(
                    format!("{name}_within_{tol}s"),
                    res.iter().filter(|r| r.abs() <= tol).count() as f64 / m,
                );
            }
            // baseline: always the median true onset of this split
            let mut truths: Vec<f64> = list.iter().map(|x| x.1).collect();
            truths.sort_by(f64::total_cmp);
            let med = truths[truths.len() / 2];
            e.metrics.insert(
                format!("{name}_within_0.5s_baseline"),
                truths
                    .iter()
                    .filter(|t| ((med - **t) / SAMPLING_RATE).abs() <= 0.5)
                    .count() as f64
                    / m,
            );
        }
        Ok(e)
    }
    fn predict(&mut self, x: &Tensor) -> Result<Vec<super::Output>> {
        let (b, len) = (x.shape[0], x.shape[2]);
        let p = self.probabilities(x)?;
        // [B, T, 3] → [B, 3, T] (P, S, noise), the layout of `seisfuse pick --probs`
        let mut v = vec![0f32; p.len()];
        for i in 0..b {
            for t in 0..len {
                for c in 0..3 {
                    v[(i * 3 + c) * len + t] = p[(i * len + t) * 3 + c];
                }
            }
        }
        Ok(vec![super::Output {
            name: "probabilities",
            shape: vec![b, 3, len],
            values: v,
        }])
    }
    fn primary(&self) -> (&'static str, bool) {
        ("p_within_0.5s", true)
    }
    fn head_prefixes(&self) -> Vec<String> {
        vec!["double_conv.".into(), "classifier.".into()]
    }
    fn figures(&mut self, split: &Split, dir: &Path, count: usize) -> Result<Vec<String>> {
        let (b, wave) = super::first_samples(split, count, &self.device)?;
        let (k, len) = (wave.shape[0], wave.shape[2]);
        let p = self.probabilities(&wave)?;
        let x = b.inputs.to_vec_f32()?;
        let ps = targets_of(&b)?.to_vec_f32()?;
        let _ = self.seed;
        let at = |v: f32| (v >= 0.0).then_some(v);
        super::sample_figures(dir, "picks", k, |i, path| {
            crate::train::figures::picks(
                path,
                &x[i * 3 * len..(i + 1) * 3 * len],
                &p[i * len * 3..(i + 1) * len * 3],
                (at(ps[2 * i]), at(ps[2 * i + 1])),
                SAMPLING_RATE,
            )
        })
    }
}
