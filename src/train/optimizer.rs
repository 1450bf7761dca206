//! AdamW over a model's named parameters, with optional gradient-norm clipping. Moments live
//! beside each parameter, on its device, created at the first step.

use crate::nn::Parameters;
use crate::ops::{self, AdamWConfig};
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};
use std::collections::HashMap;

pub struct AdamW {
    pub cfg: AdamWConfig,
    /// Clip the global gradient norm to this value before each step.
    pub max_grad_norm: Option<f32>,
    /// Names (or name prefixes) excluded from weight decay; by default biases, norms and tokens.
    pub no_decay: fn(&str) -> bool,
    state: HashMap<String, (Tensor, Tensor)>,
    pub t: u32,
}

/// MAE/timm convention: no weight decay on 1-D tensors (biases, norm weights) and tokens.
pub fn default_no_decay(name: &str) -> bool {
    name.ends_with(".bias")
        || name.contains("norm")
        || name.ends_with("token")
        || name.ends_with("pos_embed")
}

impl AdamW {
    pub fn new(cfg: AdamWConfig) -> Self {
        AdamW {
            cfg,
            max_grad_norm: None,
            no_decay: default_no_decay,
            state: HashMap::new(),
            t: 0,
        }
    }

    /// One step at learning rate `lr`; returns the gradient norm (before clipping).
    pub fn step(&mut self, model: &mut dyn Parameters, lr: f32) -> Result<f32> {
        self.t += 1;
        let mut norm2 = 0.0f64;
        let self_t = self.t;
        model.visit("", &mut |name, p| {
            if p.trainable {
                let s = ops::item(&ops::sum_squares(&p.grad)?)? as f64;
                if !s.is_finite() {
                    bail!(
                        "the gradient of {name} is not finite (optimizer step {})",
                        self_t
                    );
                }
                norm2 += s;
            }
            Ok(())
        })?;
        let norm = norm2.sqrt() as f32;
        let clip = match self.max_grad_norm {
            Some(m) if norm > m => m / (norm + 1e-6),
            _ => 1.0,
        };
        let (t, base, no_decay, state) = (self.t, self.cfg, self.no_decay, &mut self.state);
        model.visit("", &mut |name, p| {
            if !p.trainable {
                return Ok(());
            }
            if clip != 1.0 {
                ops::scale_assign(&mut p.grad, clip)?;
            }
            if !state.contains_key(name) {
                let dev = p.value.device();
                let z = || Tensor::zeros(&p.value.shape, DType::F32, &dev);
                state.insert(name.to_string(), (z()?, z()?));
            }
            let (m, v) = state.get_mut(name).expect("inserted above");
            let mut cfg = base;
            cfg.lr = lr;
            if no_decay(name) {
                cfg.weight_decay = 0.0;
            }
            // A bf16 compute copy (mixed precision) is refreshed by the same step.
            let copy = p.compute.as_mut().filter(|c| c.dtype == DType::BF16);
            ops::adamw_step(&mut p.value, &p.grad, m, v, copy, &cfg, t)
        })?;
        Ok(norm)
    }
}
