//! Resampling of NCHW planes, PyTorch's `F.interpolate` semantics: nearest by an integer
//! factor, and bilinear to a given size with align_corners=False or True.

use super::{unary, Cpu};
use crate::backend::api::UpsampleOps;
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

/// (height, width) of an NCHW tensor (`ops` checked the rank).
fn hw(t: &Tensor) -> (usize, usize) {
    (t.shape[2], t.shape[3])
}

impl UpsampleOps for Cpu {
    fn upsample_nearest(&self, out: &mut Tensor, x: &Tensor, k: usize) -> Result<()> {
        let (h, w) = hw(x);
        unary(out, x, |o, x| upsample_nearest(o, x, h, w, k))
    }
    fn upsample_nearest_backward(&self, dx: &mut Tensor, dy: &Tensor, k: usize) -> Result<()> {
        let (h, w) = hw(dx);
        unary(dx, dy, |o, dy| upsample_nearest_backward(o, dy, h, w, k))
    }
    fn upsample_bilinear(&self, out: &mut Tensor, x: &Tensor, align_corners: bool) -> Result<()> {
        let (from, to) = (hw(x), hw(out));
        unary(out, x, |o, x| {
            upsample_bilinear(o, x, from, to, align_corners)
        })
    }
    fn upsample_bilinear_backward(
        &self,
        dx: &mut Tensor,
        dy: &Tensor,
        align_corners: bool,
    ) -> Result<()> {
        let (from, to) = (hw(dx), hw(dy));
        unary(dx, dy, |o, dy| {
            upsample_bilinear_backward(o, dy, from, to, align_corners)
        })
    }
}

/// Bilinear source position of output index `dst` along an axis of `in_len` → `out_len`.
/// align_corners=False: src = max((dst + 0.5)·scale − 0.5, 0) with scale = in/out;
/// align_corners=True: src = dst·scale with scale = (in − 1)/(out − 1) (0 when out = 1).
/// Returns (i0, i1, λ1): the value is (1 − λ1)·v[i0] + λ1·v[i1], i1 = min(i0 + 1, in − 1).
/// Computed in f32 exactly as the kernel (and PyTorch's CPU/CUDA code for f32) does.
pub fn bilinear_src(
    dst: usize,
    in_len: usize,
    out_len: usize,
    align_corners: bool,
) -> (usize, usize, f32) {
    let src = if align_corners {
        let scale = if out_len > 1 {
            (in_len - 1) as f32 / (out_len - 1) as f32
        } else {
            0.0
        };
        scale * dst as f32
    } else {
        let scale = in_len as f32 / out_len as f32;
        (scale * (dst as f32 + 0.5) - 0.5).max(0.0)
    };
    let i0 = (src as usize).min(in_len - 1);
    let i1 = if i0 < in_len - 1 { i0 + 1 } else { i0 };
    (i0, i1, src - i0 as f32)
}

/// Nearest neighbour ×k: out[.., y, x] = in[.., y / k, x / k]; `planes` = n·c.
pub fn upsample_nearest(out: &mut [f32], x: &[f32], h: usize, w: usize, k: usize) {
    let (ho, wo) = (h * k, w * k);
    if ho * wo == 0 {
        return;
    }
    out.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(h * w))
        .for_each(|(o, xi)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    o[oy * wo + ox] = xi[(oy / k) * w + ox / k];
                }
            }
        });
}

/// dx[.., y, x] = Σ over the k×k block of dy it was copied to (written).
pub fn upsample_nearest_backward(dx: &mut [f32], dy: &[f32], h: usize, w: usize, k: usize) {
    let (ho, wo) = (h * k, w * k);
    if h * w == 0 {
        return;
    }
    dx.par_chunks_mut(h * w)
        .zip(dy.par_chunks(ho * wo))
        .for_each(|(d, g)| {
            for iy in 0..h {
                for ix in 0..w {
                    let mut s = 0.0f32;
                    for a in 0..k {
                        for b in 0..k {
                            s += g[(iy * k + a) * wo + ix * k + b];
                        }
                    }
                    d[iy * w + ix] = s;
                }
            }
        });
}

/// The source rows and columns of every output row and column, with their weights.
type SrcTable = Vec<(usize, usize, f32)>;

/// [`bilinear_src`] for every output row and every output column.
fn bilinear_tables(
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
    align_corners: bool,
) -> (SrcTable, SrcTable) {
    let table = |n_in, n_out| -> SrcTable {
        (0..n_out)
            .map(|o| bilinear_src(o, n_in, n_out, align_corners))
            .collect()
    };
    (table(h, ho), table(w, wo))
}

/// Bilinear resize of each [h, w] plane to [ho, wo].
pub fn upsample_bilinear(
    out: &mut [f32],
    x: &[f32],
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
    align_corners: bool,
) {
    if ho * wo == 0 || h * w == 0 {
        return;
    }
    let (ys, xs) = bilinear_tables((h, w), (ho, wo), align_corners);
    out.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(h * w))
        .for_each(|(o, xi)| {
            for (oy, &(y0, y1, ly)) in ys.iter().enumerate() {
                for (ox, &(x0, x1, lx)) in xs.iter().enumerate() {
                    let top = (1.0 - lx) * xi[y0 * w + x0] + lx * xi[y0 * w + x1];
                    let bot = (1.0 - lx) * xi[y1 * w + x0] + lx * xi[y1 * w + x1];
                    o[oy * wo + ox] = (1.0 - ly) * top + ly * bot;
                }
            }
        });
}

/// Backward of `upsample_bilinear` (written): each output gradient is scattered to its four
/// sources with the forward weights, plane by plane in a fixed order (deterministic).
pub fn upsample_bilinear_backward(
    dx: &mut [f32],
    dy: &[f32],
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
    align_corners: bool,
) {
    if ho * wo == 0 || h * w == 0 {
        return;
    }
    let (ys, xs) = bilinear_tables((h, w), (ho, wo), align_corners);
    dx.par_chunks_mut(h * w)
        .zip(dy.par_chunks(ho * wo))
        .for_each(|(d, g)| {
            d.fill(0.0);
            for (oy, &(y0, y1, ly)) in ys.iter().enumerate() {
                for (ox, &(x0, x1, lx)) in xs.iter().enumerate() {
                    let v = g[oy * wo + ox];
                    d[y0 * w + x0] += (1.0 - ly) * (1.0 - lx) * v;
                    d[y0 * w + x1] += (1.0 - ly) * lx * v;
                    d[y1 * w + x0] += ly * (1.0 - lx) * v;
                    d[y1 * w + x1] += ly * lx * v;
                }
            }
        });
}
