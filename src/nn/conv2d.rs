//! `Conv2d`: a 2-D convolution layer (NCHW, 1×1 or 3×3 kernel, stride 1, padding k/2,
//! optional bias), PyTorch names `weight` [cout, cin, k, k] and `bias` [cout].

use super::{Grads, Init, Param, ParamVisitor, Parameters};
use crate::ops;
use crate::tensor::Tensor;
use anyhow::Result;

#[derive(Debug)]
pub struct Conv2d {
    pub weight: Param,
    pub bias: Option<Param>,
}

/// The layer's input, kept for the weight gradient.
pub struct Conv2dCache {
    pub x: Tensor,
}

impl Conv2d {
    /// PyTorch's default initialisation: weight and bias U(±1/√(cin·k²)) (kaiming_uniform with
    /// a = √5).
    pub fn new(cin: usize, cout: usize, k: usize, bias: bool, init: &mut Init) -> Result<Self> {
        if !(k == 1 || k == 3) || cin == 0 || cout == 0 {
            anyhow::bail!("Conv2d: needs k = 1 or 3 and non-zero channels, found cin {cin}, cout {cout}, k {k}");
        }
        let bound = 1.0 / ((cin * k * k) as f32).sqrt();
        let w = init.uniform(&[cout, cin, k, k], -bound, bound)?;
        let b = if bias {
            Some(Param::new(init.uniform(&[cout], -bound, bound)?)?)
        } else {
            None
        };
        Ok(Conv2d {
            weight: Param::new(w)?,
            bias: b,
        })
    }

    pub fn in_channels(&self) -> usize {
        self.weight.value.shape[1]
    }
    pub fn out_channels(&self) -> usize {
        self.weight.value.shape[0]
    }

    /// y = conv(x, weight) + bias, computed in x's dtype.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Conv2dCache)> {
        let w = self.weight.value_as(x.dtype)?;
        let b = match &self.bias {
            Some(b) => Some(b.value_as(x.dtype)?),
            None => None,
        };
        let y = ops::conv2d(x, &w, b.as_deref())?;
        Ok((y, Conv2dCache { x: x.clone() }))
    }

    /// Adds the weight (and bias) gradients into `grads`; returns dx.
    pub fn backward(&self, cache: &Conv2dCache, dy: &Tensor, grads: &mut Grads) -> Result<Tensor> {
        let dt = cache.x.dtype;
        let w = self.weight.value_as(dt)?;
        let mut dw = grads.slot(&self.weight, dt)?;
        let mut db = match &self.bias {
            Some(b) => Some(grads.slot(b, dt)?),
            None => None,
        };
        let dx = ops::conv2d_backward(dy, &cache.x, &w, &mut dw, db.as_deref_mut())?;
        grads.commit(dw)?;
        if let Some(db) = db {
            grads.commit(db)?;
        }
        Ok(dx)
    }
}

impl Parameters for Conv2d {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        f(&format!("{prefix}weight"), &mut self.weight)?;
        if let Some(b) = &mut self.bias {
            f(&format!("{prefix}bias"), b)?;
        }
        Ok(())
    }
}
