//! LayerNorm over the last axis, and the argument structs LayerNorm and BatchNorm share.

use crate::tensor::Tensor;
use anyhow::Result;

/// The input of a normalisation and its affine parameters: y = (x − mean)·rstd·w + b with
/// rstd = (var + eps)^−½ (LayerNorm per row of `w.len()` columns, BatchNorm per channel).
#[derive(Clone, Copy)]
pub struct NormInput<'a> {
    pub x: &'a Tensor,
    pub w: &'a Tensor,
    pub b: &'a Tensor,
    pub eps: f32,
}

/// The outputs of a LayerNorm forward pass, all written.
pub struct LayerNormOut<'a> {
    pub y: &'a mut Tensor,
    /// Per-row mean and 1/std (f32), kept for the backward pass.
    pub mean: &'a mut Tensor,
    pub rstd: &'a mut Tensor,
}

/// The tensors of a LayerNorm or train-mode BatchNorm backward pass.
pub struct NormBackward<'a> {
    /// Written: the input gradient.
    pub dx: &'a mut Tensor,
    /// Accumulated: the weight and bias gradients.
    pub dw: &'a mut Tensor,
    pub db: &'a mut Tensor,
    pub dy: &'a Tensor,
    pub x: &'a Tensor,
    pub w: &'a Tensor,
    /// The mean and 1/std (f32) from the forward pass: per row (LayerNorm) or per channel
    /// (BatchNorm).
    pub mean: &'a Tensor,
    pub rstd: &'a Tensor,
    /// LayerNorm only (None for BatchNorm): a residual branch's gradient, like dx, added to
    /// it (dx is rounded to its dtype first, as a separate add would see it).
    pub dres: Option<&'a Tensor>,
}

/// The residual stream a LayerNorm reads: `sum` = x + `r` is written and normalised.
pub struct Residual<'a> {
    pub r: &'a Tensor,
    pub sum: &'a mut Tensor,
}

/// Widest row of a fused residual add + LayerNorm (the CUDA kernel keeps a row in one warp's
/// registers, 32 values per lane).
pub const ADD_NORM_MAX_COLS: usize = 1024;

pub trait LayerNormOps {
    /// y = (x − mean) · rstd · w + b per row of `w.len()` columns.
    fn layer_norm(&self, out: LayerNormOut, a: NormInput) -> Result<()>;
    /// A residual connection and the LayerNorm after it: `res.sum` = x + `res.r` (written,
    /// in x's dtype), then `out` = LayerNorm(sum) as [`LayerNormOps::layer_norm`] computes it.
    /// Rows of at most [`ADD_NORM_MAX_COLS`] (ops falls back to the unfused pair above).
    fn add_layer_norm(&self, out: LayerNormOut, a: NormInput, res: Residual) -> Result<()>;
    fn layer_norm_backward(&self, a: NormBackward) -> Result<()>;
}
