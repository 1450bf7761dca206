//! Elementwise ops: residual add, bias add, GELU, scale, dtype casts.

use super::*;
use crate::backend::cpu::elementwise as cpu;
use crate::backend::cuda::elementwise as gpu;

/// a + b (residual connections). Backward: the output gradient flows to both inputs.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_float("add", "a", a)?;
    check_same_dtype("add", a, b)?;
    check_same_shape("add", a, b)?;
    let d = check_device("add", &[a, b])?;
    if !d.is_cuda() {
        let mut out = vec![0.0; a.numel()];
        cpu::add(&mut out, &host(a)?, &host(b)?);
        return from_host(&a.shape, out, a.dtype);
    }
    let out = output(&a.shape, a.dtype, &d)?;
    gpu::add(backend(&d)?, dev(&out)?, dev(a)?, dev(b)?)?;
    Ok(out)
}

/// acc += x (gradient accumulation).
pub fn add_assign(acc: &mut Tensor, x: &Tensor) -> Result<()> {
    let sum = add(acc, x)?;
    *acc = sum;
    Ok(())
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
    if !d.is_cuda() {
        let mut out = vec![0.0; x.numel()];
        cpu::bias_add(&mut out, &host(x)?, &host(bias)?);
        return from_host(&x.shape, out, x.dtype);
    }
    let out = output(&x.shape, x.dtype, &d)?;
    gpu::bias_add(backend(&d)?, dev(&out)?, dev(x)?, dev(bias)?)?;
    Ok(out)
}

/// GELU, erf form (PyTorch's default): x Φ(x).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    check_float("gelu", "x", x)?;
    let d = x.device();
    if !d.is_cuda() {
        let mut out = vec![0.0; x.numel()];
        cpu::gelu(&mut out, &host(x)?);
        return from_host(&x.shape, out, x.dtype);
    }
    let out = output(&x.shape, x.dtype, &d)?;
    gpu::gelu(backend(&d)?, dev(&out)?, dev(x)?)?;
    Ok(out)
}

/// dx = dy · gelu'(x).
pub fn gelu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    check_float("gelu_backward", "x", x)?;
    check_same_dtype("gelu_backward", x, dy)?;
    check_same_shape("gelu_backward", x, dy)?;
    let d = check_device("gelu_backward", &[x, dy])?;
    if !d.is_cuda() {
        let mut out = vec![0.0; x.numel()];
        cpu::gelu_backward(&mut out, &host(x)?, &host(dy)?);
        return from_host(&x.shape, out, x.dtype);
    }
    let out = output(&x.shape, x.dtype, &d)?;
    gpu::gelu_backward(backend(&d)?, dev(&out)?, dev(x)?, dev(dy)?)?;
    Ok(out)
}

/// x *= s, in place.
pub fn scale_assign(x: &mut Tensor, s: f32) -> Result<()> {
    check_float("scale", "x", x)?;
    if x.is_cpu() {
        let mut v = x.host_f32()?.into_owned();
        cpu::scale(&mut v, s);
        return x.write_f32(&v);
    }
    let d = x.device();
    gpu::scale(backend(&d)?, dev(x)?, s)
}

/// f32 ↔ bf16 on the tensor's own device (round to nearest even).
pub fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype == dtype {
        return x.try_clone();
    }
    let d = x.device();
    if !d.is_cuda() {
        return x.to_dtype(dtype);
    }
    let out = output(&x.shape, dtype, &d)?;
    gpu::cast(backend(&d)?, dev(&out)?, dev(x)?)?;
    Ok(out)
}
