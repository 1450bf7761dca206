//! Fused multi-head scaled dot-product attention on strided layouts (fused qkv or separate
//! projections; see `backend::cpu::attention`).

pub use crate::backend::cpu::attention::{AttnShape, HeadLayout};
use crate::tensor::Tensor;
use anyhow::Result;

/// The queries, keys and values, each on its layout in `AttnShape` (one fused tensor may be
/// all three).
#[derive(Clone, Copy)]
pub struct Qkv<'a> {
    pub q: &'a Tensor,
    pub k: &'a Tensor,
    pub v: &'a Tensor,
}

/// The outputs of the forward pass, both written: out [B, Nq, H·D] and lse [B, H, Nq] (f32).
pub struct AttentionOut<'a> {
    pub out: &'a mut Tensor,
    pub lse: &'a mut Tensor,
}

/// Where the gradients of q, k and v are written, each on its operand's layout in `AttnShape`.
pub enum AttnGrads<'a> {
    /// One buffer holding all three (the fused qkv input's gradient).
    Fused(&'a mut Tensor),
    Separate {
        dq: &'a mut Tensor,
        dk: &'a mut Tensor,
        dv: &'a mut Tensor,
    },
}

/// The tensors of a backward pass.
pub struct AttentionBackward<'a> {
    /// Written.
    pub grads: AttnGrads<'a>,
    pub qkv: Qkv<'a>,
    /// The forward output [B, Nq, H·D] and log-sum-exp [B, H, Nq] (f32).
    pub out: &'a Tensor,
    pub lse: &'a Tensor,
    /// The output gradient, like `out`.
    pub dout: &'a Tensor,
}

pub trait AttentionOps {
    /// out [B, Nq, H·D] = softmax(q kᵀ · scale) v per head, and lse [B, H, Nq] (f32), written.
    fn attention(&self, o: AttentionOut, x: Qkv, s: &AttnShape) -> Result<()>;
    /// dq, dk and dv written from the output gradient.
    fn attention_backward(&self, a: AttentionBackward, s: &AttnShape) -> Result<()>;
}
