//! Layers with explicit forward and backward passes (llm.c style, no autograd graph).
//!
//! Each layer's `forward` returns its output and a cache of what its `backward` needs;
//! `backward(&self, cache, dy, grads)` adds (`+=`) its parameter gradients into the
//! parameter store's gradient buffer ([`Grads`]) and returns the input gradient (written,
//! `=`). Layers read their parameters (views of the store's values) and never own gradients. Parameters are named with the
//! tensor names of the published checkpoints (timm/MAE for SFM, HF wav2vec2 for SeisLM), so a
//! converted checkpoint loads without renaming.

pub mod attention;
pub mod batch_norm;
pub mod block;
pub mod conv1d;
pub mod conv2d;
pub mod cross_attention;
pub mod init;
pub mod layer_norm;
pub mod linear;
pub mod mlp;
pub mod param;
pub mod patch_embed;
pub mod store;

pub use attention::{SelfAttention, SelfAttentionCache};
pub use batch_norm::BatchNorm2d;
pub use block::{Block, BlockCache};
pub use conv2d::Conv2d;
pub use cross_attention::{CrossAttention, CrossBlock, CrossBlockCache};
pub use init::Init;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mlp::{Mlp, MlpCache};
pub(crate) use param::named_fields;
pub use param::{Param, ParamView, ParamVisitor, Parameters};
pub use patch_embed::{PatchEmbed, PatchEmbedCache};
pub use store::{GradSlot, Grads, ParamEntry, ParamStore};

/// Runs `x` through `layers` in order with `forward` (given each layer's index, for its NVTX
/// range), keeping each layer's cache for the backward pass.
pub fn forward_each<L, C>(
    layers: &[L],
    mut x: crate::tensor::Tensor,
    forward: impl Fn(usize, &L, crate::tensor::Tensor) -> anyhow::Result<(crate::tensor::Tensor, C)>,
) -> anyhow::Result<(crate::tensor::Tensor, Vec<C>)> {
    let mut caches = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let (y, cache) = forward(i, layer, x)?;
        caches.push(cache);
        x = y;
    }
    Ok((x, caches))
}
