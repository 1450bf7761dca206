//! SeisLM downstream heads (docs/reference.md, "Heads"), each with an explicit forward and
//! backward pass, on the encoder's hidden states [B, T', H]:
//!
//! - [`PhasePickHead`]: hidden states linearly interpolated back to the input length T
//!   (PyTorch `F.interpolate(mode='linear', align_corners=False)`), concatenated with the raw
//!   (normalised) 3 channels → [B, H+3, T]; [`DoubleConv`] (stride 1, "same" padding, width
//!   H+3 in SeisLM); dropout; a Linear to 3 classes (P, S, noise) per sample. Loss: soft
//!   cross-entropy against Gaussian labels (σ = 20 samples, noise = 1 − P − S clipped at 0),
//!   see [`pick_targets`].
//! - [`EventHead`] (foreshock/aftershock): two [`DoubleConv`] blocks (H → H, then H → the
//!   projection size), each convolution with stride 2 and no padding, mean pooling over time,
//!   a Linear to the classes; cross-entropy.
//!
//! The backward passes return the gradient of the hidden states, so the encoder can be
//! fine-tuned end to end; the raw-channel path of the picking head gets no gradient.
//!
//! Structure and parameter names follow the SeisLM repository (liutianlin0121/seisLM,
//! `seisLM/model/task_specific/{phasepick_models,foreshock_aftershock_models,
//! shared_task_specific}.py`): a DoubleConv is `double_conv.{0,4}.weight` (convolutions
//! without bias) and `double_conv.{1,5}.*` (BatchNorms); the picking head is
//! `double_conv.double_conv.*` and `classifier.*`; the event head is `head.1.*`, `head.2.*`
//! (the blocks) and `head.4.*` (the Linear). [`SeislmPicker`] names the encoder `wav2vec2.*`
//! and the head at the top, as the fine-tuned Lightning checkpoints do under `model.`.

use crate::data::transforms::gaussian_row;
use crate::nn::batch_norm::BatchNorm2dCache;
use crate::nn::conv1d::{Conv1d, Conv1dCache};
use crate::nn::{BatchNorm2d, Grads, Init, Linear, ParamVisitor, Parameters};
use crate::ops::{self, DropoutKey, LossValue};
use crate::tensor::Tensor;
use anyhow::{bail, Result};

use super::seislm::{Seislm, SeislmConfig};

/// Conv1d k3 "same" padding (no bias: a BatchNorm follows) → BatchNorm → GELU → dropout.
#[derive(Debug)]
pub struct ConvBnGelu {
    pub conv: Conv1d,
    pub bn: BatchNorm2d,
}

struct ConvBnGeluCache {
    conv: Conv1dCache,
    bn: BatchNorm2dCache,
    /// The BatchNorm output [B, C, L] (the GELU input).
    pre: Tensor,
    /// The dropout stream used, when dropout was applied.
    key: Option<DropoutKey>,
}

impl ConvBnGelu {
    fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        padding: usize,
        init: &mut Init,
    ) -> Result<Self> {
        Ok(ConvBnGelu {
            conv: Conv1d::new(cin, cout, 3, stride, padding, 1, false, false, init)?,
            bn: BatchNorm2d::new(cout)?,
        })
    }

    fn forward(
        &mut self,
        x: Tensor,
        p: f32,
        key: Option<DropoutKey>,
    ) -> Result<(Tensor, ConvBnGeluCache)> {
        let (y, conv) = self.conv.forward(x)?;
        let [b, c, l] = y.shape[..] else {
            bail!("DoubleConv: unexpected conv output {:?}", y.shape);
        };
        let (n, bn) = self.bn.forward(&y.reshape(&[b, c, l, 1])?)?;
        let pre = n.reshape(&[b, c, l])?;
        let a = ops::gelu(&pre)?;
        let key = key.filter(|_| p > 0.0);
        let out = match key {
            Some(k) => ops::dropout(&a, p, k)?,
            None => a,
        };
        Ok((out, ConvBnGeluCache { conv, bn, pre, key }))
    }

    fn backward(
        &self,
        c: &ConvBnGeluCache,
        dy: &Tensor,
        (p, want_dx): (f32, bool),
        grads: &mut Grads,
    ) -> Result<Option<Tensor>> {
        let da = match c.key {
            Some(k) => ops::dropout_backward(dy, p, k)?,
            None => dy.clone(),
        };
        let dn = ops::gelu_backward(&c.pre, &da)?;
        let [b, ch, l] = dn.shape[..] else {
            bail!(
                "DoubleConv backward: gradient {:?} is not [B, C, L]",
                dn.shape
            );
        };
        let dbn = self
            .bn
            .backward(&c.bn, &dn.reshape(&[b, ch, l, 1])?, grads)?;
        self.conv
            .backward(&c.conv, &dbn.reshape(&[b, ch, l])?, want_dx, grads)
    }
}

