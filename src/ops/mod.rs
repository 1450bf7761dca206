//! Tensor-level ops: check shapes, dtypes and devices, then run the CPU reference
//! (`backend::cpu`) or the CUDA kernels (`backend::cuda`). Each op family has a forward and a
//! backward; parameter gradients accumulate (`+=`), activation gradients are written (`=`).

pub mod attention;
pub mod batch_norm;
pub mod channels;
pub mod conv1d;
pub mod conv2d;
pub mod dropout;
pub mod elementwise;
pub mod fusion;
pub mod image_loss;
pub mod layer_norm;
pub mod loss;
pub mod matmul;
pub mod mel;
pub mod optim;
pub mod reduce;
pub mod relu;
pub mod softmax;
pub mod tokens;
pub mod upsample;
pub mod wav2vec2;

pub use attention::*;
pub use batch_norm::*;
pub use channels::*;
pub use conv1d::*;
pub use conv2d::*;
pub use dropout::*;
pub use elementwise::*;
pub use fusion::*;
pub use image_loss::*;
pub use layer_norm::*;
pub use loss::*;
pub use matmul::*;
pub use optim::*;
pub use reduce::*;
pub use relu::*;
pub use softmax::*;
pub use tokens::*;
pub use upsample::*;
pub use wav2vec2::*;

use crate::backend::{Backend, Device};
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};

/// An error unless `t` holds floats (f32 or bf16).
pub(crate) fn check_float(op: &str, what: &str, t: &Tensor) -> Result<()> {
    if !t.dtype.is_float() {
        bail!("{op}: {what} must be f32 or bf16, found {}", t.dtype);
    }
    Ok(())
}

/// An error unless every tensor lives on `ts[0]`'s device.
pub(crate) fn check_device(op: &str, ts: &[&Tensor]) -> Result<Device> {
    let d = ts[0].device();
    for t in &ts[1..] {
        if t.device() != d {
            bail!(
                "{op}: tensors are on different devices ({:?} and {:?}); move them with to_device",
                d,
                t.device()
            );
        }
    }
    Ok(d)
}

pub(crate) fn check_same_dtype(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype != b.dtype {
        bail!(
            "{op}: dtypes differ ({} and {}); convert one with to_dtype",
            a.dtype,
            b.dtype
        );
    }
    Ok(())
}

pub(crate) fn check_same_shape(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape != b.shape {
        bail!("{op}: shapes differ ({:?} and {:?})", a.shape, b.shape);
    }
    Ok(())
}

/// Checks that `a` is like `b`: the same shape, then the same dtype.
pub(crate) fn check_like(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    check_same_shape(op, a, b)?;
    check_same_dtype(op, a, b)
}

/// A one-input op on floats: allocates the output (x's shape and dtype, on x's device) and
/// lets `run` write it.
pub(crate) fn unary_op(
    op: &str,
    x: &Tensor,
    run: fn(&dyn Backend, &mut Tensor, &Tensor) -> Result<()>,
) -> Result<Tensor> {
    check_float(op, "x", x)?;
    let d = x.device();
    let mut out = alloc(&d, &x.shape, x.dtype)?;
    run(d.run(), &mut out, x)?;
    Ok(out)
}

/// A two-input op on floats of one shape and dtype on one device (a sum, or a backward pass
/// from the forward's input or output and dy): allocates the output like `a` (named `what`
/// in errors) and lets `run` write it.
pub(crate) fn binary_op(
    op: &str,
    (what, a): (&str, &Tensor),
    b: &Tensor,
    run: fn(&dyn Backend, &mut Tensor, &Tensor, &Tensor) -> Result<()>,
) -> Result<Tensor> {
    check_float(op, what, a)?;
    check_same_dtype(op, a, b)?;
    check_same_shape(op, a, b)?;
    let d = check_device(op, &[a, b])?;
    let mut out = alloc(&d, &a.shape, a.dtype)?;
    run(d.run(), &mut out, a, b)?;
    Ok(out)
}

/// An output of an op on `d`, from the device's allocator (its contents are overwritten).
pub(crate) fn alloc(d: &Device, shape: &[usize], dtype: DType) -> Result<Tensor> {
    d.backend().alloc(shape, dtype)
}
