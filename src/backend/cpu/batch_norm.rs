//! BatchNorm2d over NCHW: per channel, statistics over (N, H, W). Train mode normalises with the
//! batch mean and the biased variance and updates the running statistics with the unbiased
//! variance (as PyTorch); eval mode normalises with the running statistics.

use rayon::prelude::*;

/// Train-mode forward. Writes y, mean[c], rstd[c]; updates running_mean and running_var with
/// `momentum` (new = (1 − m)·old + m·batch, the variance unbiased by M/(M − 1), M = n·hw).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: &[f32],
    n: usize,
    hw: usize,
    eps: f32,
    momentum: f32,
) {
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
    apply(y, x, w, b, mean, rstd, c, hw);
}

/// Eval-mode forward with the running statistics: y = (x − rm)·(rv + eps)^−½·w + b.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    hw: usize,
    eps: f32,
) {
    let rstd: Vec<f32> = running_var
        .iter()
        .map(|&v| 1.0 / (v + eps).sqrt())
        .collect();
    apply(y, x, w, b, running_mean, &rstd, w.len(), hw);
}

#[allow(clippy::too_many_arguments)]
fn apply(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: &[f32],
    mean: &[f32],
    rstd: &[f32],
    c: usize,
    hw: usize,
) {
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
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
    n: usize,
    hw: usize,
) {
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