impl Parameters for ConvBnGelu {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.conv.visit(prefix, f)
    }
}

/// Two [`ConvBnGelu`] stages (the first with `stride`, the second with stride 1), as SeisLM's
/// DoubleConv: conv k3 → BatchNorm → GELU → dropout, twice.
#[derive(Debug)]
pub struct DoubleConv {
    pub stage1: ConvBnGelu,
    pub stage2: ConvBnGelu,
    /// Dropout probability after each GELU (0.2 in SeisLM).
    pub dropout: f32,
}

pub struct DoubleConvCache {
    s1: ConvBnGeluCache,
    s2: ConvBnGeluCache,
}

impl DoubleConv {
    /// Kernel 3 convolutions with `strides` and `padding` on both sides (1 = SeisLM's "same"
    /// for stride 1, 0 = "valid").
    pub fn new(
        cin: usize,
        cout: usize,
        strides: [usize; 2],
        padding: usize,
        dropout: f32,
        init: &mut Init,
    ) -> Result<Self> {
        if !(0.0..1.0).contains(&dropout) {
            bail!("DoubleConv: dropout must be in [0, 1), found {dropout}");
        }
        Ok(DoubleConv {
            stage1: ConvBnGelu::new(cin, cout, strides[0], padding, init)?,
            stage2: ConvBnGelu::new(cout, cout, strides[1], padding, init)?,
            dropout,
        })
    }

    pub fn set_training(&mut self, training: bool) {
        self.stage1.bn.training = training;
        self.stage2.bn.training = training;
    }

    /// x [B, Cin, L] → [B, Cout, L'] (L' = L for stride 1, ⌈L/2⌉ for stride 2). `key` is the
    /// dropout stream of the first stage (the second uses stream_id + 1); None = no dropout.
    pub fn forward(
        &mut self,
        x: Tensor,
        key: Option<DropoutKey>,
    ) -> Result<(Tensor, DoubleConvCache)> {
        let p = self.dropout;
        let (h, s1) = self.stage1.forward(x, p, key)?;
        let key2 = key.map(|k| DropoutKey {
            stream_id: k.stream_id + 1,
            ..k
        });
        let (y, s2) = self.stage2.forward(h, p, key2)?;
        Ok((y, DoubleConvCache { s1, s2 }))
    }

    /// Adds the parameter gradients into `grads`; returns dx when `want_dx`.
    pub fn backward(
        &self,
        c: &DoubleConvCache,
        dy: &Tensor,
        want_dx: bool,
        grads: &mut Grads,
    ) -> Result<Option<Tensor>> {
        let p = self.dropout;
        let Some(dh) = self.stage2.backward(&c.s2, dy, (p, true), grads)? else {
            bail!("DoubleConv backward: the second stage returned no input gradient");
        };
        self.stage1.backward(&c.s1, &dh, (p, want_dx), grads)
    }
}

impl Parameters for DoubleConv {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        // SeisLM's `DoubleConvBlock.double_conv`, an nn.Sequential: 0 conv, 1 BatchNorm,
        // 2 GELU, 3 dropout, 4 conv, 5 BatchNorm, 6 GELU, 7 dropout.
        self.stage1.visit(&format!("{prefix}double_conv.0."), f)?;
        self.stage1
            .bn
            .visit(&format!("{prefix}double_conv.1."), f)?;
        self.stage2.visit(&format!("{prefix}double_conv.4."), f)?;
        self.stage2.bn.visit(&format!("{prefix}double_conv.5."), f)
    }
}

