//! Patch embedding: a P×P stride-P convolution, as patchify + one matrix product. The weight
//! keeps the convolution's shape [E, C, P, P] (`patch_embed.proj.weight` in timm checkpoints).

use super::{Grads, Init, Param, ParamVisitor, Parameters};
use crate::backend::cpu::matmul::MatmulShape;
use crate::ops;
use crate::tensor::Tensor;
use anyhow::{bail, Result};

#[derive(Debug)]
pub struct PatchEmbed {
    pub weight: Param,
    pub bias: Param,
    pub patch: usize,
    pub in_chans: usize,
    pub dim: usize,
}

pub struct PatchEmbedCache {
    pub patches: Tensor,
    pub image_shape: Vec<usize>,
}

impl PatchEmbed {
    pub fn new(in_chans: usize, dim: usize, patch: usize, init: &mut Init) -> Result<Self> {
        // MAE initialises the projection like a Linear layer (xavier over the flattened weight).
        let w = init
            .xavier_uniform(dim, in_chans * patch * patch)?
            .reshape(&[dim, in_chans, patch, patch])?;
        Ok(PatchEmbed {
            weight: Param::new(w)?,
            bias: Param::new(init.constant(&[dim], 0.0)?)?,
            patch,
            in_chans,
            dim,
        })
    }

    fn shape(&self, rows: usize) -> MatmulShape {
        let k = self.in_chans * self.patch * self.patch;
        MatmulShape {
            batch: 1,
            m: rows,
            n: self.dim,
            k,
            ta: false,
            tb: true,
            a_stride: 0,
            b_stride: 0,
        }
    }

    /// Images [B, C, H, W] → tokens [B, (H/P)(W/P), E].
    pub fn forward(&self, img: &Tensor) -> Result<(Tensor, PatchEmbedCache)> {
        if img.rank() != 4 || img.shape[1] != self.in_chans {
            bail!(
                "patch embedding: images must be [batch, {}, height, width], found {:?}",
                self.in_chans,
                img.shape
            );
        }
        let patches = ops::patchify(img, self.patch)?;
        let (b, n) = (patches.shape[0], patches.shape[1]);
        let mut out = img.device().backend().alloc(&[b, n, self.dim], img.dtype)?;
        let (w, bias) = (
            self.weight.value_as(img.dtype)?,
            self.bias.value_as(img.dtype)?,
        );
        ops::matmul_raw(
            &mut out,
            &patches,
            &w,
            Some(&bias),
            &self.shape(b * n),
            false,
        )?;
        Ok((
            out,
            PatchEmbedCache {
                patches,
                image_shape: img.shape.clone(),
            },
        ))
    }

    /// Adds the weight and bias gradients into `grads`; returns the image gradient when asked.
    pub fn backward(
        &self,
        c: &PatchEmbedCache,
        dtokens: &Tensor,
        want_image_grad: bool,
        grads: &mut Grads,
    ) -> Result<Option<Tensor>> {
        let (b, n) = (c.patches.shape[0], c.patches.shape[1]);
        let k = self.in_chans * self.patch * self.patch;
        let rows = b * n;
        let dw_shape = MatmulShape {
            batch: 1,
            m: self.dim,
            n: k,
            k: rows,
            ta: true,
            tb: false,
            a_stride: 0,
            b_stride: 0,
        };
        let dt = dtokens.dtype;
        let mut dw = grads.slot(&self.weight, dt)?;
        ops::matmul_raw(&mut dw, dtokens, &c.patches, None, &dw_shape, true)?;
        grads.commit(dw)?;
        let mut db = grads.slot(&self.bias, dt)?;
        ops::sum_rows_into(&mut db, dtokens, true)?;
        grads.commit(db)?;
        if !want_image_grad {
            return Ok(None);
        }
        let mut dp = dtokens
            .device()
            .backend()
            .alloc(&c.patches.shape, dtokens.dtype)?;
        let dx = MatmulShape {
            batch: 1,
            m: rows,
            n: k,
            k: self.dim,
            ta: false,
            tb: false,
            a_stride: 0,
            b_stride: 0,
        };
        let w = self.weight.value_as(dtokens.dtype)?;
        ops::matmul_raw(&mut dp, dtokens, &w, None, &dx, false)?;
        let s = &c.image_shape;
        Ok(Some(ops::unpatchify(&dp, s[1], s[2], s[3], self.patch)?))
    }
}

impl Parameters for PatchEmbed {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        f(&format!("{prefix}proj.weight"), &mut self.weight)?;
        f(&format!("{prefix}proj.bias"), &mut self.bias)
    }
}
