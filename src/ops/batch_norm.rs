//! BatchNorm2d over NCHW (statistics per channel over N, H, W), train and eval modes.

use super::*;
use crate::backend::cpu::batch_norm as cpu;
use crate::backend::cuda::batch_norm as gpu;

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
    if !d.is_cuda() {
        let mut y = vec![0.0; x.numel()];
        let (mut mean, mut rstd) = (vec![0.0; c], vec![0.0; c]);
        let mut rm = running_mean.f32s()?.to_vec();
        let mut rv = running_var.f32s()?.to_vec();
        cpu::batch_norm_train(
            &mut y,
            &mut mean,
            &mut rstd,
            &mut rm,
            &mut rv,
            &host(x)?,
            &host(w)?,
            &host(b)?,
            n,
            hw,
            eps,
            momentum,
        );
        running_mean.f32s_mut()?.copy_from_slice(&rm);
        running_var.f32s_mut()?.copy_from_slice(&rv);
        return Ok((
            from_host(&x.shape, y, x.dtype)?,
            BatchNormCache {
                mean: Tensor::from_f32(&[c], mean)?,
                rstd: Tensor::from_f32(&[c], rstd)?,
            },
        ));
    }
    let y = output(&x.shape, x.dtype, &d)?;
    let mean = output(&[c], DType::F32, &d)?;
    let rstd = output(&[c], DType::F32, &d)?;
    gpu::forward_train(
        backend(&d)?,
        dev(&y)?,
        dev(&mean)?,
        dev(&rstd)?,
        dev(running_mean)?,
        dev(running_var)?,
        dev(x)?,
        dev(w)?,
        dev(b)?,
        n,
        hw,
        eps,
        momentum,
    )?;
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
    let (_, c, hw) = check(op, x, w, b)?;
    check_stat(op, "running_mean", running_mean, c)?;
    check_stat(op, "running_var", running_var, c)?;
    let d = check_device(op, &[x, w, b, running_mean, running_var])?;
    if !d.is_cuda() {
        let mut y = vec![0.0; x.numel()];
        cpu::batch_norm_eval(
            &mut y,
            &host(x)?,
            &host(w)?,
            &host(b)?,
            &running_mean.f32s()?,
            &running_var.f32s()?,
            hw,
            eps,
        );
        return from_host(&x.shape, y, x.dtype);
    }
    let y = output(&x.shape, x.dtype, &d)?;
    gpu::forward_eval(
        backend(&d)?,
        dev(&y)?,
        dev(x)?,
        dev(w)?,
        dev(b)?,
        dev(running_mean)?,
        dev(running_var)?,
        hw,
        eps,
    )?;
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
    let (n, c, hw) = check(op, x, w, w)?;
    check_same_shape(op, dy, x)?;
    check_same_dtype(op, dy, x)?;
    check_same_shape(op, dw, w)?;
    check_same_shape(op, db, w)?;
    check_same_dtype(op, dw, w)?;
    check_same_dtype(op, db, w)?;
    check_stat(op, "cache.mean", &cache.mean, c)?;
    check_stat(op, "cache.rstd", &cache.rstd, c)?;
    let d = check_device(op, &[dy, x, w, dw, db, &cache.mean, &cache.rstd])?;
    if !d.is_cuda() {
        let mut dx = vec![0.0; x.numel()];
        let mut dwv = host(dw)?.into_owned();
        let mut dbv = host(db)?.into_owned();
        cpu::batch_norm_backward(
            &mut dx,
            &mut dwv,
            &mut dbv,
            &host(dy)?,
            &host(x)?,
            &host(w)?,
            &cache.mean.f32s()?,
            &cache.rstd.f32s()?,
            n,
            hw,
        );
        *dw = from_host(&w.shape, dwv, dw.dtype)?;
        *db = from_host(&w.shape, dbv, db.dtype)?;
        return from_host(&x.shape, dx, x.dtype);
    }
    let dx = output(&x.shape, x.dtype, &d)?;
    gpu::backward(
        backend(&d)?,
        dev(&dx)?,
        dev(dw)?,
        dev(db)?,
        dev(dy)?,
        dev(x)?,
        dev(w)?,
        dev(&cache.mean)?,
        dev(&cache.rstd)?,
        n,
        hw,
    )?;
    Ok(dx)
}
