//! ReLU: y = max(x, 0) (NaN passes through, as PyTorch); dx = dy where y > 0, else 0.

use super::{binary, unary, Cpu, PAR_MIN};
use crate::backend::api::ReluOps;
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

impl ReluOps for Cpu {
    fn relu(&self, y: &mut Tensor, x: &Tensor) -> Result<()> {
        unary(y, x, relu)
    }
    fn relu_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()> {
        binary(dx, y, dy, relu_backward)
    }
}

pub fn relu(y: &mut [f32], x: &[f32]) {
    let f = |(o, &v): (&mut f32, &f32)| *o = if v < 0.0 { 0.0 } else { v };
    if y.len() < PAR_MIN {
        y.iter_mut().zip(x).for_each(f);
    } else {
        y.par_iter_mut().zip(x.par_iter()).for_each(f);
    }
}

/// dx from the forward output y (y > 0 exactly where x > 0).
pub fn relu_backward(dx: &mut [f32], y: &[f32], dy: &[f32]) {
    let f = |(o, (&v, &g)): (&mut f32, (&f32, &f32))| *o = if v > 0.0 { g } else { 0.0 };
    if dx.len() < PAR_MIN {
        dx.iter_mut().zip(y.iter().zip(dy)).for_each(f);
    } else {
        dx.par_iter_mut()
            .zip(y.par_iter().zip(dy.par_iter()))
            .for_each(f);
    }
}
