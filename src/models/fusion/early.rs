//! Early fusion: the waveform becomes an image inside the model — log-mel per component
//! (`ops::log_mel`, differentiable), its frames resampled to the image width (bilinear,
//! align_corners = true: column w reads frame w·(F−1)/(W−1), as `dsp::images`), z-scored per
//! image, optionally averaged over the components — and goes through the image encoder, alone or
//! stacked with the seismic section as channels (the patch embedding then has `in_chans` =
//! 1 + mel channels). Pool → MLP → classifier; log-softmax + NLL.
//!
//! The z-score is `(x − mean) / √(var + 1e-12)` (a LayerNorm without affine), which equals
//! `seisfuse mel --normalize zscore`'s `(x − mean)/(std + 1e-6)` up to 1e-6 / std.
//! Gradients reach the waveform through [`EarlyFusion::backward_with_wave_grad`].
//!
//! Names: `image.*` (the ViT; `image.patch_embed.proj.weight` is [dim, in_chans, p, p]),
//! `fusion.mlp.{i}.*`, `head.*`. There is no waveform encoder.

use super::head::{ClassifierHead, ClassifierHeadCache, HeadConfig};
use super::pool::{pool, pool_backward, Pool, PoolCache};
use super::{FusionModel, FusionOutput, Objective};
use crate::dsp::images::{MelImageConfig, MelImagePlan, Normalize};
use crate::models::sfm::{Vit, VitCache, VitConfig};
use crate::nn::{Grads, Init, ParamVisitor, Parameters};
use crate::ops::mel::{log_mel, log_mel_backward, LogMelSpec};
use crate::ops::{self, LayerNormCache};
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};

/// The z-score's epsilon under the square root.
const ZSCORE_EPS: f32 = 1e-12;

#[derive(Clone, Debug, PartialEq)]
pub struct EarlyFusionConfig {
    /// The image encoder; `new` sets its `in_chans` from the mel channels and `section`.
    pub image: VitConfig,
    /// The mel-image recipe; its height and width are taken from the encoder's image size.
    /// Supported: normalize ZScore or None, no top_db (the others are not differentiable).
    pub mel: MelImageConfig,
    /// Stack the seismic section (one channel, first) with the mel image(s).
    pub section: bool,
    /// Waveform components (3).
    pub wave_chans: usize,
    pub pool: Pool,
    pub head: HeadConfig,
}

impl EarlyFusionConfig {
    pub fn new(image: VitConfig, section: bool, head: HeadConfig) -> Self {
        EarlyFusionConfig {
            image,
            mel: MelImageConfig {
                normalize: Normalize::ZScore,
                average_channels: true,
                ..MelImageConfig::default()
            },
            section,
            wave_chans: 3,
            pool: Pool::Cls,
            head,
        }
    }
    /// sfm-tiny on the section stacked with one (component-averaged) mel image, an MLP 64 → 32.
    pub fn tiny(classes: usize) -> Self {
        Self::new(
            VitConfig::preset("sfm-tiny").expect("the tiny preset exists"),
            true,
            HeadConfig::new(&[64, 32], 0.1, classes),
        )
    }
    /// Mel channels per sample.
    pub fn mel_chans(&self) -> usize {
        if self.mel.average_channels {
            1
        } else {
            self.wave_chans
        }
    }
    /// The encoder's input channels.
    pub fn in_chans(&self) -> usize {
        self.mel_chans() + self.section as usize
    }
    /// The mel recipe at the encoder's image size.
    fn mel_config(&self) -> MelImageConfig {
        MelImageConfig {
            height: self.image.img_h,
            width: self.image.img_w,
            ..self.mel.clone()
        }
    }
}

#[derive(Debug)]
pub struct EarlyFusion {
    pub cfg: EarlyFusionConfig,
    pub image: Vit,
    pub head: ClassifierHead,
    pub seed: u64,
    pub step: u32,
    pub frozen_encoders: bool,
}

/// The mel front end's forward state.
struct MelCache {
    /// The waveforms as [B·C, T] and the transform.
    flat: Tensor,
    spec: LogMelSpec,
    /// Log-mel frames F.
    frames: usize,
    /// The z-score's input [B·C, H·W], its unit weight and its statistics.
    norm: Option<(Tensor, Tensor, LayerNormCache)>,
    /// The averaging row [1, C] when the components were averaged.
    avg: Option<Tensor>,
}

