//! 2-D convolution, NCHW, square odd kernel (1×1 or 3×3), stride 1, padding k/2 ("same"),
//! groups 1, optional bias. Direct loops, one output plane per rayon task.

use super::{conv_backward, conv_forward, Cpu};
use crate::backend::api::conv1d::{ConvBackward, ConvInput};
use crate::backend::api::Conv2dOps;
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

impl Conv2dOps for Cpu {
    fn conv2d(&self, y: &mut Tensor, a: ConvInput, s: &Conv2dShape) -> Result<()> {
        conv_forward(y, a, |y, x, w, bias| conv2d(y, x, w, bias, s))
    }
    fn conv2d_backward(&self, a: ConvBackward, s: &Conv2dShape) -> Result<()> {
        conv_backward(
            a,
            |dw, db, dy, x| conv2d_backward_params(dw, db, dy, x, s),
            |dx, dy, w| conv2d_backward_input(dx, dy, w, s),
        )
    }
}

/// Shapes of one convolution: x [n, cin, h, w], weight [cout, cin, k, k], y [n, cout, h, w].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl Conv2dShape {
    pub fn pad(&self) -> usize {
        self.k / 2
    }
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    pub fn flops(&self) -> f64 {
        2.0 * (self.n * self.cout * self.hw() * self.cin * self.k * self.k) as f64
    }
}

/// The output rows (or columns) `o` in 0..len for which `o + t − p` lies in 0..len.
fn valid_range(t: usize, p: usize, len: usize) -> std::ops::Range<usize> {
    let lo = p.saturating_sub(t);
    let hi = (len + p).saturating_sub(t).min(len);
    lo..hi.max(lo)
}

/// Calls `f(ky, kx, oy, iy, cols)` for every kernel tap (ky, kx) and every output row `oy` it
/// reaches, `iy = oy + ky − p` its input row and `cols` the output columns whose input column
/// `ox + kx − p` lies inside the image; taps in row-major order, rows ascending (the order the
/// sums of the forward pass and the input gradient run in).
fn for_each_tap(
    s: &Conv2dShape,
    mut f: impl FnMut(usize, usize, usize, usize, std::ops::Range<usize>),
) {
    let (k, p) = (s.k, s.pad());
    for ky in 0..k {
        for kx in 0..k {
            let cols = valid_range(kx, p, s.w);
            for oy in valid_range(ky, p, s.h) {
                f(ky, kx, oy, oy + ky - p, cols.clone());
            }
        }
    }
}

/// y[n, co] = bias[co] + Σ_ci Σ_ky,kx w[co, ci, ky, kx] · x[n, ci, y + ky − p, x + kx − p].
pub fn conv2d(y: &mut [f32], x: &[f32], w: &[f32], bias: Option<&[f32]>, s: &Conv2dShape) {
    let (hw, k, p) = (s.hw(), s.k, s.pad());
    y.par_chunks_mut(hw.max(1))
        .enumerate()
        .for_each(|(plane, yp)| {
            let (n, co) = (plane / s.cout, plane % s.cout);
            yp.fill(bias.map_or(0.0, |b| b[co]));
            for ci in 0..s.cin {
                let xp = &x[(n * s.cin + ci) * hw..][..hw];
                for_each_tap(s, |ky, kx, oy, iy, cols| {
                    let wv = w[((co * s.cin + ci) * k + ky) * k + kx];
                    let yr = &mut yp[oy * s.w..][..s.w];
                    let xr = &xp[iy * s.w..][..s.w];
                    for ox in cols {
                        yr[ox] += wv * xr[ox + kx - p];
                    }
                });
            }
        });
}

/// dx[n, ci, iy, ix] = Σ_co Σ_ky,kx w[co, ci, ky, kx] · dy[n, co, iy − ky + p, ix − kx + p]
/// (written).
pub fn conv2d_backward_input(dx: &mut [f32], dy: &[f32], w: &[f32], s: &Conv2dShape) {
    let (hw, k, p) = (s.hw(), s.k, s.pad());
    dx.par_chunks_mut(hw.max(1))
        .enumerate()
        .for_each(|(plane, dxp)| {
            let (n, ci) = (plane / s.cin, plane % s.cin);
            dxp.fill(0.0);
            for co in 0..s.cout {
                let dyp = &dy[(n * s.cout + co) * hw..][..hw];
                for_each_tap(s, |ky, kx, oy, iy, cols| {
                    let wv = w[((co * s.cin + ci) * k + ky) * k + kx];
                    let dxr = &mut dxp[iy * s.w..][..s.w];
                    let dyr = &dyp[oy * s.w..][..s.w];
                    for ox in cols {
                        dxr[ox + kx - p] += wv * dyr[ox];
                    }
                });
            }
        });
}

/// dw[co, ci, ky, kx] += Σ_n Σ_y,x dy[n, co, y, x] · x[n, ci, y + ky − p, x + kx − p] and
/// dbias[co] += Σ_n Σ_y,x dy[n, co, y, x] (accumulated; sums in f64).
pub fn conv2d_backward_params(
    dw: &mut [f32],
    dbias: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    s: &Conv2dShape,
) {
    let (hw, k, p) = (s.hw(), s.k, s.pad());
    let per_co = s.cin * k * k;
    dw.par_chunks_mut(per_co.max(1))
        .enumerate()
        .for_each(|(co, dwc)| {
            for ci in 0..s.cin {
                for ky in 0..k {
                    for kx in 0..k {
                        let cols = valid_range(kx, p, s.w);
                        let mut acc = 0.0f64;
                        for n in 0..s.n {
                            let dyp = &dy[(n * s.cout + co) * hw..][..hw];
                            let xp = &x[(n * s.cin + ci) * hw..][..hw];
                            for oy in valid_range(ky, p, s.h) {
                                let iy = oy + ky - p;
                                let dyr = &dyp[oy * s.w..][..s.w];
                                let xr = &xp[iy * s.w..][..s.w];
                                let mut row = 0.0f32;
                                for ox in cols.clone() {
                                    row += dyr[ox] * xr[ox + kx - p];
                                }
                                acc += row as f64;
                            }
                        }
                        dwc[(ci * k + ky) * k + kx] += acc as f32;
                    }
                }
            }
        });
    if let Some(db) = dbias {
        db.par_iter_mut().enumerate().for_each(|(co, d)| {
            let mut acc = 0.0f64;
            for n in 0..s.n {
                acc += dy[(n * s.cout + co) * hw..][..hw]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            *d += acc as f32;
        });
    }
}
