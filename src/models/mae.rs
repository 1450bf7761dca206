//! MAE pretraining of the SFM encoder (`mae_vit_base_patch16D4d256` and analogues):
//! per-sample random masking, the encoder on visible patches, a light decoder with mask tokens
//! and its own sin-cos position embedding, pixel prediction per patch, and the MSE on masked
//! patches only (optionally against per-patch normalised pixels, `norm_pix_loss`).

use super::pos_embed::sincos_2d;
use super::sfm::{Vit, VitCache, VitConfig};
use crate::backend::cpu::philox::uniform;
use crate::nn::layer_norm::LayerNormLayerCache;
use crate::nn::{
    Block, BlockCache, Grads, Init, LayerNorm, Linear, Param, ParamVisitor, Parameters,
};
use crate::nvtx;
use crate::ops;
use crate::tensor::Tensor;
use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct MaeConfig {
    pub encoder: VitConfig,
    pub decoder_dim: usize,
    pub decoder_depth: usize,
    pub decoder_heads: usize,
    pub mask_ratio: f32,
    pub norm_pix_loss: bool,
}

impl MaeConfig {
    /// `sfm-base` → MAE D4d256 (decoder 256 wide, 4 blocks, 16 heads); `sfm-tiny` → 32/2/2.
    pub fn preset(name: &str) -> Result<Self> {
        let encoder = VitConfig::preset(name)?;
        let (decoder_dim, decoder_depth, decoder_heads) = if name == "sfm-tiny" {
            (32, 2, 2)
        } else {
            (256, 4, 16)
        };
        Ok(MaeConfig {
            encoder,
            decoder_dim,
            decoder_depth,
            decoder_heads,
            mask_ratio: 0.75,
            norm_pix_loss: false,
        })
    }
    pub fn len_keep(&self) -> usize {
        (self.encoder.num_patches() as f64 * (1.0 - self.mask_ratio as f64)) as usize
    }
}

/// Which patches one batch keeps, drawn from per-sample noise as MAE does: ascending argsort of
/// the noise, the first `len_keep` are kept (in that shuffled order).
#[derive(Clone, Debug)]
pub struct Masking {
    pub keep: Vec<Vec<usize>>,
    /// [B, N] in patch order: 1 where the patch is masked (the loss is taken there).
    pub mask: Vec<f32>,
    /// For each patch j, its rank in the shuffle (MAE's ids_restore).
    pub restore: Vec<Vec<usize>>,
}

impl Masking {
    pub fn from_noise(noise: &[f32], batch: usize, n: usize, len_keep: usize) -> Result<Self> {
        if noise.len() != batch * n {
            bail!(
                "masking noise must have {batch}×{n} values, found {}",
                noise.len()
            );
        }
        let (mut keep, mut mask, mut restore) = (Vec::new(), vec![1.0; batch * n], Vec::new());
        for b in 0..batch {
            let row = &noise[b * n..(b + 1) * n];
            let mut order: Vec<usize> = (0..n).collect();
            // torch.argsort is not stable, but noise from a continuous generator has no ties.
            order.sort_by(|&i, &j| row[i].total_cmp(&row[j]).then(i.cmp(&j)));
            let mut r = vec![0; n];
            for (rank, &j) in order.iter().enumerate() {
                r[j] = rank;
            }
            for &j in &order[..len_keep] {
                mask[b * n + j] = 0.0;
            }
            keep.push(order[..len_keep].to_vec());
            restore.push(r);
        }
        Ok(Masking {
            keep,
            mask,
            restore,
        })
    }

    /// Noise from the engine's Philox generator, keyed by (seed, step): reproducible on any device.
    pub fn random(seed: u64, step: u32, batch: usize, n: usize, len_keep: usize) -> Result<Self> {
        let noise: Vec<f32> = (0..batch * n)
            .map(|i| uniform(seed, step, 0x004d_4145, i as u64))
            .collect();
        Self::from_noise(&noise, batch, n, len_keep)
    }
}

#[derive(Debug)]
pub struct Mae {
    pub cfg: MaeConfig,
    pub encoder: Vit,
    pub decoder_embed: Linear,
    pub mask_token: Param,
    pub decoder_pos_embed: Param,
    pub decoder_blocks: Vec<Block>,
    pub decoder_norm: LayerNorm,
    pub decoder_pred: Linear,
    /// The rows of the decoder's output that are patches (per batch size) and the norm-pix
    /// weight (per dtype), uploaded once.
    indices: super::IndexCache,
}

