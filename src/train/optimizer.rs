//! AdamW over a parameter store: the gradient norm (one reduction, read once by the host),
//! optional clipping applied inside the update, and the update itself as one multi-tensor
//! launch over the store's flat buffers (values, moments and the bf16 compute copy at once).

use crate::nn::ParamStore;
use crate::nvtx;
use crate::ops::{self, AdamWConfig};
use anyhow::{bail, Result};

pub struct AdamW {
    pub cfg: AdamWConfig,
    /// Clip the global gradient norm to this value before each step.
    pub max_grad_norm: Option<f32>,
    /// Steps taken (the bias correction's t after the next step is t + 1).
    pub t: u32,
}

impl AdamW {
    pub fn new(cfg: AdamWConfig) -> Self {
        AdamW {
            cfg,
            max_grad_norm: None,
            t: 0,
        }
    }

    /// One step at learning rate `lr`; returns the gradient norm (before clipping). A
    /// non-finite gradient is an error naming the parameter, and the values stay as they were.
    pub fn step(&mut self, store: &mut ParamStore, lr: f32) -> Result<f32> {
        let _range = nvtx::range("optimizer step");
        let t = self.t + 1;
        let (mut values, grads, mut m, mut v, mut compute, mut chunks) = store.optimizer_view()?;
        ops::grad_norm_sq(&grads, &mut chunks)?;
        let mut cfg = self.cfg;
        cfg.lr = lr;
        ops::adamw_chunks(ops::AdamWStep {
            values: &mut values,
            m: &mut m,
            v: &mut v,
            compute: compute.as_mut(),
            grads: &grads,
            chunks: &chunks,
            norm_sq: &chunks.norm_sq,
            cfg,
            t,
            max_norm: self.max_grad_norm.unwrap_or(0.0),
        })?;
        let norm_sq = ops::item(&chunks.norm_sq)?;
        if !norm_sq.is_finite() {
            let bad = store
                .per_param_grad_sq()?
                .into_iter()
                .filter(|(_, s)| !s.is_finite())
                .map(|(n, _)| n)
                .collect::<Vec<_>>();
            bail!(
                "the gradient is not finite at optimizer step {t} (parameters: {}); the values were left unchanged",
                bad.join(", ")
            );
        }
        self.t = t;
        Ok(norm_sq.sqrt())
    }
}
