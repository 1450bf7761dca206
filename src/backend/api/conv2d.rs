//! 2-D convolution, NCHW, 1×1 or 3×3 kernels, stride 1, padding k/2, groups 1.

use super::conv1d::{ConvBackward, ConvInput};
pub use crate::backend::cpu::conv2d::Conv2dShape;
use crate::tensor::Tensor;
use anyhow::Result;

pub trait Conv2dOps {
    /// y [n, cout, h, w] = conv(x, w) + bias (written).
    fn conv2d(&self, y: &mut Tensor, a: ConvInput, s: &Conv2dShape) -> Result<()>;
    /// dx [n, cin, h, w] written (when given); dw += Σ dy ⊗ x and, when given,
    /// db += Σ dy per output channel (accumulated).
    fn conv2d_backward(&self, a: ConvBackward, s: &Conv2dShape) -> Result<()>;
}
