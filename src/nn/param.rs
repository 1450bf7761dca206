//! Trainable parameters: an fp32 master value and its fp32 gradient, under a checkpoint name.

use crate::backend::Device;
use crate::tensor::{DType, Tensor};
use anyhow::Result;

#[derive(Debug)]
pub struct Param {
    /// fp32 master weights.
    pub value: Tensor,
    /// fp32 gradient, accumulated by backward passes, zeroed by `zero_grad`.
    pub grad: Tensor,
    /// False for fixed tensors stored in checkpoints but not trained (e.g. sin-cos position
    /// embeddings); the optimizer skips them.
    pub trainable: bool,
}

impl Param {
    pub fn new(value: Tensor) -> Result<Self> {
        let value = if value.dtype == DType::F32 {
            value
        } else {
            value.to_dtype(DType::F32)?
        };
        let grad = Tensor::zeros(&value.shape, DType::F32, &value.device())?;
        Ok(Param {
            value,
            grad,
            trainable: true,
        })
    }
    pub fn fixed(value: Tensor) -> Result<Self> {
        let mut p = Param::new(value)?;
        p.trainable = false;
        Ok(p)
    }
    pub fn zero_grad(&mut self) -> Result<()> {
        self.grad = Tensor::zeros(&self.value.shape, DType::F32, &self.value.device())?;
        Ok(())
    }
    pub fn to_device(&mut self, d: &Device) -> Result<()> {
        self.value = self.value.to_device(d)?;
        self.grad = self.grad.to_device(d)?;
        Ok(())
    }
    pub fn numel(&self) -> usize {
        self.value.numel()
    }
}

/// Called with each parameter's full checkpoint name.
pub type ParamVisitor<'a> = dyn FnMut(&str, &mut Param) -> Result<()> + 'a;

/// Anything with named parameters: layers, models, heads.
pub trait Parameters {
    /// Visits every parameter with its name, prefixed by `prefix` (e.g. "blocks.3.").
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()>;

    /// (name, shape) of every parameter, in visiting order.
    fn param_shapes(&mut self) -> Result<Vec<(String, Vec<usize>)>> {
        let mut out = Vec::new();
        self.visit("", &mut |n, p| {
            out.push((n.to_string(), p.value.shape.clone()));
            Ok(())
        })?;
        Ok(out)
    }
    fn num_params(&mut self) -> Result<usize> {
        let mut n = 0;
        self.visit("", &mut |_, p| {
            n += p.numel();
            Ok(())
        })?;
        Ok(n)
    }
    fn zero_grad(&mut self) -> Result<()> {
        self.visit("", &mut |_, p| p.zero_grad())
    }
    fn to_device(&mut self, d: &Device) -> Result<()> {
        self.visit("", &mut |_, p| p.to_device(d))
    }
    /// Stores every value as `dtype` (bf16 for inference: forward passes then run in bf16 with
    /// fp32 accumulation). Gradients stay fp32, so a bf16 model is for inference only.
    fn cast_values(&mut self, dtype: crate::tensor::DType) -> Result<()> {
        self.visit("", &mut |_, p| {
            p.value = crate::ops::cast(&p.value, dtype)?;
            Ok(())
        })
    }
}
