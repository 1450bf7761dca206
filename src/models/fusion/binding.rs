//! ImageBind-style binding of the two encoders: per modality LayerNorm → pooled token →
//! projection to a shared width (no bias) → L2 normalisation; the similarity matrix scaled by a
//! learnable logit scale exp(s) (s initialised at ln(1/0.07), exp(s) clamped at 100), trained
//! with the symmetric InfoNCE loss over the batch.
//!
//! Names: `image.*`, `wave.*` (the encoders), `fusion.image.norm.*`, `fusion.image.proj.weight`,
//! `fusion.wave.norm.*`, `fusion.wave.proj.weight`, `fusion.log_logit_scale` ([1]).

use super::pool::{pool, pool_backward, Pool, PoolCache};
use super::{EncoderConfig, FusionModel, FusionOutput, Objective};
use crate::models::seislm::{Seislm, SeislmCache};
use crate::models::sfm::{Vit, VitCache};
use crate::nn::layer_norm::LayerNormLayerCache;
use crate::nn::named_fields;
use crate::nn::{Grads, Init, LayerNorm, Linear, Param, ParamVisitor, Parameters};
use crate::ops::{self, ProjNorm};
use crate::tensor::Tensor;
use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct BindingConfig {
    pub encoders: EncoderConfig,
    /// The shared embedding width D.
    pub embed_dim: usize,
    /// Cls for the ViT (its cls token), Mean for SeisLM (which has none), by default.
    pub image_pool: Pool,
    pub wave_pool: Pool,
    /// exp(s) at initialisation (1/0.07, CLIP and ImageBind).
    pub logit_scale_init: f32,
    /// exp(s) is clamped at this value (100).
    pub max_logit_scale: f32,
    /// The LayerNorms' epsilon (1e-6).
    pub eps: f32,
}

impl BindingConfig {
    pub fn new(encoders: EncoderConfig, embed_dim: usize) -> Self {
        BindingConfig {
            encoders,
            embed_dim,
            image_pool: Pool::Cls,
            wave_pool: Pool::Mean,
            logit_scale_init: 1.0 / 0.07,
            max_logit_scale: 100.0,
            eps: 1e-6,
        }
    }
    /// The tiny encoders and a 32-wide embedding.
    pub fn tiny() -> Self {
        Self::new(EncoderConfig::tiny(), 32)
    }
    /// ln max_logit_scale (`ops::MAX_LOG_LOGIT_SCALE` for 100).
    pub fn max_log_scale(&self) -> f32 {
        self.max_logit_scale.ln()
    }
}

/// One modality's head: LayerNorm over the tokens, pooling, projection + L2 normalisation.
#[derive(Debug)]
pub struct ModalityHead {
    pub norm: LayerNorm,
    pub proj: Linear,
    pub pool: Pool,
}

pub struct ModalityHeadCache {
    norm: LayerNormLayerCache,
    pool: PoolCache,
    pooled: Tensor,
    proj: ProjNorm,
}

impl ModalityHead {
    pub fn new(width: usize, dim: usize, pool: Pool, eps: f32, init: &mut Init) -> Result<Self> {
        Ok(ModalityHead {
            norm: LayerNorm::new(width, eps, init)?,
            proj: Linear::new(width, dim, false, init)?,
            pool,
        })
    }

    /// tokens [B, N, C] → unit embeddings [B, D].
    pub fn forward(&self, tokens: &Tensor) -> Result<(Tensor, ModalityHeadCache)> {
        let (n, norm) = self.norm.forward(tokens)?;
        let (pooled, pool_c) = pool(&n, self.pool)?;
        let w = self.proj.weight.value_as(pooled.dtype)?;
        let proj = ops::project_l2norm(&pooled, &w)?;
        Ok((
            proj.e.clone(),
            ModalityHeadCache {
                norm,
                pool: pool_c,
                pooled,
                proj,
            },
        ))
    }

