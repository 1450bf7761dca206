//! The SFM downstream heads (docs/reference.md, "Downstream tasks"), each with an explicit forward
//! and backward pass, laid out and named as SFM-Finetune's `models_Segmentation.py` and
//! `models_Regression.py` (github.com/shenghanlin/SeismicFoundationModel, SFM-Finetune/):
//!
//! - `SetrMlaHead` (segmentation, SFM's `VIT_MLAHead`): four feature maps [B, C, h, w] (ViT
//!   tokens of blocks depth/4, 2·depth/4, 3·depth/4 and depth, before the final norm, reshaped
//!   onto the patch grid) each through two conv3×3+BN+ReLU down to `width` channels (128 in SFM)
//!   and bilinearly upsampled ×4; concatenated; conv3×3 (with bias) to the class count; bilinear
//!   upsample to the image size.
//! - `TransUnetHead` (regression, SFM's `DecoderCup` + `SegmentationHead`): final normed tokens
//!   [B, C, h, w] and the input image [B, 1, H, W]; 4 stages of bilinear upsample ×2 then two
//!   conv3×3+BN+ReLU (C→256→128→64→64 in SFM); the last stage concatenates a skip branch
//!   (conv3×3+BN+ReLU of the image, 1→32 channels) after its upsampling and before its convs;
//!   a 1×1 conv (with bias) to one channel.
//! - `ClassificationHead`: pooled token [B, C] → Linear → logits.
//!
//! All bilinear resampling is PyTorch's `align_corners=True`, as SFM's code does it
//! (`nn.UpsamplingBilinear2d` in the regression decoder, `F.interpolate(..., mode='bilinear',
//! align_corners=True)` in the segmentation head). Convolutions followed by a BatchNorm have no
//! bias; the final convolutions have one. BatchNorm eps 1e-5, momentum 0.1 (PyTorch defaults).
//!
//! Parameter names are SFM-Finetune's state-dict names, so a converted fine-tuned checkpoint
//! loads strictly (`weights/README.md`); visit the heads with the prefix "" next to the encoder:
//! segmentation `decoder.mlahead.head{2,3,4,5}.{0,3}.weight` (the two convs of a branch),
//! `decoder.mlahead.head{k}.{1,4}.*` (their BatchNorms), `decoder.cls.{weight,bias}`;
//! regression `decoder.blocks.{s}.conv{1,2}.0.weight`, `decoder.blocks.{s}.conv{1,2}.1.*`,
//! `decoder.conv_more.{0,1}.*` (the skip branch), `segmentation_head.0.{weight,bias}`.
//! Their checkpoints also hold tensors no forward pass uses (timm's classifier `head.*`, an
//! unused `segmentation_head.0` in the segmentation model, BatchNorm's `num_batches_tracked`):
//! `weights::names::sfm_finetune_load_options` skips them.

use crate::nn::batch_norm::BatchNorm2dCache;
use crate::nn::conv2d::Conv2dCache;
use crate::nn::named_fields;
use crate::nn::{BatchNorm2d, Conv2d, Grads, Init, Param, ParamVisitor, Parameters};
use crate::ops;
use crate::tensor::Tensor;
use anyhow::{bail, Context, Result};

/// conv3×3 (no bias) → BatchNorm2d → ReLU, SFM's `Conv2dReLU` (an `nn.Sequential`). Names
/// `0.weight` (conv), `1.*` (BatchNorm).
#[derive(Debug)]
pub struct ConvBnRelu {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

pub struct ConvBnReluCache {
    conv: Conv2dCache,
    bn: BatchNorm2dCache,
    /// The ReLU output (its backward needs only the sign).
    y: Tensor,
}

impl ConvBnRelu {
    pub fn new(cin: usize, cout: usize, init: &mut Init) -> Result<Self> {
        Ok(ConvBnRelu {
            conv: Conv2d::new(cin, cout, 3, false, init)?,
            bn: BatchNorm2d::new(cout)?,
        })
    }
    pub fn set_training(&mut self, training: bool) {
        self.bn.training = training;
    }
    pub fn forward(&mut self, x: &Tensor) -> Result<(Tensor, ConvBnReluCache)> {
        let (c, conv) = self.conv.forward(x)?;
        let (b, bn) = self.bn.forward(&c)?;
        let y = ops::relu(&b)?;
        Ok((y.clone(), ConvBnReluCache { conv, bn, y }))
    }
    pub fn backward(
        &self,
        cache: &ConvBnReluCache,
        dy: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let db = ops::relu_backward(&cache.y, dy)?;
        let dc = self.bn.backward(&cache.bn, &db, grads)?;
        self.conv.backward(&cache.conv, &dc, grads)
    }
}

impl ConvBnRelu {
    /// Visits the conv as `{prefix}{at}.` and the BatchNorm as `{prefix}{at + 1}.`, the
    /// indices of an `nn.Sequential` holding them (the ReLU at `at + 2` has no parameters).
    pub fn visit_at(&mut self, prefix: &str, at: usize, f: &mut ParamVisitor) -> Result<()> {
        self.conv.visit(&format!("{prefix}{at}."), f)?;
        self.bn.visit(&format!("{prefix}{}.", at + 1), f)
    }
}

impl Parameters for ConvBnRelu {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.visit_at(prefix, 0, f)
    }
}

