//! The SeisLM waveform encoder: HF `Wav2Vec2Model` with the "stable layer norm" (pre-LN)
//! transformer, on 3-component waveforms.
//!
//! waveform [B, C, L] → conv feature extractor (Conv1d → LayerNorm over channels → GELU, per
//! layer) → extract_features = LayerNorm(features) → Linear → (masked frames ← masked_spec_embed)
//! → + GELU(weight-normed grouped positional Conv1d, last frame dropped for an even kernel) →
//! pre-LN transformer layers with separate q/k/v/out projections → final LayerNorm.
//! Parameter names are HF's, so converted SeisLM checkpoints load without renaming.

use crate::backend::Device;
use crate::nn::conv1d::{Conv1d, Conv1dCache};
use crate::nn::layer_norm::LayerNormLayerCache;
use crate::nn::named_fields;
use crate::nn::{Grads, Init, LayerNorm, Linear, Mlp, MlpCache, Param, ParamVisitor, Parameters};
use crate::nvtx;
use crate::ops::{self, AttnOut};
use crate::tensor::Tensor;
use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct SeislmConfig {
    /// Waveform components (3: Z, N, E).
    pub in_chans: usize,
    /// Feature-extractor convolutions as (channels, kernel, stride).
    pub conv_layers: Vec<(usize, usize, usize)>,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    /// Feed-forward (intermediate) width.
    pub ffn: usize,
    pub pos_kernel: usize,
    pub pos_groups: usize,
    /// Every LayerNorm's epsilon.
    pub eps: f32,
    /// Whether the model holds `masked_spec_embed` (HF creates it only when masking is
    /// configured; pretraining needs it).
    pub masked_spec_embed: bool,
}

impl SeislmConfig {
    /// The SeisLM presets (docs/reference.md), plus `seislm-tiny` for CPU tests and the demo.
    pub fn preset(name: &str) -> Result<Self> {
        let (conv_ch, hidden, layers, heads, ffn, pos_kernel, pos_groups) = match name {
            "seislm-base" => (256, 240, 6, 12, 3072, 128, 16),
            "seislm-large" => (256, 768, 12, 12, 3072, 128, 16),
            "seislm-tiny" => (32, 48, 2, 4, 96, 16, 4),
            _ => bail!(
                "unknown SeisLM preset '{name}': expected seislm-tiny, seislm-base or seislm-large"
            ),
        };
        Ok(SeislmConfig {
            in_chans: 3,
            conv_layers: vec![(conv_ch, 3, 2); 2],
            hidden,
            layers,
            heads,
            ffn,
            pos_kernel,
            pos_groups,
            eps: 1e-5,
            masked_spec_embed: true,
        })
    }

    /// Output frames for `samples` input samples (None when too short for the extractor).
    pub fn frames(&self, samples: usize) -> Option<usize> {
        self.conv_layers.iter().try_fold(samples, |l, &(_, k, s)| {
            (l >= k && s > 0).then(|| (l - k) / s + 1)
        })
    }

    /// The feature extractor's output channels.
    pub fn conv_dim(&self) -> usize {
        self.conv_layers.last().map_or(self.in_chans, |c| c.0)
    }

    fn validate(&self) -> Result<()> {
        if self.conv_layers.is_empty() {
            bail!("SeisLM config: the feature extractor needs at least one convolution");
        }
        if let Some(&(c, k, s)) = self
            .conv_layers
            .iter()
            .find(|&&(c, k, s)| c == 0 || k == 0 || s == 0)
        {
            bail!("SeisLM config: conv layer ({c} channels, kernel {k}, stride {s}) must have positive sizes");
        }
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            bail!(
                "SeisLM config: hidden {} is not divisible by {} heads",
                self.hidden,
                self.heads
            );
        }
        if self.pos_groups == 0 || !self.hidden.is_multiple_of(self.pos_groups) {
            bail!(
                "SeisLM config: hidden {} is not divisible by {} positional-conv groups",
                self.hidden,
                self.pos_groups
            );
        }
        if self.pos_kernel == 0 {
            bail!("SeisLM config: the positional-conv kernel must be positive");
        }
        Ok(())
    }
}

