//! LayerNorm over the last axis.

use super::*;
use crate::backend::api::layer_norm::{LayerNormBackward, LayerNormOut};

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
    let mut y = alloc(&d, &x.shape, x.dtype)?;
    let mut mean = alloc(&d, &[rows], DType::F32)?;
    let mut rstd = alloc(&d, &[rows], DType::F32)?;
    let out = LayerNormOut {
        y: &mut y,
        mean: &mut mean,
        rstd: &mut rstd,
    };
    d.run().layer_norm(out, x, w, b, eps)?;
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
    check_same_dtype("layer_norm_backward", dw, w)?;
    check_same_dtype("layer_norm_backward", db, w)?;
    let d = check_device(
        "layer_norm_backward",
        &[dy, x, w, dw, db, &cache.mean, &cache.rstd],
    )?;
    let mut dx = alloc(&d, &x.shape, x.dtype)?;
    d.run().layer_norm_backward(LayerNormBackward {
        dx: &mut dx,
        dw,
        db,
        dy,
        x,
        w,
        mean: &cache.mean,
        rstd: &cache.rstd,
    })?;
    Ok(dx)
}
