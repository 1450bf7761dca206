//! Layout ops on NCHW tensors: concatenation along C and its inverse (split), and the
//! NCHW ↔ NHWC permutation (a transpose of the last two axes of [n, rows, cols]).

use super::{input, unary, Cpu, HostOut};
use crate::backend::api::{ChannelsOps, StridedCopy};
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

impl ChannelsOps for Cpu {
    fn copy_strided(&self, dst: &mut Tensor, src: &Tensor, c: &StridedCopy) -> Result<()> {
        // `dst` keeps the values outside the copied blocks, and may share a buffer with `src`.
        let sv = input(src)?.into_owned();
        let mut d = HostOut::update(dst)?;
        copy_strided(
            &mut d,
            &sv,
            c.batch,
            c.len,
            c.dst_stride,
            c.dst_off,
            c.src_stride,
            c.src_off,
        );
        d.finish()
    }
    fn permute_last2(&self, out: &mut Tensor, x: &Tensor, rows: usize, cols: usize) -> Result<()> {
        unary(out, x, |o, x| transpose_last2(o, x, rows, cols))
    }
}

/// For each of `batch` entries, copies `len` contiguous values from
/// `src[b·src_stride + src_off ..]` to `dst[b·dst_stride + dst_off ..]`. Concatenation along C
/// is one such copy per input (dst_off = channel offset · hw); a split is the reverse copy.
#[allow(clippy::too_many_arguments)]
pub fn copy_strided(
    dst: &mut [f32],
    src: &[f32],
    batch: usize,
    len: usize,
    dst_stride: usize,
    dst_off: usize,
    src_stride: usize,
    src_off: usize,
) {
    for b in 0..batch {
        dst[b * dst_stride + dst_off..][..len]
            .copy_from_slice(&src[b * src_stride + src_off..][..len]);
    }
}

/// out[b, c, r] = x[b, r, c] for x of shape [batch, rows, cols].
pub fn transpose_last2(out: &mut [f32], x: &[f32], rows: usize, cols: usize) {
    let plane = rows * cols;
    if plane == 0 {
        return;
    }
    out.par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .for_each(|(o, xi)| {
            for r in 0..rows {
                for c in 0..cols {
                    o[c * rows + r] = xi[r * cols + c];
                }
            }
        });
}