/// One feature-extractor layer: Conv1d → LayerNorm over channels → GELU
/// (`feature_extractor.conv_layers.{i}.{conv,layer_norm}`).
#[derive(Debug)]
pub struct FeatureConvLayer {
    pub conv: Conv1d,
    pub layer_norm: LayerNorm,
}

struct FeatureConvCache {
    conv: Conv1dCache,
    /// The LayerNorm over channels (its input is the conv output as [B, T, C]) and the normed
    /// values (the GELU input).
    ln: LayerNormLayerCache,
    n: Tensor,
}

impl FeatureConvLayer {
    /// x [B, Cin, L] → [B, T, C] (channels last).
    fn forward(&self, x: Tensor) -> Result<(Tensor, FeatureConvCache)> {
        let (y, conv) = self.conv.forward(x)?;
        let yt = ops::transpose_last2(&y)?;
        let (n, ln) = self.layer_norm.forward(&yt)?;
        let a = ops::gelu(&n)?;
        Ok((a, FeatureConvCache { conv, ln, n }))
    }
    /// From the gradient of the [B, T, C] output; returns dx [B, Cin, L] when asked.
    fn backward(
        &self,
        c: &FeatureConvCache,
        da: &Tensor,
        want_dx: bool,
        grads: &mut Grads,
    ) -> Result<Option<Tensor>> {
        let dn = ops::gelu_backward(&c.n, da)?;
        let dyt = self.layer_norm.backward(&c.ln, &dn, grads)?;
        let dy = ops::transpose_last2_backward(&dyt)?;
        self.conv.backward(&c.conv, &dy, want_dx, grads)
    }
}

named_fields!(FeatureConvLayer { conv, layer_norm });

/// A pre-LN transformer layer (HF `Wav2Vec2EncoderLayerStableLayerNorm`):
/// h + out_proj(attn(q_proj, k_proj, v_proj of layer_norm(h))), then + feed_forward(final_layer_norm(·)).
#[derive(Debug)]
pub struct EncoderLayer {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub layer_norm: LayerNorm,
    /// `feed_forward.intermediate_dense` (fc1) and `feed_forward.output_dense` (fc2).
    pub feed_forward: Mlp,
    pub final_layer_norm: LayerNorm,
    pub heads: usize,
}

struct EncoderLayerCache {
    n1: Tensor,
    c1: LayerNormLayerCache,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn: AttnOut,
    c2: LayerNormLayerCache,
    cm: MlpCache,
}

impl EncoderLayer {
    fn new(c: &SeislmConfig, init: &mut Init) -> Result<Self> {
        let d = c.hidden;
        Ok(EncoderLayer {
            q_proj: Linear::new(d, d, true, init)?,
            k_proj: Linear::new(d, d, true, init)?,
            v_proj: Linear::new(d, d, true, init)?,
            out_proj: Linear::new(d, d, true, init)?,
            layer_norm: LayerNorm::new(d, c.eps, init)?,
            feed_forward: Mlp::new(d, c.ffn, init)?,
            final_layer_norm: LayerNorm::new(d, c.eps, init)?,
            heads: c.heads,
        })
    }

    fn forward(&self, h: Tensor) -> Result<(Tensor, EncoderLayerCache)> {
        let (n1, c1) = self.layer_norm.forward(&h)?;
        let q = self.q_proj.forward(&n1)?;
        let k = self.k_proj.forward(&n1)?;
        let v = self.v_proj.forward(&n1)?;
        let attn = ops::attention(&q, &k, &v, self.heads)?;
        let o = self.out_proj.forward(&attn.out)?;
        // h1 = h + o and final_layer_norm(h1) in one pass
        let (h1, n2, c2) = self.final_layer_norm.forward_add(&h, &o)?;
        let (m, cm) = self.feed_forward.forward(&n2)?;
        let y = ops::add(&h1, &m)?;
        Ok((
            y,
            EncoderLayerCache {
                n1,
                c1,
                q,
                k,
                v,
                attn,
                c2,
                cm,
            },
        ))
    }

