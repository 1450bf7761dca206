//! Losses: fused log-softmax + NLL against class targets, cross-entropy against soft targets,
//! mean-squared error. Each forward returns per-row losses; the ops layer averages.

use super::softmax::{last_axis, logsumexp};
use super::{binary, input, Cpu, HostOut};
use crate::backend::api::loss::{CrossEntropyBackward, LossOps, MaskedRows, NllOut};
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

impl LossOps for Cpu {
    fn nll(&self, out: NllOut, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let classes = last_axis(logits);
        let (z, t) = (input(logits)?, targets.i32s()?);
        nll_forward(&mut out.losses.f32s_mut()?, &z, &t, classes);
        for (v, &ti) in out.valid.f32s_mut()?.iter_mut().zip(t.iter()) {
            *v = if target_valid(ti, classes) { 1.0 } else { 0.0 };
        }
        Ok(())
    }
    fn nll_backward(&self, a: CrossEntropyBackward) -> Result<()> {
        let classes = last_axis(a.logits);
        let (z, t) = (input(a.logits)?, a.targets.i32s()?);
        let mut o = HostOut::new(a.dlogits)?;
        nll_backward(&mut o, &z, &t, classes, a.scale);
        o.finish()
    }
    fn soft_ce(&self, losses: &mut Tensor, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let classes = last_axis(logits);
        let (z, t) = (input(logits)?, input(targets)?);
        soft_ce_forward(&mut losses.f32s_mut()?, &z, &t, classes);
        Ok(())
    }
    fn soft_ce_backward(&self, a: CrossEntropyBackward) -> Result<()> {
        let classes = last_axis(a.logits);
        let (z, t) = (input(a.logits)?, input(a.targets)?);
        let mut o = HostOut::new(a.dlogits)?;
        soft_ce_backward(&mut o, &z, &t, classes, a.scale);
        o.finish()
    }
    fn mse(&self, sq: &mut Tensor, x: &Tensor, y: &Tensor) -> Result<()> {
        let (x, y) = (input(x)?, input(y)?);
        mse_forward(&mut sq.f32s_mut()?, &x, &y);
        Ok(())
    }
    fn mse_backward(&self, dx: &mut Tensor, x: &Tensor, y: &Tensor, scale: f32) -> Result<()> {
        binary(dx, x, y, |o, x, y| mse_backward(o, x, y, scale))
    }
    fn masked_row_mse(&self, row_loss: &mut Tensor, a: MaskedRows) -> Result<()> {
        let cols = last_axis(a.x);
        let (x, y, m) = (input(a.x)?, input(a.y)?, a.mask.f32s()?);
        masked_row_mse_forward(&mut row_loss.f32s_mut()?, &x, &y, &m, cols);
        Ok(())
    }
    fn masked_row_mse_backward(&self, dx: &mut Tensor, a: MaskedRows, scale: f32) -> Result<()> {
        let cols = last_axis(a.x);
        let (x, y, m) = (input(a.x)?, input(a.y)?, a.mask.f32s()?);
        let mut o = HostOut::new(dx)?;
        masked_row_mse_backward(&mut o, &x, &y, &m, cols, scale);
        o.finish()
    }
}

/// Targets below 0 (PyTorch's ignore_index −100) or ≥ the class count contribute nothing.
pub fn target_valid(t: i32, classes: usize) -> bool {
    t >= 0 && (t as usize) < classes
}

/// Per-row −log softmax(logits)[target]; 0 for ignored rows.
pub fn nll_forward(losses: &mut [f32], logits: &[f32], targets: &[i32], classes: usize) {
    losses
        .par_iter_mut()
        .zip(logits.par_chunks(classes).zip(targets.par_iter()))
        .for_each(|(l, (row, &t))| {
            *l = if target_valid(t, classes) {
                logsumexp(row) - row[t as usize]
            } else {
                0.0
            };
        });
}

