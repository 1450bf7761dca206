//! The SFM image encoder: a ViT as in MAE/timm 0.3.2 on one-channel seismic images —
//! patch embedding, cls token, fixed 2-D sin-cos position embedding, pre-LN blocks, final norm.
//! The same encoder runs on all patches (fine-tuning, embedding) or on MAE's visible subset.

use super::pos_embed::sincos_2d;
use crate::backend::Device;
use crate::nn::layer_norm::LayerNormLayerCache;
use crate::nn::{
    Block, BlockCache, Grads, Init, LayerNorm, Param, ParamVisitor, Parameters, PatchEmbed,
    PatchEmbedCache,
};
use crate::nvtx;
use crate::ops;
use crate::tensor::Tensor;
use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct VitConfig {
    pub img_h: usize,
    pub img_w: usize,
    pub in_chans: usize,
    pub patch: usize,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_ratio: f32,
    pub eps: f32,
}

impl VitConfig {
    /// The SFM presets (docs/reference.md), plus `sfm-tiny` for CPU tests and the demo.
    pub fn preset(name: &str) -> Result<Self> {
        let (img, patch, dim, depth, heads) = match name {
            "sfm-base" => (224, 16, 768, 12, 12),
            "sfm-large" => (224, 16, 1024, 24, 16),
            "sfm-tiny" => (64, 8, 64, 4, 4),
            _ => bail!("unknown SFM preset '{name}': expected sfm-tiny, sfm-base or sfm-large"),
        };
        Ok(VitConfig {
            img_h: img,
            img_w: img,
            in_chans: 1,
            patch,
            dim,
            depth,
            heads,
            mlp_ratio: 4.0,
            eps: 1e-6,
        })
    }
    pub fn grid(&self) -> (usize, usize) {
        (self.img_h / self.patch, self.img_w / self.patch)
    }
    pub fn num_patches(&self) -> usize {
        let (h, w) = self.grid();
        h * w
    }
    /// The same model on other image sizes (SFM fine-tunes at 512 and 768).
    pub fn with_image(mut self, h: usize, w: usize) -> Result<Self> {
        if !h.is_multiple_of(self.patch) || !w.is_multiple_of(self.patch) {
            bail!(
                "image size {h}×{w} must be a multiple of the patch size {}",
                self.patch
            );
        }
        self.img_h = h;
        self.img_w = w;
        Ok(self)
    }
}

#[derive(Debug)]
pub struct Vit {
    pub cfg: VitConfig,
    pub patch_embed: PatchEmbed,
    pub cls_token: Param,
    /// Position table [1, 1 + N, C]: the exact sin-cos table at random init, or a checkpoint's
    /// (bicubically resampled when its grid differs, see `pos_tables`); not trained here.
    pub pos_embed: Param,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm,
    /// The token indices of unmasked batches, uploaded once per batch size.
    indices: super::IndexCache,
}

pub struct VitCache {
    patch: PatchEmbedCache,
    idx: Tensor,
    blocks: Vec<BlockCache>,
    norm: LayerNormLayerCache,
    num_tokens: usize,
}

impl VitCache {
    /// The output of block `i` (0-based; the last one is the input of the final norm). SETR-style
    /// heads read the outputs of blocks depth/4, 2·depth/4, 3·depth/4 and depth (1-based).
    pub fn block_output(&self, i: usize) -> Option<&Tensor> {
        match i + 1 {
            n if n < self.blocks.len() => Some(Block::cached_input(&self.blocks[n])),
            n if n == self.blocks.len() => Some(&self.norm.x),
            _ => None,
        }
    }
}