pub struct MaeCache {
    enc: VitCache,
    latent: Tensor,
    dec_idx: Tensor,
    dec_blocks: Vec<BlockCache>,
    norm: LayerNormLayerCache,
    normed: Tensor,
    pred_idx: Tensor,
    pub pred: Tensor,
    target: Tensor,
    mask: Tensor,
    mask_sum: f32,
}

/// The loss and what produced it.
pub struct MaeOutput {
    pub loss: f32,
    pub masking: Masking,
    pub cache: MaeCache,
}

impl Mae {
    pub fn new(cfg: MaeConfig, seed: u64) -> Result<Self> {
        let encoder = Vit::new(cfg.encoder.clone(), seed)?;
        let mut init = Init::new(seed ^ 0xdec0de);
        let (gh, gw) = cfg.encoder.grid();
        let d = cfg.decoder_dim;
        let p = cfg.encoder.patch;
        let pos = Tensor::from_f32(&[1, 1 + gh * gw, d], sincos_2d(d, gh, gw)?)?;
        let eps = cfg.encoder.eps;
        Ok(Mae {
            decoder_embed: Linear::new(cfg.encoder.dim, d, true, &mut init)?,
            mask_token: Param::new(init.trunc_normal(&[1, 1, d], 0.02)?)?,
            decoder_pos_embed: Param::fixed(pos)?,
            decoder_blocks: (0..cfg.decoder_depth)
                .map(|_| Block::new(d, cfg.decoder_heads, 4.0, eps, &mut init))
                .collect::<Result<Vec<_>>>()?,
            decoder_norm: LayerNorm::new(d, eps, &mut init)?,
            decoder_pred: Linear::new(d, p * p * cfg.encoder.in_chans, true, &mut init)?,
            encoder,
            indices: super::IndexCache::default(),
            cfg,
        })
    }

    /// The per-patch pixel targets [B, N, P·P·C], normalised per patch when `norm_pix_loss`
    /// ((t − mean) / √(var + 1e-6) with the unbiased variance, as MAE).
    fn target(&self, img: &Tensor) -> Result<Tensor> {
        let t = ops::patchify(img, self.cfg.encoder.patch)?;
        if !self.cfg.norm_pix_loss {
            return Ok(t);
        }
        // LayerNorm uses the biased variance: rescale so the result equals MAE's formula.
        let c = *t.shape.last().unwrap_or(&1);
        let f = ((c as f64 - 1.0) / c as f64) as f32;
        let dev = t.device();
        let dt = t.dtype;
        // The weight depends only on (c, dtype): uploaded once.
        let key = [c, dt.size_bytes()];
        let w = self.indices.get("norm_pix_weight", &key, &dev, || {
            Tensor::from_f32(&[c], vec![f.sqrt(); c])?.to_dtype(dt)
        })?;
        let b = Tensor::zeros(&[c], dt, &dev)?;
        Ok(ops::layer_norm(&t, &w, &b, 1e-6 * f)?.0)
    }