    /// d tokens [B, N, C] from d embeddings [B, D].
    pub fn backward(
        &self,
        c: &ModalityHeadCache,
        de: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let dt = c.pooled.dtype;
        let w = self.proj.weight.value_as(dt)?;
        let mut dw = grads.slot(&self.proj.weight, dt)?;
        let dpooled = ops::project_l2norm_backward(&c.pooled, &w, &c.proj, de, &mut dw)?;
        grads.commit(dw)?;
        let dn = pool_backward(&c.pool, &dpooled)?;
        self.norm.backward(&c.norm, &dn, grads)
    }
}

named_fields!(ModalityHead { norm, proj });

/// The binding layers on top of the encoders: a head per modality and the logit scale.
/// Names (under the model's `fusion.`): `image.norm.*`, `image.proj.weight`, `wave.norm.*`,
/// `wave.proj.weight`, `log_logit_scale`.
#[derive(Debug)]
pub struct BindingHead {
    pub image: ModalityHead,
    pub wave: ModalityHead,
    /// s, with the logit scale exp(min(s, max_log_scale)); [1] f32.
    pub log_logit_scale: Param,
    pub max_log_scale: f32,
}

pub struct BindingHeadCache {
    image: ModalityHeadCache,
    wave: ModalityHeadCache,
    ei: Tensor,
    ew: Tensor,
    logits: Tensor,
}

impl BindingHead {
    /// Heads for encoder widths `image_width` and `wave_width`.
    pub fn new(
        cfg: &BindingConfig,
        image_width: usize,
        wave_width: usize,
        init: &mut Init,
    ) -> Result<Self> {
        if cfg.embed_dim == 0 {
            bail!("binding: the embedding width must be positive");
        }
        if !(cfg.logit_scale_init > 0.0 && cfg.max_logit_scale > 0.0) {
            bail!(
                "binding: the logit scale and its maximum must be positive, found {} and {}",
                cfg.logit_scale_init,
                cfg.max_logit_scale
            );
        }
        let d = cfg.embed_dim;
        let s = Tensor::from_f32(&[1], vec![cfg.logit_scale_init.ln()])?;
        Ok(BindingHead {
            image: ModalityHead::new(image_width, d, cfg.image_pool, cfg.eps, init)?,
            wave: ModalityHead::new(wave_width, d, cfg.wave_pool, cfg.eps, init)?,
            log_logit_scale: Param::new(s)?,
            max_log_scale: cfg.max_log_scale(),
        })
    }

    /// Image tokens [B, N, C_img] and waveform tokens [B, T, C_wave] → the scaled similarity
    /// matrix [B, B] (f32) and the unit embeddings [B, D] of each.
    pub fn forward(
        &self,
        image_tokens: &Tensor,
        wave_tokens: &Tensor,
    ) -> Result<(FusionOutput, BindingHeadCache)> {
        if image_tokens.shape.first() != wave_tokens.shape.first() {
            bail!(
                "binding: image tokens {:?} and waveform tokens {:?} must pair up (the same batch)",
                image_tokens.shape,
                wave_tokens.shape
            );
        }
        let (ei, image) = self.image.forward(image_tokens)?;
        let (ew, wave) = self.wave.forward(wave_tokens)?;
        let logits = ops::similarity(&ei, &ew, &self.log_logit_scale.value, self.max_log_scale)?;
        Ok((
            FusionOutput {
                logits: logits.clone(),
                embeddings: Some((ei.clone(), ew.clone())),
            },
            BindingHeadCache {
                image,
                wave,
                ei,
                ew,
                logits,
            },
        ))
    }