/// Sizes of the SeisLM heads.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadConfig {
    /// The encoder's hidden size H.
    pub hidden: usize,
    /// Raw waveform channels concatenated by the picking head (3).
    pub in_chans: usize,
    /// DoubleConv width.
    pub channels: usize,
    /// Output classes (3 for picking: P, S, noise).
    pub classes: usize,
    /// Dropout after each GELU (0.2).
    pub dropout: f32,
}

impl HeadConfig {
    /// Checks that `hidden` is [batch, frames, self.hidden] with at least `min_frames` frames
    /// and returns [batch, frames, hidden]; `head` names the head in the errors.
    fn hidden_dims(&self, head: &str, hidden: &Tensor, min_frames: usize) -> Result<[usize; 3]> {
        let [b, frames, h] = hidden.shape[..] else {
            bail!(
                "{head}: hidden states must be [batch, frames, {}], found {:?}",
                self.hidden,
                hidden.shape
            );
        };
        if h != self.hidden || frames < min_frames {
            bail!(
                "{head}: built for hidden size {}, found hidden states {:?}",
                self.hidden,
                hidden.shape
            );
        }
        Ok([b, frames, h])
    }

    /// The picking head for an encoder of `hidden` size: 3 classes, dropout 0.2, DoubleConv
    /// width `channels`.
    pub fn picking(hidden: usize, channels: usize) -> Self {
        HeadConfig {
            hidden,
            in_chans: 3,
            channels,
            classes: 3,
            dropout: 0.2,
        }
    }
}

/// The phase-picking head: per-sample logits of (P, S, noise).
#[derive(Debug)]
pub struct PhasePickHead {
    pub cfg: HeadConfig,
    pub double_conv: DoubleConv,
    pub classifier: Linear,
    /// Train mode: batch statistics and dropout. Eval mode: running statistics, no dropout.
    pub training: bool,
    /// Dropout stream: (seed, step) of the next forward pass; set `step` per training step.
    pub seed: u64,
    pub step: u32,
}

pub struct PhasePickCache {
    /// Frames T' of the hidden states.
    frames: usize,
    dc: DoubleConvCache,
    /// DoubleConv output as [B, T, C] after the head's dropout (the classifier input).
    z: Tensor,
    /// The key of that dropout (train mode).
    key: Option<DropoutKey>,
}

impl PhasePickHead {
    pub fn new(cfg: HeadConfig, seed: u64) -> Result<Self> {
        if cfg.hidden == 0 || cfg.channels == 0 || cfg.classes == 0 {
            bail!(
                "phase-picking head: hidden, channels and classes must be positive, found {cfg:?}"
            );
        }
        let mut init = Init::new(seed);
        Ok(PhasePickHead {
            double_conv: DoubleConv::new(
                cfg.hidden + cfg.in_chans,
                cfg.channels,
                [1, 1],
                1,
                cfg.dropout,
                &mut init,
            )?,
            classifier: Linear::new(cfg.channels, cfg.classes, true, &mut init)?,
            cfg,
            training: true,
            seed,
            step: 0,
        })
    }

    pub fn set_training(&mut self, training: bool) {
        self.training = training;
        self.double_conv.set_training(training);
    }

