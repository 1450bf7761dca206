//! Elementwise ops: residual add, bias add, GELU, scale, dtype casts.

use super::*;

/// a + b (residual connections). Backward: the output gradient flows to both inputs.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary_op("add", ("a", a), b, |d, out, a, b| d.add(out, a, b))
}

/// acc += x, in place (gradient accumulation; `acc` may be a view of a larger buffer).
pub fn add_assign(acc: &mut Tensor, x: &Tensor) -> Result<()> {
    check_float("add_assign", "acc", acc)?;
    check_same_dtype("add_assign", acc, x)?;
    check_same_shape("add_assign", acc, x)?;
    let d = check_device("add_assign", &[acc, x])?;
    let a = acc.clone();
    d.run().add(acc, &a, x)
}

/// x[..., c] + bias[c] (bias of any shape with that many elements). The bias gradient is `sum_rows` of the output gradient.
pub fn bias_add(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    check_float("bias_add", "x", x)?;
    check_same_dtype("bias_add", x, bias)?;
    let d = check_device("bias_add", &[x, bias])?;
    let cols = *x.shape.last().unwrap_or(&1);
    if bias.rank() != 1 || bias.shape[0] != cols {
        bail!(
            "bias_add: bias must have shape [{cols}] (the last dim of x {:?}), found {:?}",
            x.shape,
            bias.shape
        );
    }
    let mut out = alloc(&d, &x.shape, x.dtype)?;
    d.run().bias_add(&mut out, x, bias)?;
    Ok(out)
}

/// GELU, erf form (PyTorch's default): x Φ(x).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    unary_op("gelu", x, |b, out, x| b.gelu(out, x))
}

/// dx = dy · gelu'(x).
pub fn gelu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let op = "gelu_backward";
    binary_op(op, ("x", x), dy, |b, dx, x, dy| b.gelu_backward(dx, x, dy))
}

/// x *= s, in place.
pub fn scale_assign(x: &mut Tensor, s: f32) -> Result<()> {
    check_float("scale", "x", x)?;
    let d = x.device();
    d.run().scale(x, s)
}

/// f32 ↔ bf16 on the tensor's own device (round to nearest even); a copy when the dtype is
/// already `dtype`.
/// acc += x widened to f32, then x = 0, in one pass: acc f32, x bf16 of acc's shape (the
/// gradient store's hand-off of bf16 scratch into the fp32 gradients).
pub fn drain_add(acc: &mut Tensor, x: &mut Tensor) -> Result<()> {
    if acc.dtype != DType::F32 || x.dtype != DType::BF16 {
        bail!(
            "drain_add: expects an f32 accumulator and bf16 scratch, found {} and {}",
            acc.dtype,
            x.dtype
        );
    }
    check_same_shape("drain_add", acc, x)?;
    let d = check_device("drain_add", &[acc, x])?;
    d.run().drain_add(acc, x)
}

pub fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype == dtype {
        return x.try_clone();
    }
    check_float("cast", "x", x)?;
    if !dtype.is_float() {
        bail!("cast: conversion to {dtype} is not supported; labels are made as i32");
    }
    let d = x.device();
    let mut out = alloc(&d, &x.shape, dtype)?;
    d.run().cast(&mut out, x)?;
    Ok(out)
}
