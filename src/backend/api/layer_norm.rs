//! LayerNorm over the last axis.

use crate::tensor::Tensor;
use anyhow::Result;

/// The outputs of a LayerNorm forward pass, all written.
pub struct LayerNormOut<'a> {
    pub y: &'a mut Tensor,
    /// Per-row mean and 1/std (f32), kept for the backward pass.
    pub mean: &'a mut Tensor,
    pub rstd: &'a mut Tensor,
}

/// The tensors of a LayerNorm backward pass (rows of `w.len()` columns).
pub struct LayerNormBackward<'a> {
    /// Written: the input gradient.
    pub dx: &'a mut Tensor,
    /// Accumulated: the weight and bias gradients.
    pub dw: &'a mut Tensor,
    pub db: &'a mut Tensor,
    pub dy: &'a Tensor,
    pub x: &'a Tensor,
    pub w: &'a Tensor,
    /// Per-row mean and 1/std from the forward pass (f32).
    pub mean: &'a Tensor,
    pub rstd: &'a Tensor,
}

pub trait LayerNormOps {
    /// y = (x − mean) · rstd · w + b per row of `w.len()` columns.
    fn layer_norm(
        &self,
        out: LayerNormOut,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        eps: f32,
    ) -> Result<()>;
    fn layer_norm_backward(&self, a: LayerNormBackward) -> Result<()>;
}
