//! Transformer MLP: Linear → GELU (erf) → Linear (timm `Mlp`, wav2vec2 feed-forward).

use super::{Grads, Init, Linear, ParamVisitor, Parameters};
use crate::ops;
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
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, MlpCache)> {
        let h = self.fc1.forward(x)?;
        let a = ops::gelu(&h)?;
        let y = self.fc2.forward(&a)?;
        Ok((y, MlpCache { x: x.clone(), h, a }))
    }
    pub fn backward(&self, c: &MlpCache, dy: &Tensor, grads: &mut Grads) -> Result<Tensor> {
        let da = self.fc2.backward(&c.a, dy, grads)?;
        let dh = ops::gelu_backward(&c.h, &da)?;
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
