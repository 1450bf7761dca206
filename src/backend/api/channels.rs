//! Layout ops on NCHW tensors: strided block copies (concatenation along C and its inverse)
//! and the NCHW ↔ NHWC permutation.

use crate::tensor::Tensor;
use anyhow::Result;

/// For each of `batch` entries, `len` contiguous values from `src[b·src_stride + src_off ..]`
/// to `dst[b·dst_stride + dst_off ..]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StridedCopy {
    pub batch: usize,
    pub len: usize,
    pub dst_stride: usize,
    pub dst_off: usize,
    pub src_stride: usize,
    pub src_off: usize,
}

pub trait ChannelsOps {
    /// Writes the blocks of `dst` that `c` describes from `src`; the rest of `dst` is kept.
    fn copy_strided(&self, dst: &mut Tensor, src: &Tensor, c: &StridedCopy) -> Result<()>;
    /// out[b, c, r] = x[b, r, c] for x viewed as [batch, rows, cols] (written).
    fn permute_last2(&self, out: &mut Tensor, x: &Tensor, rows: usize, cols: usize) -> Result<()>;
}
