//! Token bookkeeping: images ↔ patch rows, and row gathers with a fill vector.

use crate::tensor::Tensor;
use anyhow::Result;

/// The input of a row gather: src [B, Ns, C], i32 idx [B, Nd], and the row taken where
/// idx < 0 (`fill` [C], or zeros without one).
#[derive(Clone, Copy)]
pub struct GatherInput<'a> {
    pub src: &'a Tensor,
    pub idx: &'a Tensor,
    pub fill: Option<&'a Tensor>,
}

/// The gradients of a row gather: dsrc [B, Ns, C] written, dfill [C] accumulated when given.
pub struct GatherGrads<'a> {
    pub dsrc: &'a mut Tensor,
    pub dfill: Option<&'a mut Tensor>,
}

pub trait TokenOps {
    /// patches [B, (H/p)(W/p), C·p·p] from images [B, C, H, W] (written).
    fn patchify(&self, patches: &mut Tensor, img: &Tensor, p: usize) -> Result<()>;
    /// img [B, C, H, W] from patches [B, (H/p)(W/p), C·p·p] (written; the inverse of patchify).
    fn unpatchify(&self, img: &mut Tensor, patches: &Tensor, p: usize) -> Result<()>;
    /// out[b, i] = src[b, idx[b, i]] (src [B, Ns, C], i32 idx [B, Nd], out [B, Nd, C]); rows
    /// with idx < 0 take `fill` [C], or zeros without one (written).
    fn gather_rows(&self, out: &mut Tensor, a: GatherInput) -> Result<()>;
    /// dsrc[b, j] = Σ over i with idx[b, i] = j of dout[b, i] (dsrc [B, Ns, C], written), and
    /// dfill[c] += Σ over the rows with idx < 0 of dout (accumulated).
    fn gather_rows_backward(&self, g: GatherGrads, dout: &Tensor, idx: &Tensor) -> Result<()>;
}
