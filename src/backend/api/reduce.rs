//! Whole-tensor reductions into a one-element f32 tensor on the device.

use crate::tensor::Tensor;
use anyhow::Result;

pub trait ReduceOps {
    /// out[0] = scale · Σ x (or Σ x² when `square`), in a fixed, deterministic order.
    fn sum(&self, out: &mut Tensor, x: &Tensor, square: bool, scale: f32) -> Result<()>;
}
