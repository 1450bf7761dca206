//! LayerNorm over the last axis.

use super::*;
use crate::backend::api::layer_norm::{
    LayerNormOut, NormBackward, NormInput, Residual, ADD_NORM_MAX_COLS,
};
use crate::backend::Backend;

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
    let [mut y, mut mean, mut rstd] = norm_outputs(&d, x, rows)?;
    let out = LayerNormOut {
        y: &mut y,
        mean: &mut mean,
        rstd: &mut rstd,
    };
    d.run().layer_norm(out, NormInput { x, w, b, eps })?;
    Ok((y, LayerNormCache { mean, rstd }))
}

/// s = x + r and LayerNorm(s), fused (a pre-norm block's residual connection and the norm
/// after it): returns (s, y, cache). The same values as `add` then `layer_norm`.
pub fn add_layer_norm(
    x: &Tensor,
    r: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor, LayerNormCache)> {
    let op = "add_layer_norm";
    let (rows, c) = check(op, x, w, b)?;
    check_like(op, r, x)?;
    if c > ADD_NORM_MAX_COLS {
        let s = super::add(x, r)?;
        let (y, cache) = layer_norm(&s, w, b, eps)?;
        return Ok((s, y, cache));
    }
    let d = check_device(op, &[x, r, w, b])?;
    let [mut y, mut mean, mut rstd] = norm_outputs(&d, x, rows)?;
    let mut s = alloc(&d, &x.shape, x.dtype)?;
    let out = LayerNormOut {
        y: &mut y,
        mean: &mut mean,
        rstd: &mut rstd,
    };
    let res = Residual { r, sum: &mut s };
    d.run()
        .add_layer_norm(out, NormInput { x, w, b, eps }, res)?;
    Ok((s, y, LayerNormCache { mean, rstd }))
}

/// Returns dx (plus `dres`, a residual branch's gradient that meets it, where given); adds
/// the weight and bias gradients into `dw` and `db`.
pub fn layer_norm_backward(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    cache: &LayerNormCache,
    (dw, db): (&mut Tensor, &mut Tensor),
    dres: Option<&Tensor>,
) -> Result<Tensor> {
    let op = "layer_norm_backward";
    check(op, x, w, w)?;
    if let Some(r) = dres {
        check_like(op, r, x)?;
    }
    let stats = [&cache.mean, &cache.rstd];
    norm_backward(op, dy, x, w, stats, (dw, db, dres), |b, a| {
        b.layer_norm_backward(a)
    })
}

/// The outputs of a LayerNorm or train-mode BatchNorm forward pass on `d`: y like x, and the
/// mean and 1/std (f32) of each of the `stats` rows (LayerNorm) or channels (BatchNorm).
pub(super) fn norm_outputs(d: &Device, x: &Tensor, stats: usize) -> Result<[Tensor; 3]> {
    Ok([
        alloc(d, &x.shape, x.dtype)?,
        alloc(d, &[stats], DType::F32)?,
        alloc(d, &[stats], DType::F32)?,
    ])
}

/// What the LayerNorm and BatchNorm backward passes share once their own checks are done: dy
/// must be like x, dw and db like w, all on one device with the statistics (mean, rstd);
/// allocates dx and lets `run` call the device's backward (`dres`: LayerNorm's residual
/// gradient added to dx, None for BatchNorm).
pub(super) fn norm_backward(
    op: &str,
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    [mean, rstd]: [&Tensor; 2],
    (dw, db, dres): (&mut Tensor, &mut Tensor, Option<&Tensor>),
    run: fn(&dyn Backend, NormBackward) -> Result<()>,
) -> Result<Tensor> {
    check_like(op, dy, x)?;
    check_same_shape(op, dw, w)?;
    check_same_shape(op, db, w)?;
    check_same_dtype(op, dw, w)?;
    check_same_dtype(op, db, w)?;
    let mut all = vec![dy, x, w, &*dw, &*db, mean, rstd];
    all.extend(dres);
    let d = check_device(op, &all)?;
    let mut dx = alloc(&d, &x.shape, x.dtype)?;
    let a = NormBackward {
        dx: &mut dx,
        dw,
        db,
        dy,
        x,
        w,
        mean,
        rstd,
        dres,
    };
    run(d.run(), a)?;
    Ok(dx)
}
