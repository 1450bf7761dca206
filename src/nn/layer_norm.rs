//! LayerNorm over the last axis with learned weight and bias.

use super::{Grads, Init, Param};
use crate::nn::named_fields;
use crate::ops::{self, LayerNormCache};
use crate::tensor::Tensor;
use anyhow::Result;

#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Param,
    pub bias: Param,
    pub eps: f32,
}

/// The input and the row statistics.
pub struct LayerNormLayerCache {
    pub x: Tensor,
    pub stats: LayerNormCache,
}

impl LayerNorm {
    pub fn new(dim: usize, eps: f32, init: &mut Init) -> Result<Self> {
        Ok(LayerNorm {
            weight: Param::new(init.constant(&[dim], 1.0)?)?,
            bias: Param::new(init.constant(&[dim], 0.0)?)?,
            eps,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, LayerNormLayerCache)> {
        let w = self.weight.value_as(x.dtype)?;
        let b = self.bias.value_as(x.dtype)?;
        let (y, stats) = ops::layer_norm(x, &w, &b, self.eps)?;
        Ok((
            y,
            LayerNormLayerCache {
                x: x.clone(),
                stats,
            },
        ))
    }
    /// A residual connection and this norm after it (pre-norm blocks): s = x + r, then
    /// (s, LayerNorm(s), cache), fused in one kernel on the GPU.
    pub fn forward_add(
        &self,
        x: &Tensor,
        r: &Tensor,
    ) -> Result<(Tensor, Tensor, LayerNormLayerCache)> {
        let w = self.weight.value_as(x.dtype)?;
        let b = self.bias.value_as(x.dtype)?;
        let (s, y, stats) = ops::add_layer_norm(x, r, &w, &b, self.eps)?;
        let x = s.clone();
        Ok((s, y, LayerNormLayerCache { x, stats }))
    }
    /// Adds the weight and bias gradients into `grads`; returns dx.
    pub fn backward(
        &self,
        c: &LayerNormLayerCache,
        dy: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        self.backward_with(c, dy, None, grads)
    }
    /// [`LayerNorm::backward`] for a norm that reads a residual stream: returns dx + dres,
    /// where `dres` is the gradient the stream receives past the norm (fused on the GPU).
    pub fn backward_add(
        &self,
        c: &LayerNormLayerCache,
        dy: &Tensor,
        dres: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        self.backward_with(c, dy, Some(dres), grads)
    }
    fn backward_with(
        &self,
        c: &LayerNormLayerCache,
        dy: &Tensor,
        dres: Option<&Tensor>,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let dt = c.x.dtype;
        let w = self.weight.value_as(dt)?;
        let mut dw = grads.slot(&self.weight, dt)?;
        let mut db = grads.slot(&self.bias, dt)?;
        let g = (&mut *dw, &mut *db);
        let dx = ops::layer_norm_backward(dy, &c.x, &w, &c.stats, g, dres)?;
        grads.commit(dw)?;
        grads.commit(db)?;
        Ok(dx)
    }
}

named_fields!(LayerNorm {
    params: weight,
    bias
});
