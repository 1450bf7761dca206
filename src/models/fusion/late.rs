//! Late fusion: each encoder's pooled embedding, concatenated, through an MLP of decreasing
//! widths (GELU, dropout) and a classifier; log-softmax + NLL. With [`Inputs::Image`] or
//! [`Inputs::Wave`] the same model is a single-modality baseline (one encoder, the same head).
//!
//! Names: `image.*`, `wave.*` (the encoders present), `fusion.mlp.{i}.*`, `head.*`.

use super::head::{ClassifierHead, ClassifierHeadCache, HeadConfig};
use super::pool::{concat_features, pool, pool_backward, split_features, Pool, PoolCache};
use super::{EncoderConfig, FusionModel, FusionOutput, Objective};
use crate::models::seislm::{Seislm, SeislmCache};
use crate::models::sfm::{Vit, VitCache};
use crate::nn::{Grads, Init, ParamVisitor, Parameters};
use crate::tensor::Tensor;
use anyhow::{bail, Result};

/// Which encoders a late-fusion model reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inputs {
    Both,
    /// The image-only baseline.
    Image,
    /// The waveform-only baseline.
    Wave,
}

from_keywords!(Inputs, |s| "unknown inputs '{s}': expected both, image or wave",
    "both" => Both,
    "image" => Image,
    "wave" | "waveform" => Wave,
);

#[derive(Clone, Debug, PartialEq)]
pub struct LateFusionConfig {
    pub encoders: EncoderConfig,
    pub inputs: Inputs,
    pub image_pool: Pool,
    pub wave_pool: Pool,
    pub head: HeadConfig,
}

impl LateFusionConfig {
    pub fn new(encoders: EncoderConfig, head: HeadConfig) -> Self {
        LateFusionConfig {
            encoders,
            inputs: Inputs::Both,
            image_pool: Pool::Cls,
            wave_pool: Pool::Mean,
            head,
        }
    }
    /// The tiny encoders, an MLP 64 → 32, dropout 0.1.
    pub fn tiny(classes: usize) -> Self {
        Self::new(
            EncoderConfig::tiny(),
            HeadConfig::new(&[64, 32], 0.1, classes),
        )
    }
}

#[derive(Debug)]
pub struct LateFusion {
    pub cfg: LateFusionConfig,
    pub image: Option<Vit>,
    pub wave: Option<Seislm>,
    pub head: ClassifierHead,
    pub seed: u64,
    pub step: u32,
    pub frozen_encoders: bool,
}

pub struct LateFusionCache {
    image: Option<(VitCache, PoolCache)>,
    wave: Option<(SeislmCache, PoolCache)>,
    head: ClassifierHeadCache,
}

impl LateFusion {
    pub fn new(cfg: LateFusionConfig, seed: u64) -> Result<Self> {
        let image = match cfg.inputs {
            Inputs::Both | Inputs::Image => Some(Vit::new(cfg.encoders.image.clone(), seed)?),
            Inputs::Wave => None,
        };
        let wave = match cfg.inputs {
            Inputs::Both | Inputs::Wave => Some(Seislm::new(
                cfg.encoders.wave.clone(),
                seed.wrapping_add(1),
            )?),
            Inputs::Image => None,
        };
        let width =
            image.as_ref().map_or(0, |m| m.cfg.dim) + wave.as_ref().map_or(0, |m| m.cfg.hidden);
        let mut init = Init::new(seed.wrapping_add(2));
        Ok(LateFusion {
            head: ClassifierHead::new(width, &cfg.head, &mut init)?,
            image,
            wave,
            cfg,
            seed,
            step: 0,
            frozen_encoders: false,
        })
    }

    /// The pooled (and, with both encoders, concatenated) features [B, width] the head reads.
    #[allow(clippy::type_complexity)]
    fn features(
        &self,
        images: &Tensor,
        waves: &Tensor,
    ) -> Result<(
        Tensor,
        Option<(VitCache, PoolCache)>,
        Option<(SeislmCache, PoolCache)>,
    )> {
        let image = match &self.image {
            Some(m) => {
                let (tokens, c) = m.forward(images, None)?;
                let (p, pc) = pool(&tokens, self.cfg.image_pool)?;
                Some((p, c, pc))
            }
            None => None,
        };
        let wave = match &self.wave {
            Some(m) => {
                let (out, c) = m.forward(waves, None)?;
                let (p, pc) = pool(&out.last_hidden_state, self.cfg.wave_pool)?;
                Some((p, c, pc))
            }
            None => None,
        };
        match (image, wave) {
            (Some((a, ca, pa)), Some((b, cb, pb))) => {
                if a.shape[0] != b.shape[0] {
                    bail!(
                        "late fusion: {} images and {} waveforms do not pair up",
                        a.shape[0],
                        b.shape[0]
                    );
                }
                Ok((concat_features(&a, &b)?, Some((ca, pa)), Some((cb, pb))))
            }
            (Some((a, ca, pa)), None) => Ok((a, Some((ca, pa)), None)),
            (None, Some((b, cb, pb))) => Ok((b, None, Some((cb, pb)))),
            (None, None) => bail!("late fusion: no encoder"),
        }
    }
}

impl FusionModel for LateFusion {
    type Cache = LateFusionCache;

    fn forward(
        &self,
        images: &Tensor,
        waves: &Tensor,
        train: bool,
    ) -> Result<(FusionOutput, LateFusionCache)> {
        let (x, image, wave) = self.features(images, waves)?;
        let (output, head) = self.head.classify(&x, train, self.seed, self.step)?;
        Ok((output, LateFusionCache { image, wave, head }))
    }

    fn backward(&self, c: &LateFusionCache, dlogits: &Tensor, grads: &mut Grads) -> Result<()> {
        let dx = self.head.backward(&c.head, dlogits, grads)?;
        if self.frozen_encoders {
            return Ok(());
        }
        let (di, dw) = match (&self.image, &self.wave) {
            (Some(a), Some(b)) => {
                let (di, dw) = split_features(&dx, a.cfg.dim, b.cfg.hidden)?;
                (Some(di), Some(dw))
            }
            (Some(_), None) => (Some(dx), None),
            _ => (None, Some(dx)),
        };
        if let (Some(m), Some((vc, pc)), Some(d)) = (&self.image, &c.image, di) {
            let dt = pool_backward(pc, &d)?;
            m.backward(vc, &dt, &[], false, grads)?;
        }
        if let (Some(m), Some((sc, pc)), Some(d)) = (&self.wave, &c.wave, dw) {
            let dh = pool_backward(pc, &d)?;
            m.backward(sc, &dh, None, false, grads)?;
        }
        Ok(())
    }

    classifier_fusion_state!();
}

impl Parameters for LateFusion {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        if let Some(m) = &mut self.image {
            m.visit(&format!("{prefix}image."), f)?;
        }
        if let Some(m) = &mut self.wave {
            m.visit(&format!("{prefix}wave."), f)?;
        }
        self.head.visit_fusion(prefix, f)
    }
}
