//! `BatchNorm2d` (PyTorch semantics): per-channel affine normalisation of NCHW tensors with
//! batch statistics in training and running statistics in evaluation; eps 1e-5, momentum 0.1.
//! Names: `weight`, `bias`, and the fixed (non-trained) `running_mean`, `running_var`
//! (`num_batches_tracked` is not kept).

use super::{Grads, Param};
use crate::nn::named_fields;
use crate::ops::{self, BatchNormCache};
use crate::tensor::Tensor;
use anyhow::{bail, Result};

#[derive(Debug)]
pub struct BatchNorm2d {
    pub weight: Param,
    pub bias: Param,
    pub running_mean: Param,
    pub running_var: Param,
    pub eps: f32,
    pub momentum: f32,
    /// Train mode (batch statistics, running statistics updated) when true.
    pub training: bool,
}

/// The layer's input and, in train mode, the batch statistics.
pub struct BatchNorm2dCache {
    pub x: Tensor,
    pub stats: Option<BatchNormCache>,
}

impl BatchNorm2d {
    /// weight 1, bias 0, running mean 0, running variance 1, train mode.
    pub fn new(channels: usize) -> Result<Self> {
        let full = |v: f32| -> Result<Tensor> { Tensor::from_f32(&[channels], vec![v; channels]) };
        Ok(BatchNorm2d {
            weight: Param::new(full(1.0)?)?,
            bias: Param::new(full(0.0)?)?,
            running_mean: Param::fixed(full(0.0)?)?,
            running_var: Param::fixed(full(1.0)?)?,
            eps: 1e-5,
            momentum: 0.1,
            training: true,
        })
    }

    pub fn forward(&mut self, x: &Tensor) -> Result<(Tensor, BatchNorm2dCache)> {
        let w = self.weight.value_as(x.dtype)?.into_owned();
        let b = self.bias.value_as(x.dtype)?.into_owned();
        let (w, b) = (&w, &b);
        let (y, stats) = if self.training {
            // The running statistics are updated in place (views of the store's values).
            let (y, s) = ops::batch_norm_train(
                x,
                w,
                b,
                &mut self.running_mean.value,
                &mut self.running_var.value,
                self.eps,
                self.momentum,
            )?;
            (y, Some(s))
        } else {
            let y = ops::batch_norm_eval(
                x,
                w,
                b,
                &self.running_mean.value,
                &self.running_var.value,
                self.eps,
            )?;
            (y, None)
        };
        Ok((
            y,
            BatchNorm2dCache {
                x: x.clone(),
                stats,
            },
        ))
    }

    /// Train-mode backward: adds the weight and bias gradients into `grads`; returns dx.
    pub fn backward(
        &self,
        cache: &BatchNorm2dCache,
        dy: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let Some(stats) = &cache.stats else {
            bail!("BatchNorm2d: backward needs a train-mode forward pass (set training = true before the forward pass)");
        };
        let dt = cache.x.dtype;
        let w = self.weight.value_as(dt)?;
        let mut dw = grads.slot(&self.weight, dt)?;
        let mut db = grads.slot(&self.bias, dt)?;
        let dx = ops::batch_norm_backward(dy, &cache.x, &w, stats, &mut dw, &mut db)?;
        grads.commit(dw)?;
        grads.commit(db)?;
        Ok(dx)
    }
}

named_fields!(BatchNorm2d {
    params: weight,
    bias,
    running_mean,
    running_var
});
