//! timm's `Attention`: one fused qkv Linear (with bias), multi-head attention, output projection.

use super::{Grads, Init, Linear};
use crate::nn::named_fields;
use crate::ops::{self, AttnOut};
use crate::tensor::Tensor;
use anyhow::Result;

#[derive(Debug)]
pub struct SelfAttention {
    pub qkv: Linear,
    pub proj: Linear,
    pub heads: usize,
}

pub struct SelfAttentionCache {
    pub x: Tensor,
    pub qkv: Tensor,
    pub attn: AttnOut,
}

impl SelfAttention {
    pub fn new(dim: usize, heads: usize, qkv_bias: bool, init: &mut Init) -> Result<Self> {
        Ok(SelfAttention {
            qkv: Linear::new(dim, 3 * dim, qkv_bias, init)?,
            proj: Linear::new(dim, dim, true, init)?,
            heads,
        })
    }
    /// x [B, N, C] → [B, N, C].
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, SelfAttentionCache)> {
        let qkv = self.qkv.forward(x)?;
        let attn = ops::attention_qkv(&qkv, self.heads)?;
        let y = self.proj.forward(&attn.out)?;
        Ok((
            y,
            SelfAttentionCache {
                x: x.clone(),
                qkv,
                attn,
            },
        ))
    }
    pub fn backward(
        &self,
        c: &SelfAttentionCache,
        dy: &Tensor,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let dattn = self.proj.backward(&c.attn.out, dy, grads)?;
        let dqkv = ops::attention_qkv_backward(&c.qkv, &c.attn, &dattn, self.heads)?;
        self.qkv.backward(&c.x, &dqkv, grads)
    }
}

named_fields!(SelfAttention { qkv, proj });