/// Checks that `t` is NCHW with `c` channels; returns (b, h, w).
fn nchw(what: &str, t: &Tensor, c: usize) -> Result<(usize, usize, usize)> {
    if t.rank() != 4 || t.shape[1] != c {
        bail!(
            "{what} must be [batch, {c}, height, width], found {:?}",
            t.shape
        );
    }
    Ok((t.shape[0], t.shape[2], t.shape[3]))
}

/// SETR-MLA head sizes. SFM: `in_channels` = the ViT width (768 base, 1024 large), width 128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetrMlaConfig {
    pub in_channels: usize,
    /// Channels of each branch (128 in SFM; smaller for tiny presets).
    pub width: usize,
    pub classes: usize,
    /// The upsampling factor of each branch (4).
    pub branch_upsample: usize,
}

/// SETR-MLA segmentation head (SFM's `VIT_MLAHead`). Names: branch i (0..4, from the shallowest
/// feature map) is `decoder.mlahead.head{i + 2}` with its convs at `.0.`, `.3.` and BatchNorms at
/// `.1.`, `.4.` (one `nn.Sequential` conv, bn, relu, conv, bn, relu); `decoder.cls.{weight,bias}`.
#[derive(Debug)]
pub struct SetrMlaHead {
    pub cfg: SetrMlaConfig,
    pub branches: Vec<[ConvBnRelu; 2]>,
    pub cls: Conv2d,
}

pub struct SetrMlaCache {
    branches: Vec<[ConvBnReluCache; 2]>,
    grid: (usize, usize),
    up: (usize, usize),
    cls: Conv2dCache,
}

impl SetrMlaHead {
    pub fn new(cfg: SetrMlaConfig, seed: u64) -> Result<Self> {
        if cfg.in_channels == 0 || cfg.width == 0 || cfg.classes == 0 || cfg.branch_upsample == 0 {
            bail!("SetrMlaHead: every size must be non-zero, found {cfg:?}");
        }
        let mut init = Init::new(seed);
        let mut branches = Vec::with_capacity(4);
        for _ in 0..4 {
            branches.push([
                ConvBnRelu::new(cfg.in_channels, cfg.width, &mut init)?,
                ConvBnRelu::new(cfg.width, cfg.width, &mut init)?,
            ]);
        }
        let cls = Conv2d::new(4 * cfg.width, cfg.classes, 3, true, &mut init)?;
        Ok(SetrMlaHead { cfg, branches, cls })
    }

    pub fn set_training(&mut self, training: bool) {
        for b in &mut self.branches {
            for l in b {
                l.set_training(training);
            }
        }
    }

    /// Logits [B, classes, H, W] for `image_size` = (H, W) from the four feature maps.
    pub fn forward(
        &mut self,
        feats: [&Tensor; 4],
        image_size: (usize, usize),
    ) -> Result<(Tensor, SetrMlaCache)> {
        let (b0, h, w) = nchw("SetrMlaHead: feature map 0", feats[0], self.cfg.in_channels)?;
        for (i, f) in feats.iter().enumerate() {
            if nchw(
                &format!("SetrMlaHead: feature map {i}"),
                f,
                self.cfg.in_channels,
            )? != (b0, h, w)
            {
                bail!(
                    "SetrMlaHead: feature map {i} has shape {:?} but map 0 has {:?}; all four must match",
                    f.shape,
                    feats[0].shape
                );
            }
        }
        let up = (h * self.cfg.branch_upsample, w * self.cfg.branch_upsample);
        let mut caches = Vec::with_capacity(4);
        let mut ups = Vec::with_capacity(4);
        for (i, (f, br)) in feats.iter().zip(&mut self.branches).enumerate() {
            let (a, ca) = br[0]
                .forward(f)
                .with_context(|| format!("SetrMlaHead branch {i}"))?;
            let (b, cb) = br[1].forward(&a)?;
            ups.push(ops::upsample_bilinear(&b, up, true)?);
            caches.push([ca, cb]);
        }
        let cat = ops::concat_channels(&ups.iter().collect::<Vec<_>>())?;
        let (z, cls) = self.cls.forward(&cat)?;
        let out = ops::upsample_bilinear(&z, image_size, true)?;
        Ok((
            out,
            SetrMlaCache {
                branches: caches,
                grid: (h, w),
                up,
                cls,
            },
        ))
    }

