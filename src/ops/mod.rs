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

use crate::backend::cuda::CudaBuf;
use crate::backend::Device;
use crate::tensor::{DType, Storage, Tensor};
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
    crate::backend::counters::count_launch();
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

/// A CPU tensor's values as f32.
pub(crate) fn host(t: &Tensor) -> Result<crate::tensor::HostF32<'_>> {
    t.host_f32()
}

/// A CUDA tensor's buffer (whole-buffer tensors only: the launch wrappers take buffers).
pub(crate) fn dev(t: &Tensor) -> Result<&CudaBuf> {
    match t.storage() {
        Storage::Cuda(s) if t.is_whole() => Ok(&s.buf),
        Storage::Cuda(_) => bail!("this op does not take views of part of a CUDA buffer yet"),
        Storage::Cpu(_) => bail!("expected a CUDA tensor, found a CPU one"),
    }
}

/// A new CPU tensor from f32 values stored as `dtype`.
pub(crate) fn from_host(shape: &[usize], v: Vec<f32>, dtype: DType) -> Result<Tensor> {
    Tensor::from_cpu(shape, crate::backend::cpu::narrow(v, dtype))
}

/// A new tensor on `device` whose contents the caller will overwrite.
pub(crate) fn output(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::zeros(shape, dtype, device)
}

/// An output of an op on `d`, from the device's allocator (its contents are overwritten).
pub(crate) fn alloc(d: &Device, shape: &[usize], dtype: DType) -> Result<Tensor> {
    d.backend().alloc(shape, dtype)
}

/// The CUDA backend of a device (for the CUDA arm of an op).
pub(crate) fn backend(d: &Device) -> Result<&std::sync::Arc<crate::backend::cuda::CudaBackend>> {
    match d {
        Device::Cuda(b) => Ok(b),
        Device::Cpu => bail!("expected a CUDA device"),
    }
}