pub struct EarlyFusionCache {
    mel: MelCache,
    vit: VitCache,
    pool: PoolCache,
    head: ClassifierHeadCache,
}

impl EarlyFusion {
    pub fn new(mut cfg: EarlyFusionConfig, seed: u64) -> Result<Self> {
        if !matches!(cfg.mel.normalize, Normalize::ZScore | Normalize::None) {
            bail!("early fusion: the in-model mel images are z-scored or left unnormalised (min-max is not differentiable); set normalize to zscore or none");
        }
        if cfg.mel.top_db.is_some() {
            bail!("early fusion: top_db clipping is not supported in the model; drop top_db");
        }
        if cfg.wave_chans == 0 {
            bail!("early fusion: the waveforms need at least one component");
        }
        cfg.image.in_chans = cfg.in_chans();
        let image = Vit::new(cfg.image.clone(), seed)?;
        let mut init = Init::new(seed.wrapping_add(2));
        Ok(EarlyFusion {
            head: ClassifierHead::new(image.cfg.dim, &cfg.head, &mut init)?,
            image,
            cfg,
            seed,
            step: 0,
            frozen_encoders: false,
        })
    }

    /// Mel images [B, mel_chans, H, W] (f32) of waveforms [B, C, T] (f32).
    pub fn mel_images(&self, waves: &Tensor) -> Result<Tensor> {
        Ok(self.mel_forward(waves)?.0)
    }

    fn mel_forward(&self, waves: &Tensor) -> Result<(Tensor, MelCache)> {
        let [b, c, t] = waves.shape[..] else {
            bail!(
                "early fusion: waveforms must be [batch, {}, samples], found {:?}",
                self.cfg.wave_chans,
                waves.shape
            );
        };
        if c != self.cfg.wave_chans || waves.dtype != DType::F32 {
            bail!(
                "early fusion: waveforms must be f32 [batch, {}, samples], found {} {:?}",
                self.cfg.wave_chans,
                waves.dtype,
                waves.shape
            );
        }
        let mcfg = self.cfg.mel_config();
        let plan = MelImagePlan::new(&mcfg, t)?;
        let spec = LogMelSpec {
            stft: plan.stft.clone(),
            mel: plan.mel.clone(),
            log: mcfg.log,
        };
        let (h, w, f) = (mcfg.height, mcfg.width, plan.frames);
        let dev = waves.device();
        let flat = waves.clone().reshape(&[b * c, t])?;
        let lm = log_mel(&flat, &spec)?.reshape(&[b * c, 1, h, f])?;
        let r = if f != w {
            ops::upsample_bilinear(&lm, (h, w), true)?
        } else {
            lm
        };
        let r = r.reshape(&[b * c, h * w])?;
        let (x, norm) = match mcfg.normalize {
            Normalize::ZScore => {
                let one = Tensor::from_f32(&[h * w], vec![1.0; h * w])?.to_device(&dev)?;
                let zero = dev.backend().zeros(&[h * w], DType::F32)?;
                let (y, st) = ops::layer_norm(&r, &one, &zero, ZSCORE_EPS)?;
                (y, Some((r, one, st)))
            }
            _ => (r, None),
        };
        let (x, avg) = if mcfg.average_channels && c > 1 {
            let a = Tensor::from_f32(&[1, c], vec![1.0 / c as f32; c])?.to_device(&dev)?;
            let y = ops::matmul(&a, &x.reshape(&[b, c, h * w])?, false, false, None)?;
            (y, Some(a))
        } else {
            (x, None)
        };
        let mc = self.cfg.mel_chans();
        Ok((
            x.reshape(&[b, mc, h, w])?,
            MelCache {
                flat,
                spec,
                frames: f,
                norm,
                avg,
            },
        ))
    }

