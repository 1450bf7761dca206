//! Trainable parameters: an fp32 master value and its fp32 gradient, under a checkpoint name.
//!
//! Mixed precision (DESIGN.md, `--precision bf16`): layers compute in their input's dtype. A
//! parameter read in another dtype comes from its compute copy (`Parameters::set_compute_dtype`
//! keeps one, refreshed by the optimizer after each step) or, without one, from a cast made on
//! the spot. Gradients computed in bf16 are widened and added to the fp32 gradient, as PyTorch's
//! autocast does; the optimizer updates the fp32 masters.

use crate::backend::Device;
use crate::ops;
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};
use std::ops::Deref;

#[derive(Debug)]
pub struct Param {
    /// fp32 master weights.
    pub value: Tensor,
    /// fp32 gradient, accumulated by backward passes, zeroed by `zero_grad`.
    pub grad: Tensor,
    /// False for fixed tensors stored in checkpoints but not trained (e.g. sin-cos position
    /// embeddings); the optimizer skips them.
    pub trainable: bool,
    /// The value in the compute dtype (bf16) when mixed precision keeps one; None in fp32.
    pub compute: Option<Tensor>,
}

/// A parameter's value in a requested dtype: borrowed (master or compute copy) or a fresh cast.
pub enum ParamView<'a> {
    Borrowed(&'a Tensor),
    Owned(Tensor),
}

impl ParamView<'_> {
    /// An owned tensor (a copy when borrowed), for use while the parameter is borrowed mutably.
    pub fn into_owned(self) -> Result<Tensor> {
        match self {
            ParamView::Borrowed(t) => t.try_clone(),
            ParamView::Owned(t) => Ok(t),
        }
    }
}

impl Deref for ParamView<'_> {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        match self {
            ParamView::Borrowed(t) => t,
            ParamView::Owned(t) => t,
        }
    }
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
            compute: None,
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
        if let Some(c) = &mut self.compute {
            *c = c.to_device(d)?;
        }
        Ok(())
    }

    /// The value in `dtype`: the master when it has that dtype, else the compute copy when it
    /// does, else a cast made now.
    pub fn value_as(&self, dtype: DType) -> Result<ParamView<'_>> {
        if self.value.dtype == dtype {
            return Ok(ParamView::Borrowed(&self.value));
        }
        if let Some(c) = self.compute.as_ref().filter(|c| c.dtype == dtype) {
            return Ok(ParamView::Borrowed(c));
        }
        Ok(ParamView::Owned(ops::cast(&self.value, dtype)?))
    }

    /// Keeps a compute copy in `dtype` (None, or the master's own dtype, drops it).
    pub fn set_compute_dtype(&mut self, dtype: Option<DType>) -> Result<()> {
        self.compute = match dtype {
            Some(dt) if dt != self.value.dtype => {
                if !dt.is_float() {
                    bail!("parameters compute in f32 or bf16, not {dt}");
                }
                Some(ops::cast(&self.value, dt)?)
            }
            _ => None,
        };
        Ok(())
    }

    /// Re-derives the compute copy from the master (after the master changed outside the
    /// optimizer, e.g. a checkpoint load).
    pub fn refresh_compute(&mut self) -> Result<()> {
        let dt = self.compute.as_ref().map(|c| c.dtype);
        self.set_compute_dtype(dt)
    }

    /// Runs `f` on a gradient buffer of `dtype` that accumulates into the fp32 gradient: the
    /// gradient itself when the dtypes agree, else a zeroed buffer widened and added afterwards.
    pub fn accumulate_grad<T>(
        &mut self,
        dtype: DType,
        f: impl FnOnce(&mut Tensor) -> Result<T>,
    ) -> Result<T> {
        if self.grad.dtype == dtype {
            return f(&mut self.grad);
        }
        let mut g = Tensor::zeros(&self.grad.shape, dtype, &self.grad.device())?;
        let r = f(&mut g)?;
        self.add_grad(&g)?;
        Ok(r)
    }

    /// grad += g, widening g (same number of elements; any float dtype).
    pub fn add_grad(&mut self, g: &Tensor) -> Result<()> {
        if g.numel() != self.grad.numel() {
            bail!(
                "gradient of shape {:?} does not fit a parameter of shape {:?}",
                g.shape,
                self.grad.shape
            );
        }
        if g.dtype == self.grad.dtype && g.shape == self.grad.shape {
            return ops::add_assign(&mut self.grad, g);
        }
        let g = if g.dtype == self.grad.dtype {
            g.try_clone()?
        } else {
            ops::cast(g, self.grad.dtype)?
        };
        let g = g.reshape(&self.grad.shape)?;
        ops::add_assign(&mut self.grad, &g)
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
    /// Mixed precision: keeps a compute copy of every parameter in `dtype` (bf16), or none
    /// (f32). Layers then read the copy when their input has that dtype.
    fn set_compute_dtype(&mut self, dtype: DType) -> Result<()> {
        self.visit("", &mut |_, p| p.set_compute_dtype(Some(dtype)))
    }
    /// Stores every trainable value as `dtype` (bf16 for inference: forward passes then run in
    /// bf16 with fp32 accumulation). Fixed tensors (position tables, BatchNorm running
    /// statistics) stay fp32: layers read them in the activations' dtype, and BatchNorm keeps
    /// its statistics in fp32. Gradients stay fp32, so a bf16 model is for inference only.
    fn cast_values(&mut self, dtype: crate::tensor::DType) -> Result<()> {
        self.visit("", &mut |_, p| {
            if p.trainable {
                p.value = crate::ops::cast(&p.value, dtype)?;
            }
            Ok(())
        })
    }
}
