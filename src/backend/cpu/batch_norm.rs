//! BatchNorm2d over NCHW: per channel, statistics over (N, H, W). Train mode normalises with the
//! batch mean and the biased variance and updates the running statistics with the unbiased
//! variance (as PyTorch); eval mode normalises with the running statistics.

use super::layer_norm::{with_norm_grads, with_norm_input, NormGrads, NormHost};
use super::{Cpu, HostOut};
use crate::backend::api::batch_norm::{BatchNormOps, BatchNormRunning, BatchNormTrainOut};
use crate::backend::api::layer_norm::{NormBackward, NormInput};
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

/// (n, h·w) of an NCHW tensor.
fn n_hw(x: &Tensor) -> (usize, usize) {
    (x.shape[0], x.shape[2] * x.shape[3])
}

impl BatchNormOps for Cpu {
    fn batch_norm_train(&self, out: BatchNormTrainOut, a: NormInput, momentum: f32) -> Result<()> {
        let (n, hw) = n_hw(a.x);
        // The running statistics are updated through copies: they may be views of one buffer
        // (the parameter store's values) that also holds w and b, whose read guards must be
        // gone before the copies are stored.
        let mut rm = out.running_mean.f32s()?.to_vec();
        let mut rv = out.running_var.f32s()?.to_vec();
        with_norm_input(a, |a| {
            let mut y = HostOut::new(out.y)?;
            let (mean, rstd) = (&mut out.mean.f32s_mut()?, &mut out.rstd.f32s_mut()?);
            batch_norm_train(&mut y, mean, rstd, (&mut rm, &mut rv), a, (n, hw), momentum);
            y.finish()
        })?;
        out.running_mean.f32s_mut()?.copy_from_slice(&rm);
        out.running_var.f32s_mut()?.copy_from_slice(&rv);
        Ok(())
    }
    fn batch_norm_eval(
        &self,
        y: &mut Tensor,
        a: NormInput,
        running: BatchNormRunning,
    ) -> Result<()> {
        let (_, hw) = n_hw(a.x);
        with_norm_input(a, |a| {
            let (rm, rv) = (running.mean.f32s()?, running.var.f32s()?);
            let mut o = HostOut::new(y)?;
            batch_norm_eval(&mut o, a, (&rm, &rv), hw);
            o.finish()
        })
    }
    fn batch_norm_backward(&self, a: NormBackward) -> Result<()> {
        anyhow::ensure!(
            a.dres.is_none(),
            "batch_norm_backward: no residual gradient"
        );
        let (n, hw) = n_hw(a.x);
        with_norm_grads(a, |g| batch_norm_backward(g, n, hw))
    }
}

/// Train-mode forward. Writes y, mean[c], rstd[c]; updates running_mean and running_var with
/// `momentum` (new = (1 − m)·old + m·batch, the variance unbiased by M/(M − 1), M = n·hw).
pub fn batch_norm_train(
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    (running_mean, running_var): (&mut [f32], &mut [f32]),
    a: NormHost,
    (n, hw): (usize, usize),
    momentum: f32,
) {
    let NormHost { x, w, eps, .. } = a;
    let c = w.len();
    let m = (n * hw) as f64;
    let stats: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut s = 0.0f64;
            for i in 0..n {
                s += x[(i * c + ch) * hw..][..hw]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            let mu = s / m;
            let mut v = 0.0f64;
            for i in 0..n {
                v += x[(i * c + ch) * hw..][..hw]
                    .iter()
                    .map(|&t| (t as f64 - mu).powi(2))
                    .sum::<f64>();
            }
            (mu, v / m)
        })
        .collect();
    for (ch, &(mu, var)) in stats.iter().enumerate() {
        mean[ch] = mu as f32;
        rstd[ch] = (1.0 / (var + eps as f64).sqrt()) as f32;
        let unbiased = if m > 1.0 { var * m / (m - 1.0) } else { var };
        running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mu as f32;
        running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * unbiased as f32;
    }
    apply(y, a, mean, rstd, hw);
}

/// Eval-mode forward with the running statistics: y = (x − rm)·(rv + eps)^−½·w + b.
pub fn batch_norm_eval(
    y: &mut [f32],
    a: NormHost,
    (running_mean, running_var): (&[f32], &[f32]),
    hw: usize,
) {
    let rstd: Vec<f32> = running_var
        .iter()
        .map(|&v| 1.0 / (v + a.eps).sqrt())
        .collect();
    apply(y, a, running_mean, &rstd, hw);
}

/// y = (x − mean)·rstd·w + b per channel (of x's w.len()), planes of `hw`.
fn apply(y: &mut [f32], a: NormHost, mean: &[f32], rstd: &[f32], hw: usize) {
    let NormHost { x, w, b, .. } = a;
    let c = w.len();
    y.par_chunks_mut(hw.max(1))
        .zip(x.par_chunks(hw.max(1)))
        .enumerate()
        .for_each(|(plane, (yp, xp))| {
            let ch = plane % c;
            let (mu, rs, wc, bc) = (mean[ch], rstd[ch], w[ch], b[ch]);
            for (o, &v) in yp.iter_mut().zip(xp) {
                *o = (v - mu) * rs * wc + bc;
            }
        });
}

/// Train-mode backward: dx = w·rstd·(dy − mean(dy) − x̂·mean(dy·x̂)) (written),
/// dw += Σ dy·x̂, db += Σ dy (accumulated), sums over (N, H, W) per channel.
pub fn batch_norm_backward(g: NormGrads, n: usize, hw: usize) {
    let (dy, x, w, mean, rstd) = (g.dy, g.x, g.w, g.mean, g.rstd);
    let (dx, dw, db) = (g.dx, g.dw, g.db);
    let c = w.len();
    let m = (n * hw) as f64;
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mu, rs) = (mean[ch], rstd[ch]);
            let (mut sdy, mut sdyx) = (0.0f64, 0.0f64);
            for i in 0..n {
                let off = (i * c + ch) * hw;
                for (&g, &v) in dy[off..off + hw].iter().zip(&x[off..off + hw]) {
                    sdy += g as f64;
                    sdyx += (g * ((v - mu) * rs)) as f64;
                }
            }
            (sdy, sdyx)
        })
        .collect();
    for (ch, &(sdy, sdyx)) in sums.iter().enumerate() {
        db[ch] += sdy as f32;
        dw[ch] += sdyx as f32;
    }
    dx.par_chunks_mut(hw.max(1))
        .enumerate()
        .for_each(|(plane, dxp)| {
            let ch = plane % c;
            let off = plane * hw;
            let (mu, rs) = (mean[ch], rstd[ch]);
            let mdy = (sums[ch].0 / m) as f32;
            let mdyx = (sums[ch].1 / m) as f32;
            let k = w[ch] * rs;
            for (j, o) in dxp.iter_mut().enumerate() {
                let xh = (x[off + j] - mu) * rs;
                *o = k * (dy[off + j] - mdy - xh * mdyx);
            }
        });
}