impl Vit {
    pub fn new(cfg: VitConfig, seed: u64) -> Result<Self> {
        let mut init = Init::new(seed);
        let (gh, gw) = cfg.grid();
        if !cfg.dim.is_multiple_of(cfg.heads) {
            bail!("width {} is not divisible by {} heads", cfg.dim, cfg.heads);
        }
        let pos = Tensor::from_f32(&[1, 1 + gh * gw, cfg.dim], sincos_2d(cfg.dim, gh, gw)?)?;
        let blocks = (0..cfg.depth)
            .map(|_| Block::new(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.eps, &mut init))
            .collect::<Result<Vec<_>>>()?;
        Ok(Vit {
            patch_embed: PatchEmbed::new(cfg.in_chans, cfg.dim, cfg.patch, &mut init)?,
            cls_token: Param::new(init.trunc_normal(&[1, 1, cfg.dim], 0.02)?)?,
            pos_embed: Param::fixed(pos)?,
            blocks,
            norm: LayerNorm::new(cfg.dim, cfg.eps, &mut init)?,
            indices: super::IndexCache::default(),
            cfg,
        })
    }

    /// Trains the position table as SFM-Finetune does (timm's VisionTransformer keeps
    /// `pos_embed` as a parameter there); MAE pretraining keeps it fixed (the default). Call it
    /// before packing the model; the backward pass computes the table's gradient only then.
    pub fn set_pos_embed_trainable(&mut self, trainable: bool) {
        self.pos_embed.trainable = trainable;
    }

    pub fn device(&self) -> Device {
        self.cls_token.value.device()
    }

    /// The position table, for [`crate::weights::load_from_file_interpolating`]: a checkpoint
    /// for another image size has its table resampled (bicubic) to this grid, as SFM does.
    pub fn pos_tables(&self) -> Vec<crate::weights::PosTable> {
        vec![crate::weights::PosTable {
            name: "pos_embed".into(),
            extra: 1,
            grid: self.cfg.grid(),
        }]
    }

    /// Row indices for the encoder's input: −1 (the cls token) then `keep` per sample, or all
    /// patches in order when `keep` is None. Shape [B, 1 + L].
    pub fn token_index(&self, batch: usize, keep: Option<&[Vec<usize>]>) -> Result<Tensor> {
        let n = self.cfg.num_patches();
        let make = || {
            let mut idx = Vec::new();
            for b in 0..batch {
                idx.push(-1);
                match keep {
                    Some(k) => idx.extend(k[b].iter().map(|&j| j as i32)),
                    None => idx.extend(0..n as i32),
                }
            }
            let l = idx.len() / batch.max(1);
            Tensor::from_i32(&[batch, l], idx)
        };
        match keep {
            // Without masking the indices depend on the batch size only: uploaded once.
            None => self
                .indices
                .get("token_index", &[batch, n], &self.device(), make),
            Some(_) => make()?.to_device(&self.device()),
        }
    }

    /// Images [B, C, H, W] → final normed tokens [B, 1 + L, C] (L = N, or |keep| for MAE).
    pub fn forward(&self, img: &Tensor, keep: Option<&[Vec<usize>]>) -> Result<(Tensor, VitCache)> {
        let _range = nvtx::range("sfm/forward");
        let (h, w) = (
            img.shape.get(2).copied().unwrap_or(0),
            img.shape.get(3).copied().unwrap_or(0),
        );
        if (h, w) != (self.cfg.img_h, self.cfg.img_w) {
            bail!("this model takes {}×{} images, found {:?}; build it for the size with VitConfig::with_image", self.cfg.img_h, self.cfg.img_w, img.shape);
        }
        let b = img.shape[0];
        let n = self.cfg.num_patches();
        let c = self.cfg.dim;
        let (tokens, patch) = self.patch_embed.forward(img)?;
        // tokens + pos[1:], then gather (cls + pos[0] as the fill row); the table's rows are
        // views, not copies
        let pe = self.pos_embed.value_as(tokens.dtype)?.into_owned();
        let pos_patches = pe.view(c, &[n * c])?;
        let pos_cls = pe.view(0, &[c])?;
        let tokens =
            ops::bias_add(&tokens.reshape(&[b, n * c])?, &pos_patches)?.reshape(&[b, n, c])?;
        let cls = self
            .cls_token
            .value_as(tokens.dtype)?
            .into_owned()
            .reshape(&[c])?;
        let fill = ops::add(&cls, &pos_cls)?;
        let idx = self.token_index(b, keep)?;
        let x = ops::gather_rows(&tokens, &idx, Some(&fill))?;
        let (x, caches) = crate::nn::forward_each(&self.blocks, x, |i, b, x| {
            let _range = nvtx::range_with(|| format!("sfm/block {i} forward"));
            b.forward(x)
        })?;
        let (out, norm) = self.norm.forward(&x)?;
        Ok((
            out,
            VitCache {
                patch,
                idx,
                blocks: caches,
                norm,
                num_tokens: n,
            },
        ))
    }

