//! The SFM fine-tuning models: the ViT encoder and a head ([`VitModel`]), and ViT tokens ↔
//! feature maps for the heads: the patch tokens of `[B, 1 + N, C]` (the cls row dropped) as
//! `[B, C, h, w]`, and the way back for the gradient.

use crate::models::sfm::{Vit, VitCache, VitConfig};
use crate::nn::{ParamVisitor, Parameters};
use crate::ops;
use crate::tensor::Tensor;
use crate::train::config::TrainConfig;
use crate::train::data::image_side;
use anyhow::{bail, Result};

/// What a fine-tuning model's forward returns: the head's output, the encoder's cache, the
/// head's cache and `J`, what joins the encoder's tokens to the head (for the backward pass).
pub type VitForward<C, J> = (Tensor, VitCache, C, J);

/// The ViT encoder at the top level (timm names) and a head under `head_prefix`.
#[derive(Debug)]
pub struct VitModel<H> {
    pub vit: Vit,
    pub head: H,
    pub head_prefix: &'static str,
}

impl<H: Parameters> Parameters for VitModel<H> {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.vit.visit(prefix, f)?;
        self.head.visit(&format!("{prefix}{}", self.head_prefix), f)
    }
}

impl<H> VitModel<H> {
    /// [`vit_layer_scales`] of the encoder.
    pub fn layer_scales(&self, decay: f32) -> Vec<(String, f32)> {
        vit_layer_scales(self.vit.cfg.depth, decay)
    }
}

/// The encoder of a fine-tuning run: the run's preset (adjusted by `adjust`) at its square
/// image side, seeded by the run, with a trainable position table.
pub fn finetune_vit(cfg: &TrainConfig, adjust: impl FnOnce(&mut VitConfig)) -> Result<Vit> {
    let side = image_side(cfg)?;
    let mut vc = VitConfig::preset(&cfg.preset)?;
    adjust(&mut vc);
    let mut vit = Vit::new(vc.with_image(side, side)?, cfg.seed)?;
    vit.set_pos_embed_trainable(true);
    Ok(vit)
}

/// BEiT/SFM layer-wise decay: patch embedding, cls token and position table at layer 0,
/// block i at i + 1, everything else (norm, head) at depth + 1; scale = decay^(depth + 1 −
/// layer).
pub fn vit_layer_scales(depth: usize, decay: f32) -> Vec<(String, f32)> {
    let s = |layer: usize| decay.powi((depth + 1 - layer) as i32);
    let mut v = vec![
        ("cls_token".to_string(), s(0)),
        ("pos_embed".to_string(), s(0)),
        ("patch_embed.".to_string(), s(0)),
    ];
    for i in 0..depth {
        v.push((format!("blocks.{i}."), s(i + 1)));
    }
    v
}

/// Row indices 1..=N per sample (the patch tokens), on the tokens' device.
pub struct Grid {
    idx: Tensor,
    rows: usize,
    h: usize,
    w: usize,
}

impl Grid {
    pub fn new(batch: usize, h: usize, w: usize, device: &crate::Device) -> Result<Self> {
        let n = h * w;
        let idx: Vec<i32> = (0..batch).flat_map(|_| 1..=n as i32).collect();
        Ok(Grid {
            idx: Tensor::from_i32(&[batch, n], idx)?.to_device(device)?,
            rows: n + 1,
            h,
            w,
        })
    }

    /// Tokens [B, 1 + h·w, C] → maps [B, C, h, w].
    pub fn to_maps(&self, tokens: &Tensor) -> Result<Tensor> {
        let [b, rows, c] = tokens.shape[..] else {
            bail!(
                "expected tokens [batch, rows, width], found {:?}",
                tokens.shape
            );
        };
        if rows != self.rows {
            bail!("expected {} token rows, found {rows}", self.rows);
        }
        let patches = ops::gather_rows(tokens, &self.idx, None)?;
        ops::nhwc_to_nchw(&patches.reshape(&[b, self.h, self.w, c])?)
    }

    /// d maps [B, C, h, w] → d tokens [B, 1 + h·w, C] (zero for the cls row).
    pub fn to_tokens(&self, dmaps: &Tensor) -> Result<Tensor> {
        let [b, c, h, w] = dmaps.shape[..] else {
            bail!(
                "expected maps [batch, width, h, w], found {:?}",
                dmaps.shape
            );
        };
        let d = ops::nchw_to_nhwc(dmaps)?.reshape(&[b, h * w, c])?;
        ops::gather_rows_backward(&d, &self.idx, self.rows, None)
    }
}
