//! LayerNorm over the last axis.

use super::*;
use crate::backend::cpu::layer_norm as cpu;
use crate::backend::cuda::layer_norm as gpu;

/// What the backward pass needs from the forward pass: per-row mean and 1/std (f32).
pub struct LayerNormCache {
    pub mean: Tensor,
    pub rstd: Tensor,
}

fn check(op: &str, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<(usize, usize)> {
    check_float(op, "x", x)?;
    check_same_dtype(op, x, w)?;
    check_same_dtype(op, x, b)?;
    let c = *x.shape.last().unwrap_or(&0);
    if w.shape != [c] || b.shape != [c] {
        bail!("{op}: weight and bias must have shape [{c}] (the last dim of x {:?}), found {:?} and {:?}", x.shape, w.shape, b.shape);
    }
    if c == 0 {
        bail!("{op}: the normalised axis is empty");
    }
    Ok((x.numel() / c, c))
}

pub fn layer_norm(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f32,
) -> Result<(Tensor, LayerNormCache)> {
    let (rows, _c) = check("layer_norm", x, w, b)?;
    let d = check_device("layer_norm", &[x, w, b])?;
    if !d.is_cuda() {
        let mut y = vec![0.0; x.numel()];
        let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
        cpu::layer_norm(
            &mut y,
            &mut mean,
            &mut rstd,
            &host(x)?,
            &host(w)?,
            &host(b)?,
            eps,
        );
        return Ok((
            from_host(&x.shape, y, x.dtype)?,
            LayerNormCache {
                mean: Tensor::from_f32(&[rows], mean)?,
                rstd: Tensor::from_f32(&[rows], rstd)?,
            },
        ));
    }
    let y = output(&x.shape, x.dtype, &d)?;
    let mean = output(&[rows], DType::F32, &d)?;
    let rstd = output(&[rows], DType::F32, &d)?;
    gpu::forward(
        backend(&d)?,
        dev(&y)?,
        dev(&mean)?,
        dev(&rstd)?,
        dev(x)?,
        dev(w)?,
        dev(b)?,
        eps,
    )?;
    Ok((y, LayerNormCache { mean, rstd }))
}

/// Returns dx; adds the weight and bias gradients into `dw` and `db`.
pub fn layer_norm_backward(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    cache: &LayerNormCache,
    dw: &mut Tensor,
    db: &mut Tensor,
) -> Result<Tensor> {
    check("layer_norm_backward", x, w, w)?;
    check_same_shape("layer_norm_backward", dy, x)?;
    check_same_dtype("layer_norm_backward", dy, x)?;
    check_same_shape("layer_norm_backward", dw, w)?;
    check_same_shape("layer_norm_backward", db, w)?;
    let d = check_device(
        "layer_norm_backward",
        &[dy, x, w, dw, db, &cache.mean, &cache.rstd],
    )?;
    if !d.is_cuda() {
        let mut dx = vec![0.0; x.numel()];
        let mut dwv = host(dw)?.into_owned();
        let mut dbv = host(db)?.into_owned();
        cpu::layer_norm_backward(
            &mut dx,
            &mut dwv,
            &mut dbv,
            &host(dy)?,
            &host(x)?,
            &host(w)?,
            &cache.mean.f32s()?,
            &cache.rstd.f32s()?,
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
    )?;
    Ok(dx)
}
