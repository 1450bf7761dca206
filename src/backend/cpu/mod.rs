//! The CPU reference backend: plain f32 functions on slices, one file per op family
//! mirroring `kernels/`. They are the oracle for the kernels and the fallback users run.
//! bf16 tensors are widened to f32, computed, and rounded back (round to nearest even), which
//! is exactly what the bf16 kernels do.

pub mod adamw;
pub mod attention;
pub mod batch_norm;
pub mod channels;
pub mod conv1d;
pub mod conv2d;
pub mod dropout;
pub mod elementwise;
pub mod layer_norm;
pub mod loss;
pub mod matmul;
pub mod philox;
pub mod reduce;
pub mod relu;
pub mod softmax;
pub mod ssim;
pub mod tokens;
pub mod upsample;
pub mod wav2vec2;

use crate::tensor::CpuStorage;
use half::bf16;
use std::borrow::Cow;

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