    /// hidden [B, T', H] and the normalised waveforms [B, 3, T] → logits [B, T, classes].
    pub fn forward(&mut self, hidden: &Tensor, wave: &Tensor) -> Result<(Tensor, PhasePickCache)> {
        let [b, frames, h] = self.cfg.hidden_dims("phase-picking head", hidden, 0)?;
        let [bw, c, t] = wave.shape[..] else {
            bail!(
                "phase-picking head: waveforms must be [batch, {}, samples], found {:?}",
                self.cfg.in_chans,
                wave.shape
            );
        };
        if bw != b || c != self.cfg.in_chans || t == 0 || frames == 0 {
            bail!(
                "phase-picking head: waveforms {:?} do not match hidden states {:?} (need [{b}, {}, samples])",
                wave.shape,
                hidden.shape,
                self.cfg.in_chans
            );
        }
        // Linear interpolation along time = bilinear on [B, H, T', 1] → [B, H, T, 1]
        // (the width axis maps 1 → 1 exactly under align_corners=False).
        let ht = ops::transpose_last2(hidden)?.reshape(&[b, h, frames, 1])?;
        let up = ops::upsample_bilinear(&ht, (t, 1), false)?;
        let w4 = wave.clone().reshape(&[b, c, t, 1])?;
        let x = ops::concat_channels(&[&up, &w4])?.reshape(&[b, h + c, t])?;
        let key = self.training.then_some(DropoutKey {
            seed: self.seed,
            step: self.step,
            stream_id: 0,
        });
        let (y, dc) = self.double_conv.forward(x, key)?;
        let z = ops::transpose_last2(&y)?;
        // SeisLM's `hidden_dropout` between the DoubleConv and the classifier.
        let key = key
            .map(|k| DropoutKey { stream_id: 2, ..k })
            .filter(|_| self.cfg.dropout > 0.0);
        let z = match key {
            Some(k) => ops::dropout(&z, self.cfg.dropout, k)?,
            None => z,
        };
        let logits = self.classifier.forward(&z)?;
        Ok((logits, PhasePickCache { frames, dc, z, key }))
    }

    /// From dlogits [B, T, classes]: adds the head's parameter gradients into `grads` and
    /// returns the gradient of the hidden states [B, T', H].
    pub fn backward(
        &self,
        c: &PhasePickCache,
        dlogits: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        if dlogits.rank() != 3 || dlogits.shape[..2] != c.z.shape[..2] {
            bail!(
                "phase-picking head backward: dlogits must be [{}, {}, {}], found {:?}",
                c.z.shape[0],
                c.z.shape[1],
                self.cfg.classes,
                dlogits.shape
            );
        }
        let mut dz = self.classifier.backward(&c.z, dlogits, grads)?;
        if let Some(k) = c.key {
            dz = ops::dropout_backward(&dz, self.cfg.dropout, k)?;
        }
        let dy = ops::transpose_last2_backward(&dz)?;
        let Some(dx) = self.double_conv.backward(&c.dc, &dy, true, grads)? else {
            bail!("phase-picking head backward: DoubleConv returned no input gradient");
        };
        let (b, t) = (c.z.shape[0], c.z.shape[1]);
        let (h, ch) = (self.cfg.hidden, self.cfg.in_chans);
        let parts = ops::split_channels(&dx.reshape(&[b, h + ch, t, 1])?, &[h, ch])?;
        let dht = ops::upsample_bilinear_backward(&parts[0], (c.frames, 1), false)?;
        ops::transpose_last2_backward(&dht.reshape(&[b, h, c.frames])?)
    }
}

impl Parameters for PhasePickHead {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.double_conv
            .visit(&format!("{prefix}double_conv."), f)?;
        self.classifier.visit(&format!("{prefix}classifier."), f)
    }
}

/// Soft targets [T, 3] (rows P, S, noise per sample) for one trace of `len` samples:
/// Gaussians of std `sigma` samples at the picks, noise = 1 − P − S clipped at 0.
pub fn pick_targets(len: usize, p: Option<f32>, s: Option<f32>, sigma: f32) -> Vec<f32> {
    let pr = gaussian_row(len, p, sigma);
    let sr = gaussian_row(len, s, sigma);
    let mut out = Vec::with_capacity(3 * len);
    for (a, b) in pr.iter().zip(&sr) {
        out.extend_from_slice(&[*a, *b, (1.0 - a - b).max(0.0)]);
    }
    out
}

/// Picking loss: mean soft cross-entropy over the B·T rows of logits [B, T, 3] against
/// targets of the same shape, and its gradient dlogits (for d loss = 1).
pub fn pick_loss(logits: &Tensor, targets: &Tensor) -> Result<(LossValue, Tensor)> {
    if logits.shape != targets.shape {
        bail!(
            "picking loss: targets {:?} must match logits {:?} ([batch, samples, 3])",
            targets.shape,
            logits.shape
        );
    }
    let l = ops::soft_cross_entropy(logits, targets)?;
    let d = ops::soft_cross_entropy_backward(logits, targets, 1.0)?;
    Ok((l, d))
}