/// dlogits = (softmax − onehot) · scale for valid rows, 0 for ignored rows.
pub fn nll_backward(
    dlogits: &mut [f32],
    logits: &[f32],
    targets: &[i32],
    classes: usize,
    scale: f32,
) {
    dlogits
        .par_chunks_mut(classes)
        .zip(logits.par_chunks(classes).zip(targets.par_iter()))
        .for_each(|(d, (row, &t))| {
            if !target_valid(t, classes) {
                d.fill(0.0);
                return;
            }
            let lse = logsumexp(row);
            for (i, (o, &v)) in d.iter_mut().zip(row).enumerate() {
                let p = (v - lse).exp();
                *o = (p - if i == t as usize { 1.0 } else { 0.0 }) * scale;
            }
        });
}

/// Per-row −Σ_c t_c log softmax(z)_c.
pub fn soft_ce_forward(losses: &mut [f32], logits: &[f32], targets: &[f32], classes: usize) {
    losses
        .par_iter_mut()
        .zip(logits.par_chunks(classes).zip(targets.par_chunks(classes)))
        .for_each(|(l, (row, t))| {
            let lse = logsumexp(row);
            *l = row
                .iter()
                .zip(t)
                .map(|(&z, &tc)| (tc * (lse - z)) as f64)
                .sum::<f64>() as f32;
        });
}

/// dlogits = (softmax · Σt − t) · scale.
pub fn soft_ce_backward(
    dlogits: &mut [f32],
    logits: &[f32],
    targets: &[f32],
    classes: usize,
    scale: f32,
) {
    dlogits
        .par_chunks_mut(classes)
        .zip(logits.par_chunks(classes).zip(targets.par_chunks(classes)))
        .for_each(|(d, (row, t))| {
            let lse = logsumexp(row);
            let ts: f32 = t.iter().sum();
            for ((o, &z), &tc) in d.iter_mut().zip(row).zip(t) {
                *o = ((z - lse).exp() * ts - tc) * scale;
            }
        });
}

/// Per-element squared error (x − y)².
pub fn mse_forward(sq: &mut [f32], x: &[f32], y: &[f32]) {
    sq.par_iter_mut()
        .zip(x.par_iter().zip(y.par_iter()))
        .with_min_len(4096)
        .for_each(|(o, (&a, &b))| *o = (a - b) * (a - b));
}

/// dx = 2 (x − y) · scale.
pub fn mse_backward(dx: &mut [f32], x: &[f32], y: &[f32], scale: f32) {
    dx.par_iter_mut()
        .zip(x.par_iter().zip(y.par_iter()))
        .with_min_len(4096)
        .for_each(|(o, (&a, &b))| *o = 2.0 * (a - b) * scale);
}

/// Per-row mean squared error times the row's mask weight (MAE: loss on masked patches only).
pub fn masked_row_mse_forward(
    row_loss: &mut [f32],
    x: &[f32],
    y: &[f32],
    mask: &[f32],
    cols: usize,
) {
    row_loss
        .par_iter_mut()
        .zip(x.par_chunks(cols).zip(y.par_chunks(cols)))
        .zip(mask.par_iter())
        .for_each(|((l, (xr, yr)), &m)| {
            let s: f64 = xr
                .iter()
                .zip(yr)
                .map(|(&a, &b)| ((a - b) as f64).powi(2))
                .sum();
            *l = (s / cols as f64) as f32 * m;
        });
}

/// dx = mask_r · 2 (x − y) / cols · scale.
pub fn masked_row_mse_backward(
    dx: &mut [f32],
    x: &[f32],
    y: &[f32],
    mask: &[f32],
    cols: usize,
    scale: f32,
) {
    dx.par_chunks_mut(cols)
        .zip(x.par_chunks(cols).zip(y.par_chunks(cols)))
        .zip(mask.par_iter())
        .for_each(|((d, (xr, yr)), &m)| {
            let f = m * 2.0 / cols as f32 * scale;
            for ((o, &a), &b) in d.iter_mut().zip(xr).zip(yr) {
                *o = (a - b) * f;
            }
        });
}
