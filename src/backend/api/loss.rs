//! Losses: per-row (or per-element) values in f32, which `ops` sums with [`super::ReduceOps`].

use crate::tensor::Tensor;
use anyhow::Result;

pub trait LossOps {
    /// losses[r] = −log softmax(logits[r])[targets[r]] and valid[r] = 1 for rows of logits
    /// (last axis = classes) whose i32 target lies in [0, classes); 0 and 0 for the others.
    fn nll(
        &self,
        losses: &mut Tensor,
        valid: &mut Tensor,
        logits: &Tensor,
        targets: &Tensor,
    ) -> Result<()>;
    /// dlogits = (softmax − onehot(target)) · scale for valid rows, 0 for ignored rows (written).
    fn nll_backward(
        &self,
        dlogits: &mut Tensor,
        logits: &Tensor,
        targets: &Tensor,
        scale: f32,
    ) -> Result<()>;
    /// losses[r] = −Σ_c targets[r, c] · log softmax(logits[r])_c (soft targets, same shape).
    fn soft_ce(&self, losses: &mut Tensor, logits: &Tensor, targets: &Tensor) -> Result<()>;
    /// dlogits = (softmax · Σ targets − targets) · scale per row (written).
    fn soft_ce_backward(
        &self,
        dlogits: &mut Tensor,
        logits: &Tensor,
        targets: &Tensor,
        scale: f32,
    ) -> Result<()>;
    /// sq = (x − y)² per element (f32, written).
    fn mse(&self, sq: &mut Tensor, x: &Tensor, y: &Tensor) -> Result<()>;
    /// dx = 2 (x − y) · scale (written).
    fn mse_backward(&self, dx: &mut Tensor, x: &Tensor, y: &Tensor, scale: f32) -> Result<()>;
    /// row_loss[r] = mean over the last axis of (x − y)², times mask[r] (f32, written).
    fn masked_row_mse(
        &self,
        row_loss: &mut Tensor,
        x: &Tensor,
        y: &Tensor,
        mask: &Tensor,
    ) -> Result<()>;
    /// dx = mask[r] · 2 (x − y) / cols · scale per row of `cols` (written).
    fn masked_row_mse_backward(
        &self,
        dx: &mut Tensor,
        x: &Tensor,
        y: &Tensor,
        mask: &Tensor,
        scale: f32,
    ) -> Result<()>;
}
