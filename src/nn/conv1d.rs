//! 1-D convolution layer on NCW tensors (PyTorch `nn.Conv1d`: weight [Cout, Cin/groups, K],
//! optional bias, stride, zero padding, groups), optionally weight-normed as HF wav2vec2's
//! positional convolution (`weight_g` [1, 1, K], `weight_v` [Cout, Cin/groups, K], norm over all
//! dims but 2).

use super::{Grads, Init, Param, ParamVisitor, Parameters};
use crate::ops::{self, WeightNormCache};
use crate::tensor::Tensor;
use anyhow::{bail, Result};

/// The convolution's weight: a plain tensor, or weight norm's (g, v) over axis `dim`.
// One per layer: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ConvWeight {
    Plain(Param),
    Normed { g: Param, v: Param, dim: usize },
}

#[derive(Debug)]
pub struct Conv1d {
    pub weight: ConvWeight,
    pub bias: Option<Param>,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

pub struct Conv1dCache {
    /// The layer's input.
    pub x: Tensor,
    /// The effective weight and the weight-norm cache (weight-normed layers only).
    normed: Option<(Tensor, WeightNormCache)>,
}

/// ‖v[:, :, k]‖ for each k of a [Cout, Cin/groups, K] weight (weight norm's initial g).
fn norms_over_dim2(v: &Tensor) -> Result<Tensor> {
    let k = v.shape[2];
    let vals = v.to_vec_f32()?;
    let mut n = vec![0.0f64; k];
    for (i, &x) in vals.iter().enumerate() {
        n[i % k] += (x as f64) * (x as f64);
    }
    Tensor::from_f32(&[1, 1, k], n.into_iter().map(|s| s.sqrt() as f32).collect())
}

impl Conv1d {
    /// A convolution with uniform initial weights (±√(6/(fan_in + fan_out))) and zero bias;
    /// `weight_norm` makes it weight-normed over dim 2 with g = ‖v‖ (so w = v at first).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        groups: usize,
        bias: bool,
        weight_norm: bool,
        init: &mut Init,
    ) -> Result<Self> {
        if groups == 0
            || !cin.is_multiple_of(groups)
            || !cout.is_multiple_of(groups)
            || k == 0
            || stride == 0
        {
            bail!("conv1d layer: {groups} groups must divide {cin} input and {cout} output channels, and kernel {k} and stride {stride} must be positive");
        }
        let cig = cin / groups;
        let v = init
            .xavier_uniform(cout, cig * k)?
            .reshape(&[cout, cig, k])?;
        let weight = if weight_norm {
            ConvWeight::Normed {
                g: Param::new(norms_over_dim2(&v)?)?,
                v: Param::new(v)?,
                dim: 2,
            }
        } else {
            ConvWeight::Plain(Param::new(v)?)
        };
        Ok(Conv1d {
            weight,
            bias: if bias {
                Some(Param::new(init.constant(&[cout], 0.0)?)?)
            } else {
                None
            },
            stride,
            padding,
            groups,
        })
    }

    /// x [B, Cin, L] → [B, Cout, Lout].
    pub fn forward(&self, x: Tensor) -> Result<(Tensor, Conv1dCache)> {
        let dt = x.dtype;
        let bias = match &self.bias {
            Some(b) => Some(b.value_as(dt)?),
            None => None,
        };
        // The effective weight in the input's dtype (weight norm's also kept for its backward).
        let normed = match &self.weight {
            ConvWeight::Plain(_) => None,
            ConvWeight::Normed { g, v, dim } => {
                let (gv, vv) = (g.value_as(dt)?, v.value_as(dt)?);
                Some(ops::weight_norm(&gv, &vv, *dim)?)
            }
        };
        let plain;
        let w: &Tensor = match (&self.weight, &normed) {
            (_, Some((w, _))) => w,
            (ConvWeight::Plain(p), None) => {
                plain = p.value_as(dt)?;
                &plain
            }
            (ConvWeight::Normed { .. }, None) => unreachable!("weight norm computed above"),
        };
        let y = ops::conv1d(
            &x,
            w,
            bias.as_deref(),
            self.stride,
            self.padding,
            self.groups,
        )?;
        Ok((y, Conv1dCache { x, normed }))
    }

    /// Adds the parameter gradients into `grads`; returns dx when `want_dx`.
    pub fn backward(
        &self,
        c: &Conv1dCache,
        dy: &Tensor,
        want_dx: bool,
        grads: &mut Grads,
    ) -> Result<Option<Tensor>> {
        let (stride, padding, groups) = (self.stride, self.padding, self.groups);
        let dt = c.x.dtype;
        let mut db = match &self.bias {
            Some(b) => Some(grads.slot(b, dt)?),
            None => None,
        };
        // dx (when wanted) through the effective weight `w`, dw += its gradient.
        let conv_backward = |w: &Tensor, dw: &mut Tensor, db: Option<&mut Tensor>| {
            ops::conv1d_backward(dy, &c.x, w, stride, padding, groups, dw, db, want_dx)
        };
        let dx = match (&self.weight, &c.normed) {
            (ConvWeight::Plain(w), None) => {
                let wv = w.value_as(dt)?;
                let mut dw = grads.slot(w, dt)?;
                let dx = conv_backward(&wv, &mut dw, db.as_deref_mut())?;
                grads.commit(dw)?;
                dx
            }
            (ConvWeight::Normed { g, v, dim }, Some((w, wc))) => {
                // The gradient of the effective weight, then through weight norm to (g, v).
                let mut dw = w.device().backend().zeros(&w.shape, w.dtype)?;
                let dx = conv_backward(w, &mut dw, db.as_deref_mut())?;
                let (gv, vv) = (g.value_as(dt)?, v.value_as(dt)?);
                let mut dg = grads.slot(g, dt)?;
                let mut dv = grads.slot(v, dt)?;
                ops::weight_norm_backward(&dw, &gv, &vv, *dim, wc, &mut dg, &mut dv)?;
                grads.commit(dg)?;
                grads.commit(dv)?;
                dx
            }
            _ => bail!("conv1d backward: the cache does not come from this layer's forward"),
        };
        if let Some(db) = db {
            grads.commit(db)?;
        }
        Ok(dx)
    }
}

impl Parameters for Conv1d {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        match &mut self.weight {
            ConvWeight::Plain(w) => f(&format!("{prefix}weight"), w)?,
            ConvWeight::Normed { g, v, .. } => {
                f(&format!("{prefix}weight_g"), g)?;
                f(&format!("{prefix}weight_v"), v)?;
            }
        }
        if let Some(b) = &mut self.bias {
            f(&format!("{prefix}bias"), b)?;
        }
        Ok(())
    }
}
