//! Softmax over the last axis.

use crate::tensor::Tensor;
use anyhow::Result;

pub trait SoftmaxOps {
    /// y = softmax(x) per row of x's last axis (written).
    fn softmax(&self, y: &mut Tensor, x: &Tensor) -> Result<()>;
    /// dx = y ⊙ (dy − Σ dy ⊙ y) per row, from the forward output y (written).
    fn softmax_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()>;
}
