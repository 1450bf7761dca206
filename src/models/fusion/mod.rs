//! Fusion models: the SFM image encoder and the SeisLM waveform encoder, bound or fused.
//!
//! | model | file | what joins the modalities | objective |
//! |---|---|---|---|
//! | [`Binding`] | binding.rs | ImageBind: per modality LayerNorm → pool → projection (no bias) → L2 norm; similarity × learnable logit scale | symmetric InfoNCE over the batch |
//! | [`LateFusion`] | late.rs | pooled embeddings concatenated → MLP of decreasing widths (GELU, dropout) → classifier; also the single-modality baselines ([`Inputs`]) | log-softmax + NLL |
//! | [`MidFusion`] | intermediate.rs | both token sequences projected to a common width, cross-attention blocks each way (unequal lengths), final norms, pooling, MLP → classifier | log-softmax + NLL |
//! | [`EarlyFusion`] | early.rs | waveform → log-mel image (differentiable front end) → the image encoder, alone or stacked with the section as channels; pool → MLP → classifier | log-softmax + NLL |
//!
//! docs/fusion.md gives the shapes and the math.
//!
//! # The API (every model, through [`FusionModel`])
//!
//! ```text
//! let mut model = LateFusion::new(LateFusionConfig::tiny(2), seed)?;   // or Binding, MidFusion, EarlyFusion
//! let mut store = ParamStore::pack(&mut model, &device)?;               // names image.*, wave.*, fusion.*, head.*
//! freeze_encoders(&mut model, &mut store, true);                        // --freeze-encoder (optional)
//! for step in 0.. {
//!     model.set_step(step);                                             // dropout stream of this step
//!     store.zero_grad()?;
//!     let s = model.loss_and_backward(&images, &waves, &labels, &mut store.grads)?;
//!     opt.step(&mut store, lr)?;                                        // s.loss.loss: f32, s.output.logits
//! }
//! let (out, _) = model.forward(&images, &waves, false)?;                // eval: no dropout
//! ```
//!
//! - Inputs: `images` [B, C, H, W] as the image encoder takes them (C = `VitConfig::in_chans`,
//!   normalised per image like SFM's loaders), `waves` [B, 3, T] (f32 for [`EarlyFusion`], whose
//!   mel front end needs f32). A model that does not read a modality ignores that argument
//!   (the image-only baseline ignores `waves`, [`EarlyFusion`] without the section ignores
//!   `images`; pass any tensor, e.g. an empty one). `labels`: i32 [B] class indices; [`Binding`]
//!   ignores them (pair i of the batch is its own positive).
//! - [`FusionModel::forward`] returns [`FusionOutput`]: `logits` is what the loss reads —
//!   class logits [B, classes], or for [`Binding`] the scaled similarity matrix [B, B] (f32,
//!   entry (i, j) = exp(s)·⟨e_img_i, e_wave_j⟩); `embeddings` holds the two L2-normalised
//!   embeddings [B, D] for [`Binding`] (linear probes, zero-shot transfer, retrieval).
//! - [`FusionModel::backward`] takes d loss / d logits and adds every parameter gradient into
//!   the store (`+=`), as every layer of the engine does. [`loss`] computes the loss of an
//!   output and its gradient for the model's [`Objective`]; [`FusionModel::loss_and_backward`]
//!   chains forward (train mode), loss and backward.
//! - Parameters (checkpoint-style names): `image.*` the ViT with timm/MAE names (a converted SFM
//!   checkpoint loads under the prefix), `wave.*` SeisLM with HF wav2vec2 names, `fusion.*` the
//!   joining layers, `head.*` the classifier. [`freeze_encoders`] freezes `image.` and `wave.` in
//!   the store and makes the backward pass stop at the encoders' outputs.
//! - Metrics helpers: `ops::recall_at_1(&similarity)` for [`Binding`]; [`Binding::embed_images`]
//!   and [`Binding::embed_waves`] embed one modality alone.

/// The [`FusionModel`] methods the classifiers (early, intermediate and late fusion) share:
/// the objective, and the `step` and `frozen_encoders` fields the other methods read.
macro_rules! classifier_fusion_state {
    () => {
        fn objective(&self) -> Objective {
            Objective::Classify
        }
        fn set_step(&mut self, step: u32) {
            self.step = step;
        }
        fn set_encoders_frozen(&mut self, frozen: bool) {
            self.frozen_encoders = frozen;
        }
    };
}

mod early;
mod head;
mod intermediate;
mod late;
mod pool;

pub mod binding;

pub use binding::{
    Binding, BindingCache, BindingConfig, BindingHead, BindingHeadCache, ModalityHead,
};
pub use early::{EarlyFusion, EarlyFusionCache, EarlyFusionConfig};
pub use head::{ClassifierHead, ClassifierHeadCache, HeadConfig};
pub use intermediate::{FusionLayer, MidFusion, MidFusionCache, MidFusionConfig};
pub use late::{Inputs, LateFusion, LateFusionCache, LateFusionConfig};
pub use pool::{concat_features, pool, pool_backward, split_features, Pool, PoolCache};

use crate::models::seislm::SeislmConfig;
use crate::models::sfm::VitConfig;
use crate::nn::{Grads, ParamStore, Parameters};
use crate::ops::{self, LossValue};
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};

