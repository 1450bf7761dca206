//! ReLU and its backward pass (from the forward output).

use super::*;
use crate::backend::cpu::relu as cpu;
use crate::backend::cuda::relu as gpu;

/// y = max(x, 0).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    check_float("relu", "x", x)?;
    let d = x.device();
    if !d.is_cuda() {
        let mut y = vec![0.0; x.numel()];
        cpu::relu(&mut y, &host(x)?);
        return from_host(&x.shape, y, x.dtype);
    }
    let y = output(&x.shape, x.dtype, &d)?;
    gpu::forward(backend(&d)?, dev(&y)?, dev(x)?)?;
    Ok(y)
}

/// dx = dy where y > 0, else 0; `y` is the forward output.
pub fn relu_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    check_float("relu_backward", "y", y)?;
    check_same_dtype("relu_backward", y, dy)?;
    check_same_shape("relu_backward", y, dy)?;
    let d = check_device("relu_backward", &[y, dy])?;
    if !d.is_cuda() {
        let mut dx = vec![0.0; y.numel()];
        cpu::relu_backward(&mut dx, &host(y)?, &host(dy)?);
        return from_host(&y.shape, dx, y.dtype);
    }
    let dx = output(&y.shape, y.dtype, &d)?;
    gpu::backward(backend(&d)?, dev(&dx)?, dev(y)?, dev(dy)?)?;
    Ok(dx)
}
