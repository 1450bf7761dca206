//! AdamW on fp32 master weights and gradient-norm clipping.

use super::*;
use crate::backend::cpu::adamw as cpu;
pub use crate::backend::cpu::adamw::AdamWConfig;
use crate::backend::cuda::adamw as gpu;

/// One AdamW step (t from 1) on `param` with `grad`, updating the moments `m` and `v`.
/// `param_bf16`, when given, receives a bf16 copy of the updated weights.
pub fn adamw_step(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    param_bf16: Option<&mut Tensor>,
    cfg: &AdamWConfig,
    t: u32,
) -> Result<()> {
    for (what, x) in [("param", &*param), ("grad", grad), ("m", &*m), ("v", &*v)] {
        if x.dtype != DType::F32 {
            bail!(
                "adamw: {what} must be f32 (master weights and optimizer state are fp32), found {}",
                x.dtype
            );
        }
        if x.shape != param.shape {
            bail!(
                "adamw: {what} has shape {:?} but the parameter has {:?}",
                x.shape,
                param.shape
            );
        }
    }
    if t == 0 {
        bail!("adamw: the step count t starts at 1");
    }
    let d = check_device("adamw", &[param, grad, m, v])?;
    if !d.is_cuda() {
        let g = grad.f32s()?.to_vec();
        let mut mv = m.f32s()?.to_vec();
        let mut vv = v.f32s()?.to_vec();
        cpu::adamw_step(&mut param.f32s_mut()?, &g, &mut mv, &mut vv, cfg, t);
        m.f32s_mut()?.copy_from_slice(&mv);
        v.f32s_mut()?.copy_from_slice(&vv);
        if let Some(pb) = param_bf16 {
            *pb = param.to_dtype(DType::BF16)?;
        }
        return Ok(());
    }
    if let Some(pb) = &param_bf16 {
        if pb.dtype != DType::BF16 || pb.shape != param.shape {
            bail!(
                "adamw: the bf16 copy must be bf16 with shape {:?}",
                param.shape
            );
        }
    }
    gpu::step(
        backend(&d)?,
        dev(param)?,
        dev(grad)?,
        dev(m)?,
        dev(v)?,
        param_bf16.map(|t| dev(t)).transpose()?,
        cfg,
        t,
    )
}

/// The global L2 norm of all gradients.
pub fn grad_norm(grads: &[&Tensor]) -> Result<f32> {
    let mut total = 0.0f64;
    for g in grads {
        total += super::reduce::item(&super::reduce::sum_squares(g)?)? as f64;
    }
    Ok(total.sqrt() as f32)
}

/// Scales all gradients so their global norm is at most `max_norm` (as
/// `torch.nn.utils.clip_grad_norm_`: factor max_norm / (norm + 1e-6) when above). Returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut [&mut Tensor], max_norm: f32) -> Result<f32> {
    let norm = grad_norm(&grads.iter().map(|g| &**g).collect::<Vec<_>>())?;
    if !norm.is_finite() {
        bail!("clip_grad_norm: the gradient norm is {norm}");
    }
    if norm > max_norm {
        let f = max_norm / (norm + 1e-6);
        for g in grads.iter_mut() {
            scale_assign(g, f)?;
        }
    }
    Ok(norm)
}