/// Prefix of the image encoder's parameters.
pub const IMAGE_PREFIX: &str = "image.";
/// Prefix of the waveform encoder's parameters.
pub const WAVE_PREFIX: &str = "wave.";

/// What a model's loss is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Log-softmax + NLL of class logits [B, classes] against i32 labels [B].
    Classify,
    /// Symmetric InfoNCE over the similarity matrix [B, B] (positives on the diagonal).
    Contrastive,
}

/// What a forward pass returns.
#[derive(Clone, Debug)]
pub struct FusionOutput {
    /// What the loss reads: class logits [B, classes] ([`Objective::Classify`]) or the scaled
    /// similarity matrix [B, B] f32 ([`Objective::Contrastive`]).
    pub logits: Tensor,
    /// [`Binding`]: the L2-normalised image and waveform embeddings, each [B, D].
    pub embeddings: Option<(Tensor, Tensor)>,
}

/// One training step's result.
#[derive(Clone, Debug)]
pub struct Step {
    pub loss: LossValue,
    pub output: FusionOutput,
}

/// The uniform interface of the fusion models (see the module documentation).
pub trait FusionModel: Parameters {
    type Cache;
    /// `train` turns dropout on (keyed by the seed and [`FusionModel::set_step`]).
    fn forward(
        &self,
        images: &Tensor,
        waves: &Tensor,
        train: bool,
    ) -> Result<(FusionOutput, Self::Cache)>;
    /// From d loss / d `logits`: adds every parameter gradient into `grads`.
    fn backward(&self, cache: &Self::Cache, dlogits: &Tensor, grads: &mut Grads) -> Result<()>;
    fn objective(&self) -> Objective;
    /// The training step, which keys dropout (call once per step before the forward pass).
    fn set_step(&mut self, step: u32);
    /// When frozen, the backward pass stops at the encoders' outputs (their gradients are not
    /// computed). Use [`freeze_encoders`], which also freezes them in the store.
    fn set_encoders_frozen(&mut self, frozen: bool);

    /// Forward (train mode), loss and backward in one call.
    fn loss_and_backward(
        &self,
        images: &Tensor,
        waves: &Tensor,
        labels: &Tensor,
        grads: &mut Grads,
    ) -> Result<Step> {
        let (output, cache) = self.forward(images, waves, true)?;
        let (l, dlogits) = loss(self.objective(), &output.logits, labels)?;
        self.backward(&cache, &dlogits, grads)?;
        Ok(Step { loss: l, output })
    }
}

/// The loss of `logits` for `objective` and its gradient d loss / d logits (for d loss = 1).
/// `labels` (i32 [B], any device) are read for [`Objective::Classify`] only.
pub fn loss(objective: Objective, logits: &Tensor, labels: &Tensor) -> Result<(LossValue, Tensor)> {
    match objective {
        Objective::Classify => {
            if labels.dtype != DType::I32 || labels.numel() != logits.shape[0] {
                bail!(
                    "fusion loss: labels must be i32 with one entry per sample ({}), found {} {:?}",
                    logits.shape[0],
                    labels.dtype,
                    labels.shape
                );
            }
            let t = labels.to_device(&logits.device())?;
            let l = ops::cross_entropy(logits, &t)?;
            let d = ops::cross_entropy_backward(logits, &t, l.count, 1.0)?;
            Ok((l, d))
        }
        Objective::Contrastive => {
            let f = ops::infonce(logits)?;
            let d = ops::infonce_backward(logits, &f, 1.0)?;
            Ok((f.loss, d))
        }
    }
}

/// Freezes (or unfreezes) both encoders: in the store (the optimizer skips `image.*` and
/// `wave.*`) and in the model (the backward pass stops at their outputs).
pub fn freeze_encoders<M: FusionModel>(model: &mut M, store: &mut ParamStore, frozen: bool) {
    store.set_trainable(IMAGE_PREFIX, !frozen);
    store.set_trainable(WAVE_PREFIX, !frozen);
    model.set_encoders_frozen(frozen);
}

/// The two encoders' configurations.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    pub image: VitConfig,
    pub wave: SeislmConfig,
}

impl EncoderConfig {
    /// Named presets (`sfm-tiny`, `sfm-base`, `sfm-large`; `seislm-tiny`, `seislm-base`,
    /// `seislm-large`). SeisLM is built without `masked_spec_embed` (no masking here).
    pub fn preset(image: &str, wave: &str) -> Result<Self> {
        let mut wave = SeislmConfig::preset(wave)?;
        wave.masked_spec_embed = false;
        Ok(EncoderConfig {
            image: VitConfig::preset(image)?,
            wave,
        })
    }
    /// sfm-tiny and seislm-tiny, for tests and the CPU demo.
    pub fn tiny() -> Self {
        Self::preset("sfm-tiny", "seislm-tiny").expect("the tiny presets exist")
    }
    /// The same encoders on images of another size (a multiple of the patch).
    pub fn with_image(mut self, h: usize, w: usize) -> Result<Self> {
        self.image = self.image.with_image(h, w)?;
        Ok(self)
    }
}

/// The dropout key of site `stream_id` in train mode (None in eval mode or without dropout).
fn dropout_key(
    train: bool,
    p: f32,
    seed: u64,
    step: u32,
    stream_id: u32,
) -> Option<ops::DropoutKey> {
    (train && p > 0.0).then_some(ops::DropoutKey {
        seed,
        step,
        stream_id,
    })
}
