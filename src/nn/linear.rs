//! Linear layer y = x Wᵀ + b with W [out, in] (PyTorch layout).

use super::{Grads, Init, Param, ParamVisitor, Parameters};
use crate::backend::cpu::matmul::MatmulShape;
use crate::ops;
use crate::tensor::Tensor;
use anyhow::{bail, Result};

#[derive(Debug)]
pub struct Linear {
    pub weight: Param,
    pub bias: Option<Param>,
}

impl Linear {
    pub fn new(inp: usize, out: usize, bias: bool, init: &mut Init) -> Result<Self> {
        Ok(Linear {
            weight: Param::new(init.xavier_uniform(out, inp)?)?,
            bias: if bias {
                Some(Param::new(init.constant(&[out], 0.0)?)?)
            } else {
                None
            },
        })
    }
    pub fn in_features(&self) -> usize {
        self.weight.value.shape[1]
    }
    pub fn out_features(&self) -> usize {
        self.weight.value.shape[0]
    }

    /// x [..., in] → [..., out]. The layer's cache is its input x.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (w, b) = self.operands(x)?;
        ops::matmul(x, &w, false, true, b.as_ref())
    }

    /// (h, gelu(h)) with h = the layer's output: a layer followed by a GELU in one pass where
    /// the backend fuses them (the tensor-core product's epilogue); h is the GELU's cache.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (w, b) = self.operands(x)?;
        ops::matmul_gelu(x, &w, false, true, b.as_ref())
    }

    /// The weight and bias in x's dtype, after checking x's features.
    fn operands(&self, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        if x.shape.last() != Some(&self.in_features()) {
            bail!(
                "linear: input {:?} must end in {} features",
                x.shape,
                self.in_features()
            );
        }
        let w = self.weight.value_as(x.dtype)?.into_owned();
        let b = match &self.bias {
            Some(b) => Some(b.value_as(x.dtype)?.into_owned()),
            None => None,
        };
        Ok((w, b))
    }

    /// Adds dW += dyᵀ x and db += Σ dy into `grads`; returns dx = dy W.
    pub fn backward(&self, x: &Tensor, dy: &Tensor, grads: &mut Grads) -> Result<Tensor> {
        let (rows, inp) = self.param_grads(x, dy, grads)?;
        let ds = MatmulShape {
            batch: 1,
            m: rows,
            n: inp,
            k: self.out_features(),
            ta: false,
            tb: false,
            a_stride: 0,
            b_stride: 0,
        };
        let mut dx = x.device().backend().alloc(&x.shape, x.dtype)?;
        let w = self.weight.value_as(dy.dtype)?;
        ops::matmul_raw(&mut dx, dy, &w, None, &ds, false)?;
        Ok(dx)
    }

    /// The backward pass of a layer whose input x was gelu(h): adds dW and db as
    /// [`Linear::backward`] does and returns dh = (dy W) · gelu'(h), in one pass where the
    /// backend fuses the GELU's derivative into the product.
    pub fn backward_dgelu(
        &self,
        x: &Tensor,
        h: &Tensor,
        dy: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let (rows, inp) = self.param_grads(x, dy, grads)?;
        if h.numel() != rows * inp {
            bail!(
                "linear backward: the pre-activation {:?} does not match the input {:?}",
                h.shape,
                x.shape
            );
        }
        let w = self.weight.value_as(dy.dtype)?;
        let dy2 = dy.clone().reshape(&[rows, self.out_features()])?;
        let h2 = h.clone().reshape(&[rows, inp])?;
        ops::matmul_dgelu(&dy2, &w, false, false, &h2)?.reshape(&x.shape)
    }

    /// dW += dyᵀ x and db += Σ dy; returns (rows, in features).
    fn param_grads(&self, x: &Tensor, dy: &Tensor, grads: &mut Grads) -> Result<(usize, usize)> {
        let (inp, out) = (self.in_features(), self.out_features());
        let rows = x.numel() / inp;
        if dy.numel() != rows * out {
            bail!(
                "linear backward: dy {:?} does not match input {:?} and {out} outputs",
                dy.shape,
                x.shape
            );
        }
        let s = MatmulShape {
            batch: 1,
            m: out,
            n: inp,
            k: rows,
            ta: true,
            tb: false,
            a_stride: 0,
            b_stride: 0,
        };
        let mut dw = grads.slot(&self.weight, dy.dtype)?;
        ops::matmul_raw(&mut dw, dy, x, None, &s, true)?;
        grads.commit(dw)?;
        if let Some(b) = &self.bias {
            let mut db = grads.slot(b, dy.dtype)?;
            ops::sum_rows_into(&mut db, dy, true)?;
            grads.commit(db)?;
        }
        Ok((rows, inp))
    }
}

impl Parameters for Linear {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        f(&format!("{prefix}weight"), &mut self.weight)?;
        if let Some(b) = &mut self.bias {
            f(&format!("{prefix}bias"), b)?;
        }
        Ok(())
    }
}
