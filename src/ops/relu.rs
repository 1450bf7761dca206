//! ReLU and its backward pass (from the forward output).

use super::*;

/// y = max(x, 0).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    check_float("relu", "x", x)?;
    let d = x.device();
    let mut y = alloc(&d, &x.shape, x.dtype)?;
    d.run().relu(&mut y, x)?;
    Ok(y)
}

/// dx = dy where y > 0, else 0; `y` is the forward output.
pub fn relu_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    check_float("relu_backward", "y", y)?;
    check_same_dtype("relu_backward", y, dy)?;
    check_same_shape("relu_backward", y, dy)?;
    let d = check_device("relu_backward", &[y, dy])?;
    let mut dx = alloc(&d, &y.shape, y.dtype)?;
    d.run().relu_backward(&mut dx, y, dy)?;
    Ok(dx)
}