/// The event classification head: two strided DoubleConv blocks, mean over time, Linear.
#[derive(Debug)]
pub struct EventHead {
    pub cfg: HeadConfig,
    pub block1: DoubleConv,
    pub block2: DoubleConv,
    pub classifier: Linear,
    pub training: bool,
    pub seed: u64,
    pub step: u32,
}

pub struct EventCache {
    b1: DoubleConvCache,
    b2: DoubleConvCache,
    /// Frames after the two blocks.
    len: usize,
    pooled: Tensor,
}

impl EventHead {
    /// `cfg.in_chans` is unused (the head sees the hidden states only).
    pub fn new(cfg: HeadConfig, seed: u64) -> Result<Self> {
        if cfg.hidden == 0 || cfg.channels == 0 || cfg.classes < 2 {
            bail!("event head: hidden and channels must be positive and classes at least 2, found {cfg:?}");
        }
        let mut init = Init::new(seed);
        Ok(EventHead {
            block1: DoubleConv::new(cfg.hidden, cfg.hidden, [2, 2], 0, cfg.dropout, &mut init)?,
            block2: DoubleConv::new(cfg.hidden, cfg.channels, [2, 2], 0, cfg.dropout, &mut init)?,
            classifier: Linear::new(cfg.channels, cfg.classes, true, &mut init)?,
            cfg,
            training: true,
            seed,
            step: 0,
        })
    }

    pub fn set_training(&mut self, training: bool) {
        self.training = training;
        self.block1.set_training(training);
        self.block2.set_training(training);
    }

    /// hidden [B, T', H] → logits [B, classes].
    pub fn forward(&mut self, hidden: &Tensor) -> Result<(Tensor, EventCache)> {
        let [b, _, _] = self.cfg.hidden_dims("event head", hidden, 1)?;
        let key = |stream_id| {
            self.training.then_some(DropoutKey {
                seed: self.seed,
                step: self.step,
                stream_id,
            })
        };
        let (k1, k2) = (key(0), key(2));
        let x = ops::transpose_last2(hidden)?;
        let (y1, b1) = self.block1.forward(x, k1)?;
        let (y2, b2) = self.block2.forward(y1, k2)?;
        let (c, len) = (y2.shape[1], y2.shape[2]);
        let mean = ops::cast(
            &Tensor::from_f32(&[len, 1], vec![1.0 / len as f32; len])?
                .to_device(&hidden.device())?,
            y2.dtype,
        )?;
        let pooled = ops::matmul(&y2.reshape(&[b * c, len])?, &mean, false, false, None)?
            .reshape(&[b, c])?;
        let logits = self.classifier.forward(&pooled)?;
        Ok((
            logits,
            EventCache {
                b1,
                b2,
                len,
                pooled,
            },
        ))
    }

    /// From dlogits [B, classes]: adds the parameter gradients into `grads`, returns d hidden
    /// [B, T', H].
    pub fn backward(&self, c: &EventCache, dlogits: &Tensor, grads: &mut Grads) -> Result<Tensor> {
        if dlogits.shape != [c.pooled.shape[0], self.cfg.classes] {
            bail!(
                "event head backward: dlogits must be [{}, {}], found {:?}",
                c.pooled.shape[0],
                self.cfg.classes,
                dlogits.shape
            );
        }
        let dp = self.classifier.backward(&c.pooled, dlogits, grads)?;
        let (b, ch) = (dp.shape[0], dp.shape[1]);
        let mean = ops::cast(
            &Tensor::from_f32(&[1, c.len], vec![1.0 / c.len as f32; c.len])?
                .to_device(&dp.device())?,
            dp.dtype,
        )?;
        let dy2 = ops::matmul(&dp.reshape(&[b * ch, 1])?, &mean, false, false, None)?
            .reshape(&[b, ch, c.len])?;
        let Some(dy1) = self.block2.backward(&c.b2, &dy2, true, grads)? else {
            bail!("event head backward: block2 returned no input gradient");
        };
        let Some(dx) = self.block1.backward(&c.b1, &dy1, true, grads)? else {
            bail!("event head backward: block1 returned no input gradient");
        };
        ops::transpose_last2_backward(&dx)
    }
}

