//! The binding ops of the fusion models (kernels/fusion.cu, CPU twin backend::cpu::fusion):
//! a bias-free projection with L2 normalisation, the similarity matrix scaled by a learnable
//! logit scale, and the symmetric InfoNCE loss (CLIP / ImageBind), each with its backward.
//!
//! ```text
//! e_img  = normalise(x_img  W_imgᵀ)            [B, D]     project_l2norm
//! e_wave = normalise(x_wave W_waveᵀ)           [B, D]
//! L      = exp(min(s, ln 100)) e_img e_waveᵀ   [B, B]     similarity
//! loss   = ½ (CE(L, diag) + CE(Lᵀ, diag))      mean over the batch, infonce
//! ```

use super::*;
use crate::backend::api::fusion::{
    InfonceBackward, ProjectBackward, ProjectOut, SimilarityBackward, SimilarityInput,
};

/// F.normalize's default epsilon: e = z / max(‖z‖, eps).
pub const L2_EPS: f32 = 1e-12;
/// ln 100: the logit scale exp(s) is clamped at 100 (CLIP, ImageBind).
pub const MAX_LOG_LOGIT_SCALE: f32 = 4.605_170_2;

/// The output of [`project_l2norm`]: unit rows e [rows, d_out] (the input's dtype) and the
/// norms of the projected rows before normalisation, [rows] f32.
pub struct ProjNorm {
    pub e: Tensor,
    pub norm: Tensor,
}

fn proj_dims(op: &str, x: &Tensor, w: &Tensor) -> Result<(usize, usize, usize)> {
    check_float(op, "x", x)?;
    check_same_dtype(op, x, w)?;
    let [d_out, d_in] = w.shape[..] else {
        bail!(
            "{op}: the weight must be [d_out, d_in], found {:?}",
            w.shape
        );
    };
    if d_out == 0 || d_in == 0 || x.shape.last() != Some(&d_in) {
        bail!(
            "{op}: x {:?} must end in the weight's d_in = {d_in} (weight {:?}, both non-empty)",
            x.shape,
            w.shape
        );
    }
    Ok((x.numel() / d_in, d_in, d_out))
}

/// e = z / max(‖z‖, 1e-12) per row of z = x wᵀ, for x [..., d_in] and w [d_out, d_in] (no
/// bias) → e [..., d_out].
pub fn project_l2norm(x: &Tensor, w: &Tensor) -> Result<ProjNorm> {
    let (rows, _d_in, d_out) = proj_dims("project_l2norm", x, w)?;
    let d = check_device("project_l2norm", &[x, w])?;
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("checked above") = d_out;
    let mut e = alloc(&d, &shape, x.dtype)?;
    let mut norm = alloc(&d, &[rows], DType::F32)?;
    let out = ProjectOut {
        e: &mut e,
        norm: &mut norm,
    };
    d.run().project_l2norm(out, x, w, L2_EPS)?;
    Ok(ProjNorm { e, norm })
}

/// dx of [`project_l2norm`] from de (written, x's shape); dw += the weight's gradient (dw has
/// w's shape and the input's dtype: a gradient slot of the store).
pub fn project_l2norm_backward(
    x: &Tensor,
    w: &Tensor,
    fwd: &ProjNorm,
    de: &Tensor,
    dw: &mut Tensor,
) -> Result<Tensor> {
    let op = "project_l2norm_backward";
    let (rows, _d_in, d_out) = proj_dims(op, x, w)?;
    check_same_shape(op, de, &fwd.e)?;
    check_same_dtype(op, de, x)?;
    check_same_dtype(op, dw, x)?;
    if dw.shape != w.shape {
        bail!(
            "{op}: dw must have the weight's shape {:?}, found {:?}",
            w.shape,
            dw.shape
        );
    }
    if fwd.norm.numel() != rows || fwd.norm.dtype != DType::F32 {
        bail!("{op}: the forward norms must be {rows} f32 values");
    }
    let d = check_device(op, &[x, w, de, dw, &fwd.e, &fwd.norm])?;
    let mut dx = alloc(&d, &x.shape, x.dtype)?;
    let mut dz = alloc(&d, &[rows, d_out], DType::F32)?;
    d.run().project_l2norm_backward(ProjectBackward {
        dx: &mut dx,
        dw,
        dz: &mut dz,
        x,
        w,
        e: &fwd.e,
        norm: &fwd.norm,
        de,
        eps: L2_EPS,
    })?;
    Ok(dx)
}

fn check_log_scale(op: &str, s: &Tensor) -> Result<()> {
    if s.dtype != DType::F32 || s.numel() != 1 {
        bail!(
            "{op}: the log logit scale must be one f32 value, found {} {:?}",
            s.dtype,
            s.shape
        );
    }
    Ok(())
}

fn embeddings(op: &str, ei: &Tensor, ew: &Tensor) -> Result<(usize, usize, usize)> {
    check_float(op, "image embeddings", ei)?;
    check_same_dtype(op, ei, ew)?;
    match (&ei.shape[..], &ew.shape[..]) {
        (&[ni, d], &[nw, dw]) if d == dw && d > 0 && ni > 0 && nw > 0 => Ok((ni, nw, d)),
        _ => bail!(
            "{op}: embeddings must be [n_img, dim] and [n_wave, dim] with the same non-zero dim, found {:?} and {:?}",
            ei.shape,
            ew.shape
        ),
    }
}

