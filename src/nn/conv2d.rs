//! `Conv2d`: a 2-D convolution layer (NCHW, 1×1 or 3×3 kernel, stride 1, padding k/2,
//! optional bias), PyTorch names `weight` [cout, cin, k, k] and `bias` [cout].

use super::param::{Param, ParamVisitor, Parameters};
use crate::backend::cpu::philox::PhiloxStream;
use crate::backend::Device;
use crate::ops;
use crate::tensor::Tensor;
use anyhow::Result;

/// U(−bound, bound) values from a seeded stream, as a CPU f32 tensor.
pub(crate) fn uniform_tensor(
    shape: &[usize],
    bound: f32,
    seed: u64,
    stream: u32,
) -> Result<Tensor> {
    let mut s = PhiloxStream::new(seed, 0, stream);
    let n = shape.iter().product();
    Tensor::from_f32(
        shape,
        (0..n).map(|_| (2.0 * s.next_f32() - 1.0) * bound).collect(),
    )
}

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
    /// a = √5), from a Philox stream keyed by `seed`.
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        bias: bool,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if !(k == 1 || k == 3) || cin == 0 || cout == 0 {
            anyhow::bail!("Conv2d: needs k = 1 or 3 and non-zero channels, found cin {cin}, cout {cout}, k {k}");
        }
        let bound = 1.0 / ((cin * k * k) as f32).sqrt();
        let w = uniform_tensor(&[cout, cin, k, k], bound, seed, 1)?.to_device(device)?;
        let b = if bias {
            Some(Param::new(
                uniform_tensor(&[cout], bound, seed, 2)?.to_device(device)?,
            )?)
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
        Ok((y, Conv2dCache { x: x.try_clone()? }))
    }

    /// Returns dx; adds the weight (and bias) gradients into the parameters' grads.
    pub fn backward(&mut self, dy: &Tensor, cache: &Conv2dCache) -> Result<Tensor> {
        let dt = cache.x.dtype;
        let w = self.weight.value_as(dt)?.into_owned()?;
        let x = &cache.x;
        match &mut self.bias {
            None => self
                .weight
                .accumulate_grad(dt, |dw| ops::conv2d_backward(dy, x, &w, dw, None)),
            Some(bias) => self.weight.accumulate_grad(dt, |dw| {
                bias.accumulate_grad(dt, |db| ops::conv2d_backward(dy, x, &w, dw, Some(db)))
            }),
        }
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
