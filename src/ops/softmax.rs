//! Softmax over the last axis.

use super::*;
use crate::backend::cpu::softmax as cpu;
use crate::backend::cuda::softmax as gpu;

fn cols(op: &str, x: &Tensor) -> Result<usize> {
    check_float(op, "x", x)?;
    match x.shape.last() {
        Some(&c) if c > 0 => Ok(c),
        _ => bail!(
            "{op}: needs a non-empty last axis, found shape {:?}",
            x.shape
        ),
    }
}

pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let c = cols("softmax", x)?;
    let d = x.device();
    if !d.is_cuda() {
        let mut y = vec![0.0; x.numel()];
        cpu::softmax(&mut y, &host(x)?, c);
        return from_host(&x.shape, y, x.dtype);
    }
    let y = output(&x.shape, x.dtype, &d)?;
    gpu::forward(backend(&d)?, dev(&y)?, dev(x)?, c)?;
    Ok(y)
}

/// dx from the forward output y and the output gradient dy.
pub fn softmax_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let c = cols("softmax_backward", y)?;
    check_same_shape("softmax_backward", y, dy)?;
    check_same_dtype("softmax_backward", y, dy)?;
    let d = check_device("softmax_backward", &[y, dy])?;
    if !d.is_cuda() {
        let mut dx = vec![0.0; y.numel()];
        cpu::softmax_backward(&mut dx, &host(y)?, &host(dy)?, c);
        return from_host(&y.shape, dx, y.dtype);
    }
    let dx = output(&y.shape, y.dtype, &d)?;
    gpu::backward(backend(&d)?, dev(&dx)?, dev(y)?, dev(dy)?, c)?;
    Ok(dx)
}
