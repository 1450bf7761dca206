//! Matrix products and row sums (the bias gradient).

pub use crate::backend::cpu::matmul::MatmulShape;
use crate::tensor::Tensor;
use anyhow::Result;

/// The operands of c = op(a) · op(b) (+ bias over columns) (+ c when `accumulate`).
#[derive(Clone, Copy)]
pub struct MatmulInput<'a> {
    pub a: &'a Tensor,
    pub b: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    pub accumulate: bool,
}

pub trait MatmulOps {
    /// c = op(a) · op(b) (+ bias over columns) (+ c when `accumulate`), per `s`.
    fn matmul(&self, c: &mut Tensor, x: MatmulInput, s: &MatmulShape) -> Result<()>;
    /// h = op(a) · op(b) (+ bias), act = gelu(h) (x.accumulate is false).
    fn matmul_gelu(
        &self,
        h: &mut Tensor,
        act: &mut Tensor,
        x: MatmulInput,
        s: &MatmulShape,
    ) -> Result<()>;
    /// dh = (op(a) · op(b)) · gelu'(h) (no bias, x.accumulate false).
    fn matmul_dgelu(
        &self,
        dh: &mut Tensor,
        x: MatmulInput,
        s: &MatmulShape,
        h: &Tensor,
    ) -> Result<()>;
    /// out[c] = Σ_r x[r, c] (+ out[c] when `accumulate`), rows of `out.numel()` columns.
    fn sum_rows(&self, out: &mut Tensor, x: &Tensor, accumulate: bool) -> Result<()>;
}