    /// Gradients of the four feature maps from dlogits; parameter gradients go to `grads`.
    pub fn backward(
        &self,
        cache: &SetrMlaCache,
        dlogits: &Tensor,
        grads: &mut Grads,
    ) -> Result<[Tensor; 4]> {
        let dz = ops::upsample_bilinear_backward(dlogits, cache.up, true)?;
        let dcat = self.cls.backward(&cache.cls, &dz, grads)?;
        let dups = ops::split_channels(&dcat, &[self.cfg.width; 4])?;
        let mut out = Vec::with_capacity(4);
        for ((du, br), c) in dups.iter().zip(&self.branches).zip(&cache.branches) {
            let db = ops::upsample_bilinear_backward(du, cache.grid, true)?;
            let da = br[1].backward(&c[1], &db, grads)?;
            out.push(br[0].backward(&c[0], &da, grads)?);
        }
        out.try_into()
            .map_err(|_| anyhow::anyhow!("SetrMlaHead: expected four gradients"))
    }
}

impl Parameters for SetrMlaHead {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        for (i, br) in self.branches.iter_mut().enumerate() {
            let p = format!("{prefix}decoder.mlahead.head{}.", i + 2);
            br[0].visit_at(&p, 0, f)?;
            br[1].visit_at(&p, 3, f)?;
        }
        self.cls.visit(&format!("{prefix}decoder.cls."), f)
    }
}

/// TransUNet-like regression head sizes. SFM: channels [256, 128, 64, 64], skip 32, 1 image
/// channel, 1 output channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransUnetConfig {
    pub in_channels: usize,
    /// Output channels of the four decoder stages.
    pub channels: [usize; 4],
    /// Channels of the skip branch from the input image.
    pub skip_channels: usize,
    pub image_channels: usize,
    pub out_channels: usize,
}

impl TransUnetConfig {
    /// SFM's sizes for a ViT of width `in_channels`.
    pub fn sfm(in_channels: usize) -> Self {
        TransUnetConfig {
            in_channels,
            channels: [256, 128, 64, 64],
            skip_channels: 32,
            image_channels: 1,
            out_channels: 1,
        }
    }
}

/// TransUNet-like regression head (SFM's `DecoderCup` and `SegmentationHead`). Names: stage s is
/// `decoder.blocks.{s}` with `conv1.{0,1}.*` and `conv2.{0,1}.*` (conv, BatchNorm); the skip
/// branch `decoder.conv_more.{0,1}.*`; the 1×1 conv `segmentation_head.0.{weight,bias}`.
#[derive(Debug)]
pub struct TransUnetHead {
    pub cfg: TransUnetConfig,
    pub stages: Vec<[ConvBnRelu; 2]>,
    pub skip: ConvBnRelu,
    pub head: Conv2d,
}

pub struct TransUnetCache {
    /// Spatial size before each stage's upsampling.
    sizes: Vec<(usize, usize)>,
    stages: Vec<[ConvBnReluCache; 2]>,
    skip: ConvBnReluCache,
    head: Conv2dCache,
}

impl TransUnetHead {
    pub fn new(cfg: TransUnetConfig, seed: u64) -> Result<Self> {
        if cfg.in_channels == 0
            || cfg.channels.contains(&0)
            || cfg.skip_channels == 0
            || cfg.image_channels == 0
            || cfg.out_channels == 0
        {
            bail!("TransUnetHead: every size must be non-zero, found {cfg:?}");
        }
        let mut init = Init::new(seed);
        let mut stages = Vec::with_capacity(4);
        let mut cin = cfg.in_channels;
        for (s, &c) in cfg.channels.iter().enumerate() {
            let first_in = if s == 3 { cin + cfg.skip_channels } else { cin };
            stages.push([
                ConvBnRelu::new(first_in, c, &mut init)?,
                ConvBnRelu::new(c, c, &mut init)?,
            ]);
            cin = c;
        }
        Ok(TransUnetHead {
            cfg,
            stages,
            skip: ConvBnRelu::new(cfg.image_channels, cfg.skip_channels, &mut init)?,
            head: Conv2d::new(cin, cfg.out_channels, 1, true, &mut init)?,
        })
    }

    pub fn set_training(&mut self, training: bool) {
        for st in &mut self.stages {
            for l in st {
                l.set_training(training);
            }
        }
        self.skip.set_training(training);
    }

