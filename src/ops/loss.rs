//! Losses, each a mean over rows (or elements) with its backward pass.

use super::*;
use crate::backend::api::loss::{CrossEntropyBackward, MaskedRows, NllOut};
use crate::backend::Backend;

/// Σ of a tensor's values (the deterministic reduction of `ops::reduce`), read back.
fn total(x: &Tensor) -> Result<f32> {
    super::reduce::item(&super::reduce::sum(x)?)
}

/// A loss value and the count it was averaged over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossValue {
    pub loss: f32,
    pub count: usize,
}

fn rows_classes(op: &str, logits: &Tensor) -> Result<(usize, usize)> {
    check_float(op, "logits", logits)?;
    match logits.shape.last() {
        Some(&c) if c > 0 => Ok((logits.numel() / c, c)),
        _ => bail!(
            "{op}: logits need a non-empty class axis, found {:?}",
            logits.shape
        ),
    }
}

/// Fused log-softmax + NLL (PyTorch's `cross_entropy` with class targets): mean over rows whose
/// target is in [0, classes); others (e.g. −100) are ignored.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<LossValue> {
    let (rows, _classes) = rows_classes("cross_entropy", logits)?;
    if targets.dtype != DType::I32 || targets.numel() != rows {
        bail!("cross_entropy: targets must be i32 with {rows} elements (one per row of logits {:?}), found {} {:?}", logits.shape, targets.dtype, targets.shape);
    }
    let d = check_device("cross_entropy", &[logits, targets])?;
    let mut losses = alloc(&d, &[rows], DType::F32)?;
    let mut valid = alloc(&d, &[rows], DType::F32)?;
    d.run().nll(
        NllOut {
            losses: &mut losses,
            valid: &mut valid,
        },
        logits,
        targets,
    )?;
    let (sum, count) = (total(&losses)?, total(&valid)?.round() as usize);
    Ok(LossValue {
        loss: if count > 0 { sum / count as f32 } else { 0.0 },
        count,
    })
}

/// dlogits of `dloss · cross_entropy(logits, targets)`; `count` from the forward value.
pub fn cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    count: usize,
    dloss: f32,
) -> Result<Tensor> {
    let (rows, _classes) = rows_classes("cross_entropy_backward", logits)?;
    if targets.dtype != DType::I32 || targets.numel() != rows {
        bail!("cross_entropy_backward: targets must be i32 with {rows} elements");
    }
    let scale = if count > 0 { dloss / count as f32 } else { 0.0 };
    let op = "cross_entropy_backward";
    logits_backward(op, logits, targets, scale, |b, a| b.nll_backward(a))
}

/// Cross-entropy against soft targets (a distribution per row), mean over rows.
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<LossValue> {
    let (rows, _classes) = rows_classes("soft_cross_entropy", logits)?;
    check_like("soft_cross_entropy", logits, targets)?;
    let d = check_device("soft_cross_entropy", &[logits, targets])?;
    let mut losses = alloc(&d, &[rows], DType::F32)?;
    d.run().soft_ce(&mut losses, logits, targets)?;
    Ok(LossValue {
        loss: total(&losses)? / rows.max(1) as f32,
        count: rows,
    })
}

pub fn soft_cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    dloss: f32,
) -> Result<Tensor> {
    let (rows, _classes) = rows_classes("soft_cross_entropy_backward", logits)?;
    check_same_shape("soft_cross_entropy_backward", logits, targets)?;
    let scale = dloss / rows.max(1) as f32;
    let op = "soft_cross_entropy_backward";
    logits_backward(op, logits, targets, scale, |b, a| b.soft_ce_backward(a))
}

/// The logits' gradient of a cross-entropy, allocated on the inputs' device and written by
/// `run` (the device's backward for class or soft targets).
fn logits_backward(
    op: &str,
    logits: &Tensor,
    targets: &Tensor,
    scale: f32,
    run: fn(&dyn Backend, CrossEntropyBackward) -> Result<()>,
) -> Result<Tensor> {
    let d = check_device(op, &[logits, targets])?;
    let mut dlogits = alloc(&d, &logits.shape, logits.dtype)?;
    let a = CrossEntropyBackward {
        dlogits: &mut dlogits,
        logits,
        targets,
        scale,
    };
    run(d.run(), a)?;
    Ok(dlogits)
}

/// Mean squared error over all elements.
pub fn mse(x: &Tensor, y: &Tensor) -> Result<LossValue> {
    check_float("mse", "x", x)?;
    check_like("mse", x, y)?;
    let n = x.numel();
    if n == 0 {
        bail!("mse: empty tensors");
    }
    let d = check_device("mse", &[x, y])?;
    let mut sq = alloc(&d, &[n], DType::F32)?;
    d.run().mse(&mut sq, x, y)?;
    Ok(LossValue {
        loss: total(&sq)? / n as f32,
        count: n,
    })
}

/// dx of `dloss · mse(x, y)`.
pub fn mse_backward(x: &Tensor, y: &Tensor, dloss: f32) -> Result<Tensor> {
    check_same_shape("mse_backward", x, y)?;
    let scale = dloss / x.numel().max(1) as f32;
    let d = check_device("mse_backward", &[x, y])?;
    let mut g = alloc(&d, &x.shape, x.dtype)?;
    d.run().mse_backward(&mut g, x, y, scale)?;
    Ok(g)
}

fn masked_check(op: &str, x: &Tensor, y: &Tensor, mask: &Tensor) -> Result<(usize, usize)> {
    check_float(op, "x", x)?;
    check_like(op, x, y)?;
    let cols = *x.shape.last().unwrap_or(&0);
    if cols == 0 {
        bail!("{op}: empty rows");
    }
    let rows = x.numel() / cols;
    if mask.dtype != DType::F32 || mask.numel() != rows {
        bail!(
            "{op}: mask must be f32 with one weight per row ({rows}), found {} {:?}",
            mask.dtype,
            mask.shape
        );
    }
    Ok((rows, cols))
}

/// Σ_r mask_r · mean_c (x − y)² / Σ_r mask_r: MAE's loss over the masked patches (mask 1) only.
/// Returns (loss, Σ mask); the backward pass needs the sum.
pub fn masked_row_mse(x: &Tensor, y: &Tensor, mask: &Tensor) -> Result<(f32, f32)> {
    let (rows, _cols) = masked_check("masked_row_mse", x, y, mask)?;
    let d = check_device("masked_row_mse", &[x, y, mask])?;
    let msum = total(mask)?;
    let mut l = alloc(&d, &[rows], DType::F32)?;
    d.run().masked_row_mse(&mut l, MaskedRows { x, y, mask })?;
    let sum = total(&l)?;
    Ok((if msum > 0.0 { sum / msum } else { 0.0 }, msum))
}

/// dx of `dloss · masked_row_mse`, with `mask_sum` from the forward pass.
pub fn masked_row_mse_backward(
    x: &Tensor,
    y: &Tensor,
    mask: &Tensor,
    mask_sum: f32,
    dloss: f32,
) -> Result<Tensor> {
    masked_check("masked_row_mse_backward", x, y, mask)?;
    let scale = if mask_sum > 0.0 {
        dloss / mask_sum
    } else {
        0.0
    };
    let d = check_device("masked_row_mse_backward", &[x, y, mask])?;
    let mut g = alloc(&d, &x.shape, x.dtype)?;
    d.run()
        .masked_row_mse_backward(&mut g, MaskedRows { x, y, mask }, scale)?;
    Ok(g)
}
