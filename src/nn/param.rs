//! Parameters: named tensors of a model, and the trait that enumerates them.
//!
//! A [`Param`] is what a layer reads in its forward and backward passes: its fp32 master value
//! and, under mixed precision, its bf16 compute copy. Once a model is packed into a
//! [`super::ParamStore`], both are views of the store's flat buffers, and the gradient of a
//! parameter is the same range of the store's gradient buffer ([`super::Grads`]). Layers never
//! own gradients: `backward(&self, cache, dy, grads)` writes them into the store.

use crate::ops;
use crate::tensor::{DType, Tensor};
use anyhow::Result;
use std::ops::Deref;

#[derive(Debug)]
pub struct Param {
    /// fp32 master value (a view of the store's value buffer once packed).
    pub value: Tensor,
    /// The value in the compute dtype (bf16) when mixed precision keeps one; None in fp32.
    pub compute: Option<Tensor>,
    /// False for tensors stored in checkpoints but not trained (fixed sin-cos position tables,
    /// BatchNorm running statistics). Read when the model is packed; afterwards the store's
    /// entry decides ([`super::ParamStore::set_trainable`]).
    pub trainable: bool,
}

/// A parameter's value in a requested dtype: borrowed (master or compute copy) or a fresh cast.
pub enum ParamView<'a> {
    Borrowed(&'a Tensor),
    Owned(Tensor),
}

impl ParamView<'_> {
    /// A tensor that shares the value (no copy when borrowed).
    pub fn into_owned(self) -> Tensor {
        match self {
            ParamView::Borrowed(t) => t.clone(),
            ParamView::Owned(t) => t,
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
    /// A trainable parameter with an initial value (converted to fp32).
    pub fn new(value: Tensor) -> Result<Self> {
        let value = if value.dtype == DType::F32 {
            value
        } else {
            value.to_dtype(DType::F32)?
        };
        Ok(Param {
            value,
            compute: None,
            trainable: true,
        })
    }
    /// A tensor kept with the parameters but not trained.
    pub fn fixed(value: Tensor) -> Result<Self> {
        let mut p = Param::new(value)?;
        p.trainable = false;
        Ok(p)
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

    pub fn numel(&self) -> usize {
        self.value.numel()
    }
    pub fn shape(&self) -> &[usize] {
        &self.value.shape
    }
}

/// Called with each parameter's full checkpoint name.
pub type ParamVisitor<'a> = dyn FnMut(&str, &mut Param) -> Result<()> + 'a;

/// Anything with named parameters: layers, models, heads.
pub trait Parameters {
    /// Visits every parameter with its name, prefixed by `prefix` (e.g. "blocks.3."), in a
    /// fixed order (the order of the store's buffers).
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
}

/// A parameter on its own is named by the prefix alone.
impl Parameters for Param {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        f(prefix, self)
    }
}

/// `impl Parameters` for a layer whose checkpoint names are its field names, visited in the
/// order given: `Layer { a, b }` visits the sub-layers `a` and `b` under `{prefix}a.` and
/// `{prefix}b.`; `Layer { params: weight, bias }` the parameters themselves as
/// `{prefix}weight` and `{prefix}bias`.
macro_rules! named_fields {
    ($T:ty { params: $($field:ident),+ $(,)? }) => {
        $crate::nn::named_fields!(@impl $T, "", $($field),+);
    };
    ($T:ty { $($field:ident),+ $(,)? }) => {
        $crate::nn::named_fields!(@impl $T, ".", $($field),+);
    };
    (@impl $T:ty, $sep:literal, $($field:ident),+) => {
        impl $crate::nn::Parameters for $T {
            fn visit(
                &mut self,
                prefix: &str,
                f: &mut $crate::nn::ParamVisitor,
            ) -> anyhow::Result<()> {
                $($crate::nn::Parameters::visit(
                    &mut self.$field,
                    &format!("{prefix}{}{}", stringify!($field), $sep),
                    f,
                )?;)+
                Ok(())
            }
        }
    };
}
pub(crate) use named_fields;
