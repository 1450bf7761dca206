//! SeisLM's contrastive pretraining (wav2vec2): the encoder on span-masked frames, the
//! Gumbel product quantizer of the conv features, `project_hid`/`project_q`, the contrastive
//! loss against negatives from other masked frames, and the diversity loss. Parameter names
//! follow HF `Wav2Vec2ForPreTraining` (`wav2vec2.*`, `quantizer.*`, `project_hid`, `project_q`).

use super::seislm::{Seislm, SeislmConfig};
use super::wav2vec2_objective as obj;
use crate::nn::{Grads, Init, Linear, Param, ParamVisitor, Parameters};
use crate::ops;
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct PretrainConfig {
    pub encoder: SeislmConfig,
    pub groups: usize,
    pub vars: usize,
    /// Total codevector width (each group contributes codevector_dim / groups).
    pub codevector_dim: usize,
    /// Width of the space where the contrastive loss compares vectors.
    pub final_dim: usize,
    pub mask_prob: f32,
    pub mask_span: usize,
    pub min_spans: usize,
    pub negatives: usize,
    /// Contrastive temperature κ.
    pub kappa: f32,
    pub diversity_weight: f32,
    /// Gumbel temperature, cosine-annealed from start to end over the run.
    pub tau_start: f32,
    pub tau_end: f32,
    /// The quantizer logits are scaled by this (SeisLM: 1/√256).
    pub logit_scale: f32,
}

impl PretrainConfig {
    /// SeisLM's objective for seislm-base/-large (docs/reference.md); a small analogue for
    /// seislm-tiny.
    pub fn preset(name: &str) -> Result<Self> {
        let encoder = SeislmConfig::preset(name)?;
        let tiny = name == "seislm-tiny";
        let (vars, cv, fd, negatives, span) = if tiny {
            (16, 32, 32, 20, 4)
        } else {
            (320, 256, 256, 100, 10)
        };
        Ok(PretrainConfig {
            encoder,
            groups: 2,
            vars,
            codevector_dim: cv,
            final_dim: fd,
            mask_prob: 0.65,
            mask_span: span,
            min_spans: 2,
            negatives,
            kappa: 0.1,
            diversity_weight: 0.1,
            tau_start: 2.0,
            tau_end: 0.5,
            logit_scale: 1.0 / (cv as f32).sqrt(),
        })
    }
    /// The Gumbel temperature at `step` of `total`.
    pub fn tau(&self, step: usize, total: usize) -> f32 {
        let p = (step as f32 / total.max(1) as f32).min(1.0);
        self.tau_end
            + 0.5 * (self.tau_start - self.tau_end) * (1.0 + (std::f32::consts::PI * p).cos())
    }
}

#[derive(Debug)]
pub struct SeislmPretrain {
    pub cfg: PretrainConfig,
    pub wav2vec2: Seislm,
    pub weight_proj: Linear,
    /// [1, groups·vars, codevector_dim / groups].
    pub codevectors: Param,
    pub project_hid: Linear,
    pub project_q: Linear,
    /// Also measure [`PretrainStats::chance`] (reads the chosen codes back to the host: for
    /// evaluation, not for every training step).
    pub measure_chance: bool,
}

/// What one step measured.
#[derive(Clone, Copy, Debug)]
pub struct PretrainStats {
    /// contrastive (mean over masked frames) + diversity_weight · diversity.
    pub loss: f32,
    pub contrastive: f32,
    /// (G·V − perplexity) / (G·V).
    pub diversity: f32,
    pub perplexity: f32,
    pub masked_frames: usize,
    /// With `measure_chance`: the contrastive loss of a model that cannot tell a target from
    /// its negatives. Negatives quantized to the positive's codes are dropped from the softmax
    /// (as HF does), so a frame contributes ln(1 + its distinct negatives), below ln(1 + K)
    /// when codes are shared; this is the mean over the masked frames. NaN otherwise.
    pub chance: f32,
}

/// `t` as `dtype` (moved when it already is).
fn in_dtype(t: Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype == dtype {
        Ok(t)
    } else {
        ops::cast(&t, dtype)
    }
}

impl SeislmPretrain {
    pub fn new(cfg: PretrainConfig, seed: u64) -> Result<Self> {
        if !cfg.codevector_dim.is_multiple_of(cfg.groups) {
            bail!(
                "codevector_dim {} must be divisible by {} groups",
                cfg.codevector_dim,
                cfg.groups
            );
        }
        let mut enc_cfg = cfg.encoder.clone();
        enc_cfg.masked_spec_embed = true;
        let wav2vec2 = Seislm::new(enc_cfg, seed)?;
        let mut init = Init::new(seed ^ 0x7175_616e);
        let gv = cfg.groups * cfg.vars;
        // HF: weight_proj ~ N(0, 1), bias 0; codevectors ~ U[0, 1).
        let mut weight_proj = Linear::new(cfg.encoder.conv_dim(), gv, true, &mut init)?;
        weight_proj.weight = Param::new(init.normal(&[gv, cfg.encoder.conv_dim()], 1.0)?)?;
        Ok(SeislmPretrain {
            weight_proj,
            codevectors: Param::new(init.uniform(
                &[1, gv, cfg.codevector_dim / cfg.groups],
                0.0,
                1.0,
            )?)?,
            project_hid: Linear::new(cfg.encoder.hidden, cfg.final_dim, true, &mut init)?,
            project_q: Linear::new(cfg.codevector_dim, cfg.final_dim, true, &mut init)?,
            measure_chance: false,
            wav2vec2,
            cfg,
        })
    }

