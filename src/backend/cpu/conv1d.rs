//! 1-D convolution on NCW tensors (grouped, strided, zero-padded) and its companions for the
//! wav2vec2 encoder: weight norm over all dims but one, the [B, M, N] ↔ [B, N, M] transpose, and
//! a slice along one axis. Each has its backward pass. Reductions accumulate in f64, in a fixed
//! order, so results do not depend on the thread count.
//!
//! The backend's convolutions run as matrix products (`conv1d_gemm.rs`); the direct loops
//! [`conv1d`], [`conv1d_backward_input`] and [`conv1d_backward_params`] below are their f64
//! reference (checked against each other there) and the kernel emulation tests' oracle.

use super::conv1d_gemm as gemm;
use super::{conv_backward, conv_forward, input, unary, Cpu, HostOut};
use crate::backend::api::conv1d::{
    Conv1dOps, ConvBackward, ConvInput, SliceDims, WeightNormBackward, WeightNormInput,
};
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

impl Conv1dOps for Cpu {
    fn conv1d(&self, y: &mut Tensor, a: ConvInput, s: &Conv1dShape) -> Result<()> {
        conv_forward(y, a, |y, x, w, bias| gemm::conv1d(y, x, w, bias, s))
    }
    fn conv1d_backward(&self, a: ConvBackward, s: &Conv1dShape) -> Result<()> {
        conv_backward(
            a,
            |dw, db, dy, x| gemm::conv1d_backward_params(dw, db, dy, x, s),
            |dx, dy, w| gemm::conv1d_backward_input(dx, dy, w, s),
        )
    }
    fn weight_norm(&self, w: &mut Tensor, norm: &mut Tensor, a: WeightNormInput) -> Result<()> {
        let (gv, vv) = (input(a.g)?, input(a.v)?);
        let mut o = HostOut::new(w)?;
        weight_norm(
            &mut o,
            &mut norm.f32s_mut()?,
            WeightNormHost::of(a, &gv, &vv),
        );
        o.finish()
    }
    fn weight_norm_backward(&self, a: WeightNormBackward) -> Result<()> {
        // Accumulated through copies: dg and dv may be views of one gradient buffer.
        let mut dgv = input(a.dg)?.into_owned();
        let mut dvv = input(a.dv)?.into_owned();
        let (gv, vv) = (input(a.input.g)?, input(a.input.v)?);
        let p = WeightNormHost::of(a.input, &gv, &vv);
        weight_norm_backward((&mut dgv, &mut dvv), &input(a.dw)?, p, &a.norm.f32s()?);
        a.dg.write_f32(&dgv)?;
        a.dv.write_f32(&dvv)
    }
    fn transpose_last2(&self, out: &mut Tensor, x: &Tensor, m: usize, n: usize) -> Result<()> {
        let batch = x.numel() / (m * n).max(1);
        unary(out, x, |o, xv| transpose_last2(o, xv, batch, m, n))
    }
    fn slice_axis(&self, out: &mut Tensor, x: &Tensor, d: &SliceDims) -> Result<()> {
        unary(out, x, |o, xv| {
            slice_axis(o, xv, d.outer, d.len_in, d.inner, d.start, d.len)
        })
    }
    fn slice_axis_backward(&self, dx: &mut Tensor, dy: &Tensor, d: &SliceDims) -> Result<()> {
        unary(dx, dy, |o, dyv| {
            slice_axis_backward(o, dyv, d.outer, d.len_in, d.inner, d.start, d.len)
        })
    }
}

/// Shapes of one convolution: x [batch, cin, lin], w [cout, cin/groups, k], y [batch, cout, lout].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dShape {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub lin: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

impl Conv1dShape {
    /// Output length: (lin + 2·padding − k) / stride + 1 (None when the kernel does not fit).
    pub fn lout(&self) -> Option<usize> {
        let span = self.lin + 2 * self.padding;
        if self.stride == 0 || span < self.k {
            return None;
        }
        Some((span - self.k) / self.stride + 1)
    }
    pub fn cin_per_group(&self) -> usize {
        self.cin / self.groups
    }
    pub fn cout_per_group(&self) -> usize {
        self.cout / self.groups
    }
    /// The input position read by output `t` at tap `j` (None in the zero padding).
    #[inline]
    pub fn input_pos(&self, t: usize, j: usize) -> Option<usize> {
        let p = (t * self.stride + j) as isize - self.padding as isize;
        (p >= 0 && (p as usize) < self.lin).then_some(p as usize)
    }
    /// The outputs `t` in `0..lout` whose tap `j` reads the input (not the padding), as a range:
    /// `input_pos(t, j)` is `Some` exactly for these.
    pub fn reading_outputs(&self, j: usize, lout: usize) -> std::ops::Range<usize> {
        // t·stride + j − pad ∈ [0, lin)
        let lo = self.padding.saturating_sub(j).div_ceil(self.stride);
        let hi = match (self.lin + self.padding).checked_sub(j + 1) {
            Some(last) => (last / self.stride + 1).min(lout),
            None => 0,
        };
        lo.min(hi)..hi
    }
}

