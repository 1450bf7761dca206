//! The wav2vec2 pretraining objective (f32): the Gumbel product quantizer, the codebook
//! perplexity and the contrastive loss, each with its backward pass.

use crate::tensor::Tensor;
use anyhow::Result;

/// The straight-through backward of the quantizer; V = soft's last axis, d = code's last axis.
pub struct CodevectorBackward<'a> {
    /// Written: the logits' gradient [rows·G, V], soft′ · (dq · codevector) / τ.
    pub dlogits: &'a mut Tensor,
    /// Accumulated: dcode[g·V + v] += Σ of dq over the rows whose hard choice in group g is v.
    pub dcode: &'a mut Tensor,
    /// The forward's soft probabilities [rows·G, V].
    pub soft: &'a Tensor,
    /// The codevectors and the forward's hard choices.
    pub book: Codebook<'a>,
    /// The gradient of the quantized vectors [rows·G·d].
    pub dq: &'a Tensor,
    pub tau: f32,
}

/// The outputs of the contrastive loss, all written.
pub struct ContrastiveOut<'a> {
    /// Per masked frame [M].
    pub loss: &'a mut Tensor,
    /// Gradients of dloss · Σ loss w.r.t. c and q ([rows, f]).
    pub dc: &'a mut Tensor,
    pub dq: &'a mut Tensor,
}

/// The candidates of the contrastive loss (i32): cand [M, K+1] (column 0 the positive row),
/// and its inverse: the slots m·(K+1)+k naming row j are entries[offsets[j]..offsets[j+1]].
#[derive(Clone, Copy)]
pub struct ContrastiveIndex<'a> {
    pub cand: &'a Tensor,
    pub offsets: &'a Tensor,
    pub entries: &'a Tensor,
}

/// The Gumbel product quantizer's forward pass: per (row, group) of logits [rows·G·V],
/// y = (z + g)/τ with Philox Gumbel noise g keyed by (seed, step).
pub struct GumbelArgs<'a> {
    /// Written: hard [rows·G] (i32) = argmax y, soft [rows·G, V] = softmax(y).
    pub hard: &'a mut Tensor,
    pub soft: &'a mut Tensor,
    pub logits: &'a Tensor,
    pub tau: f32,
    pub seed: u64,
    pub step: u32,
}

/// The codevectors [G·V, d] chosen by the i32 hard choices [rows·G].
#[derive(Clone, Copy)]
pub struct Codebook<'a> {
    pub code: &'a Tensor,
    pub hard: &'a Tensor,
    pub groups: usize,
}

/// The codebook perplexity and its gradient; `weight` [rows] weights the rows of logits.
pub struct PerplexityArgs<'a> {
    /// Written: ppl [G] and the logits' gradient of dppl · Σ_g ppl[g].
    pub ppl: &'a mut Tensor,
    pub dlogits: &'a mut Tensor,
    pub logits: &'a Tensor,
    pub weight: &'a Tensor,
    pub groups: usize,
    pub dppl: f32,
}

/// The inputs of the contrastive loss: c and q [rows, f], the candidates, the temperature κ
/// and the loss gradient dloss.
pub struct ContrastiveArgs<'a> {
    pub c: &'a Tensor,
    pub q: &'a Tensor,
    pub idx: ContrastiveIndex<'a>,
    pub kappa: f32,
    pub dloss: f32,
}

pub trait Wav2vec2Ops {
    /// hard = argmax and soft = softmax of the noisy, tempered logits (see [`GumbelArgs`]).
    fn gumbel_forward(&self, a: GumbelArgs) -> Result<()>;
    /// q[r, g] = code[g·V + hard[r·G + g]], q [rows·G·d] (written).
    fn codevector_gather(&self, q: &mut Tensor, book: Codebook) -> Result<()>;
    fn codevector_backward(&self, a: CodevectorBackward) -> Result<()>;
    /// ppl[g] = exp(H(p̄_g)) of p = softmax(logits) per group, p̄ the mean over rows weighted
    /// by `weight` [rows]; dlogits = the gradient of dppl · Σ_g ppl[g] (both written).
    fn codebook_perplexity(&self, a: PerplexityArgs) -> Result<()>;
    /// Per masked frame m: −log softmax over [positive, negatives] of cos(c_p, q_j)/κ (a
    /// negative equal to the positive excluded); c and q [rows, f].
    fn contrastive(&self, out: ContrastiveOut, a: ContrastiveArgs) -> Result<()>;
}
