//! The CPU reference backend: plain f32 functions on slices, one file per op family
//! mirroring `kernels/`. They are the oracle for the kernels and the fallback users run.
//! bf16 tensors are widened to f32, computed, and rounded back (round to nearest even), which
//! is exactly what the bf16 kernels do.

pub mod adamw;
pub mod attention;
#[cfg(target_arch = "x86_64")]
pub mod attention_narrow;
pub mod batch_norm;
pub mod channels;
pub mod conv1d;
pub mod conv1d_gemm;
pub mod conv2d;
pub mod dropout;
pub mod elementwise;
pub mod expf;
pub mod fusion;
pub mod gelu;
pub mod layer_norm;
pub mod loss;
pub mod matmul;
pub mod philox;
pub mod pool;
pub mod reduce;
pub mod relu;
pub mod softmax;
pub mod ssim;
pub mod stft_mel;
pub mod tokens;
pub mod upsample;
pub mod wav2vec2;

use crate::backend::api::Backend;
use crate::tensor::{CpuStorage, DType, HostF32, HostMut, Tensor};
use anyhow::{bail, Result};
use half::bf16;
use std::borrow::Cow;

/// The CPU backend (stateless: host memory, rayon threads).
pub struct Cpu;

/// The one CPU backend.
pub static CPU: Cpu = Cpu;

impl Backend for Cpu {
    fn name(&self) -> String {
        "cpu".into()
    }
    fn alloc(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::from_cpu(shape, pool::take_unset(dtype, crate::tensor::numel(shape)))
    }
    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::from_cpu(shape, pool::take_zeroed(dtype, crate::tensor::numel(shape)))
    }
    fn fill_zero(&self, t: &mut Tensor) -> Result<()> {
        match t.dtype {
            DType::F32 => t.f32s_mut()?.fill(0.0),
            DType::BF16 => t.host_mut::<bf16>()?.fill(bf16::ZERO),
            DType::I32 => t.host_mut::<i32>()?.fill(0),
        }
        Ok(())
    }
    fn copy(&self, dst: &mut Tensor, src: &Tensor) -> Result<()> {
        crate::backend::api::check_copy(dst, src)?;
        let v = src.to_cpu_storage()?;
        match v {
            CpuStorage::F32(v) => dst.f32s_mut()?.copy_from_slice(&v),
            CpuStorage::BF16(v) => dst.host_mut::<bf16>()?.copy_from_slice(&v),
            CpuStorage::I32(v) => dst.host_mut::<i32>()?.copy_from_slice(&v),
        }
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

/// An output view as an f32 slice. A whole f32 buffer (a freshly allocated output) is written
/// in place. Anything else goes through a scratch buffer stored by [`HostOut::finish`]: a bf16
/// view (rounded there, as the bf16 kernels round each element), and a view of part of a
/// buffer, such as one parameter's gradient inside the store's flat gradient buffer: an op may
/// write several such views of one buffer (a weight's and a bias's gradient), and each is
/// locked only for its own store.
pub enum HostOut<'a> {
    Direct(HostMut<'a, f32>),
    Deferred(Vec<f32>, &'a mut Tensor),
}

impl<'a> HostOut<'a> {
    /// For an output that is written: a deferred view starts from zeros.
    pub fn new(t: &'a mut Tensor) -> Result<Self> {
        match t.dtype {
            DType::F32 if t.is_whole() => Ok(HostOut::Direct(t.f32s_mut()?)),
            DType::F32 | DType::BF16 => Ok(HostOut::Deferred(vec![0.0; t.numel()], t)),
            DType::I32 => bail!("expected a float output, found i32"),
        }
    }
    /// For an output that is accumulated into: a deferred view starts from its current values.
    pub fn update(t: &'a mut Tensor) -> Result<Self> {
        match t.dtype {
            DType::F32 if t.is_whole() => Ok(HostOut::Direct(t.f32s_mut()?)),
            DType::F32 | DType::BF16 => {
                let v = t.host_f32()?.into_owned();
                Ok(HostOut::Deferred(v, t))
            }
            DType::I32 => bail!("expected a float output, found i32"),
        }
    }
    /// Stores a deferred output's values (rounded for bf16); a no-op for a direct one.
    pub fn finish(self) -> Result<()> {
        match self {
            HostOut::Direct(_) => Ok(()),
            HostOut::Deferred(v, t) => t.write_f32(&v),
        }
    }
}

impl std::ops::Deref for HostOut<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            HostOut::Direct(g) => g,
            HostOut::Deferred(v, _) => v,
        }
    }
}