    fn backward(&self, c: &EncoderLayerCache, dy: &Tensor, grads: &mut Grads) -> Result<Tensor> {
        let dn2 = self.feed_forward.backward(&c.cm, dy, grads)?;
        let dh1 = self.final_layer_norm.backward_add(&c.c2, &dn2, dy, grads)?;
        let dattn = self.out_proj.backward(&c.attn.out, &dh1, grads)?;
        let (dq, dk, dv) = ops::attention_backward(&c.q, &c.k, &c.v, &c.attn, &dattn, self.heads)?;
        let mut dn1 = self.q_proj.backward(&c.n1, &dq, grads)?;
        ops::add_assign(&mut dn1, &self.k_proj.backward(&c.n1, &dk, grads)?)?;
        ops::add_assign(&mut dn1, &self.v_proj.backward(&c.n1, &dv, grads)?)?;
        self.layer_norm.backward_add(&c.c1, &dn1, &dh1, grads)
    }
}

impl Parameters for EncoderLayer {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.q_proj
            .visit(&format!("{prefix}attention.q_proj."), f)?;
        self.k_proj
            .visit(&format!("{prefix}attention.k_proj."), f)?;
        self.v_proj
            .visit(&format!("{prefix}attention.v_proj."), f)?;
        self.out_proj
            .visit(&format!("{prefix}attention.out_proj."), f)?;
        self.layer_norm.visit(&format!("{prefix}layer_norm."), f)?;
        self.feed_forward
            .fc1
            .visit(&format!("{prefix}feed_forward.intermediate_dense."), f)?;
        self.feed_forward
            .fc2
            .visit(&format!("{prefix}feed_forward.output_dense."), f)?;
        self.final_layer_norm
            .visit(&format!("{prefix}final_layer_norm."), f)
    }
}

/// The encoder (HF `Wav2Vec2Model` without its own masking logic).
#[derive(Debug)]
pub struct Seislm {
    pub cfg: SeislmConfig,
    pub conv_layers: Vec<FeatureConvLayer>,
    /// `feature_projection.layer_norm`.
    pub fp_layer_norm: LayerNorm,
    /// `feature_projection.projection`.
    pub fp_projection: Linear,
    /// The learned vector that replaces masked frames (pretraining).
    pub masked_spec_embed: Option<Param>,
    /// `encoder.pos_conv_embed.conv` (weight-normed, grouped, padding kernel/2).
    pub pos_conv: Conv1d,
    pub layers: Vec<EncoderLayer>,
    /// `encoder.layer_norm`.
    pub layer_norm: LayerNorm,
}

/// What [`Seislm::forward`] returns.
pub struct SeislmOutput {
    /// Final normed hidden states [B, T, hidden].
    pub last_hidden_state: Tensor,
    /// The normed conv features [B, T, conv_dim] (the quantizer's input in pretraining).
    pub extract_features: Tensor,
}

pub struct SeislmCache {
    convs: Vec<FeatureConvCache>,
    fp_ln: LayerNormLayerCache,
    extract: Tensor,
    /// Row index of the masking gather ([B, T], −1 for masked frames), when masking was given.
    mask_idx: Option<Tensor>,
    pos: Conv1dCache,
    /// The positional conv output after the slice, as [B, T, H] (the GELU input).
    pos_t: Tensor,
    pos_len: usize,
    layers: Vec<EncoderLayerCache>,
    norm: LayerNormLayerCache,
}

impl Seislm {
    pub fn new(cfg: SeislmConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let mut init = Init::new(seed);
        let mut conv_layers = Vec::new();
        let mut cin = cfg.in_chans;
        for &(c, k, s) in &cfg.conv_layers {
            conv_layers.push(FeatureConvLayer {
                conv: Conv1d::new(cin, c, k, s, 0, 1, true, false, &mut init)?,
                layer_norm: LayerNorm::new(c, cfg.eps, &mut init)?,
            });
            cin = c;
        }
        let h = cfg.hidden;
        let masked_spec_embed = if cfg.masked_spec_embed {
            Some(Param::new(init.xavier_uniform(1, h)?.reshape(&[h])?)?)
        } else {
            None
        };
        let layers = (0..cfg.layers)
            .map(|_| EncoderLayer::new(&cfg, &mut init))
            .collect::<Result<Vec<_>>>()?;
        Ok(Seislm {
            fp_layer_norm: LayerNorm::new(cin, cfg.eps, &mut init)?,
            fp_projection: Linear::new(cin, h, true, &mut init)?,
            masked_spec_embed,
            pos_conv: Conv1d::new(
                h,
                h,
                cfg.pos_kernel,
                1,
                cfg.pos_kernel / 2,
                cfg.pos_groups,
                true,
                true,
                &mut init,
            )?,
            layers,
            layer_norm: LayerNorm::new(h, cfg.eps, &mut init)?,
            conv_layers,
            cfg,
        })
    }