impl Parameters for EventHead {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        // SeisLM's `Wav2Vec2ForSequenceClassification.head`, an nn.Sequential: 0 rearrange,
        // 1 and 2 DoubleConvBlocks, 3 mean, 4 Linear.
        self.block1.visit(&format!("{prefix}head.1."), f)?;
        self.block2.visit(&format!("{prefix}head.2."), f)?;
        self.classifier.visit(&format!("{prefix}head.4."), f)
    }
}

/// Class targets → (mean cross-entropy, dlogits for d loss = 1) for logits [B, classes].
pub fn class_loss(logits: &Tensor, targets: &[i32]) -> Result<(LossValue, Tensor)> {
    let t = Tensor::from_i32(&[targets.len()], targets.to_vec())?.to_device(&logits.device())?;
    let l = ops::cross_entropy(logits, &t)?;
    let d = ops::cross_entropy_backward(logits, &t, l.count, 1.0)?;
    Ok((l, d))
}

/// Prefix of the encoder's parameters in a [`SeislmPicker`] weight file (SeisLM's
/// `MultiDimWav2Vec2ForFrameClassification.wav2vec2`).
pub const PICKER_ENCODER_PREFIX: &str = "wav2vec2.";

/// An encoder and a head, named as one model as SeisLM's fine-tuned models: encoder tensors
/// under `wav2vec2.` + their HF names, head tensors at the top (for the picker
/// `double_conv.*` and `classifier.*`: the file `seisfuse pick --weights` reads; Lightning
/// checkpoints add `model.` in front, which the loader strips).
#[derive(Debug)]
pub struct SeislmWithHead<H> {
    pub encoder: Seislm,
    pub head: H,
}

/// The phase picker: the encoder and a [`PhasePickHead`].
pub type SeislmPicker = SeislmWithHead<PhasePickHead>;

impl<H> SeislmWithHead<H> {
    /// One training step on waveforms `wave`: the encoder's forward, then `head` (the head's
    /// forward, loss and backward from the last hidden state, adding its gradients into
    /// `grads`; it returns the loss and the gradient of the hidden state), then the encoder's
    /// backward. Returns the loss.
    pub fn train_step(
        &mut self,
        wave: &Tensor,
        grads: &mut Grads,
        head: impl FnOnce(&mut H, &Tensor, &mut Grads) -> Result<(f32, Tensor)>,
    ) -> Result<f32> {
        let (out, cache) = self.encoder.forward(wave, None)?;
        let (loss, dh) = head(&mut self.head, &out.last_hidden_state, grads)?;
        self.encoder.backward(&cache, &dh, None, false, grads)?;
        Ok(loss)
    }
}

impl SeislmPicker {
    /// A preset's encoder (without `masked_spec_embed`, which inference does not use) and a
    /// picking head with DoubleConv width `channels`.
    pub fn new(preset: &str, channels: usize, seed: u64) -> Result<Self> {
        let mut cfg = SeislmConfig::preset(preset)?;
        cfg.masked_spec_embed = false;
        let hidden = cfg.hidden;
        Ok(SeislmPicker {
            encoder: Seislm::new(cfg, seed)?,
            head: PhasePickHead::new(HeadConfig::picking(hidden, channels), seed ^ 0x9e37)?,
        })
    }

    /// Eval-mode probabilities [B, T, 3] (P, S, noise) of normalised waveforms [B, 3, T].
    pub fn probabilities(&mut self, wave: &Tensor) -> Result<Tensor> {
        self.head.set_training(false);
        let (out, _) = self.encoder.forward(wave, None)?;
        let (logits, _) = self.head.forward(&out.last_hidden_state, wave)?;
        ops::softmax(&logits)
    }
}

impl<H: Parameters> Parameters for SeislmWithHead<H> {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.encoder
            .visit(&format!("{prefix}{PICKER_ENCODER_PREFIX}"), f)?;
        self.head.visit(prefix, f)
    }
}
