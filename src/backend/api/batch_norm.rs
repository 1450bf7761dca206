//! BatchNorm2d over NCHW: statistics per channel over (N, H, W). Statistics and running
//! buffers are f32 [C]; x, y, weight and bias share the float dtype.

use super::layer_norm::{NormBackward, NormInput};
use crate::tensor::Tensor;
use anyhow::Result;

/// The outputs of a train-mode forward pass.
pub struct BatchNormTrainOut<'a> {
    /// Written: the normalised output, and the batch mean and 1/std kept for the backward pass.
    pub y: &'a mut Tensor,
    pub mean: &'a mut Tensor,
    pub rstd: &'a mut Tensor,
    /// Updated: new = (1 − momentum)·old + momentum·batch (the variance unbiased).
    pub running_mean: &'a mut Tensor,
    pub running_var: &'a mut Tensor,
}

/// The running statistics an eval-mode forward pass normalises with.
pub struct BatchNormRunning<'a> {
    pub mean: &'a Tensor,
    pub var: &'a Tensor,
}

pub trait BatchNormOps {
    /// Train mode: y = (x − mean)·rstd·w + b with the batch statistics of x [N, C, H, W].
    fn batch_norm_train(&self, out: BatchNormTrainOut, a: NormInput, momentum: f32) -> Result<()>;
    /// Eval mode: y = (x − running mean)·(running var + eps)^−½·w + b (written).
    fn batch_norm_eval(
        &self,
        y: &mut Tensor,
        a: NormInput,
        running: BatchNormRunning,
    ) -> Result<()>;
    /// Train-mode backward: dx written, dw += Σ dy·x̂ and db += Σ dy per channel.
    fn batch_norm_backward(&self, a: NormBackward) -> Result<()>;
}
