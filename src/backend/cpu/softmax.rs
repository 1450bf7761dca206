//! Softmax over the last axis and its backward.

use super::{binary, unary, Cpu};
use crate::backend::api::SoftmaxOps;
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

/// The length of the last axis (`ops` checked it is non-zero).
pub(crate) fn last_axis(t: &Tensor) -> usize {
    t.shape.last().copied().unwrap_or(1)
}

impl SoftmaxOps for Cpu {
    fn softmax(&self, y: &mut Tensor, x: &Tensor) -> Result<()> {
        let cols = last_axis(x);
        unary(y, x, |o, x| softmax(o, x, cols))
    }
    fn softmax_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()> {
        let cols = last_axis(y);
        binary(dx, y, dy, |o, y, dy| softmax_backward(o, y, dy, cols))
    }
}

pub fn softmax(y: &mut [f32], x: &[f32], cols: usize) {
    y.par_chunks_mut(cols)
        .zip(x.par_chunks(cols))
        .for_each(|(yr, xr)| {
            let m = xr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut s = 0.0f64;
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = (v - m).exp();
                s += *o as f64;
            }
            let inv = (1.0 / s) as f32;
            yr.iter_mut().for_each(|o| *o *= inv);
        });
}

/// dx = y ⊙ (dy − Σ dy ⊙ y), from the forward output y.
pub fn softmax_backward(dx: &mut [f32], y: &[f32], dy: &[f32], cols: usize) {
    dx.par_chunks_mut(cols)
        .zip(y.par_chunks(cols).zip(dy.par_chunks(cols)))
        .for_each(|(dxr, (yr, dyr))| {
            let dot: f64 = yr.iter().zip(dyr).map(|(&a, &b)| (a * b) as f64).sum();
            let dot = dot as f32;
            for i in 0..cols {
                dxr[i] = yr[i] * (dyr[i] - dot);
            }
        });
}

/// log Σ exp over a row, stably.
pub fn logsumexp(row: &[f32]) -> f32 {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    if !m.is_finite() {
        return m;
    }
    let s: f64 = row.iter().map(|&v| ((v - m) as f64).exp()).sum();
    m + s.ln() as f32
}
