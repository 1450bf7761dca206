//! LayerNorm over the last axis with learned weight and bias.

use super::{Init, Param, ParamVisitor, Parameters};
use crate::ops::{self, LayerNormCache};
use crate::tensor::Tensor;
use anyhow::Result;

#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Param,
    pub bias: Param,
    pub eps: f32,
}

impl LayerNorm {
    pub fn new(dim: usize, eps: f32, init: &mut Init) -> Result<Self> {
        Ok(LayerNorm {
            weight: Param::new(init.constant(&[dim], 1.0)?)?,
            bias: Param::new(init.constant(&[dim], 0.0)?)?,
            eps,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, LayerNormCache)> {
        let w = self.weight.value_as(x.dtype)?;
        let b = self.bias.value_as(x.dtype)?;
        ops::layer_norm(x, &w, &b, self.eps)
    }
    pub fn backward(&mut self, x: &Tensor, cache: &LayerNormCache, dy: &Tensor) -> Result<Tensor> {
        let dt = x.dtype;
        let w = self.weight.value_as(dt)?.into_owned()?;
        let bias = &mut self.bias;
        self.weight.accumulate_grad(dt, |dw| {
            bias.accumulate_grad(dt, |db| ops::layer_norm_backward(dy, x, &w, cache, dw, db))
        })
    }
}

impl Parameters for LayerNorm {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        f(&format!("{prefix}weight"), &mut self.weight)?;
        f(&format!("{prefix}bias"), &mut self.bias)
    }
}
