//! Image-quality metrics and losses of the SFM downstream tasks: SSIM, MS-SSIM (with its
//! gradient), PSNR, the regression losses a·MSE + (1 − a)·(1 − MS-SSIM), and per-pixel
//! cross-entropy over NCHW logits.
//!
//! On the CPU, SSIM and MS-SSIM run the f64 reference (`backend::cpu::ssim`). On CUDA the
//! per-pixel work (filtering, maps, reductions, pooling and their transposes) runs in fp32
//! kernels (kernels/ssim.cu) on images cast to fp32; only the per-plane scale terms (2 numbers
//! per plane and scale) go to the host, which combines them exactly as the CPU path does.

use super::*;
use crate::backend::api::ImagePair;
use crate::backend::cpu::ssim as cpu;

/// The MSE weight of the denoising and inversion loss: 0.5·MSE + 0.5·(1 − MS-SSIM).
pub const DENOISE_MSE_WEIGHT: f32 = 0.5;
/// The MSE weight of the interpolation loss: 0.9·MSE + 0.1·(1 − MS-SSIM).
pub const INTERPOLATION_MSE_WEIGHT: f32 = 0.9;

/// Checks two same-shaped NCHW float images; returns (h, w) and their device.
fn images(op: &str, x: &Tensor, y: &Tensor, data_range: f32) -> Result<(usize, usize, Device)> {
    check_float(op, "x", x)?;
    check_same_dtype(op, x, y)?;
    check_same_shape(op, x, y)?;
    let d = check_device(op, &[x, y])?;
    if x.rank() != 4 || x.numel() == 0 {
        bail!(
            "{op}: images must be non-empty NCHW (4-D) tensors, found shape {:?}",
            x.shape
        );
    }
    if !(data_range.is_finite() && data_range > 0.0) {
        bail!("{op}: data_range must be a positive number (e.g. 1.0 or 255.0), found {data_range}");
    }
    Ok((x.shape[2], x.shape[3], d))
}

fn check_ms_ssim_size(op: &str, h: usize, w: usize) -> Result<()> {
    if h.min(w) < cpu::MS_SSIM_MIN_SIDE {
        bail!(
            "{op}: images of {h}×{w} are too small for 5 scales with an 11-tap window: the smaller side must be at least {} (as pytorch_msssim asserts)",
            cpu::MS_SSIM_MIN_SIDE
        );
    }
    Ok(())
}

/// Mean SSIM (Gaussian window 11, σ 1.5, K1 0.01, K2 0.03, valid filtering) over images and
/// channels.
pub fn ssim(x: &Tensor, y: &Tensor, data_range: f32) -> Result<f32> {
    let (_, _, d) = images("ssim", x, y, data_range)?;
    d.run().ssim(ImagePair { x, y, data_range })
}

/// Mean MS-SSIM over images and channels (5 scales; min side ≥ 161).
pub fn ms_ssim(x: &Tensor, y: &Tensor, data_range: f32) -> Result<f32> {
    let (h, w, d) = images("ms_ssim", x, y, data_range)?;
    check_ms_ssim_size("ms_ssim", h, w)?;
    d.run().ms_ssim(ImagePair { x, y, data_range }, None)
}

/// dx of `dvalue · ms_ssim(x, y)`, on x's device and dtype; also returns the MS-SSIM value.
pub fn ms_ssim_backward(
    x: &Tensor,
    y: &Tensor,
    data_range: f32,
    dvalue: f32,
) -> Result<(Tensor, f32)> {
    let (h, w, d) = images("ms_ssim_backward", x, y, data_range)?;
    check_ms_ssim_size("ms_ssim_backward", h, w)?;
    let mut dx = alloc(&d, &x.shape, x.dtype)?;
    let pair = ImagePair { x, y, data_range };
    let v = d.run().ms_ssim(pair, Some((&mut dx, dvalue)))?;
    Ok((dx, v))
}

