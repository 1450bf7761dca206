//! ReLU and its backward pass from the forward output.

use crate::tensor::Tensor;
use anyhow::Result;

pub trait ReluOps {
    /// y = max(x, 0) (NaN passes through), written.
    fn relu(&self, y: &mut Tensor, x: &Tensor) -> Result<()>;
    /// dx = dy where y > 0, else 0 (`y` the forward output), written.
    fn relu_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()>;
}