    /// Forward pass and loss for images [B, C, H, W] with the given masking.
    pub fn forward(&self, img: &Tensor, masking: Masking) -> Result<MaeOutput> {
        let b = img.shape.first().copied().unwrap_or(0);
        let n = self.cfg.encoder.num_patches();
        let l = self.cfg.len_keep();
        if masking.keep.len() != b || masking.keep.iter().any(|k| k.len() != l) {
            bail!("masking must keep {l} patches for each of {b} images");
        }
        let dev = self.encoder.device();
        let (latent, enc) = self.encoder.forward(img, Some(&masking.keep))?;
        let x = self.decoder_embed.forward(&latent)?;
        // Unshuffle: position 0 ← cls (row 0), patch j ← visible row 1 + rank or the mask token.
        let mut idx = Vec::with_capacity(b * (n + 1));
        for r in &masking.restore {
            idx.push(0);
            idx.extend(
                r.iter()
                    .map(|&rank| if rank < l { 1 + rank as i32 } else { -1 }),
            );
        }
        let dec_idx = Tensor::from_i32(&[b, n + 1], idx)?.to_device(&dev)?;
        let d = self.cfg.decoder_dim;
        let dt = x.dtype;
        let fill = self.mask_token.value_as(dt)?.into_owned().reshape(&[d])?;
        let x = ops::gather_rows(&x, &dec_idx, Some(&fill))?;
        let pos = self
            .decoder_pos_embed
            .value_as(dt)?
            .into_owned()
            .reshape(&[(n + 1) * d])?;
        let mut x = ops::bias_add(&x.reshape(&[b, (n + 1) * d])?, &pos)?.reshape(&[b, n + 1, d])?;
        let mut dec_blocks = Vec::new();
        for (i, blk) in self.decoder_blocks.iter().enumerate() {
            let _range = nvtx::range_with(|| format!("mae/decoder block {i} forward"));
            let (y, c) = blk.forward(x)?;
            dec_blocks.push(c);
            x = y;
        }
        let (normed, norm) = self.decoder_norm.forward(&x)?;
        let pred_full = self.decoder_pred.forward(&normed)?;
        let pred_idx = self.indices.get("pred_idx", &[b, n], &dev, || {
            Tensor::from_i32(&[b, n], (0..b).flat_map(|_| 1..=n as i32).collect())
        })?;
        let pred = ops::gather_rows(&pred_full, &pred_idx, None)?;
        let target = self.target(img)?;
        let mask = Tensor::from_f32(&[b * n], masking.mask.clone())?.to_device(&dev)?;
        let (loss, mask_sum) = ops::masked_row_mse(&pred, &target, &mask)?;
        if !loss.is_finite() {
            bail!("MAE loss is {loss}");
        }
        Ok(MaeOutput {
            loss,
            masking,
            cache: MaeCache {
                enc,
                latent,
                dec_idx,
                dec_blocks,
                norm,
                normed,
                pred_idx,
                pred,
                target,
                mask,
                mask_sum,
            },
        })
    }

    /// Backward from d(loss) = 1, adding every parameter gradient into `grads`.
    pub fn backward(&self, c: &MaeCache, grads: &mut Grads) -> Result<()> {
        let n = self.cfg.encoder.num_patches();
        let dpred = ops::masked_row_mse_backward(&c.pred, &c.target, &c.mask, c.mask_sum, 1.0)?;
        let dpred_full = ops::gather_rows_backward(&dpred, &c.pred_idx, n + 1, None)?;
        let dnormed = self.decoder_pred.backward(&c.normed, &dpred_full, grads)?;
        let mut dx = self.decoder_norm.backward(&c.norm, &dnormed, grads)?;
        for i in (0..self.decoder_blocks.len()).rev() {
            let block_range = nvtx::range_with(|| format!("mae/decoder block {i} backward"));
            dx = self.decoder_blocks[i].backward(&c.dec_blocks[i], &dx, grads)?;
            drop(block_range);
            grads.mark_final()?;
        }
        let d = self.cfg.decoder_dim;
        let mut dmask = dx.device().backend().zeros(&[d], dx.dtype)?;
        let l1 = c.latent.shape[1];
        let demb = ops::gather_rows_backward(&dx, &c.dec_idx, l1, Some(&mut dmask))?;
        grads.accumulate(&self.mask_token, &dmask)?;
        let dlatent = self.decoder_embed.backward(&c.latent, &demb, grads)?;
        self.encoder.backward(&c.enc, &dlatent, &[], false, grads)?;
        Ok(())
    }
}

impl Mae {
    /// The encoder's and the decoder's position tables, for
    /// [`crate::weights::load_from_file_interpolating`].
    pub fn pos_tables(&self) -> Vec<crate::weights::PosTable> {
        let mut t = self.encoder.pos_tables();
        t.push(crate::weights::PosTable {
            name: "decoder_pos_embed".into(),
            extra: 1,
            grid: self.cfg.encoder.grid(),
        });
        t
    }
}

impl Parameters for Mae {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.encoder.visit(prefix, f)?;
        f(&format!("{prefix}mask_token"), &mut self.mask_token)?;
        self.decoder_embed
            .visit(&format!("{prefix}decoder_embed."), f)?;
        f(
            &format!("{prefix}decoder_pos_embed"),
            &mut self.decoder_pos_embed,
        )?;
        for (i, b) in self.decoder_blocks.iter_mut().enumerate() {
            b.visit(&format!("{prefix}decoder_blocks.{i}."), f)?;
        }
        self.decoder_norm
            .visit(&format!("{prefix}decoder_norm."), f)?;
        self.decoder_pred
            .visit(&format!("{prefix}decoder_pred."), f)
    }
}
