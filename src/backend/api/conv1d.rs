//! 1-D convolution on NCW tensors (grouped, strided, zero-padded), weight norm, the
//! last-two-axes transpose and a slice along one axis.

pub use crate::backend::cpu::conv1d::Conv1dShape;
use crate::tensor::Tensor;
use anyhow::Result;

/// The input side of a convolution (1-D or 2-D): x, the weight and an optional bias.
#[derive(Clone, Copy)]
pub struct ConvInput<'a> {
    pub x: &'a Tensor,
    pub w: &'a Tensor,
    pub bias: Option<&'a Tensor>,
}

/// The tensors of a convolution's backward pass (1-D or 2-D).
pub struct ConvBackward<'a> {
    /// Written when given: the input gradient, x's shape.
    pub dx: Option<&'a mut Tensor>,
    /// Accumulated: the weight gradient and, when given, the bias gradient.
    pub dw: &'a mut Tensor,
    pub db: Option<&'a mut Tensor>,
    pub dy: &'a Tensor,
    pub x: &'a Tensor,
    pub w: &'a Tensor,
}

/// The parameters of a weight norm: the direction v viewed as [outer, g.numel(), inner] and
/// the magnitude g, one per index of the kept axis.
#[derive(Clone, Copy)]
pub struct WeightNormInput<'a> {
    pub g: &'a Tensor,
    pub v: &'a Tensor,
    pub outer: usize,
    pub inner: usize,
}

/// The tensors of a weight-norm backward pass (v viewed as [outer, g.numel(), inner]).
pub struct WeightNormBackward<'a> {
    /// Accumulated: the gradients of g and v.
    pub dg: &'a mut Tensor,
    pub dv: &'a mut Tensor,
    /// The gradient of the normalised weight w.
    pub dw: &'a Tensor,
    /// The forward's parameters.
    pub input: WeightNormInput<'a>,
    /// ‖v‖ per index of the kept axis, from the forward pass (f32).
    pub norm: &'a Tensor,
}

/// A slice along one axis of a tensor viewed as [outer, len_in, inner]: positions
/// `start .. start + len` of the middle axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceDims {
    pub outer: usize,
    pub len_in: usize,
    pub inner: usize,
    pub start: usize,
    pub len: usize,
}

pub trait Conv1dOps {
    /// y [batch, cout, lout] = conv1d(x, w) + bias (written).
    fn conv1d(&self, y: &mut Tensor, a: ConvInput, s: &Conv1dShape) -> Result<()>;
    /// dx written (when given), dw and db accumulated.
    fn conv1d_backward(&self, a: ConvBackward, s: &Conv1dShape) -> Result<()>;
    /// w = g[k] · v / norm[k] with norm[k] = ‖v[:, k, :]‖ (v viewed as [outer, g.numel(),
    /// inner]); writes w and norm (f32).
    fn weight_norm(&self, w: &mut Tensor, norm: &mut Tensor, a: WeightNormInput) -> Result<()>;
    /// dg and dv accumulated from the gradient of w.
    fn weight_norm_backward(&self, a: WeightNormBackward) -> Result<()>;
    /// out [batch, n, m] = x [batch, m, n] transposed (written).
    fn transpose_last2(&self, out: &mut Tensor, x: &Tensor, m: usize, n: usize) -> Result<()>;
    /// out [outer, len, inner] = the slice of x [outer, len_in, inner] (written).
    fn slice_axis(&self, out: &mut Tensor, x: &Tensor, d: &SliceDims) -> Result<()>;
    /// dx [outer, len_in, inner]: dy [outer, len, inner] in the slice, zeros elsewhere (written).
    fn slice_axis_backward(&self, dx: &mut Tensor, dy: &Tensor, d: &SliceDims) -> Result<()>;
}
