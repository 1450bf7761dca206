//! Whole-tensor reductions in f64 (the kernels use a fixed tree; both are deterministic).

use super::{input, Cpu};
use crate::backend::api::ReduceOps;
use crate::tensor::Tensor;
use anyhow::Result;

impl ReduceOps for Cpu {
    fn sum(&self, out: &mut Tensor, x: &Tensor, square: bool, scale: f32) -> Result<()> {
        let v = input(x)?;
        let s = if square {
            sum_squares(&v) as f32
        } else {
            sum(&v)
        };
        out.f32s_mut()?[0] = s * scale;
        Ok(())
    }
}

pub fn sum(x: &[f32]) -> f32 {
    x.iter().map(|&v| v as f64).sum::<f64>() as f32
}

pub fn sum_squares(x: &[f32]) -> f64 {
    x.iter().map(|&v| (v as f64) * (v as f64)).sum()
}
