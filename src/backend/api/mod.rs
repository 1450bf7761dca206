//! What a backend computes: the `Backend` trait and one trait per op family.
//!
//! `ops/` checks shapes, dtypes and devices once, allocates the outputs through
//! [`Backend::alloc`], and calls the device's implementation of these traits: `backend::cpu`
//! (the reference, on host slices) or `backend::cuda` (typed kernel launches). The methods
//! take their outputs as `&mut Tensor` views that they write (`=`) or, where the name or the
//! documentation says so, accumulate into (`+=`); they may assume what `ops/` checked. A new
//! backend implements these traits and nothing in `ops/` changes.

pub mod attention;
pub mod batch_norm;
pub mod channels;
pub mod conv1d;
pub mod conv2d;
pub mod dropout;
pub mod elementwise;
pub mod fusion;
pub mod layer_norm;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod reduce;
pub mod relu;
pub mod softmax;
pub mod ssim;
pub mod stft_mel;
pub mod tokens;
pub mod upsample;
pub mod wav2vec2;

pub use attention::{AttentionBackward, AttentionOps, AttentionOut, AttnGrads, Qkv};
pub use batch_norm::{BatchNormOps, BatchNormRunning, BatchNormTrainOut};
pub use channels::{ChannelsOps, StridedCopy};
pub use conv1d::{
    Conv1dOps, ConvBackward, ConvInput, SliceDims, WeightNormBackward, WeightNormInput,
};
pub use conv2d::Conv2dOps;
pub use dropout::{DropoutKey, DropoutOps};
pub use elementwise::ElementwiseOps;
pub use fusion::{
    FusionOps, InfonceBackward, ProjectBackward, ProjectOut, SimilarityBackward, SimilarityInput,
};
pub use layer_norm::{LayerNormOps, LayerNormOut, NormBackward, NormInput};
pub use loss::{CrossEntropyBackward, LossOps, MaskedRows, NllOut};
pub use matmul::{MatmulInput, MatmulOps};
pub use optim::OptimOps;
pub use reduce::ReduceOps;
pub use relu::ReluOps;
pub use softmax::SoftmaxOps;
pub use ssim::{ImagePair, SsimOps};
pub use stft_mel::{LogMelBackward, StftMelOps};
pub use tokens::{GatherGrads, GatherInput, TokenOps};
pub use upsample::UpsampleOps;
pub use wav2vec2::{
    Codebook, CodevectorBackward, ContrastiveArgs, ContrastiveIndex, ContrastiveOut, GumbelArgs,
    PerplexityArgs, Wav2vec2Ops,
};

use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};

/// A device's implementation of every op family, plus its memory operations.
pub trait Backend:
    Send
    + Sync
    + AttentionOps
    + BatchNormOps
    + ChannelsOps
    + Conv1dOps
    + Conv2dOps
    + DropoutOps
    + ElementwiseOps
    + FusionOps
    + LayerNormOps
    + LossOps
    + MatmulOps
    + OptimOps
    + ReduceOps
    + ReluOps
    + SoftmaxOps
    + SsimOps
    + StftMelOps
    + TokenOps
    + UpsampleOps
    + Wav2vec2Ops
{
    /// `cpu` or `cuda:N`.
    fn name(&self) -> String;
    /// A tensor on this device whose contents the caller overwrites.
    fn alloc(&self, shape: &[usize], dtype: DType) -> Result<Tensor>;
    /// A zero-filled tensor on this device.
    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Tensor>;
    /// Sets every element of the view to zero (one memset).
    fn fill_zero(&self, t: &mut Tensor) -> Result<()>;
    /// dst = src, elementwise (same dtype and element count).
    fn copy(&self, dst: &mut Tensor, src: &Tensor) -> Result<()>;
    /// Waits until everything queued on this device has run.
    fn synchronize(&self) -> Result<()>;
}

/// What [`Backend::copy`] asks of its arguments on every device: the same dtype and element
/// count.
pub fn check_copy(dst: &Tensor, src: &Tensor) -> Result<()> {
    if dst.dtype != src.dtype || dst.numel() != src.numel() {
        bail!(
            "copy: {} {:?} into {} {:?}",
            src.dtype,
            src.shape,
            dst.dtype,
            dst.shape
        );
    }
    Ok(())
}