    pub fn device(&self) -> Device {
        self.layer_norm.weight.value.device()
    }

    /// waveforms [B, in_chans, L] → hidden states [B, T, hidden] and extract_features.
    /// `mask` (B·T flags, true = masked) replaces those frames' projected features with
    /// `masked_spec_embed` before the positional embedding, as in pretraining.
    pub fn forward(
        &self,
        wave: &Tensor,
        mask: Option<&[bool]>,
    ) -> Result<(SeislmOutput, SeislmCache)> {
        let _range = nvtx::range("seislm/forward");
        let [b, c, l] = wave.shape[..] else {
            bail!(
                "SeisLM: waveforms must be [batch, {}, samples], found {:?}",
                self.cfg.in_chans,
                wave.shape
            );
        };
        if c != self.cfg.in_chans {
            bail!(
                "SeisLM: this model takes {} components, found {c} (waveforms {:?})",
                self.cfg.in_chans,
                wave.shape
            );
        }
        let Some(t) = self.cfg.frames(l).filter(|&t| t > 0) else {
            bail!("SeisLM: {l} samples are too few for the feature extractor");
        };
        let h = self.cfg.hidden;
        // Feature extractor: NCW in, channels-last out of every layer; transposed back to NCW
        // for the next convolution.
        let mut x = wave.clone();
        let mut convs = Vec::with_capacity(self.conv_layers.len());
        for (i, layer) in self.conv_layers.iter().enumerate() {
            let (a, cache) = layer.forward(x)?;
            convs.push(cache);
            x = if i + 1 < self.conv_layers.len() {
                ops::transpose_last2(&a)?
            } else {
                a
            };
        }
        let features = x;
        let (extract, fp_ln) = self.fp_layer_norm.forward(&features)?;
        let mut hs = self.fp_projection.forward(&extract)?;
        let mask_idx = match mask {
            None => None,
            Some(m) => {
                if m.len() != b * t {
                    bail!(
                        "SeisLM: the mask has {} flags, expected batch × frames = {b} × {t}",
                        m.len()
                    );
                }
                let Some(emb) = &self.masked_spec_embed else {
                    bail!("SeisLM: masking needs masked_spec_embed, which this model lacks (config masked_spec_embed = false)");
                };
                let idx: Vec<i32> = m
                    .iter()
                    .enumerate()
                    .map(|(i, &on)| if on { -1 } else { (i % t) as i32 })
                    .collect();
                let idx = Tensor::from_i32(&[b, t], idx)?.to_device(&self.device())?;
                let fill = emb.value_as(hs.dtype)?;
                hs = ops::gather_rows(&hs, &idx, Some(&fill))?;
                Some(idx)
            }
        };
        // Positional convolution embedding.
        let (p, pos) = self.pos_conv.forward(ops::transpose_last2(&hs)?)?;
        let pos_len = p.shape[2];
        let p = if pos_len != t {
            ops::slice_axis(&p, 2, 0, t)?
        } else {
            p
        };
        let pos_t = ops::transpose_last2(&p)?;
        let hs = ops::add(&hs, &ops::gelu(&pos_t)?)?;
        let (hs, layers) = crate::nn::forward_each(&self.layers, hs, |i, l, x| {
            let _range = nvtx::range_with(|| format!("seislm/layer {i} forward"));
            l.forward(x)
        })?;
        let (out, norm) = self.layer_norm.forward(&hs)?;
        debug_assert_eq!(out.shape, [b, t, h]);
        Ok((
            SeislmOutput {
                last_hidden_state: out,
                extract_features: extract.clone(),
            },
            SeislmCache {
                convs,
                fp_ln,
                extract,
                mask_idx,
                pos,
                pos_t,
                pos_len,
                layers,
                norm,
            },
        ))
    }

