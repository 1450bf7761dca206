//! The binding layers of the fusion models (CPU twin of kernels/fusion.cu): projection + L2
//! normalisation, the scaled similarity matrix and the symmetric InfoNCE loss, with their
//! backward passes. Each function computes what its kernel computes, in f32 with the same
//! formulas (reductions in f64 here, a fixed tree there).

use super::{input, Cpu, HostOut};
use crate::backend::api::fusion::{
    FusionOps, InfonceBackward, ProjectBackward, ProjectOut, SimilarityBackward, SimilarityInput,
};
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

impl FusionOps for Cpu {
    fn project_l2norm(&self, out: ProjectOut, x: &Tensor, w: &Tensor, eps: f32) -> Result<()> {
        let (d_out, d_in) = (w.shape[0], w.shape[1]);
        let (xv, wv) = (input(x)?, input(w)?);
        let mut ev = HostOut::new(out.e)?;
        project_l2norm(
            &mut ev,
            &mut out.norm.f32s_mut()?,
            &xv,
            &wv,
            d_in,
            d_out,
            eps,
        );
        ev.finish()
    }
    fn project_l2norm_backward(&self, a: ProjectBackward) -> Result<()> {
        let (d_out, d_in) = (a.w.shape[0], a.w.shape[1]);
        let (x, w, e, de) = (input(a.x)?, input(a.w)?, input(a.e)?, input(a.de)?);
        let norm = a.norm.f32s()?;
        {
            let mut dz = a.dz.f32s_mut()?;
            l2norm_backward(&mut dz, &e, &de, &norm, d_out, a.eps);
        }
        let dz = a.dz.f32s()?;
        let mut dx = HostOut::new(a.dx)?;
        project_backward_dx(&mut dx, &dz, &w, d_in, d_out);
        dx.finish()?;
        let mut dw = HostOut::update(a.dw)?;
        project_backward_dw(&mut dw, &dz, &x, d_in, d_out);
        dw.finish()
    }
    fn similarity(&self, logits: &mut Tensor, a: SimilarityInput) -> Result<()> {
        let dim = a.ei.shape[1];
        let (ei, ew) = (input(a.ei)?, input(a.ew)?);
        let s = a.log_scale.f32s()?[0];
        let t = logit_scale(s, a.max_log_scale);
        similarity(&mut logits.f32s_mut()?, &ei, &ew, dim, t);
        Ok(())
    }
    fn infonce(&self, lse: &mut Tensor, losses: &mut Tensor, logits: &Tensor) -> Result<()> {
        let n = logits.shape[0];
        infonce(
            &mut lse.f32s_mut()?,
            &mut losses.f32s_mut()?,
            &logits.f32s()?,
            n,
        );
        Ok(())
    }
    fn infonce_backward(&self, a: InfonceBackward) -> Result<()> {
        let n = a.logits.shape[0];
        let (logits, lse) = (a.logits.f32s()?, a.lse.f32s()?);
        infonce_backward(&mut a.dlogits.f32s_mut()?, &logits, &lse, n, a.scale);
        Ok(())
    }
    fn similarity_backward(&self, a: SimilarityBackward) -> Result<()> {
        let fwd = a.input;
        let dim = fwd.ei.shape[1];
        let (ei, ew) = (input(fwd.ei)?, input(fwd.ew)?);
        let s = fwd.log_scale.f32s()?[0];
        let (logits, dl) = (a.logits.f32s()?, a.dlogits.f32s()?);
        let mut dei = HostOut::new(a.dei)?;
        let mut dew = HostOut::new(a.dew)?;
        let t = logit_scale(s, fwd.max_log_scale);
        similarity_backward(&mut dei, &mut dew, &dl, &ei, &ew, dim, t);
        dei.finish()?;
        dew.finish()?;
        let mut ds = a.dlog_scale.f32s_mut()?;
        ds[0] += log_scale_grad(&dl, &logits, s, fwd.max_log_scale);
        Ok(())
    }
}

/// The scale t = exp(min(s, max_log_scale)) (as the kernels compute it).
pub fn logit_scale(s: f32, max_log_scale: f32) -> f32 {
    s.min(max_log_scale).exp()
}

/// e [rows, d_out] = z / max(‖z‖, eps), z = x wᵀ; norm [rows] = ‖z‖.
pub fn project_l2norm(
    e: &mut [f32],
    norm: &mut [f32],
    x: &[f32],
    w: &[f32],
    d_in: usize,
    d_out: usize,
    eps: f32,
) {
    e.par_chunks_mut(d_out)
        .zip(norm.par_iter_mut())
        .zip(x.par_chunks(d_in))
        .for_each(|((er, nr), xr)| {
            let mut ss = 0f64;
            for (j, ej) in er.iter_mut().enumerate() {
                let wr = &w[j * d_in..(j + 1) * d_in];
                let z: f64 = xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
                *ej = z as f32;
                ss += (z as f32 as f64).powi(2);
            }
            let n = ss.sqrt() as f32;
            *nr = n;
            let inv = 1.0 / n.max(eps);
            er.iter_mut().for_each(|v| *v *= inv);
        });
}

