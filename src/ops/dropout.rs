//! Dropout keyed by (seed, step, stream id): identical masks on CPU and GPU, and the backward
//! pass regenerates the mask instead of storing it.

use super::*;
pub use crate::backend::api::DropoutKey;

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
    let mut y = alloc(&d, &x.shape, x.dtype)?;
    d.run().dropout(&mut y, x, p, key)?;
    Ok(y)
}

/// dx = dy ⊙ mask / (1−p), the mask regenerated from `key`.
pub fn dropout_backward(dy: &Tensor, p: f32, key: DropoutKey) -> Result<Tensor> {
    dropout(dy, p, key)
}