/// logits [n_img, n_wave] (f32) = exp(min(s, max_log_scale)) · ei ewᵀ, with s the one-element
/// f32 `log_scale` (read on the device).
pub fn similarity(
    ei: &Tensor,
    ew: &Tensor,
    log_scale: &Tensor,
    max_log_scale: f32,
) -> Result<Tensor> {
    let (ni, nw, _) = embeddings("similarity", ei, ew)?;
    check_log_scale("similarity", log_scale)?;
    let d = check_device("similarity", &[ei, ew, log_scale])?;
    let mut logits = alloc(&d, &[ni, nw], DType::F32)?;
    let a = SimilarityInput {
        ei,
        ew,
        log_scale,
        max_log_scale,
    };
    d.run().similarity(&mut logits, a)?;
    Ok(logits)
}

/// (dei, dew) of [`similarity`] from dlogits; d s is added into `dlog_scale` (one f32, the
/// parameter's gradient), zero where s > max_log_scale.
#[allow(clippy::too_many_arguments)]
pub fn similarity_backward(
    ei: &Tensor,
    ew: &Tensor,
    log_scale: &Tensor,
    logits: &Tensor,
    dlogits: &Tensor,
    max_log_scale: f32,
    dlog_scale: &mut Tensor,
) -> Result<(Tensor, Tensor)> {
    let op = "similarity_backward";
    let (ni, nw, _) = embeddings(op, ei, ew)?;
    check_log_scale(op, log_scale)?;
    check_log_scale(op, dlog_scale)?;
    for (what, t) in [("logits", logits), ("dlogits", dlogits)] {
        if t.dtype != DType::F32 || t.shape != [ni, nw] {
            bail!(
                "{op}: {what} must be f32 [{ni}, {nw}], found {} {:?}",
                t.dtype,
                t.shape
            );
        }
    }
    let d = check_device(op, &[ei, ew, log_scale, logits, dlogits, dlog_scale])?;
    let mut dei = alloc(&d, &ei.shape, ei.dtype)?;
    let mut dew = alloc(&d, &ew.shape, ew.dtype)?;
    d.run().similarity_backward(SimilarityBackward {
        dei: &mut dei,
        dew: &mut dew,
        dlog_scale,
        input: SimilarityInput {
            ei,
            ew,
            log_scale,
            max_log_scale,
        },
        logits,
        dlogits,
    })?;
    Ok((dei, dew))
}

/// The symmetric InfoNCE loss of square logits and what its backward needs.
pub struct InfoNce {
    /// ½ (mean row cross-entropy + mean column cross-entropy), positives on the diagonal;
    /// `count` is the batch size n.
    pub loss: LossValue,
    /// Row log-sum-exps then column log-sum-exps, [2n] f32.
    pub lse: Tensor,
}

fn square(op: &str, logits: &Tensor) -> Result<usize> {
    match logits.shape[..] {
        [n, m] if n == m && n > 0 && logits.dtype == DType::F32 => Ok(n),
        _ => bail!(
            "{op}: logits must be a square non-empty f32 matrix [batch, batch] (pair i of each modality is the positive), found {} {:?}",
            logits.dtype,
            logits.shape
        ),
    }
}

/// Symmetric InfoNCE over square logits [n, n]: the mean of the image→waveform (rows) and
/// waveform→image (columns) cross-entropies with the diagonal as targets.
pub fn infonce(logits: &Tensor) -> Result<InfoNce> {
    let n = square("infonce", logits)?;
    let d = check_device("infonce", &[logits])?;
    let mut lse = alloc(&d, &[2 * n], DType::F32)?;
    let mut losses = alloc(&d, &[2 * n], DType::F32)?;
    d.run().infonce(&mut lse, &mut losses, logits)?;
    let total = super::reduce::item(&super::reduce::sum(&losses)?)?;
    Ok(InfoNce {
        loss: LossValue {
            loss: total / (2 * n) as f32,
            count: n,
        },
        lse,
    })
}

/// dlogits of `dloss · infonce(logits)`.
pub fn infonce_backward(logits: &Tensor, fwd: &InfoNce, dloss: f32) -> Result<Tensor> {
    let n = square("infonce_backward", logits)?;
    if fwd.lse.numel() != 2 * n {
        bail!("infonce_backward: the forward pass was for another batch size");
    }
    let d = check_device("infonce_backward", &[logits, &fwd.lse])?;
    let mut g = alloc(&d, &logits.shape, DType::F32)?;
    d.run().infonce_backward(InfonceBackward {
        dlogits: &mut g,
        logits,
        lse: &fwd.lse,
        scale: dloss / (2 * n) as f32,
    })?;
    Ok(g)
}

/// Recall@1 of a similarity matrix [n, n] whose positives are on the diagonal, in both
/// directions: (image→waveform: the fraction of rows whose largest entry is the diagonal,
/// waveform→image: likewise for columns). Ties count as misses unless the diagonal comes
/// first. Read on the host.
pub fn recall_at_1(logits: &Tensor) -> Result<(f32, f32)> {
    let n = square("recall_at_1", logits)?;
    let v = logits.to_vec_f32()?;
    let best = |at: &dyn Fn(usize) -> f32| -> usize {
        (0..n).fold(0, |b, j| if at(j) > at(b) { j } else { b })
    };
    let rows = (0..n).filter(|&i| best(&|j| v[i * n + j]) == i).count();
    let cols = (0..n).filter(|&j| best(&|i| v[i * n + j]) == j).count();
    Ok((rows as f32 / n as f32, cols as f32 / n as f32))
}