/// dz [rows, d_out] from de: (de − e·⟨e, de⟩) / ‖z‖, or de / eps where ‖z‖ ≤ eps.
pub fn l2norm_backward(
    dz: &mut [f32],
    e: &[f32],
    de: &[f32],
    norm: &[f32],
    d_out: usize,
    eps: f32,
) {
    dz.par_chunks_mut(d_out)
        .zip(e.par_chunks(d_out).zip(de.par_chunks(d_out)))
        .zip(norm.par_iter())
        .for_each(|((dr, (er, gr)), &n)| {
            if n > eps {
                let dot: f64 = er.iter().zip(gr).map(|(&a, &b)| a as f64 * b as f64).sum();
                let (dot, inv) = (dot as f32, 1.0 / n);
                for ((d, &ev), &g) in dr.iter_mut().zip(er).zip(gr) {
                    *d = (g - ev * dot) * inv;
                }
            } else {
                let inv = 1.0 / eps;
                for (d, &g) in dr.iter_mut().zip(gr) {
                    *d = g * inv;
                }
            }
        });
}

/// dx [rows, d_in] = dz w.
pub fn project_backward_dx(dx: &mut [f32], dz: &[f32], w: &[f32], d_in: usize, d_out: usize) {
    dx.par_chunks_mut(d_in)
        .zip(dz.par_chunks(d_out))
        .for_each(|(xr, zr)| {
            for (k, v) in xr.iter_mut().enumerate() {
                let s: f64 = zr
                    .iter()
                    .enumerate()
                    .map(|(j, &g)| g as f64 * w[j * d_in + k] as f64)
                    .sum();
                *v = s as f32;
            }
        });
}

/// dw [d_out, d_in] += dzᵀ x.
pub fn project_backward_dw(dw: &mut [f32], dz: &[f32], x: &[f32], d_in: usize, d_out: usize) {
    let rows = dz.len() / d_out.max(1);
    dw.par_chunks_mut(d_in).enumerate().for_each(|(j, wr)| {
        for (k, v) in wr.iter_mut().enumerate() {
            let s: f64 = (0..rows)
                .map(|r| dz[r * d_out + j] as f64 * x[r * d_in + k] as f64)
                .sum();
            *v += s as f32;
        }
    });
}

/// logits [n_img, n_wave] = t ⟨ei_i, ew_j⟩, t the [`logit_scale`].
pub fn similarity(logits: &mut [f32], ei: &[f32], ew: &[f32], dim: usize, t: f32) {
    let n_wave = ew.len() / dim.max(1);
    logits
        .par_chunks_mut(n_wave.max(1))
        .zip(ei.par_chunks(dim.max(1)))
        .for_each(|(row, a)| {
            for (j, l) in row.iter_mut().enumerate() {
                let b = &ew[j * dim..(j + 1) * dim];
                let d: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
                *l = t * d as f32;
            }
        });
}

/// Row and column log-sum-exps of square logits [n, n] and the per-row / per-column losses.
pub fn infonce(lse: &mut [f32], losses: &mut [f32], logits: &[f32], n: usize) {
    let line = |i: usize, col: bool| -> f32 {
        let at = |j: usize| {
            if col {
                logits[j * n + i]
            } else {
                logits[i * n + j]
            }
        };
        let m = (0..n).map(at).fold(f32::NEG_INFINITY, f32::max);
        let s: f64 = (0..n).map(|j| ((at(j) - m) as f64).exp()).sum();
        m + (s as f32).ln()
    };
    for i in 0..n {
        lse[i] = line(i, false);
        lse[n + i] = line(i, true);
        losses[i] = lse[i] - logits[i * n + i];
        losses[n + i] = lse[n + i] - logits[i * n + i];
    }
}

/// dlogits = scale · (row softmax + column softmax − 2·I).
pub fn infonce_backward(dlogits: &mut [f32], logits: &[f32], lse: &[f32], n: usize, scale: f32) {
    for i in 0..n {
        for j in 0..n {
            let l = logits[i * n + j];
            let diag = if i == j { 2.0 } else { 0.0 };
            dlogits[i * n + j] = scale * ((l - lse[i]).exp() + (l - lse[n + j]).exp() - diag);
        }
    }
}

/// dei = t · dL · ew, dew = t · dLᵀ · ei, t the [`logit_scale`].
pub fn similarity_backward(
    dei: &mut [f32],
    dew: &mut [f32],
    dl: &[f32],
    ei: &[f32],
    ew: &[f32],
    dim: usize,
    t: f32,
) {
    let (ni, nw) = (ei.len() / dim.max(1), ew.len() / dim.max(1));
    scaled_products(dei, ew, dim, nw, t, |i, j| dl[i * nw + j]);
    scaled_products(dew, ei, dim, ni, t, |j, i| dl[i * nw + j]);
}

/// out[r, k] = t · Σ_{j < n} g(r, j) · other[j, k] for out [rows, dim] and other [n, dim]
/// (the sum in f64, in order of j).
fn scaled_products(
    out: &mut [f32],
    other: &[f32],
    dim: usize,
    n: usize,
    t: f32,
    g: impl Fn(usize, usize) -> f32 + Sync,
) {
    out.par_chunks_mut(dim.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            for (k, v) in row.iter_mut().enumerate() {
                let s: f64 = (0..n)
                    .map(|j| g(r, j) as f64 * other[j * dim + k] as f64)
                    .sum();
                *v = t * s as f32;
            }
        });
}

/// d s = Σ dL ⊙ L where s ≤ max_log_scale (the clamp passes no gradient above it).
pub fn log_scale_grad(dl: &[f32], logits: &[f32], s: f32, max_log_scale: f32) -> f32 {
    if s > max_log_scale {
        return 0.0;
    }
    dl.iter()
        .zip(logits)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum::<f64>() as f32
}
