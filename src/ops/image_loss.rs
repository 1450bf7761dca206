//! Image-quality metrics and losses of the SFM downstream tasks: SSIM, MS-SSIM (with its
//! gradient), PSNR, the regression losses a·MSE + (1 − a)·(1 − MS-SSIM), and per-pixel
//! cross-entropy over NCHW logits.
//!
//! On the CPU, SSIM and MS-SSIM run the f64 reference (`backend::cpu::ssim`). On CUDA the
//! per-pixel work (filtering, maps, reductions, pooling and their transposes) runs in fp32
//! kernels (kernels/ssim.cu) on images cast to fp32; only the per-plane scale terms (2 numbers
//! per plane and scale) go to the host, which combines them exactly as the CPU path does.

use super::*;
use crate::backend::cpu::ssim as cpu;
use crate::backend::cuda::ssim as gpu;

/// The MSE weight of the denoising and inversion loss: 0.5·MSE + 0.5·(1 − MS-SSIM).
pub const DENOISE_MSE_WEIGHT: f32 = 0.5;
/// The MSE weight of the interpolation loss: 0.9·MSE + 0.1·(1 − MS-SSIM).
pub const INTERPOLATION_MSE_WEIGHT: f32 = 0.9;

/// Checks two same-shaped NCHW float images; returns (h, w).
fn images(op: &str, x: &Tensor, y: &Tensor, data_range: f32) -> Result<(usize, usize)> {
    check_float(op, "x", x)?;
    check_same_dtype(op, x, y)?;
    check_same_shape(op, x, y)?;
    check_device(op, &[x, y])?;
    if x.rank() != 4 || x.numel() == 0 {
        bail!(
            "{op}: images must be non-empty NCHW (4-D) tensors, found shape {:?}",
            x.shape
        );
    }
    if !(data_range.is_finite() && data_range > 0.0) {
        bail!("{op}: data_range must be a positive number (e.g. 1.0 or 255.0), found {data_range}");
    }
    Ok((x.shape[2], x.shape[3]))
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
    let (h, w) = images("ssim", x, y, data_range)?;
    if x.device().is_cuda() {
        let lv = GpuLevels::new(x, y, h, w, data_range, 1)?;
        let (_, ss) = lv.means(0)?;
        return Ok((ss.iter().map(|&v| v as f64).sum::<f64>() / ss.len() as f64) as f32);
    }
    Ok(cpu::ssim(&x.to_vec_f32()?, &y.to_vec_f32()?, h, w, data_range as f64) as f32)
}

/// Mean MS-SSIM over images and channels (5 scales; min side ≥ 161).
pub fn ms_ssim(x: &Tensor, y: &Tensor, data_range: f32) -> Result<f32> {
    let (h, w) = images("ms_ssim", x, y, data_range)?;
    check_ms_ssim_size("ms_ssim", h, w)?;
    if x.device().is_cuda() {
        return Ok(gpu_ms_ssim(x, y, h, w, data_range, None)?.0);
    }
    Ok(cpu::ms_ssim(&x.to_vec_f32()?, &y.to_vec_f32()?, h, w, data_range as f64) as f32)
}

/// dx of `dvalue · ms_ssim(x, y)`, on x's device and dtype; also returns the MS-SSIM value.
pub fn ms_ssim_backward(
    x: &Tensor,
    y: &Tensor,
    data_range: f32,
    dvalue: f32,
) -> Result<(Tensor, f32)> {
    let (h, w) = images("ms_ssim_backward", x, y, data_range)?;
    check_ms_ssim_size("ms_ssim_backward", h, w)?;
    if x.device().is_cuda() {
        let (v, g) = gpu_ms_ssim(x, y, h, w, data_range, Some(dvalue))?;
        return Ok((g.expect("gradient requested"), v));
    }
    let mut dx = vec![0.0; x.numel()];
    let v = cpu::ms_ssim_backward(
        &mut dx,
        &x.to_vec_f32()?,
        &y.to_vec_f32()?,
        h,
        w,
        data_range as f64,
        dvalue as f64,
    );
    Ok((from_host(&x.shape, dx, x.dtype)?, v as f32))
}

/// The fp32 image pyramid of x and y on a GPU (levels 0..levels, ×2 average pooling between).
struct GpuLevels {
    device: Device,
    planes: usize,
    sizes: Vec<(usize, usize)>,
    xs: Vec<Tensor>,
    ys: Vec<Tensor>,
    c1: f32,
    c2: f32,
}

impl GpuLevels {
    fn new(
        x: &Tensor,
        y: &Tensor,
        h: usize,
        w: usize,
        data_range: f32,
        levels: usize,
    ) -> Result<Self> {
        let device = x.device();
        let planes = x.numel() / (h * w);
        let b = backend(&device)?;
        let mut xs = vec![cast(x, DType::F32)?];
        let mut ys = vec![cast(y, DType::F32)?];
        let mut sizes = vec![(h, w)];
        for l in 1..levels {
            let (hh, ww) = sizes[l - 1];
            let (oh, ow) = (gpu::pooled(hh), gpu::pooled(ww));
            let nx = output(&[planes * oh * ow], DType::F32, &device)?;
            let ny = output(&[planes * oh * ow], DType::F32, &device)?;
            gpu::avg_pool(b, dev(&nx)?, dev(&xs[l - 1])?, planes, hh, ww)?;
            gpu::avg_pool(b, dev(&ny)?, dev(&ys[l - 1])?, planes, hh, ww)?;
            xs.push(nx);
            ys.push(ny);
            sizes.push((oh, ow));
        }
        let r = data_range as f64;
        Ok(GpuLevels {
            device,
            planes,
            sizes,
            xs,
            ys,
            c1: ((cpu::K1 * r) * (cpu::K1 * r)) as f32,
            c2: ((cpu::K2 * r) * (cpu::K2 * r)) as f32,
        })
    }