    /// d waves [B, C, T] from d mel images [B, mel_chans, H, W] (f32).
    fn mel_backward(&self, c: &MelCache, dmel: &Tensor) -> Result<Tensor> {
        let [bc, t] = c.flat.shape[..] else {
            bail!("early fusion: bad mel cache");
        };
        let (h, w) = (self.cfg.image.img_h, self.cfg.image.img_w);
        let ch = self.cfg.wave_chans;
        let b = bc / ch;
        let mut d = dmel.clone();
        if let Some(a) = &c.avg {
            d = ops::matmul(a, &d.reshape(&[b, 1, h * w])?, true, false, None)?;
        }
        let mut d = d.reshape(&[bc, h * w])?;
        if let Some((x, one, st)) = &c.norm {
            let dev = d.device();
            let mut dw = dev.backend().zeros(&[h * w], DType::F32)?;
            let mut db = dev.backend().zeros(&[h * w], DType::F32)?;
            d = ops::layer_norm_backward(&d, x, one, st, (&mut dw, &mut db), None)?;
        }
        let d = d.reshape(&[bc, 1, h, w])?;
        let d = if c.frames != w {
            ops::upsample_bilinear_backward(&d, (h, c.frames), true)?
        } else {
            d
        };
        let d = d.reshape(&[bc, h, c.frames])?;
        log_mel_backward(&c.flat, &d, &c.spec)?.reshape(&[b, ch, t])
    }

    /// The backward pass that also returns d waves [B, C, T] (f32), through the image encoder
    /// (whatever `frozen_encoders` says) and the mel front end.
    pub fn backward_with_wave_grad(
        &self,
        c: &EarlyFusionCache,
        dlogits: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let Some(dimg) = self.backward_inner(c, dlogits, grads, true)? else {
            bail!("early fusion: the image encoder returned no input gradient");
        };
        let mc = self.cfg.mel_chans();
        let dmel = if self.cfg.section {
            ops::split_channels(&dimg, &[1, mc])?
                .pop()
                .expect("two parts")
        } else {
            dimg
        };
        let dmel = if dmel.dtype == DType::F32 {
            dmel
        } else {
            ops::cast(&dmel, DType::F32)?
        };
        self.mel_backward(&c.mel, &dmel)
    }

    fn backward_inner(
        &self,
        c: &EarlyFusionCache,
        dlogits: &Tensor,
        grads: &mut Grads,
        want_image_grad: bool,
    ) -> Result<Option<Tensor>> {
        let dx = self.head.backward(&c.head, dlogits, grads)?;
        if self.frozen_encoders && !want_image_grad {
            return Ok(None);
        }
        let dt = pool_backward(&c.pool, &dx)?;
        self.image
            .backward(&c.vit, &dt, &[], want_image_grad, grads)
    }
}

impl FusionModel for EarlyFusion {
    type Cache = EarlyFusionCache;

    fn forward(
        &self,
        images: &Tensor,
        waves: &Tensor,
        train: bool,
    ) -> Result<(FusionOutput, EarlyFusionCache)> {
        let (mel, mel_c) = self.mel_forward(waves)?;
        let b = mel.shape[0];
        let x = if self.cfg.section {
            let (h, w) = (self.cfg.image.img_h, self.cfg.image.img_w);
            if images.shape != [b, 1, h, w] {
                bail!(
                    "early fusion: sections must be [{b}, 1, {h}, {w}] (one per waveform), found {:?}",
                    images.shape
                );
            }
            let mel = if images.dtype == DType::F32 {
                mel
            } else {
                ops::cast(&mel, images.dtype)?
            };
            ops::concat_channels(&[images, &mel])?
        } else {
            mel
        };
        let (tokens, vit) = self.image.forward(&x, None)?;
        let (p, pool_c) = pool(&tokens, self.cfg.pool)?;
        let (output, head) = self.head.classify(&p, train, self.seed, self.step)?;
        Ok((
            output,
            EarlyFusionCache {
                mel: mel_c,
                vit,
                pool: pool_c,
                head,
            },
        ))
    }

    fn backward(&self, c: &EarlyFusionCache, dlogits: &Tensor, grads: &mut Grads) -> Result<()> {
        self.backward_inner(c, dlogits, grads, false)?;
        Ok(())
    }

    classifier_fusion_state!();
}

impl Parameters for EarlyFusion {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.image.visit(&format!("{prefix}image."), f)?;
        self.head.visit_fusion(prefix, f)
    }
}
