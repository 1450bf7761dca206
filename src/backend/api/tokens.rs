//! Token bookkeeping: images ↔ patch rows, and row gathers with a fill vector.

use crate::tensor::Tensor;
use anyhow::Result;

pub trait TokenOps {
    /// patches [B, (H/p)(W/p), C·p·p] from images [B, C, H, W] (written).
    fn patchify(&self, patches: &mut Tensor, img: &Tensor, p: usize) -> Result<()>;
    /// img [B, C, H, W] from patches [B, (H/p)(W/p), C·p·p] (written; the inverse of patchify).
    fn unpatchify(&self, img: &mut Tensor, patches: &Tensor, p: usize) -> Result<()>;
    /// out[b, i] = src[b, idx[b, i]] (src [B, Ns, C], i32 idx [B, Nd], out [B, Nd, C]); rows
    /// with idx < 0 take `fill` [C], or zeros without one (written).
    fn gather_rows(
        &self,
        out: &mut Tensor,
        src: &Tensor,
        idx: &Tensor,
        fill: Option<&Tensor>,
    ) -> Result<()>;
    /// dsrc[b, j] = Σ over i with idx[b, i] = j of dout[b, i] (dsrc [B, Ns, C], written), and
    /// dfill[c] += Σ over the rows with idx < 0 of dout (accumulated).
    fn gather_rows_backward(
        &self,
        dsrc: &mut Tensor,
        dfill: Option<&mut Tensor>,
        dout: &Tensor,
        idx: &Tensor,
    ) -> Result<()>;
}
