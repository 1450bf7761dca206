//! BatchNorm2d over NCHW (statistics per channel over N, H, W), train and eval modes.

use super::*;
use crate::backend::api::batch_norm::{BatchNormRunning, BatchNormTrainOut};
use crate::backend::api::layer_norm::NormInput;

/// What the train-mode backward pass needs: per-channel batch mean and 1/std (f32, [C]).
pub struct BatchNormCache {
    pub mean: Tensor,
    pub rstd: Tensor,
}

/// Checks x [n, c, h, w] against weight and bias [c]; returns (n, c, h·w).
fn check(op: &str, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<(usize, usize, usize)> {
    check_float(op, "x", x)?;
    check_same_dtype(op, x, w)?;
    check_same_dtype(op, x, b)?;
    if x.rank() != 4 {
        bail!("{op}: x must be NCHW (4-D), found shape {:?}", x.shape);
    }
    let c = x.shape[1];
    if w.shape != [c] || b.shape != [c] {
        bail!(
            "{op}: weight and bias must have shape [{c}] (the channels of x {:?}), found {:?} and {:?}",
            x.shape,
            w.shape,
            b.shape
        );
    }
    Ok((x.shape[0], c, x.shape[2] * x.shape[3]))
}

fn check_stat(op: &str, what: &str, t: &Tensor, c: usize) -> Result<()> {
    if t.dtype != DType::F32 || t.shape != [c] {
        bail!(
            "{op}: {what} must be f32 with shape [{c}], found {} {:?}",
            t.dtype,
            t.shape
        );
    }
    Ok(())
}

/// Train mode: normalises with the batch mean and biased variance, and updates the running
/// statistics in place (momentum as PyTorch, e.g. 0.1; the running variance takes the unbiased
/// batch variance).
pub fn batch_norm_train(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    running_mean: &mut Tensor,
    running_var: &mut Tensor,
    eps: f32,
    momentum: f32,
) -> Result<(Tensor, BatchNormCache)> {
    let op = "batch_norm_train";
    let (n, c, hw) = check(op, x, w, b)?;
    check_stat(op, "running_mean", running_mean, c)?;
    check_stat(op, "running_var", running_var, c)?;
    if n * hw < 2 {
        bail!(
            "{op}: training needs more than one value per channel, found x of shape {:?}",
            x.shape
        );
    }
    let d = check_device(op, &[x, w, b, running_mean, running_var])?;
    let [mut y, mut mean, mut rstd] = super::layer_norm::norm_outputs(&d, x, c)?;
    let out = BatchNormTrainOut {
        y: &mut y,
        mean: &mut mean,
        rstd: &mut rstd,
        running_mean,
        running_var,
    };
    d.run()
        .batch_norm_train(out, NormInput { x, w, b, eps }, momentum)?;
    Ok((y, BatchNormCache { mean, rstd }))
}

/// Eval mode: normalises with the running statistics.
pub fn batch_norm_eval(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    let op = "batch_norm_eval";
    let (_, c, _) = check(op, x, w, b)?;
    check_stat(op, "running_mean", running_mean, c)?;
    check_stat(op, "running_var", running_var, c)?;
    let d = check_device(op, &[x, w, b, running_mean, running_var])?;
    let mut y = alloc(&d, &x.shape, x.dtype)?;
    let running = BatchNormRunning {
        mean: running_mean,
        var: running_var,
    };
    d.run()
        .batch_norm_eval(&mut y, NormInput { x, w, b, eps }, running)?;
    Ok(y)
}

/// Train-mode backward: returns dx; adds the weight and bias gradients into `dw` and `db`.
pub fn batch_norm_backward(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    cache: &BatchNormCache,
    dw: &mut Tensor,
    db: &mut Tensor,
) -> Result<Tensor> {
    let op = "batch_norm_backward";
    let (_, c, _) = check(op, x, w, w)?;
    check_stat(op, "cache.mean", &cache.mean, c)?;
    check_stat(op, "cache.rstd", &cache.rstd, c)?;
    let stats = [&cache.mean, &cache.rstd];
    super::layer_norm::norm_backward(op, dy, x, w, stats, (dw, db, None), |b, a| {
        b.batch_norm_backward(a)
    })
}
