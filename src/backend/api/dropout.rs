//! Dropout keyed by (seed, step, stream id): the mask is a pure function of the key and the
//! element index, identical on every backend, so the backward pass regenerates it.

use crate::tensor::Tensor;
use anyhow::Result;

/// Which random stream a dropout call draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropoutKey {
    pub seed: u64,
    pub step: u32,
    /// Distinguishes the dropout sites of one step (one id per layer).
    pub stream_id: u32,
}

pub trait DropoutOps {
    /// out = x · keep / (1 − p), keep drawn per element from `key` (written). Serves the
    /// backward pass too (dy → dx with the same key).
    fn dropout(&self, out: &mut Tensor, x: &Tensor, p: f32, key: DropoutKey) -> Result<()>;
}
