//! Losses: per-row (or per-element) values in f32, which `ops` sums with [`super::ReduceOps`].

use crate::tensor::Tensor;
use anyhow::Result;

/// The outputs of the NLL forward pass, both written (f32, one per row).
pub struct NllOut<'a> {
    pub losses: &'a mut Tensor,
    pub valid: &'a mut Tensor,
}

/// The tensors of a cross-entropy backward pass (class or soft targets).
pub struct CrossEntropyBackward<'a> {
    /// Written: the logits' gradient.
    pub dlogits: &'a mut Tensor,
    /// The logits (last axis = classes) and the targets: i32 class indices (one per row) for
    /// `nll_backward`, a distribution per row like the logits for `soft_ce_backward`.
    pub logits: &'a Tensor,
    pub targets: &'a Tensor,
    pub scale: f32,
}

/// The inputs of the masked row MSE and of its backward pass: x and y of the same shape and
/// one f32 weight per row of `mask`.
#[derive(Clone, Copy)]
pub struct MaskedRows<'a> {
    pub x: &'a Tensor,
    pub y: &'a Tensor,
    pub mask: &'a Tensor,
}

pub trait LossOps {
    /// losses[r] = −log softmax(logits[r])[targets[r]] and valid[r] = 1 for rows of logits
    /// (last axis = classes) whose i32 target lies in [0, classes); 0 and 0 for the others.
    fn nll(&self, out: NllOut, logits: &Tensor, targets: &Tensor) -> Result<()>;
    /// dlogits = (softmax − onehot(target)) · scale for valid rows, 0 for ignored rows (written).
    fn nll_backward(&self, a: CrossEntropyBackward) -> Result<()>;
    /// losses[r] = −Σ_c targets[r, c] · log softmax(logits[r])_c (soft targets, same shape).
    fn soft_ce(&self, losses: &mut Tensor, logits: &Tensor, targets: &Tensor) -> Result<()>;
    /// dlogits = (softmax · Σ targets − targets) · scale per row (written).
    fn soft_ce_backward(&self, a: CrossEntropyBackward) -> Result<()>;
    /// sq = (x − y)² per element (f32, written).
    fn mse(&self, sq: &mut Tensor, x: &Tensor, y: &Tensor) -> Result<()>;
    /// dx = 2 (x − y) · scale (written).
    fn mse_backward(&self, dx: &mut Tensor, x: &Tensor, y: &Tensor, scale: f32) -> Result<()>;
    /// row_loss[r] = mean over the last axis of (x − y)², times mask[r] (f32, written).
    fn masked_row_mse(&self, row_loss: &mut Tensor, a: MaskedRows) -> Result<()>;
    /// dx = mask[r] · 2 (x − y) / cols · scale per row of `cols` (written).
    fn masked_row_mse_backward(&self, dx: &mut Tensor, a: MaskedRows, scale: f32) -> Result<()>;
}