/// PSNR = 10·log10(range² / MSE) over all elements (+∞ for identical images).
pub fn psnr(x: &Tensor, y: &Tensor, data_range: f32) -> Result<f32> {
    check_float("psnr", "x", x)?;
    check_same_shape("psnr", x, y)?;
    check_device("psnr", &[x, y])?;
    if x.numel() == 0 || !(data_range.is_finite() && data_range > 0.0) {
        bail!(
            "psnr: needs non-empty images and a positive data_range, found {:?} and {data_range}",
            x.shape
        );
    }
    Ok(cpu::psnr(&x.to_vec_f32()?, &y.to_vec_f32()?, data_range as f64) as f32)
}

/// The parts of a regression loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegressionLoss {
    /// mse_weight·MSE + (1 − mse_weight)·(1 − MS-SSIM)
    pub loss: f32,
    pub mse: f32,
    pub ms_ssim: f32,
}

fn check_weight(op: &str, a: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&a) {
        bail!("{op}: mse_weight must be in [0, 1] (0.5 for denoising/inversion, 0.9 for interpolation), found {a}");
    }
    Ok(())
}

/// a·MSE(pred, target) + (1 − a)·(1 − MS-SSIM(pred, target)) with a = `mse_weight`.
pub fn mse_ms_ssim_loss(
    pred: &Tensor,
    target: &Tensor,
    mse_weight: f32,
    data_range: f32,
) -> Result<RegressionLoss> {
    check_weight("mse_ms_ssim_loss", mse_weight)?;
    let m = mse(pred, target)?.loss;
    let s = ms_ssim(pred, target, data_range)?;
    Ok(RegressionLoss {
        loss: mse_weight * m + (1.0 - mse_weight) * (1.0 - s),
        mse: m,
        ms_ssim: s,
    })
}

/// dpred of `dloss · mse_ms_ssim_loss(pred, target, mse_weight, data_range)`.
pub fn mse_ms_ssim_loss_backward(
    pred: &Tensor,
    target: &Tensor,
    mse_weight: f32,
    data_range: f32,
    dloss: f32,
) -> Result<Tensor> {
    check_weight("mse_ms_ssim_loss_backward", mse_weight)?;
    let g_mse = mse_backward(pred, target, dloss * mse_weight)?;
    let (g_ms, _) = ms_ssim_backward(pred, target, data_range, -dloss * (1.0 - mse_weight))?;
    add(&g_mse, &g_ms)
}

fn pixel_rows(op: &str, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check_float(op, "logits", logits)?;
    if logits.rank() != 4 {
        bail!(
            "{op}: logits must be NCHW [n, classes, h, w], found {:?}",
            logits.shape
        );
    }
    let [n, k, h, w] = [
        logits.shape[0],
        logits.shape[1],
        logits.shape[2],
        logits.shape[3],
    ];
    if targets.dtype != DType::I32 || targets.shape != [n, h, w] {
        bail!(
            "{op}: targets must be i32 of shape [{n}, {h}, {w}] (one class per pixel), found {} {:?}",
            targets.dtype,
            targets.shape
        );
    }
    nchw_to_nhwc(logits)?.reshape(&[n * h * w, k])
}

/// Mean cross-entropy over pixels of NCHW logits against [n, h, w] class targets (targets
/// outside [0, classes), e.g. −100, are ignored): the logits are permuted to NHWC rows and
/// passed to `cross_entropy`.
pub fn pixel_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<LossValue> {
    let rows = pixel_rows("pixel_cross_entropy", logits, targets)?;
    cross_entropy(&rows, targets)
}

/// dlogits (NCHW) of `dloss · pixel_cross_entropy(logits, targets)`; `count` from the forward
/// value.
pub fn pixel_cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    count: usize,
    dloss: f32,
) -> Result<Tensor> {
    let rows = pixel_rows("pixel_cross_entropy_backward", logits, targets)?;
    let g = cross_entropy_backward(&rows, targets, count, dloss)?;
    let [n, k, h, w] = [
        logits.shape[0],
        logits.shape[1],
        logits.shape[2],
        logits.shape[3],
    ];
    nhwc_to_nchw(&g.reshape(&[n, h, w, k])?)
}
