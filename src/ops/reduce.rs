//! Whole-tensor reductions, returned as scalar f32 tensors on the input's device.

use super::*;

fn reduce(x: &Tensor, square: bool, scale: f32) -> Result<Tensor> {
    check_float("reduce", "x", x)?;
    let d = x.device();
    let mut out = alloc(&d, &[], DType::F32)?;
    d.run().sum(&mut out, x, square, scale)?;
    Ok(out)
}

/// Σ x. Backward: every element's gradient is the output gradient.
pub fn sum(x: &Tensor) -> Result<Tensor> {
    reduce(x, false, 1.0)
}

/// Σ x / n. Backward: the output gradient / n.
pub fn mean(x: &Tensor) -> Result<Tensor> {
    if x.numel() == 0 {
        bail!("mean of an empty tensor");
    }
    reduce(x, false, 1.0 / x.numel() as f32)
}

/// Σ x² (for gradient norms).
pub fn sum_squares(x: &Tensor) -> Result<Tensor> {
    reduce(x, true, 1.0)
}

/// The gradient of `sum`/`mean`: a tensor shaped like `x` filled with g (or g/n for mean).
pub fn reduce_backward(x: &Tensor, g: f32, is_mean: bool) -> Result<Tensor> {
    let v = if is_mean {
        g / x.numel().max(1) as f32
    } else {
        g
    };
    Tensor::from_f32(&x.shape, vec![v; x.numel()])?
        .to_dtype(x.dtype)?
        .to_device(&x.device())
}

/// A scalar tensor's value on the host.
pub fn item(x: &Tensor) -> Result<f32> {
    if x.numel() != 1 {
        bail!("item: expected one element, found shape {:?}", x.shape);
    }
    // A value the host waits for: `to_vec_f32` counts it on every device.
    Ok(x.to_vec_f32()?[0])
}