    /// Backward from the gradient of last_hidden_state (and optionally of extract_features);
    /// adds every parameter gradient into `grads` and returns the waveform gradient when asked.
    pub fn backward(
        &self,
        c: &SeislmCache,
        dout: &Tensor,
        dextract: Option<&Tensor>,
        want_input_grad: bool,
        grads: &mut Grads,
    ) -> Result<Option<Tensor>> {
        let _range = nvtx::range("seislm/backward");
        if dout.shape != c.norm.x.shape {
            bail!(
                "SeisLM backward: the output gradient must be {:?}, found {:?}",
                c.norm.x.shape,
                dout.shape
            );
        }
        let mut dh = self.layer_norm.backward(&c.norm, dout, grads)?;
        for (i, (layer, cache)) in self.layers.iter().zip(&c.layers).enumerate().rev() {
            let layer_range = nvtx::range_with(|| format!("seislm/layer {i} backward"));
            dh = layer.backward(cache, &dh, grads)?;
            drop(layer_range);
            // This layer's gradients are final (see Grads::mark_final).
            grads.mark_final()?;
        }
        // h = h0 + gelu(pos(h0)): the gradient reaches h0 directly and through the conv.
        let t = c.pos_t.shape[1];
        let dpt = ops::gelu_backward(&c.pos_t, &dh)?;
        let mut dp = ops::transpose_last2_backward(&dpt)?;
        if c.pos_len != t {
            dp = ops::slice_axis_backward(&dp, 2, 0, c.pos_len)?;
        }
        let dht = self.pos_conv.backward(&c.pos, &dp, true, grads)?;
        if let Some(dht) = dht {
            ops::add_assign(&mut dh, &ops::transpose_last2_backward(&dht)?)?;
        }
        if let Some(idx) = &c.mask_idx {
            let Some(emb) = &self.masked_spec_embed else {
                bail!("SeisLM backward: the cache was made with masking but the model has no masked_spec_embed");
            };
            let mut demb = dh.device().backend().zeros(&[self.cfg.hidden], dh.dtype)?;
            dh = ops::gather_rows_backward(&dh, idx, t, Some(&mut demb))?;
            grads.accumulate(emb, &demb)?;
        }
        let mut dextract_total = self.fp_projection.backward(&c.extract, &dh, grads)?;
        if let Some(de) = dextract {
            ops::add_assign(&mut dextract_total, de)?;
        }
        let mut da = self
            .fp_layer_norm
            .backward(&c.fp_ln, &dextract_total, grads)?;
        let n = self.conv_layers.len();
        for i in (0..n).rev() {
            let want = i > 0 || want_input_grad;
            let dx = self.conv_layers[i].backward(&c.convs[i], &da, want, grads)?;
            match dx {
                Some(dx) if i > 0 => da = ops::transpose_last2(&dx)?,
                other => return Ok(other),
            }
        }
        Ok(None)
    }
}

impl Parameters for Seislm {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        for (i, l) in self.conv_layers.iter_mut().enumerate() {
            l.visit(&format!("{prefix}feature_extractor.conv_layers.{i}."), f)?;
        }
        self.fp_layer_norm
            .visit(&format!("{prefix}feature_projection.layer_norm."), f)?;
        self.fp_projection
            .visit(&format!("{prefix}feature_projection.projection."), f)?;
        if let Some(m) = &mut self.masked_spec_embed {
            f(&format!("{prefix}masked_spec_embed"), m)?;
        }
        self.pos_conv
            .visit(&format!("{prefix}encoder.pos_conv_embed.conv."), f)?;
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.visit(&format!("{prefix}encoder.layers.{i}."), f)?;
        }
        self.layer_norm
            .visit(&format!("{prefix}encoder.layer_norm."), f)
    }
}
