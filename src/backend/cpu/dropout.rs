//! Dropout with the counter-based Philox generator: the mask is a pure function of
//! (seed, step, stream id, index), so the backward pass regenerates it instead of storing it,
//! and the GPU draws the same mask.

use super::philox::uniform;
use super::{unary, Cpu};
use crate::backend::api::{DropoutKey, DropoutOps};
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

impl DropoutOps for Cpu {
    fn dropout(&self, out: &mut Tensor, x: &Tensor, p: f32, key: DropoutKey) -> Result<()> {
        unary(out, x, |o, x| {
            dropout(o, x, p, key.seed, key.step, key.stream_id)
        })
    }
}

/// Keeps element i when its uniform ≥ p, scaled by 1/(1−p). Used forward (x → y) and
/// backward (dy → dx) alike.
pub fn dropout(out: &mut [f32], x: &[f32], p: f32, seed: u64, step: u32, stream_id: u32) {
    let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
    out.par_iter_mut()
        .zip(x.par_iter())
        .enumerate()
        .with_min_len(4096)
        .for_each(|(i, (o, &v))| {
            let keep = uniform(seed, step, stream_id, i as u64) >= p;
            *o = if keep { v * scale } else { 0.0 };
        });
}
