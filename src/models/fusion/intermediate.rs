//! Intermediate fusion: the two token sequences (ViT tokens [B, 1 + N, C_img], SeisLM frames
//! [B, T, C_wave]) are projected to a common width, then each fusion layer updates both at
//! once — image tokens attend to waveform tokens and waveform tokens to image tokens (pre-LN
//! cross-attention blocks with residuals and MLPs, [`CrossBlock`]; N + 1 ≠ T in general) —
//! then a final LayerNorm per stream, pooling of both, concatenation, MLP and classifier.
//!
//! Names: `image.*`, `wave.*`, `fusion.image_in.*`, `fusion.wave_in.*`,
//! `fusion.layers.{i}.image.*` (image queries), `fusion.layers.{i}.wave.*` (waveform queries),
//! `fusion.image_norm.*`, `fusion.wave_norm.*`, `fusion.mlp.{i}.*`, `head.*`.

use super::head::{ClassifierHead, ClassifierHeadCache, HeadConfig};
use super::pool::{concat_features, pool, pool_backward, split_features, Pool, PoolCache};
use super::{EncoderConfig, FusionModel, FusionOutput, Objective};
use crate::models::seislm::{Seislm, SeislmCache};
use crate::models::sfm::{Vit, VitCache};
use crate::nn::layer_norm::LayerNormLayerCache;
use crate::nn::{
    CrossBlock, CrossBlockCache, Grads, Init, LayerNorm, Linear, ParamVisitor, Parameters,
};
use crate::ops;
use crate::tensor::Tensor;
use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct MidFusionConfig {
    pub encoders: EncoderConfig,
    /// The fusion width both streams are projected to.
    pub dim: usize,
    /// Fusion layers (each a cross-attention block per direction).
    pub depth: usize,
    pub heads: usize,
    pub mlp_ratio: f32,
    pub eps: f32,
    pub image_pool: Pool,
    pub wave_pool: Pool,
    pub head: HeadConfig,
}

impl MidFusionConfig {
    pub fn new(
        encoders: EncoderConfig,
        dim: usize,
        depth: usize,
        heads: usize,
        head: HeadConfig,
    ) -> Self {
        MidFusionConfig {
            encoders,
            dim,
            depth,
            heads,
            mlp_ratio: 4.0,
            eps: 1e-6,
            image_pool: Pool::Cls,
            wave_pool: Pool::Mean,
            head,
        }
    }
    /// The tiny encoders, one fusion layer of width 32 with 4 heads, a 32-wide MLP.
    pub fn tiny(classes: usize) -> Self {
        let mut c = Self::new(
            EncoderConfig::tiny(),
            32,
            1,
            4,
            HeadConfig::new(&[32], 0.1, classes),
        );
        c.mlp_ratio = 2.0;
        c
    }
}

/// One fusion layer: a cross-attention block per direction.
#[derive(Debug)]
pub struct FusionLayer {
    /// Image tokens (queries) attend to waveform tokens.
    pub image: CrossBlock,
    /// Waveform tokens (queries) attend to image tokens.
    pub wave: CrossBlock,
}

struct FusionLayerCache {
    image: CrossBlockCache,
    wave: CrossBlockCache,
}

#[derive(Debug)]
pub struct MidFusion {
    pub cfg: MidFusionConfig,
    pub image: Vit,
    pub wave: Seislm,
    pub image_in: Linear,
    pub wave_in: Linear,
    pub layers: Vec<FusionLayer>,
    pub image_norm: LayerNorm,
    pub wave_norm: LayerNorm,
    pub head: ClassifierHead,
    pub seed: u64,
    pub step: u32,
    pub frozen_encoders: bool,
}

pub struct MidFusionCache {
    image: VitCache,
    wave: SeislmCache,
    image_tokens: Tensor,
    wave_tokens: Tensor,
    layers: Vec<FusionLayerCache>,
    image_norm: LayerNormLayerCache,
    wave_norm: LayerNormLayerCache,
    image_pool: PoolCache,
    wave_pool: PoolCache,
    head: ClassifierHeadCache,
}

