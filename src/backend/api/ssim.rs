//! SSIM and MS-SSIM of NCHW images (`pytorch_msssim` conventions), with the MS-SSIM gradient.
//!
//! The values are means over planes of per-plane terms that both backends combine on the host
//! in f64 (the CPU runs the whole f64 reference; CUDA brings 2 numbers per plane and scale to
//! the host), so they are returned as numbers rather than written into tensors.

use crate::tensor::Tensor;
use anyhow::Result;

/// Two image batches of the same NCHW shape and the range of their values (max − min).
#[derive(Clone, Copy)]
pub struct ImagePair<'a> {
    pub x: &'a Tensor,
    pub y: &'a Tensor,
    pub data_range: f32,
}

pub trait SsimOps {
    /// Mean SSIM (11-tap Gaussian window, σ 1.5, K1 0.01, K2 0.03, valid filtering) over the
    /// [h, w] planes of x and y.
    fn ssim(&self, p: ImagePair) -> Result<f32>;
    /// Mean MS-SSIM (5 scales) over the planes of x and y; with `grad = Some((dx, dvalue))`
    /// also the gradient of dvalue · MS-SSIM with respect to x (written into dx, x's shape).
    fn ms_ssim(&self, p: ImagePair, grad: Option<(&mut Tensor, f32)>) -> Result<f32>;
}
