//! The binding (ImageBind-style) layers of the fusion models: a bias-free projection followed by
//! L2 normalisation, the scaled similarity matrix between two sets of embeddings, and the
//! symmetric InfoNCE loss over it, each with its backward pass.
//!
//! Shapes: x [rows, d_in], w [d_out, d_in] (PyTorch's Linear layout), e [rows, d_out]; image
//! embeddings [n_img, dim], waveform embeddings [n_wave, dim], logits [n_img, n_wave]; the
//! logit scale is a one-element f32 tensor holding its logarithm s, used as
//! t = exp(min(s, max_log_scale)).

use crate::tensor::Tensor;
use anyhow::Result;

/// The tensors of the projection's backward pass.
pub struct ProjectBackward<'a> {
    /// dx [rows, d_in], written.
    pub dx: &'a mut Tensor,
    /// dw [d_out, d_in], accumulated (`+=`).
    pub dw: &'a mut Tensor,
    /// Scratch [rows, d_out] f32: the gradient of the projection before normalisation, written.
    pub dz: &'a mut Tensor,
    pub x: &'a Tensor,
    pub w: &'a Tensor,
    /// The forward output [rows, d_out] and the row norms [rows] (f32).
    pub e: &'a Tensor,
    pub norm: &'a Tensor,
    /// The output gradient, like `e`.
    pub de: &'a Tensor,
    pub eps: f32,
}

/// The outputs of the projection, both written: e [rows, d_out] and the row norms [rows] (f32).
pub struct ProjectOut<'a> {
    pub e: &'a mut Tensor,
    pub norm: &'a mut Tensor,
}

/// The inputs of the similarity matrix: the embeddings and the logit scale.
#[derive(Clone, Copy)]
pub struct SimilarityInput<'a> {
    pub ei: &'a Tensor,
    pub ew: &'a Tensor,
    pub log_scale: &'a Tensor,
    pub max_log_scale: f32,
}

/// The tensors of the InfoNCE backward pass.
pub struct InfonceBackward<'a> {
    /// Written: the logits' gradient [n, n] (f32).
    pub dlogits: &'a mut Tensor,
    /// The logits and the forward's log-sum-exps [2n].
    pub logits: &'a Tensor,
    pub lse: &'a Tensor,
    pub scale: f32,
}

/// The tensors of the similarity matrix's backward pass.
pub struct SimilarityBackward<'a> {
    /// d e_img [n_img, dim] and d e_wave [n_wave, dim], written.
    pub dei: &'a mut Tensor,
    pub dew: &'a mut Tensor,
    /// d s, accumulated (`+=`) into a one-element f32 tensor; zero where the scale is clamped.
    pub dlog_scale: &'a mut Tensor,
    /// The forward's inputs.
    pub input: SimilarityInput<'a>,
    /// The forward logits and their gradient [n_img, n_wave] (f32).
    pub logits: &'a Tensor,
    pub dlogits: &'a Tensor,
}

pub trait FusionOps {
    /// e = z / max(‖z‖, eps) per row with z = x wᵀ, and norm = ‖z‖ per row (f32); written.
    fn project_l2norm(&self, out: ProjectOut, x: &Tensor, w: &Tensor, eps: f32) -> Result<()>;
    /// dz = ∂e/∂z ᵀ de, then dx = dz w (written) and dw += dzᵀ x.
    fn project_l2norm_backward(&self, a: ProjectBackward) -> Result<()>;
    /// logits[i, j] = exp(min(s, max_log_scale)) · ⟨ei_i, ew_j⟩ (f32, written).
    fn similarity(&self, logits: &mut Tensor, a: SimilarityInput) -> Result<()>;
    /// For square logits [n, n]: lse[i] = logsumexp of row i and lse[n + j] of column j;
    /// losses[i] = lse[i] − logits[i, i] and losses[n + j] = lse[n + j] − logits[j, j]
    /// (f32, written). The symmetric InfoNCE loss is Σ losses / 2n.
    fn infonce(&self, lse: &mut Tensor, losses: &mut Tensor, logits: &Tensor) -> Result<()>;
    /// dlogits[i, j] = scale · (softmax_row(i)_j + softmax_col(j)_i − 2·[i = j]) (written);
    /// scale = dloss / 2n gives the gradient of the mean loss.
    fn infonce_backward(&self, a: InfonceBackward) -> Result<()>;
    /// dei = t · dlogits · ew, dew = t · dlogitsᵀ · ei (written); d s += Σ dlogits ⊙ logits
    /// where s ≤ max_log_scale.
    fn similarity_backward(&self, a: SimilarityBackward) -> Result<()>;
}
