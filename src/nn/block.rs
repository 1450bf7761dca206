//! Pre-LN transformer block (timm `Block`): x + attn(norm1(x)), then + mlp(norm2(·)).

use super::layer_norm::LayerNormLayerCache;
use super::{Grads, Init, LayerNorm, Mlp, MlpCache, SelfAttention, SelfAttentionCache};
use crate::nn::named_fields;
use crate::ops;
use crate::tensor::Tensor;
use anyhow::Result;

#[derive(Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: SelfAttention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

pub struct BlockCache {
    c1: LayerNormLayerCache,
    ca: SelfAttentionCache,
    c2: LayerNormLayerCache,
    cm: MlpCache,
}

impl Block {
    pub fn new(
        dim: usize,
        heads: usize,
        mlp_ratio: f32,
        eps: f32,
        init: &mut Init,
    ) -> Result<Self> {
        Ok(Block {
            norm1: LayerNorm::new(dim, eps, init)?,
            attn: SelfAttention::new(dim, heads, true, init)?,
            norm2: LayerNorm::new(dim, eps, init)?,
            mlp: Mlp::new(dim, (dim as f32 * mlp_ratio) as usize, init)?,
        })
    }

    pub fn forward(&self, x: Tensor) -> Result<(Tensor, BlockCache)> {
        let (n1, c1) = self.norm1.forward(&x)?;
        let (a, ca) = self.attn.forward(&n1)?;
        // x1 = x + a and norm2(x1) in one pass
        let (x1, n2, c2) = self.norm2.forward_add(&x, &a)?;
        let (m, cm) = self.mlp.forward(&n2)?;
        let y = ops::add(&x1, &m)?;
        Ok((y, BlockCache { c1, ca, c2, cm }))
    }

    pub fn backward(&self, c: &BlockCache, dy: &Tensor, grads: &mut Grads) -> Result<Tensor> {
        let dn2 = self.mlp.backward(&c.cm, dy, grads)?;
        // the residual's gradient added by the norms' backward kernels
        let dx1 = self.norm2.backward_add(&c.c2, &dn2, dy, grads)?;
        let dn1 = self.attn.backward(&c.ca, &dx1, grads)?;
        self.norm1.backward_add(&c.c1, &dn1, &dx1, grads)
    }

    /// The block's input, kept in its cache (multi-level heads read intermediate features).
    pub fn cached_input(c: &BlockCache) -> &Tensor {
        &c.c1.x
    }
}

named_fields!(Block {
    norm1,
    attn,
    norm2,
    mlp
});
