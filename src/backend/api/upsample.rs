//! Resampling of NCHW tensors (PyTorch's `F.interpolate`); sizes come from the shapes.

use crate::tensor::Tensor;
use anyhow::Result;

pub trait UpsampleOps {
    /// out [n, c, h·k, w·k] = x [n, c, h, w] repeated k×k (written).
    fn upsample_nearest(&self, out: &mut Tensor, x: &Tensor, k: usize) -> Result<()>;
    /// dx [n, c, h, w] = Σ over each k×k block of dy [n, c, h·k, w·k] (written).
    fn upsample_nearest_backward(&self, dx: &mut Tensor, dy: &Tensor, k: usize) -> Result<()>;
    /// out [n, c, ho, wo] = bilinear resize of x [n, c, h, w] with PyTorch's `align_corners`
    /// (written).
    fn upsample_bilinear(&self, out: &mut Tensor, x: &Tensor, align_corners: bool) -> Result<()>;
    /// dx [n, c, h, w] of the bilinear resize from dy [n, c, ho, wo] (written).
    fn upsample_bilinear_backward(
        &self,
        dx: &mut Tensor,
        dy: &Tensor,
        align_corners: bool,
    ) -> Result<()>;
}
