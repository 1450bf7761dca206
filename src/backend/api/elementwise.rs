//! Elementwise ops: add, bias add, GELU, scale, casts.

use crate::tensor::Tensor;
use anyhow::Result;

pub trait ElementwiseOps {
    /// out = a + b (`out` may be `a` itself: in-place accumulation).
    fn add(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()>;
    /// out[r, c] = x[r, c] + bias[c], rows of `bias.numel()` columns.
    fn bias_add(&self, out: &mut Tensor, x: &Tensor, bias: &Tensor) -> Result<()>;
    /// out = gelu(x), erf form.
    fn gelu(&self, out: &mut Tensor, x: &Tensor) -> Result<()>;
    /// dx = dy · gelu'(x).
    fn gelu_backward(&self, dx: &mut Tensor, x: &Tensor, dy: &Tensor) -> Result<()>;
    /// x *= s, in place.
    fn scale(&self, x: &mut Tensor, s: f32) -> Result<()>;
    /// out = x converted to out's dtype (f32 ↔ bf16, round to nearest even).
    fn cast(&self, out: &mut Tensor, x: &Tensor) -> Result<()>;
    /// acc (f32) += x (bf16) widened, then x = 0: the hand-off of bf16 gradient scratch into
    /// the fp32 gradients in one pass (`ops::drain_add`).
    fn drain_add(&self, acc: &mut Tensor, x: &mut Tensor) -> Result<()>;
}