impl MidFusion {
    pub fn new(cfg: MidFusionConfig, seed: u64) -> Result<Self> {
        if cfg.dim == 0 || cfg.depth == 0 {
            bail!(
                "intermediate fusion: width and depth must be positive, found {} and {}",
                cfg.dim,
                cfg.depth
            );
        }
        let image = Vit::new(cfg.encoders.image.clone(), seed)?;
        let wave = Seislm::new(cfg.encoders.wave.clone(), seed.wrapping_add(1))?;
        let mut init = Init::new(seed.wrapping_add(2));
        let d = cfg.dim;
        let image_in = Linear::new(image.cfg.dim, d, true, &mut init)?;
        let wave_in = Linear::new(wave.cfg.hidden, d, true, &mut init)?;
        let layers = (0..cfg.depth)
            .map(|_| {
                Ok(FusionLayer {
                    image: CrossBlock::new(d, cfg.heads, cfg.mlp_ratio, cfg.eps, &mut init)?,
                    wave: CrossBlock::new(d, cfg.heads, cfg.mlp_ratio, cfg.eps, &mut init)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MidFusion {
            image_norm: LayerNorm::new(d, cfg.eps, &mut init)?,
            wave_norm: LayerNorm::new(d, cfg.eps, &mut init)?,
            head: ClassifierHead::new(2 * d, &cfg.head, &mut init)?,
            image,
            wave,
            image_in,
            wave_in,
            layers,
            cfg,
            seed,
            step: 0,
            frozen_encoders: false,
        })
    }
}

impl FusionModel for MidFusion {
    type Cache = MidFusionCache;

    fn forward(
        &self,
        images: &Tensor,
        waves: &Tensor,
        train: bool,
    ) -> Result<(FusionOutput, MidFusionCache)> {
        let (tokens, image) = self.image.forward(images, None)?;
        let (out, wave) = self.wave.forward(waves, None)?;
        if tokens.shape[0] != out.last_hidden_state.shape[0] {
            bail!(
                "intermediate fusion: {} images and {} waveforms do not pair up",
                tokens.shape[0],
                out.last_hidden_state.shape[0]
            );
        }
        let image_tokens = tokens;
        let wave_tokens = out.last_hidden_state;
        let mut xi = self.image_in.forward(&image_tokens)?;
        let mut xw = self.wave_in.forward(&wave_tokens)?;
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let (yi, ci) = l.image.forward(&xi, &xw)?;
            let (yw, cw) = l.wave.forward(&xw, &xi)?;
            layers.push(FusionLayerCache {
                image: ci,
                wave: cw,
            });
            (xi, xw) = (yi, yw);
        }
        let (ni, image_norm) = self.image_norm.forward(&xi)?;
        let (nw, wave_norm) = self.wave_norm.forward(&xw)?;
        let (pi, image_pool) = pool(&ni, self.cfg.image_pool)?;
        let (pw, wave_pool) = pool(&nw, self.cfg.wave_pool)?;
        let x = concat_features(&pi, &pw)?;
        let (output, head) = self.head.classify(&x, train, self.seed, self.step)?;
        Ok((
            output,
            MidFusionCache {
                image,
                wave,
                image_tokens,
                wave_tokens,
                layers,
                image_norm,
                wave_norm,
                image_pool,
                wave_pool,
                head,
            },
        ))
    }

    fn backward(&self, c: &MidFusionCache, dlogits: &Tensor, grads: &mut Grads) -> Result<()> {
        let dx = self.head.backward(&c.head, dlogits, grads)?;
        let d = self.cfg.dim;
        let (dpi, dpw) = split_features(&dx, d, d)?;
        let dni = pool_backward(&c.image_pool, &dpi)?;
        let dnw = pool_backward(&c.wave_pool, &dpw)?;
        let mut dxi = self.image_norm.backward(&c.image_norm, &dni, grads)?;
        let mut dxw = self.wave_norm.backward(&c.wave_norm, &dnw, grads)?;
        for (l, lc) in self.layers.iter().zip(&c.layers).rev() {
            // yi = image(xi, xw), yw = wave(xw, xi): each input feeds both blocks.
            let (mut dxi_new, dxw_from_image) = l.image.backward(&lc.image, &dxi, grads)?;
            let (mut dxw_new, dxi_from_wave) = l.wave.backward(&lc.wave, &dxw, grads)?;
            ops::add_assign(&mut dxi_new, &dxi_from_wave)?;
            ops::add_assign(&mut dxw_new, &dxw_from_image)?;
            (dxi, dxw) = (dxi_new, dxw_new);
        }
        let dti = self.image_in.backward(&c.image_tokens, &dxi, grads)?;
        let dtw = self.wave_in.backward(&c.wave_tokens, &dxw, grads)?;
        if !self.frozen_encoders {
            self.image.backward(&c.image, &dti, &[], false, grads)?;
            self.wave.backward(&c.wave, &dtw, None, false, grads)?;
        }
        Ok(())
    }

    classifier_fusion_state!();
}

impl Parameters for MidFusion {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.image.visit(&format!("{prefix}image."), f)?;
        self.wave.visit(&format!("{prefix}wave."), f)?;
        let p = format!("{prefix}fusion.");
        self.image_in.visit(&format!("{p}image_in."), f)?;
        self.wave_in.visit(&format!("{p}wave_in."), f)?;
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.image.visit(&format!("{p}layers.{i}.image."), f)?;
            l.wave.visit(&format!("{p}layers.{i}.wave."), f)?;
        }
        self.image_norm.visit(&format!("{p}image_norm."), f)?;
        self.wave_norm.visit(&format!("{p}wave_norm."), f)?;
        self.head
            .visit_split(&format!("{p}mlp."), &format!("{prefix}head."), f)
    }
}