/// y[b, co, t] = bias[co] + Σ_{ci in co's group, j} w[co, ci, j] · x[b, ci, t·stride − pad + j].
pub fn conv1d(y: &mut [f32], x: &[f32], w: &[f32], bias: Option<&[f32]>, s: &Conv1dShape) {
    let lout = s.lout().unwrap_or(0);
    let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
    y.par_chunks_mut(lout.max(1))
        .enumerate()
        .for_each(|(row, yr)| {
            let (b, co) = (row / s.cout, row % s.cout);
            let g = co / cog;
            for (t, out) in yr.iter_mut().enumerate() {
                let mut acc = bias.map_or(0.0, |bv| bv[co] as f64);
                for cl in 0..cig {
                    let xr = &x[(b * s.cin + g * cig + cl) * s.lin..][..s.lin];
                    let wr = &w[(co * cig + cl) * s.k..][..s.k];
                    for (j, &wv) in wr.iter().enumerate() {
                        if let Some(p) = s.input_pos(t, j) {
                            acc += wv as f64 * xr[p] as f64;
                        }
                    }
                }
                *out = acc as f32;
            }
        });
}

/// dx[b, ci, p] = Σ over (co in ci's group, j, t with t·stride − pad + j = p) of
/// w[co, ci, j] · dy[b, co, t] (written).
pub fn conv1d_backward_input(dx: &mut [f32], dy: &[f32], w: &[f32], s: &Conv1dShape) {
    let lout = s.lout().unwrap_or(0);
    let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
    dx.par_chunks_mut(s.lin.max(1))
        .enumerate()
        .for_each(|(row, dxr)| {
            let (b, ci) = (row / s.cin, row % s.cin);
            let (g, cl) = (ci / cig, ci % cig);
            for (p, out) in dxr.iter_mut().enumerate() {
                let mut acc = 0.0f64;
                for co in g * cog..(g + 1) * cog {
                    let dyr = &dy[(b * s.cout + co) * lout..][..lout];
                    let wr = &w[(co * cig + cl) * s.k..][..s.k];
                    for (j, &wv) in wr.iter().enumerate() {
                        // t·stride = p + pad − j
                        let num = (p + s.padding) as isize - j as isize;
                        if num < 0 || !(num as usize).is_multiple_of(s.stride) {
                            continue;
                        }
                        let t = num as usize / s.stride;
                        if t < lout {
                            acc += wv as f64 * dyr[t] as f64;
                        }
                    }
                }
                *out = acc as f32;
            }
        });
}

/// dw[co, ci, j] += Σ_{b, t} dy[b, co, t] · x[b, ci, t·stride − pad + j];
/// db[co] += Σ_{b, t} dy[b, co, t] (both accumulated).
pub fn conv1d_backward_params(
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    s: &Conv1dShape,
) {
    let lout = s.lout().unwrap_or(0);
    let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
    dw.par_chunks_mut(s.k.max(1))
        .enumerate()
        .for_each(|(row, dwr)| {
            let (co, cl) = (row / cig, row % cig);
            let ci = (co / cog) * cig + cl;
            for (j, out) in dwr.iter_mut().enumerate() {
                let mut acc = 0.0f64;
                for b in 0..s.batch {
                    let dyr = &dy[(b * s.cout + co) * lout..][..lout];
                    let xr = &x[(b * s.cin + ci) * s.lin..][..s.lin];
                    for (t, &g) in dyr.iter().enumerate() {
                        if let Some(p) = s.input_pos(t, j) {
                            acc += g as f64 * xr[p] as f64;
                        }
                    }
                }
                *out += acc as f32;
            }
        });
    if let Some(db) = db {
        conv1d_bias_grad(db, dy, s);
    }
}

/// db[co] += Σ_{b, t} dy[b, co, t], in f64 (both forms of the weight gradient use it).
pub(super) fn conv1d_bias_grad(db: &mut [f32], dy: &[f32], s: &Conv1dShape) {
    let lout = s.lout().unwrap_or(0);
    db.par_iter_mut().enumerate().for_each(|(co, out)| {
        let mut acc = 0.0f64;
        for b in 0..s.batch {
            acc += dy[(b * s.cout + co) * lout..][..lout]
                .iter()
                .map(|&g| g as f64)
                .sum::<f64>();
        }
        *out += acc as f32;
    });
}

