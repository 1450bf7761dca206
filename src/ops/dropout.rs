//! Dropout keyed by (seed, step, stream id): identical masks on CPU and GPU, and the backward
//! pass regenerates the mask instead of storing it.

use super::*;
use crate::backend::cpu::dropout as cpu;
use crate::backend::cuda::dropout as gpu;

/// Which random stream a dropout call draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropoutKey {
    pub seed: u64,
    pub step: u32,
    /// Distinguishes the dropout sites of one step (one id per layer).
    pub stream_id: u32,
}

/// Zeroes each element with probability p and scales the rest by 1/(1−p).
pub fn dropout(x: &Tensor, p: f32, key: DropoutKey) -> Result<Tensor> {
    check_float("dropout", "x", x)?;
    if !(0.0..1.0).contains(&p) {
        bail!("dropout: p must be in [0, 1), found {p}");
    }
    if p == 0.0 {
        return x.try_clone();
    }
    let d = x.device();
    if !d.is_cuda() {
        let mut y = vec![0.0; x.numel()];
        cpu::dropout(&mut y, &host(x)?, p, key.seed, key.step, key.stream_id);
        return from_host(&x.shape, y, x.dtype);
    }
    let y = output(&x.shape, x.dtype, &d)?;
    gpu::dropout(
        backend(&d)?,
        dev(&y)?,
        dev(x)?,
        p,
        key.seed,
        key.step,
        key.stream_id,
    )?;
    Ok(y)
}

/// dx = dy ⊙ mask / (1−p), the mask regenerated from `key`.
pub fn dropout_backward(dy: &Tensor, p: f32, key: DropoutKey) -> Result<Tensor> {
    dropout(dy, p, key)
}