    /// Forward and backward of one batch (gradients are added into `grads`; the caller steps
    /// the optimizer). Masks, negatives and Gumbel noise are drawn from (seed, step).
    pub fn train_step(
        &self,
        wave: &Tensor,
        tau: f32,
        seed: u64,
        step: u32,
        grads: &mut Grads,
    ) -> Result<PretrainStats> {
        let cfg = self.cfg.clone();
        let dev = self.wav2vec2.device();
        let b = wave.shape.first().copied().unwrap_or(0);
        let samples = wave.shape.get(2).copied().unwrap_or(0);
        let Some(t) = cfg.encoder.frames(samples) else {
            bail!("{samples} samples are too few for the feature extractor");
        };
        let mask = obj::span_mask(
            b,
            t,
            cfg.mask_prob,
            cfg.mask_span,
            cfg.min_spans,
            seed,
            step,
        )?;
        if let Some(tr) =
            (0..b).find(|&tr| mask[tr * t..(tr + 1) * t].iter().filter(|&&m| m).count() < 2)
        {
            bail!("trace {tr} has fewer than 2 masked frames; negatives need at least 2");
        }
        let (out, cache) = self.wav2vec2.forward(wave, Some(&mask))?;
        // The negatives are drawn on the host while a GPU runs the encoder's queued kernels.
        // Everything below stays on the model's device; the mask, the sampled candidates and
        // the scalars are all that cross.
        let (pos, negs) = obj::sample_negatives(&mask, b, t, cfg.negatives, seed, step)?;
        // The objective runs in fp32 (as HF's `.float()`); bf16 activations are cast at its
        // boundaries. With fp32 activations nothing is cast.
        let adt = out.extract_features.dtype;
        let mut logits = in_dtype(self.weight_proj.forward(&out.extract_features)?, DType::F32)?;
        ops::scale_assign(&mut logits, cfg.logit_scale)?;
        let quant = ops::gumbel_quantize(
            &logits,
            &self.codevectors.value,
            cfg.groups,
            tau,
            seed,
            step,
        )?;
        let qcast = (adt != DType::F32)
            .then(|| ops::cast(&quant.q, adt))
            .transpose()?;
        let qin = qcast.as_ref().unwrap_or(&quant.q);
        let q = in_dtype(self.project_q.forward(qin)?, DType::F32)?;
        let c = in_dtype(
            self.project_hid.forward(&out.last_hidden_state)?,
            DType::F32,
        )?;
        let m = pos.len();
        let chance = if self.measure_chance {
            let hard = quant.hard().to_vec_i32()?;
            let g = cfg.groups;
            let code = |row: usize| &hard[row * g..(row + 1) * g];
            let sum: f64 = pos
                .iter()
                .zip(&negs)
                .map(|(&p, ns)| {
                    let distinct = ns.iter().filter(|&&n| code(n) != code(p)).count();
                    ((1 + distinct) as f64).ln()
                })
                .sum();
            (sum / m.max(1) as f64) as f32
        } else {
            f32::NAN
        };
        let targets = ops::ContrastiveTargets::new(&pos, &negs, b * t, &dev)?;
        let (csum, dc, dq) = ops::contrastive_loss(&c, &q, &targets, cfg.kappa, 1.0 / m as f32)?;
        let gv = (cfg.groups * cfg.vars) as f32;
        let weight: Vec<f32> = mask.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect();
        let weight = Tensor::from_f32(&[b * t], weight)?.to_device(&dev)?;
        let (ppl, dlogits_ppl) =
            ops::codebook_perplexity(&logits, cfg.groups, &weight, -cfg.diversity_weight / gv)?;
        let contrastive = csum / m as f32;
        let diversity = (gv - ppl) / gv;
        let loss = contrastive + cfg.diversity_weight * diversity;
        if !loss.is_finite() {
            bail!("pretraining loss is {loss} at step {step}");
        }
        // backward
        let dqv = self.project_q.backward(qin, &in_dtype(dq, adt)?, grads)?;
        let dqv = in_dtype(dqv, DType::F32)?;
        let mut dcode = grads.of(&self.codevectors)?;
        let mut dlogits =
            ops::gumbel_quantize_backward(&quant, &self.codevectors.value, &dqv, &mut dcode)?;
        ops::add_assign(&mut dlogits, &dlogits_ppl)?;
        ops::scale_assign(&mut dlogits, cfg.logit_scale)?;
        let dlogits = in_dtype(dlogits, adt)?;
        let dfeat = self
            .weight_proj
            .backward(&out.extract_features, &dlogits, grads)?;
        let dh = self
            .project_hid
            .backward(&out.last_hidden_state, &in_dtype(dc, adt)?, grads)?;
        self.wav2vec2
            .backward(&cache, &dh, Some(&dfeat), false, grads)?;
        Ok(PretrainStats {
            loss,
            contrastive,
            diversity,
            perplexity: ppl,
            masked_frames: m,
            chance,
        })
    }
}

impl Parameters for SeislmPretrain {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.wav2vec2.visit(&format!("{prefix}wav2vec2."), f)?;
        f(
            &format!("{prefix}quantizer.codevectors"),
            &mut self.codevectors,
        )?;
        self.weight_proj
            .visit(&format!("{prefix}quantizer.weight_proj."), f)?;
        self.project_hid
            .visit(&format!("{prefix}project_hid."), f)?;
        self.project_q.visit(&format!("{prefix}project_q."), f)
    }
}
