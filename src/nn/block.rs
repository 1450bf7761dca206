//! Pre-LN transformer block (timm `Block`): x + attn(norm1(x)), then + mlp(norm2(·)).

use super::{
    Init, LayerNorm, Mlp, MlpCache, ParamVisitor, Parameters, SelfAttention, SelfAttentionCache,
};
use crate::ops::{self, LayerNormCache};
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
    x: Tensor,
    n1: Tensor,
    c1: LayerNormCache,
    ca: SelfAttentionCache,
    x1: Tensor,
    n2: Tensor,
    c2: LayerNormCache,
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
        let x1 = ops::add(&x, &a)?;
        let (n2, c2) = self.norm2.forward(&x1)?;
        let (m, cm) = self.mlp.forward(&n2)?;
        let y = ops::add(&x1, &m)?;
        Ok((
            y,
            BlockCache {
                x,
                n1,
                c1,
                ca,
                x1,
                n2,
                c2,
                cm,
            },
        ))
    }

    pub fn backward(&mut self, c: &BlockCache, dy: &Tensor) -> Result<Tensor> {
        let dn2 = self.mlp.backward(&c.n2, &c.cm, dy)?;
        let mut dx1 = self.norm2.backward(&c.x1, &c.c2, &dn2)?;
        ops::add_assign(&mut dx1, dy)?;
        let dn1 = self.attn.backward(&c.n1, &c.ca, &dx1)?;
        let mut dx = self.norm1.backward(&c.x, &c.c1, &dn1)?;
        ops::add_assign(&mut dx, &dx1)?;
        Ok(dx)
    }

    /// The block's input, kept in its cache (multi-level heads read intermediate features).
    pub fn cached_input(c: &BlockCache) -> &Tensor {
        &c.x
    }
}

impl Parameters for Block {
    fn visit(&mut self, prefix: &str, f: &mut ParamVisitor) -> Result<()> {
        self.norm1.visit(&format!("{prefix}norm1."), f)?;
        self.attn.visit(&format!("{prefix}attn."), f)?;
        self.norm2.visit(&format!("{prefix}norm2."), f)?;
        self.mlp.visit(&format!("{prefix}mlp."), f)
    }
}
