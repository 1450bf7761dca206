//! Layout ops on NCHW tensors: concatenation along C and its inverse (split), and the
//! NCHW ↔ NHWC permutation (a transpose of the last two axes of [n, rows, cols]).

use rayon::prelude::*;

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