impl std::ops::DerefMut for HostOut<'_> {
    fn deref_mut(&mut self) -> &mut [f32] {
        match self {
            HostOut::Direct(g) => g,
            HostOut::Deferred(v, _) => v,
        }
    }
}

/// A float input view's values as f32 (borrowed when f32).
pub fn input(t: &Tensor) -> Result<HostF32<'_>> {
    t.host_f32()
}

/// A one-input op on host slices: `f(out, x)` with x read as f32 and out written (rounded
/// when it is bf16).
pub fn unary(out: &mut Tensor, x: &Tensor, f: impl FnOnce(&mut [f32], &[f32])) -> Result<()> {
    let x = input(x)?;
    let mut o = HostOut::new(out)?;
    f(&mut o, &x);
    o.finish()
}

/// A two-input op on host slices: `f(out, a, b)`, as [`unary`].
pub fn binary(
    out: &mut Tensor,
    a: &Tensor,
    b: &Tensor,
    f: impl FnOnce(&mut [f32], &[f32], &[f32]),
) -> Result<()> {
    let (a, b) = (input(a)?, input(b)?);
    let mut o = HostOut::new(out)?;
    f(&mut o, &a, &b);
    o.finish()
}

/// A convolution's forward pass on host slices: `conv(y, x, w, bias)` with the inputs read
/// as f32 and y written.
pub fn conv_forward(
    y: &mut Tensor,
    a: crate::backend::api::ConvInput,
    conv: impl FnOnce(&mut [f32], &[f32], &[f32], Option<&[f32]>),
) -> Result<()> {
    let (xv, wv) = (input(a.x)?, input(a.w)?);
    let bv = a.bias.map(input).transpose()?;
    let mut o = HostOut::new(y)?;
    conv(&mut o, &xv, &wv, bv.as_deref());
    o.finish()
}

/// A convolution's backward pass on host slices: `params(dw, db, dy, x)` adds the weight and
/// (when given) bias gradients, `input_grad(dx, dy, w)` writes the input gradient (when
/// asked). dw and db are accumulated through f32 copies: they may be views of one gradient
/// buffer, so neither stays borrowed while the other is written.
pub fn conv_backward(
    a: crate::backend::api::ConvBackward,
    params: impl FnOnce(&mut [f32], Option<&mut [f32]>, &[f32], &[f32]),
    input_grad: impl FnOnce(&mut [f32], &[f32], &[f32]),
) -> Result<()> {
    let dyv = input(a.dy)?;
    let mut dwv = input(a.dw)?.into_owned();
    let mut dbv = match a.db.as_deref() {
        Some(t) => Some(input(t)?.into_owned()),
        None => None,
    };
    params(&mut dwv, dbv.as_deref_mut(), &dyv, &input(a.x)?);
    a.dw.write_f32(&dwv)?;
    if let (Some(db), Some(v)) = (a.db, dbv) {
        db.write_f32(&v)?;
    }
    if let Some(dx) = a.dx {
        let wv = input(a.w)?;
        let mut o = HostOut::new(dx)?;
        input_grad(&mut o, &dyv, &wv);
        o.finish()?;
    }
    Ok(())
}

/// f32 → bf16, round to nearest even (bit-identical to `f32_to_bf16` in common.cuh).
pub fn f32_to_bf16(f: f32) -> bf16 {
    let u = f.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return bf16::from_bits((((u >> 16) & 0x8000) | 0x7fc0) as u16);
    }
    let u = u.wrapping_add(0x7fff + ((u >> 16) & 1));
    bf16::from_bits((u >> 16) as u16)
}

/// The values of a float buffer as f32 (borrowed when already f32).
pub fn widen(c: &CpuStorage) -> Cow<'_, [f32]> {
    match c {
        CpuStorage::F32(v) => Cow::Borrowed(v),
        CpuStorage::BF16(v) => Cow::Owned(v.iter().map(|x| x.to_f32()).collect()),
        CpuStorage::I32(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
    }
}

/// f32 results stored as `like`'s float dtype.
pub fn narrow(v: Vec<f32>, like: crate::tensor::DType) -> CpuStorage {
    match like {
        crate::tensor::DType::BF16 => CpuStorage::BF16(v.into_iter().map(f32_to_bf16).collect()),
        _ => CpuStorage::F32(v),
    }
}

/// Below this many elements a loop runs on one thread (rayon's overhead would dominate).
pub const PAR_MIN: usize = 1 << 14;
