//! Softmax over the last axis.

use super::*;

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
    cols("softmax", x)?;
    unary_op("softmax", x, |b, y, x| b.softmax(y, x))
}

/// dx from the forward output y and the output gradient dy.
pub fn softmax_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    cols("softmax_backward", y)?;
    check_like("softmax_backward", y, dy)?;
    let d = check_device("softmax_backward", &[y, dy])?;
    let mut dx = alloc(&d, &y.shape, y.dtype)?;
    d.run().softmax_backward(&mut dx, y, dy)?;
    Ok(dx)
}
