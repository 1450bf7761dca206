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
        let plan = BilinearPlan::new(hw(x), hw(out), align_corners);
        unary(out, x, |o, x| upsample_bilinear(o, x, &plan))
    }
    fn upsample_bilinear_backward(
        &self,
        dx: &mut Tensor,
        dy: &Tensor,
        align_corners: bool,
    ) -> Result<()> {
        let plan = BilinearPlan::new(hw(dx), hw(dy), align_corners);
        unary(dx, dy, |o, dy| upsample_bilinear_backward(o, dy, &plan))
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

/// Runs `f(out_plane, in_plane)` on every pair of planes in parallel (`out_len` and `in_len`
/// elements each); nothing when either plane is empty.
fn per_plane(
    out: &mut [f32],
    out_len: usize,
    x: &[f32],
    in_len: usize,
    f: impl Fn(&mut [f32], &[f32]) + Sync + Send,
) {
    if out_len == 0 || in_len == 0 {
        return;
    }
    out.par_chunks_mut(out_len)
        .zip(x.par_chunks(in_len))
        .for_each(|(o, xi)| f(o, xi));
}

/// Nearest neighbour ×k: out[.., y, x] = in[.., y / k, x / k]; `planes` = n·c.
pub fn upsample_nearest(out: &mut [f32], x: &[f32], h: usize, w: usize, k: usize) {
    let (ho, wo) = (h * k, w * k);
    per_plane(out, ho * wo, x, h * w, |o, xi| {
        for oy in 0..ho {
            for ox in 0..wo {
                o[oy * wo + ox] = xi[(oy / k) * w + ox / k];
            }
        }
    });
}

/// dx[.., y, x] = Σ over the k×k block of dy it was copied to (written).
pub fn upsample_nearest_backward(dx: &mut [f32], dy: &[f32], h: usize, w: usize, k: usize) {
    let wo = w * k;
    per_plane(dx, h * w, dy, h * k * wo, |d, g| {
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

/// The source rows and columns of every output row or column, with their weights.
type SrcTable = Vec<(usize, usize, f32)>;

/// A bilinear resize of [h, w] planes to [ho, wo]: [`bilinear_src`] for every output row and
/// every output column, computed once and shared by the forward and backward passes.
pub struct BilinearPlan {
    /// Input and output plane sizes h·w and ho·wo.
    in_len: usize,
    out_len: usize,
    /// Input and output widths.
    w: usize,
    wo: usize,
    ys: SrcTable,
    xs: SrcTable,
}

impl BilinearPlan {
    pub fn new((h, w): (usize, usize), (ho, wo): (usize, usize), align_corners: bool) -> Self {
        let (in_len, out_len) = (h * w, ho * wo);
        let table = |n_in, n_out| -> SrcTable {
            if in_len == 0 || out_len == 0 {
                return Vec::new();
            }
            (0..n_out)
                .map(|o| bilinear_src(o, n_in, n_out, align_corners))
                .collect()
        };
        BilinearPlan {
            in_len,
            out_len,
            w,
            wo,
            ys: table(h, ho),
            xs: table(w, wo),
        }
    }

    /// Calls `f(o, [i00, i01, i10, i11], ly, lx)` for every output index `o` of a plane, in
    /// order: the four source indices (rows y0, y1 × columns x0, x1) and the row and column
    /// weights of the second ones.
    fn for_each_tap(&self, mut f: impl FnMut(usize, [usize; 4], f32, f32)) {
        let (w, wo) = (self.w, self.wo);
        for (oy, &(y0, y1, ly)) in self.ys.iter().enumerate() {
            for (ox, &(x0, x1, lx)) in self.xs.iter().enumerate() {
                let src = [y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1];
                f(oy * wo + ox, src, ly, lx);
            }
        }
    }
}

/// Bilinear resize of each [h, w] plane to [ho, wo].
pub fn upsample_bilinear(out: &mut [f32], x: &[f32], plan: &BilinearPlan) {
    per_plane(out, plan.out_len, x, plan.in_len, |o, xi| {
        plan.for_each_tap(|i, [a, b, c, d], ly, lx| {
            let top = (1.0 - lx) * xi[a] + lx * xi[b];
            let bot = (1.0 - lx) * xi[c] + lx * xi[d];
            o[i] = (1.0 - ly) * top + ly * bot;
        })
    });
}

/// Backward of `upsample_bilinear` (written): each output gradient is scattered to its four
/// sources with the forward weights, plane by plane in a fixed order (deterministic).
pub fn upsample_bilinear_backward(dx: &mut [f32], dy: &[f32], plan: &BilinearPlan) {
    per_plane(dx, plan.in_len, dy, plan.out_len, |d, g| {
        d.fill(0.0);
        plan.for_each_tap(|i, [a, b, c, e], ly, lx| {
            let v = g[i];
            d[a] += (1.0 - ly) * (1.0 - lx) * v;
            d[b] += (1.0 - ly) * lx * v;
            d[c] += ly * (1.0 - lx) * v;
            d[e] += ly * lx * v;
        })
    });
}
