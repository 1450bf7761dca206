//! 2-D convolution, NCHW, 1×1 or 3×3 kernels, stride 1, padding k/2, groups 1.

pub use crate::backend::cpu::conv2d::Conv2dShape;
use crate::tensor::Tensor;
use anyhow::Result;

pub trait Conv2dOps {
    /// y [n, cout, h, w] = conv(x, w) + bias (written).
    fn conv2d(
        &self,
        y: &mut Tensor,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        s: &Conv2dShape,
    ) -> Result<()>;
    /// dx [n, cin, h, w] from dy and the weight (written).
    fn conv2d_backward_input(
        &self,
        dx: &mut Tensor,
        dy: &Tensor,
        w: &Tensor,
        s: &Conv2dShape,
    ) -> Result<()>;
    /// dw += Σ dy ⊗ x and, when given, dbias += Σ dy per output channel (accumulated).
    fn conv2d_backward_params(
        &self,
        dw: &mut Tensor,
        dbias: Option<&mut Tensor>,
        dy: &Tensor,
        x: &Tensor,
        s: &Conv2dShape,
    ) -> Result<()>;
}