    /// The five filtered maps [5][planes][oh][ow] of level l.
    fn filtered(&self, l: usize) -> Result<Tensor> {
        let b = backend(&self.device)?;
        let (h, w) = self.sizes[l];
        let (oh, ow) = (gpu::filtered(h), gpu::filtered(w));
        let rows = output(&[5 * self.planes * oh * w], DType::F32, &self.device)?;
        gpu::filter_rows(
            b,
            dev(&rows)?,
            dev(&self.xs[l])?,
            dev(&self.ys[l])?,
            self.planes,
            h,
            w,
        )?;
        let f = output(&[5 * self.planes * oh * ow], DType::F32, &self.device)?;
        gpu::filter_cols(b, dev(&f)?, dev(&rows)?, 5, self.planes, oh, w)?;
        Ok(f)
    }

    /// Per-plane (mean cs, mean ssim) of level l.
    fn means(&self, l: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let b = backend(&self.device)?;
        let (h, w) = self.sizes[l];
        let f = self.filtered(l)?;
        let cs = output(&[self.planes], DType::F32, &self.device)?;
        let ss = output(&[self.planes], DType::F32, &self.device)?;
        let plane = gpu::filtered(h) * gpu::filtered(w);
        gpu::plane_means(
            b,
            dev(&cs)?,
            dev(&ss)?,
            dev(&f)?,
            self.planes,
            plane,
            self.c1,
            self.c2,
        )?;
        Ok((cs.to_vec_f32()?, ss.to_vec_f32()?))
    }

    /// The gradient [planes·h·w] (fp32) of Σ_p gs[p]·ssim_p + gc[p]·cs_p at level l w.r.t. x_l.
    fn backward(&self, l: usize, gs: Vec<f32>, gc: Vec<f32>) -> Result<Tensor> {
        let b = backend(&self.device)?;
        let (h, w) = self.sizes[l];
        let (oh, ow) = (gpu::filtered(h), gpu::filtered(w));
        let p = self.planes;
        let f = self.filtered(l)?;
        let gs = Tensor::from_f32(&[p], gs)?.to_device(&self.device)?;
        let gc = Tensor::from_f32(&[p], gc)?.to_device(&self.device)?;
        let maps = output(&[3 * p * oh * ow], DType::F32, &self.device)?;
        gpu::grad_maps(
            b,
            dev(&maps)?,
            dev(&f)?,
            dev(&gs)?,
            dev(&gc)?,
            p,
            oh * ow,
            self.c1,
            self.c2,
        )?;
        let cols = output(&[3 * p * oh * w], DType::F32, &self.device)?;
        gpu::filter_cols_t(b, dev(&cols)?, dev(&maps)?, 3, p, oh, w)?;
        let dx = output(&[p * h * w], DType::F32, &self.device)?;
        gpu::filter_rows_t_combine(
            b,
            dev(&dx)?,
            dev(&cols)?,
            dev(&self.xs[l])?,
            dev(&self.ys[l])?,
            p,
            h,
            w,
            false,
        )?;
        Ok(dx)
    }
}

/// MS-SSIM of CUDA tensors, and with `dvalue` the gradient of dvalue·MS-SSIM w.r.t. x.
fn gpu_ms_ssim(
    x: &Tensor,
    y: &Tensor,
    h: usize,
    w: usize,
    data_range: f32,
    dvalue: Option<f32>,
) -> Result<(f32, Option<Tensor>)> {
    let lv = GpuLevels::new(x, y, h, w, data_range, 5)?;
    let p = lv.planes;
    let mut terms = vec![[0.0f64; 5]; p];
    for l in 0..5 {
        let (cs, ss) = lv.means(l)?;
        for (i, t) in terms.iter_mut().enumerate() {
            t[l] = if l < 4 { cs[i] } else { ss[i] } as f64;
        }
    }
    let d = dvalue.unwrap_or(0.0) as f64 / p as f64;
    let combined: Vec<(f64, [f64; 5])> = terms.iter().map(|t| cpu::ms_ssim_combine(t, d)).collect();
    let value = (combined.iter().map(|c| c.0).sum::<f64>() / p as f64) as f32;
    if dvalue.is_none() {
        return Ok((value, None));
    }
    let b = backend(&lv.device)?;
    let mut upper: Option<Tensor> = None;
    for l in (0..5).rev() {
        let dl: Vec<f32> = combined.iter().map(|c| c.1[l] as f32).collect();
        let zero = vec![0.0f32; p];
        let dx = if l < 4 {
            lv.backward(l, zero, dl)?
        } else {
            lv.backward(l, dl, zero)?
        };
        if let Some(u) = &upper {
            let (hh, ww) = lv.sizes[l];
            gpu::avg_pool_backward_add(b, dev(&dx)?, dev(u)?, p, hh, ww)?;
        }
        upper = Some(dx);
    }
    let g = upper.expect("five levels").reshape(&x.shape)?;
    Ok((value, Some(cast(&g, x.dtype)?)))
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