    /// Prediction [B, out, 16h, 16w] from tokens [B, C, h, w] and the image [B, 1, 16h, 16w].
    pub fn forward(&mut self, tokens: &Tensor, image: &Tensor) -> Result<(Tensor, TransUnetCache)> {
        let (b, h, w) = nchw("TransUnetHead: tokens", tokens, self.cfg.in_channels)?;
        let (bi, hi, wi) = nchw("TransUnetHead: image", image, self.cfg.image_channels)?;
        if bi != b || hi != 16 * h || wi != 16 * w {
            bail!(
                "TransUnetHead: the image {:?} must be [{b}, {}, {}, {}] (16× the token grid {h}×{w})",
                image.shape,
                self.cfg.image_channels,
                16 * h,
                16 * w
            );
        }
        let (skip, skip_cache) = self.skip.forward(image)?;
        let mut x = tokens.clone();
        let mut sizes = Vec::with_capacity(4);
        let mut caches = Vec::with_capacity(4);
        for (s, st) in self.stages.iter_mut().enumerate() {
            let (hh, ww) = (x.shape[2], x.shape[3]);
            sizes.push((hh, ww));
            let mut u = ops::upsample_bilinear(&x, (2 * hh, 2 * ww), true)?;
            if s == 3 {
                u = ops::concat_channels(&[&u, &skip])?;
            }
            let (a, ca) = st[0].forward(&u)?;
            let (y, cb) = st[1].forward(&a)?;
            caches.push([ca, cb]);
            x = y;
        }
        let (out, head) = self.head.forward(&x)?;
        Ok((
            out,
            TransUnetCache {
                sizes,
                stages: caches,
                skip: skip_cache,
                head,
            },
        ))
    }

    /// The gradient of the tokens from dpred; parameter gradients (skip branch included) go
    /// to `grads`. The image's gradient is not formed beyond the skip convolution.
    pub fn backward(
        &self,
        cache: &TransUnetCache,
        dpred: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let mut d = self.head.backward(&cache.head, dpred, grads)?;
        for s in (0..4).rev() {
            let st = &self.stages[s];
            let c = &cache.stages[s];
            let da = st[1].backward(&c[1], &d, grads)?;
            let mut du = st[0].backward(&c[0], &da, grads)?;
            if s == 3 {
                let up_c = du.shape[1] - self.cfg.skip_channels;
                let mut parts = ops::split_channels(&du, &[up_c, self.cfg.skip_channels])?;
                let dskip = parts.pop().expect("two parts");
                du = parts.pop().expect("two parts");
                self.skip.backward(&cache.skip, &dskip, grads)?;
            }
            d = ops::upsample_bilinear_backward(&du, cache.sizes[s], true)?;
        }
        Ok(d)
    }
}

impl Parameters for TransUnetHead {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.skip.visit(&format!("{prefix}decoder.conv_more."), f)?;
        for (s, st) in self.stages.iter_mut().enumerate() {
            for (j, l) in st.iter_mut().enumerate() {
                l.visit(&format!("{prefix}decoder.blocks.{s}.conv{}.", j + 1), f)?;
            }
        }
        self.head.visit(&format!("{prefix}segmentation_head.0."), f)
    }
}

/// Linear classification head on a pooled token: logits = x·Wᵀ + b, W [classes, C].
/// Names `weight`, `bias`.
#[derive(Debug)]
pub struct ClassificationHead {
    pub weight: Param,
    pub bias: Param,
}

pub struct ClassificationCache {
    x: Tensor,
}

impl ClassificationHead {
    /// PyTorch's Linear initialisation: U(±1/√C) for weight and bias.
    pub fn new(in_features: usize, classes: usize, seed: u64) -> Result<Self> {
        if in_features == 0 || classes == 0 {
            bail!("ClassificationHead: sizes must be non-zero, found {in_features} → {classes}");
        }
        let bound = 1.0 / (in_features as f32).sqrt();
        let mut init = Init::new(seed);
        Ok(ClassificationHead {
            weight: Param::new(init.uniform(&[classes, in_features], -bound, bound)?)?,
            bias: Param::new(init.uniform(&[classes], -bound, bound)?)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, ClassificationCache)> {
        let c = self.weight.value.shape[1];
        if x.rank() != 2 || x.shape[1] != c {
            bail!(
                "ClassificationHead: input must be [batch, {c}], found {:?}",
                x.shape
            );
        }
        let w = self.weight.value_as(x.dtype)?;
        let b = self.bias.value_as(x.dtype)?;
        let y = ops::matmul(x, &w, false, true, Some(&b))?;
        Ok((y, ClassificationCache { x: x.clone() }))
    }

    /// dx from dlogits; adds the weight and bias gradients into `grads`.
    pub fn backward(
        &self,
        cache: &ClassificationCache,
        dlogits: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let dt = cache.x.dtype;
        let w = self.weight.value_as(dt)?;
        let g = ops::matmul_backward(&cache.x, &w, false, true, true, dlogits)?;
        grads.accumulate(&self.weight, &g.db)?;
        if let Some(dbias) = &g.dbias {
            grads.accumulate(&self.bias, dbias)?;
        }
        Ok(g.da)
    }
}

named_fields!(ClassificationHead {
    params: weight,
    bias
});