/// [`WeightNormInput`] read on the host: g, and v viewed as [outer, g.len(), inner].
#[derive(Clone, Copy)]
pub struct WeightNormHost<'s> {
    pub g: &'s [f32],
    pub v: &'s [f32],
    pub outer: usize,
    pub inner: usize,
}

impl<'s> WeightNormHost<'s> {
    /// `a`'s view with its g and v read as `g` and `v`.
    fn of(a: WeightNormInput, g: &'s [f32], v: &'s [f32]) -> Self {
        WeightNormHost {
            g,
            v,
            outer: a.outer,
            inner: a.inner,
        }
    }
}

/// Weight norm over every axis but one: v viewed as [outer, kdim, inner]; for each index k of the
/// kept axis, norm[k] = ‖v[:, k, :]‖ and w[:, k, :] = g[k] · v[:, k, :] / norm[k].
/// (PyTorch's `weight_norm(conv, dim=2)` on a [Cout, Cin/groups, K] weight: outer = Cout·Cin/groups,
/// kdim = K, inner = 1.)
pub fn weight_norm(w: &mut [f32], norm: &mut [f32], p: WeightNormHost) {
    let WeightNormHost { g, v, outer, inner } = p;
    let kdim = g.len();
    for k in 0..kdim {
        let mut ss = 0.0f64;
        for o in 0..outer {
            for i in 0..inner {
                let x = v[(o * kdim + k) * inner + i] as f64;
                ss += x * x;
            }
        }
        norm[k] = ss.sqrt() as f32;
    }
    for o in 0..outer {
        for k in 0..kdim {
            let f = g[k] / norm[k];
            for i in 0..inner {
                let e = (o * kdim + k) * inner + i;
                w[e] = v[e] * f;
            }
        }
    }
}

/// Backward of [`weight_norm`]: with s[k] = Σ dw·v over the slice,
/// dg[k] += s[k] / norm[k] and dv += (g/norm)·dw − (g·s/norm³)·v (both accumulated).
pub fn weight_norm_backward(
    (dg, dv): (&mut [f32], &mut [f32]),
    dw: &[f32],
    p: WeightNormHost,
    norm: &[f32],
) {
    let WeightNormHost { g, v, outer, inner } = p;
    let kdim = g.len();
    let mut s = vec![0.0f32; kdim];
    for k in 0..kdim {
        let mut acc = 0.0f64;
        for o in 0..outer {
            for i in 0..inner {
                let e = (o * kdim + k) * inner + i;
                acc += dw[e] as f64 * v[e] as f64;
            }
        }
        s[k] = acc as f32;
        dg[k] += s[k] / norm[k];
    }
    for o in 0..outer {
        for k in 0..kdim {
            let a = g[k] / norm[k];
            let c = g[k] * s[k] / (norm[k] * norm[k] * norm[k]);
            for i in 0..inner {
                let e = (o * kdim + k) * inner + i;
                dv[e] += a * dw[e] - c * v[e];
            }
        }
    }
}

/// out[b, n, m] = x[b, m, n]: [B, M, N] → [B, N, M] (NCW ↔ NWC). Its own backward with M and N
/// swapped.
pub fn transpose_last2(out: &mut [f32], x: &[f32], batch: usize, m: usize, n: usize) {
    for b in 0..batch {
        let xb = &x[b * m * n..][..m * n];
        let ob = &mut out[b * m * n..][..m * n];
        for i in 0..m {
            for j in 0..n {
                ob[j * m + i] = xb[i * n + j];
            }
        }
    }
}

/// x viewed as [outer, len_in, inner] → out [outer, len, inner] = x[:, start..start + len, :].
pub fn slice_axis(
    out: &mut [f32],
    x: &[f32],
    outer: usize,
    len_in: usize,
    inner: usize,
    start: usize,
    len: usize,
) {
    for o in 0..outer {
        let src = &x[(o * len_in + start) * inner..][..len * inner];
        out[o * len * inner..][..len * inner].copy_from_slice(src);
    }
}

/// Backward of [`slice_axis`]: dx [outer, len_in, inner] holds dy in the slice, zeros elsewhere
/// (written).
pub fn slice_axis_backward(
    dx: &mut [f32],
    dy: &[f32],
    outer: usize,
    len_in: usize,
    inner: usize,
    start: usize,
    len: usize,
) {
    dx.fill(0.0);
    for o in 0..outer {
        let dst = &mut dx[(o * len_in + start) * inner..][..len * inner];
        dst.copy_from_slice(&dy[o * len * inner..][..len * inner]);
    }
}
