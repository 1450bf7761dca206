//! Transformer MLP: Linear → GELU (erf) → Linear (timm `Mlp`, wav2vec2 feed-forward).

use super::{Grads, Init, Linear, ParamVisitor, Parameters};
use crate::tensor::Tensor;
use anyhow::Result;

#[derive(Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

pub struct MlpCache {
    pub x: Tensor,
    pub h: Tensor,
    pub a: Tensor,
}

impl Mlp {
    pub fn new(dim: usize, hidden: usize, init: &mut Init) -> Result<Self> {
        Ok(Mlp {
            fc1: Linear::new(dim, hidden, true, init)?,
            fc2: Linear::new(hidden, dim, true, init)?,
        })
    }
    /// fc1 and its GELU in one pass where the backend fuses them (tensor-core products).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, MlpCache)> {
        let (h, a) = self.fc1.forward_gelu(x)?;
        let y = self.fc2.forward(&a)?;
        Ok((y, MlpCache { x: x.clone(), h, a }))
    }
    /// fc2's input gradient and the GELU's derivative in one pass where the backend fuses
    /// them.
    pub fn backward(&self, c: &MlpCache, dy: &Tensor, grads: &mut Grads) -> Result<Tensor> {
        let dh = self.fc2.backward_dgelu(&c.a, &c.h, dy, grads)?;
        self.fc1.backward(&c.x, &dh, grads)
    }
}

/// Names as timm's `Mlp` (`fc1`, `fc2`); SeisLM's feed-forward renames them in its own visitor.
impl Parameters for Mlp {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.fc1.visit(&format!("{prefix}fc1."), f)?;
        self.fc2.visit(&format!("{prefix}fc2."), f)
    }
}
