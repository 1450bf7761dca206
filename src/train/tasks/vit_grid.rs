//! ViT tokens ↔ feature maps for the SFM heads: the patch tokens of `[B, 1 + N, C]` (the
//! cls row dropped) as `[B, C, h, w]`, and the way back for the gradient.

use crate::ops;
use crate::tensor::Tensor;
use anyhow::{bail, Result};

/// Row indices 1..=N per sample (the patch tokens), on the tokens' device.
pub struct Grid {
    idx: Tensor,
    rows: usize,
    h: usize,
    w: usize,
}

impl Grid {
    pub fn new(batch: usize, h: usize, w: usize, device: &crate::Device) -> Result<Self> {
        let n = h * w;
        let idx: Vec<i32> = (0..batch).flat_map(|_| 1..=n as i32).collect();
        Ok(Grid {
            idx: Tensor::from_i32(&[batch, n], idx)?.to_device(device)?,
            rows: n + 1,
            h,
            w,
        })
    }

    /// Tokens [B, 1 + h·w, C] → maps [B, C, h, w].
    pub fn to_maps(&self, tokens: &Tensor) -> Result<Tensor> {
        let [b, rows, c] = tokens.shape[..] else {
            bail!(
                "expected tokens [batch, rows, width], found {:?}",
                tokens.shape
            );
        };
        if rows != self.rows {
            bail!("expected {} token rows, found {rows}", self.rows);
        }
        let patches = ops::gather_rows(tokens, &self.idx, None)?;
        ops::nhwc_to_nchw(&patches.reshape(&[b, self.h, self.w, c])?)
    }

    /// d maps [B, C, h, w] → d tokens [B, 1 + h·w, C] (zero for the cls row).
    pub fn to_tokens(&self, dmaps: &Tensor) -> Result<Tensor> {
        let [b, c, h, w] = dmaps.shape[..] else {
            bail!(
                "expected maps [batch, width, h, w], found {:?}",
                dmaps.shape
            );
        };
        let d = ops::nchw_to_nhwc(dmaps)?.reshape(&[b, h * w, c])?;
        ops::gather_rows_backward(&d, &self.idx, self.rows, None)
    }
}
