//! LayerNorm over the last axis: y = (x − mean) · rstd · w + b, with the mean and rstd kept
//! for the backward pass.

use super::{input, Cpu, HostOut};
use crate::backend::api::elementwise::ElementwiseOps;
use crate::backend::api::layer_norm::{
    LayerNormOps, LayerNormOut, NormBackward, NormInput, Residual,
};
use anyhow::Result;
use rayon::prelude::*;

impl LayerNormOps for Cpu {
    fn layer_norm(&self, out: LayerNormOut, a: NormInput) -> Result<()> {
        with_norm_input(a, |a| {
            let mut y = HostOut::new(out.y)?;
            layer_norm(
                &mut y,
                &mut out.mean.f32s_mut()?,
                &mut out.rstd.f32s_mut()?,
                a,
            );
            y.finish()
        })
    }
    /// The unfused pair: the twin of the fused kernel gives the same bits as `add` and
    /// `layer_norm` called one after the other.
    fn add_layer_norm(&self, out: LayerNormOut, a: NormInput, res: Residual) -> Result<()> {
        self.add(res.sum, a.x, res.r)?;
        self.layer_norm(out, NormInput { x: res.sum, ..a })
    }
    fn layer_norm_backward(&self, a: NormBackward) -> Result<()> {
        if let Some(dres) = a.dres {
            // LayerNorm's dx, stored, then the residual gradient added (as `add_assign`)
            let dx = a.dx.clone();
            self.layer_norm_backward(NormBackward { dres: None, ..a })?;
            let mut out = dx.clone();
            return self.add(&mut out, &dx, dres);
        }
        with_norm_grads(a, layer_norm_backward)
    }
}

/// [`NormInput`] read on the host: x, the affine parameters w and b, and eps.
#[derive(Clone, Copy)]
pub struct NormHost<'s> {
    pub x: &'s [f32],
    pub w: &'s [f32],
    pub b: &'s [f32],
    pub eps: f32,
}

/// Runs `f` on the host values of a normalisation's input (LayerNorm, BatchNorm).
pub(super) fn with_norm_input(a: NormInput, f: impl FnOnce(NormHost) -> Result<()>) -> Result<()> {
    let (x, w, b) = (input(a.x)?, input(a.w)?, input(a.b)?);
    f(NormHost {
        x: &x,
        w: &w,
        b: &b,
        eps: a.eps,
    })
}

/// The host slices of a LayerNorm or BatchNorm backward pass ([`NormBackward`] read as f32):
/// the inputs, then dx (written) and dw and db (accumulated).
pub struct NormGrads<'s> {
    pub dy: &'s [f32],
    pub x: &'s [f32],
    pub w: &'s [f32],
    pub mean: &'s [f32],
    pub rstd: &'s [f32],
    pub dx: &'s mut [f32],
    pub dw: &'s mut [f32],
    pub db: &'s mut [f32],
}

/// Runs `f` on the host slices of a norm backward pass and stores the results. dw and db
/// accumulate through copies: they may be views of one gradient buffer.
pub(super) fn with_norm_grads(a: NormBackward, f: impl FnOnce(NormGrads)) -> Result<()> {
    let mut dw = input(a.dw)?.into_owned();
    let mut db = input(a.db)?.into_owned();
    {
        let (dy, x, w) = (input(a.dy)?, input(a.x)?, input(a.w)?);
        let (mean, rstd) = (a.mean.f32s()?, a.rstd.f32s()?);
        let mut dx = HostOut::new(a.dx)?;
        f(NormGrads {
            dy: &dy,
            x: &x,
            w: &w,
            mean: &mean,
            rstd: &rstd,
            dx: &mut dx,
            dw: &mut dw,
            db: &mut db,
        });
        dx.finish()?;
    }
    a.dw.write_f32(&dw)?;
    a.db.write_f32(&db)
}

/// Forward over rows of length `w.len()`; writes y, mean[rows], rstd[rows].
pub fn layer_norm(y: &mut [f32], mean: &mut [f32], rstd: &mut [f32], a: NormHost) {
    let NormHost { x, w, b, eps } = a;
    let c = w.len();
    y.par_chunks_mut(c)
        .zip(x.par_chunks(c))
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .for_each(|((yr, xr), (m, r))| {
            let mu = xr.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
            let var = xr.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / c as f64;
            let rs = 1.0 / (var + eps as f64).sqrt();
            for i in 0..c {
                yr[i] = (((xr[i] as f64 - mu) * rs) as f32) * w[i] + b[i];
            }
            *m = mu as f32;
            *r = rs as f32;
        });
}

/// Backward: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·w (written);
/// dw += Σ dy·x̂ and db += Σ dy over rows (accumulated).
pub fn layer_norm_backward(g: NormGrads) {
    let (dy, x, w, mean, rstd) = (g.dy, g.x, g.w, g.mean, g.rstd);
    let (dx, dw, db) = (g.dx, g.dw, g.db);
    let c = w.len();
    dx.par_chunks_mut(c)
        .zip(dy.par_chunks(c).zip(x.par_chunks(c)))
        .zip(mean.par_iter().zip(rstd.par_iter()))
        .for_each(|((dxr, (dyr, xr)), (&m, &r))| {
            let (mut sg, mut sgx) = (0.0f64, 0.0f64);
            for i in 0..c {
                let xh = (xr[i] - m) * r;
                let g = dyr[i] * w[i];
                sg += g as f64;
                sgx += (g * xh) as f64;
            }
            let (mg, mgx) = ((sg / c as f64) as f32, (sgx / c as f64) as f32);
            for i in 0..c {
                let xh = (xr[i] - m) * r;
                dxr[i] = r * (dyr[i] * w[i] - mg - xh * mgx);
            }
        });
    let mut adw = vec![0.0f64; c];
    let mut adb = vec![0.0f64; c];
    for ((dyr, xr), (&m, &r)) in dy.chunks(c).zip(x.chunks(c)).zip(mean.iter().zip(rstd)) {
        for i in 0..c {
            adw[i] += (dyr[i] * (xr[i] - m) * r) as f64;
            adb[i] += dyr[i] as f64;
        }
    }
    for i in 0..c {
        dw[i] += adw[i] as f32;
        db[i] += adb[i] as f32;
    }
}
