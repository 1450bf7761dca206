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
        if x.shape.last() != Some(&self.in_features()) {
            bail!(
                "linear: input {:?} must end in {} features",
                x.shape,
                self.in_features()
            );
        }
        let w = self.weight.value_as(x.dtype)?;
        let b = match &self.bias {
            Some(b) => Some(b.value_as(x.dtype)?),
            None => None,
        };
        ops::matmul(x, &w, false, true, b.as_deref())
    }

    /// Adds dW += dyᵀ x and db += Σ dy into `grads`; returns dx = dy W.
    pub fn backward(&self, x: &Tensor, dy: &Tensor, grads: &mut Grads) -> Result<Tensor> {
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
        let ds = MatmulShape {
            batch: 1,
            m: rows,
            n: inp,
            k: out,
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