    /// (d image tokens, d waveform tokens) from d logits; parameter gradients, the logit
    /// scale's included, are added into `grads`.
    pub fn backward(
        &self,
        c: &BindingHeadCache,
        dlogits: &Tensor,
        grads: &mut Grads,
    ) -> Result<(Tensor, Tensor)> {
        let mut ds = grads.of(&self.log_logit_scale)?;
        let (dei, dew) = ops::similarity_backward(
            &c.ei,
            &c.ew,
            &self.log_logit_scale.value,
            &c.logits,
            dlogits,
            self.max_log_scale,
            &mut ds,
        )?;
        let di = self.image.backward(&c.image, &dei, grads)?;
        let dw = self.wave.backward(&c.wave, &dew, grads)?;
        Ok((di, dw))
    }
}

impl Parameters for BindingHead {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.image.visit(&format!("{prefix}image."), f)?;
        self.wave.visit(&format!("{prefix}wave."), f)?;
        f(
            &format!("{prefix}log_logit_scale"),
            &mut self.log_logit_scale,
        )
    }
}

#[derive(Debug)]
pub struct Binding {
    pub cfg: BindingConfig,
    pub image: Vit,
    pub wave: Seislm,
    pub head: BindingHead,
    pub frozen_encoders: bool,
}

pub struct BindingCache {
    image: VitCache,
    wave: SeislmCache,
    head: BindingHeadCache,
}

impl Binding {
    pub fn new(cfg: BindingConfig, seed: u64) -> Result<Self> {
        let image = Vit::new(cfg.encoders.image.clone(), seed)?;
        let wave = Seislm::new(cfg.encoders.wave.clone(), seed.wrapping_add(1))?;
        let mut init = Init::new(seed.wrapping_add(2));
        let head = BindingHead::new(&cfg, image.cfg.dim, wave.cfg.hidden, &mut init)?;
        Ok(Binding {
            image,
            wave,
            head,
            frozen_encoders: false,
            cfg,
        })
    }

    /// Unit image embeddings [B, D] of images alone (zero-shot transfer, probes, retrieval).
    pub fn embed_images(&self, images: &Tensor) -> Result<Tensor> {
        let (tokens, _) = self.image.forward(images, None)?;
        Ok(self.head.image.forward(&tokens)?.0)
    }

    /// Unit waveform embeddings [B, D] of waveforms alone.
    pub fn embed_waves(&self, waves: &Tensor) -> Result<Tensor> {
        let (out, _) = self.wave.forward(waves, None)?;
        Ok(self.head.wave.forward(&out.last_hidden_state)?.0)
    }

    /// The current logit scale exp(min(s, ln max)) (read on the host).
    pub fn logit_scale(&self) -> Result<f32> {
        let s = self.head.log_logit_scale.value.to_vec_f32()?[0];
        Ok(s.min(self.head.max_log_scale).exp())
    }
}

impl FusionModel for Binding {
    type Cache = BindingCache;

    fn forward(
        &self,
        images: &Tensor,
        waves: &Tensor,
        _train: bool,
    ) -> Result<(FusionOutput, BindingCache)> {
        let (tokens, image) = self.image.forward(images, None)?;
        let (out, wave) = self.wave.forward(waves, None)?;
        let (output, head) = self.head.forward(&tokens, &out.last_hidden_state)?;
        Ok((output, BindingCache { image, wave, head }))
    }

    fn backward(&self, c: &BindingCache, dlogits: &Tensor, grads: &mut Grads) -> Result<()> {
        let (dtokens, dhidden) = self.head.backward(&c.head, dlogits, grads)?;
        if !self.frozen_encoders {
            self.image.backward(&c.image, &dtokens, &[], false, grads)?;
            self.wave.backward(&c.wave, &dhidden, None, false, grads)?;
        }
        Ok(())
    }

    fn objective(&self) -> Objective {
        Objective::Contrastive
    }
    fn set_step(&mut self, _step: u32) {}
    fn set_encoders_frozen(&mut self, frozen: bool) {
        self.frozen_encoders = frozen;
    }
}

impl Parameters for Binding {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.image.visit(&format!("{prefix}image."), f)?;
        self.wave.visit(&format!("{prefix}wave."), f)?;
        self.head.visit(&format!("{prefix}fusion."), f)
    }
}