    /// Backward from the gradient of the final tokens, adding every parameter gradient into
    /// `grads`; returns the image gradient when asked. `extra` adds gradients arriving at
    /// intermediate block outputs (SETR heads): pairs of (block index, gradient).
    pub fn backward(
        &self,
        c: &VitCache,
        dout: &Tensor,
        extra: &[(usize, &Tensor)],
        want_image_grad: bool,
        grads: &mut Grads,
    ) -> Result<Option<Tensor>> {
        let _range = nvtx::range("sfm/backward");
        let mut dx = self.norm.backward(&c.norm, dout, grads)?;
        for i in (0..self.blocks.len()).rev() {
            for (k, g) in extra {
                if *k == i {
                    ops::add_assign(&mut dx, g)?;
                }
            }
            let block_range = nvtx::range_with(|| format!("sfm/block {i} backward"));
            dx = self.blocks[i].backward(&c.blocks[i], &dx, grads)?;
            drop(block_range);
            // Block i's gradients (and the head's, written before) are final: data-parallel
            // training reduces them while the earlier blocks' backward runs.
            grads.mark_final()?;
        }
        let mut dcls = self.device().backend().zeros(&[self.cfg.dim], dx.dtype)?;
        let dtokens = ops::gather_rows_backward(&dx, &c.idx, c.num_tokens, Some(&mut dcls))?;
        grads.accumulate(&self.cls_token, &dcls)?;
        if self.pos_embed.trainable {
            // pos[0] was added to the cls row, pos[1 + j] to patch j of every image.
            let (b, n, ch) = (dtokens.shape[0], c.num_tokens, self.cfg.dim);
            let dpatch =
                ops::sum_rows(&dtokens.clone().reshape(&[b, n * ch])?)?.reshape(&[1, n, ch])?;
            // [−1, 0, 1, …, N−1]: the indices of one unmasked image.
            let idx = self.token_index(1, None)?;
            let dpos = ops::gather_rows(&dpatch, &idx, Some(&dcls))?;
            grads.accumulate(&self.pos_embed, &dpos)?;
        }
        self.patch_embed
            .backward(&c.patch, &dtokens, want_image_grad, grads)
    }
}

impl Parameters for Vit {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        f(&format!("{prefix}cls_token"), &mut self.cls_token)?;
        f(&format!("{prefix}pos_embed"), &mut self.pos_embed)?;
        self.patch_embed
            .visit(&format!("{prefix}patch_embed."), f)?;
        for (i, b) in self.blocks.iter_mut().enumerate() {
            b.visit(&format!("{prefix}blocks.{i}."), f)?;
        }
        self.norm.visit(&format!("{prefix}norm."), f)
    }
}

/// SFM's input normalisation, per image: (x − mean) / (std + 1e-6), population std
/// (numpy's default, as SFM's loaders compute it).
pub fn normalize_images(x: &mut [f32], pixels_per_image: usize) {
    for img in x.chunks_mut(pixels_per_image.max(1)) {
        let n = img.len() as f64;
        let mean = img.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = img.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let d = var.sqrt() + 1e-6;
        img.iter_mut()
            .for_each(|v| *v = ((*v as f64 - mean) / d) as f32);
    }
}
