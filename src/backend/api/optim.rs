//! The optimizer's ops over a parameter store's flat buffers, driven by a chunk table.

use crate::backend::cpu::adamw::AdamWConfig;
use crate::ops::ChunkTable;
use crate::tensor::Tensor;
use anyhow::Result;

/// One AdamW step over the chunks of `chunks`.
pub struct AdamWStep<'a> {
    /// Updated: fp32 values and the moments.
    pub values: &'a mut Tensor,
    pub m: &'a mut Tensor,
    pub v: &'a mut Tensor,
    /// Written when present: the bf16 copy of each updated value.
    pub compute: Option<&'a mut Tensor>,
    pub grads: &'a Tensor,
    pub chunks: &'a ChunkTable,
    /// Σ g² over the chunks ([1], f32, on the device): clipping reads it there, and a
    /// non-finite value skips the update.
    pub norm_sq: &'a Tensor,
    pub cfg: AdamWConfig,
    /// Step count from 1 (bias correction).
    pub t: u32,
    /// Clip the gradient to this global norm (0: no clipping).
    pub max_norm: f32,
}

pub trait OptimOps {
    /// norm_sq[0] = Σ grads² over the table's chunks (deterministic); uses the table's
    /// partials buffer.
    fn grad_norm_sq(&self, norm_sq: &mut Tensor, grads: &Tensor, chunks: &ChunkTable)
        -> Result<()>;
    fn adamw(&self, a: AdamWStep) -> Result<()>;
}
