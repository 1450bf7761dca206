//! ReLU and its backward pass (from the forward output).

use super::*;

/// y = max(x, 0).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    unary_op("relu", x, |b, y, x| b.relu(y, x))
}

/// dx = dy where y > 0, else 0; `y` is the forward output.
pub fn relu_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let op = "relu_backward";
    binary_op(op, ("y", y), dy, |b, dx, y, dy| b.relu_backward(dx, y, dy))
}
