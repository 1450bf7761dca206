//! Cross-attention: queries from one token sequence, keys and values from another (the two
//! lengths may differ), and the pre-LN cross-attention block of the intermediate-fusion model.
//!
//! ```text
//! CrossAttention(x [B, Nq, C], ctx [B, Nk, C]) = out_proj(softmax(q kᵀ/√d) v),
//!     q = q_proj(x), k = k_proj(ctx), v = v_proj(ctx)            (per head, d = C / heads)
//! CrossBlock(x, ctx): h = x + CrossAttention(norm1(x), norm_context(ctx))
//!                     y = h + mlp(norm2(h))                         (Linear → GELU → Linear)
//! ```
//!
//! Attention runs through `ops::attention` (kernels/attention.cu), whose kernels take separate
//! query and key/value lengths. Names: `attn.{q,k,v,out}_proj.{weight,bias}`, `norm1.*`,
//! `norm_context.*`, `norm2.*`, `mlp.fc{1,2}.*`.

use super::layer_norm::LayerNormLayerCache;
use super::{Grads, Init, LayerNorm, Linear, Mlp, MlpCache};
use crate::nn::named_fields;
use crate::ops::{self, AttnOut};
use crate::tensor::Tensor;
use anyhow::{bail, Result};

#[derive(Debug)]
pub struct CrossAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub heads: usize,
}

pub struct CrossAttentionCache {
    x: Tensor,
    ctx: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn: AttnOut,
}

impl CrossAttention {
    pub fn new(dim: usize, heads: usize, init: &mut Init) -> Result<Self> {
        if heads == 0 || !dim.is_multiple_of(heads) {
            bail!("cross-attention: width {dim} is not divisible by {heads} heads");
        }
        Ok(CrossAttention {
            q_proj: Linear::new(dim, dim, true, init)?,
            k_proj: Linear::new(dim, dim, true, init)?,
            v_proj: Linear::new(dim, dim, true, init)?,
            out_proj: Linear::new(dim, dim, true, init)?,
            heads,
        })
    }

    /// x [B, Nq, C] attends to ctx [B, Nk, C] → [B, Nq, C].
    pub fn forward(&self, x: &Tensor, ctx: &Tensor) -> Result<(Tensor, CrossAttentionCache)> {
        if x.rank() != 3 || ctx.rank() != 3 || x.shape[0] != ctx.shape[0] {
            bail!(
                "cross-attention: queries {:?} and context {:?} must be [batch, tokens, width] with the same batch",
                x.shape,
                ctx.shape
            );
        }
        let q = self.q_proj.forward(x)?;
        let k = self.k_proj.forward(ctx)?;
        let v = self.v_proj.forward(ctx)?;
        let attn = ops::attention(&q, &k, &v, self.heads)?;
        let y = self.out_proj.forward(&attn.out)?;
        Ok((
            y,
            CrossAttentionCache {
                x: x.clone(),
                ctx: ctx.clone(),
                q,
                k,
                v,
                attn,
            },
        ))
    }

    /// (dx, dctx); parameter gradients are added into `grads`.
    pub fn backward(
        &self,
        c: &CrossAttentionCache,
        dy: &Tensor,
        grads: &mut Grads,
    ) -> Result<(Tensor, Tensor)> {
        let dattn = self.out_proj.backward(&c.attn.out, dy, grads)?;
        let (dq, dk, dv) = ops::attention_backward(&c.q, &c.k, &c.v, &c.attn, &dattn, self.heads)?;
        let dx = self.q_proj.backward(&c.x, &dq, grads)?;
        let mut dctx = self.k_proj.backward(&c.ctx, &dk, grads)?;
        ops::add_assign(&mut dctx, &self.v_proj.backward(&c.ctx, &dv, grads)?)?;
        Ok((dx, dctx))
    }
}

named_fields!(CrossAttention {
    q_proj,
    k_proj,
    v_proj,
    out_proj
});

/// Pre-LN cross-attention block with a residual and an MLP.
#[derive(Debug)]
pub struct CrossBlock {
    pub norm1: LayerNorm,
    pub norm_context: LayerNorm,
    pub attn: CrossAttention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

pub struct CrossBlockCache {
    n1: LayerNormLayerCache,
    nc: LayerNormLayerCache,
    attn: CrossAttentionCache,
    n2: LayerNormLayerCache,
    mlp: MlpCache,
}

impl CrossBlock {
    pub fn new(
        dim: usize,
        heads: usize,
        mlp_ratio: f32,
        eps: f32,
        init: &mut Init,
    ) -> Result<Self> {
        let hidden = ((dim as f32 * mlp_ratio) as usize).max(1);
        Ok(CrossBlock {
            norm1: LayerNorm::new(dim, eps, init)?,
            norm_context: LayerNorm::new(dim, eps, init)?,
            attn: CrossAttention::new(dim, heads, init)?,
            norm2: LayerNorm::new(dim, eps, init)?,
            mlp: Mlp::new(dim, hidden, init)?,
        })
    }

    /// x [B, Nq, C] updated by attending to ctx [B, Nk, C].
    pub fn forward(&self, x: &Tensor, ctx: &Tensor) -> Result<(Tensor, CrossBlockCache)> {
        let (a, n1) = self.norm1.forward(x)?;
        let (b, nc) = self.norm_context.forward(ctx)?;
        let (o, attn) = self.attn.forward(&a, &b)?;
        let h = ops::add(x, &o)?;
        let (m_in, n2) = self.norm2.forward(&h)?;
        let (m, mlp) = self.mlp.forward(&m_in)?;
        let y = ops::add(&h, &m)?;
        Ok((
            y,
            CrossBlockCache {
                n1,
                nc,
                attn,
                n2,
                mlp,
            },
        ))
    }

    /// (dx, dctx) from dy; parameter gradients are added into `grads`.
    pub fn backward(
        &self,
        c: &CrossBlockCache,
        dy: &Tensor,
        grads: &mut Grads,
    ) -> Result<(Tensor, Tensor)> {
        let dm = self.mlp.backward(&c.mlp, dy, grads)?;
        let mut dh = self.norm2.backward(&c.n2, &dm, grads)?;
        ops::add_assign(&mut dh, dy)?;
        let (da, db) = self.attn.backward(&c.attn, &dh, grads)?;
        let mut dx = self.norm1.backward(&c.n1, &da, grads)?;
        ops::add_assign(&mut dx, &dh)?;
        let dctx = self.norm_context.backward(&c.nc, &db, grads)?;
        Ok((dx, dctx))
    }
}

named_fields!(CrossBlock {
    norm1,
    norm_context,
    attn,
    norm2,
    mlp
});
