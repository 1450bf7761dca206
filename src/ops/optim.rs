//! The optimizer's ops: the gradient norm and AdamW over a parameter store's flat buffers,
//! one launch each, driven by a table of chunks; and clipping of loose gradient tensors.

use super::*;
pub use crate::backend::api::optim::AdamWStep;
pub use crate::backend::cpu::adamw::AdamWConfig;

/// Elements per chunk of the optimizer's table (one CUDA block each).
pub const CHUNK: usize = 1 << 15;

/// The ranges of a flat buffer an optimizer updates, cut into chunks of at most [`CHUNK`]
/// elements, each with its learning-rate multiplier and weight-decay flag, on the device; plus
/// the scratch the gradient norm writes (so a step allocates nothing).
#[derive(Clone, Debug)]
pub struct ChunkTable {
    pub count: usize,
    pub offsets: Tensor,
    pub lens: Tensor,
    pub lr_scale: Tensor,
    pub decay: Tensor,
    /// Σ g² per chunk ([count], f32).
    pub partials: Tensor,
    /// Σ g² over all chunks ([1], f32).
    pub norm_sq: Tensor,
}

impl ChunkTable {
    /// `ranges`: (offset, length, learning-rate scale, decayed) per parameter.
    pub fn new(ranges: &[(usize, usize, f32, bool)], device: &Device) -> Result<Self> {
        let (mut off, mut len, mut lr, mut dec) = (vec![], vec![], vec![], vec![]);
        for &(o, n, s, d) in ranges {
            let mut start = 0;
            while start < n {
                let l = CHUNK.min(n - start);
                let at = o + start;
                if at + l > i32::MAX as usize {
                    bail!(
                        "the parameter buffer exceeds 2^31 elements, the optimizer's index range"
                    );
                }
                off.push(at as i32);
                len.push(l as i32);
                lr.push(s);
                dec.push(if d { 1.0 } else { 0.0 });
                start += l;
            }
        }
        let count = off.len();
        let up_i = |v: Vec<i32>| Tensor::from_i32(&[v.len()], v)?.to_device(device);
        let up_f = |v: Vec<f32>| Tensor::from_f32(&[v.len()], v)?.to_device(device);
        Ok(ChunkTable {
            count,
            offsets: up_i(off)?,
            lens: up_i(len)?,
            lr_scale: up_f(lr)?,
            decay: up_f(dec)?,
            partials: device.backend().zeros(&[count.max(1)], DType::F32)?,
            norm_sq: device.backend().zeros(&[1], DType::F32)?,
        })
    }
}

fn check_flat(op: &str, what: &str, t: &Tensor, n: usize) -> Result<()> {
    if t.dtype != DType::F32 {
        bail!(
            "{op}: {what} must be f32 (master weights, gradients and optimizer state are fp32), found {}",
            t.dtype
        );
    }
    if t.numel() != n {
        bail!("{op}: {what} has {} elements, expected {n}", t.numel());
    }
    Ok(())
}

/// Σ g² over the table's chunks of `grads`, into `chunks.norm_sq` (on the device; read it
/// with `item` when the host needs it).
pub fn grad_norm_sq(grads: &Tensor, chunks: &mut ChunkTable) -> Result<()> {
    check_flat("grad_norm", "grads", grads, grads.numel())?;
    let d = check_device("grad_norm", &[grads, &chunks.offsets])?;
    let mut out = chunks.norm_sq.clone();
    d.run().grad_norm_sq(&mut out, grads, chunks)
}

/// One AdamW step over the table's chunks (see [`AdamWStep`]); `a.norm_sq` holds this step's
/// Σ g² (from [`grad_norm_sq`]).
pub fn adamw_chunks(a: AdamWStep) -> Result<()> {
    let n = a.values.numel();
    for (what, x) in [
        ("values", &*a.values),
        ("grads", a.grads),
        ("m", &*a.m),
        ("v", &*a.v),
    ] {
        check_flat("adamw", what, x, n)?;
    }
    if let Some(c) = &a.compute {
        if c.dtype != DType::BF16 || c.numel() != n {
            bail!("adamw: the compute copy must be bf16 with {n} elements");
        }
    }
    if a.t == 0 {
        bail!("adamw: the step count t starts at 1");
    }
    check_flat("adamw", "norm_sq", a.norm_sq, 1)?;
    let d = check_device(
        "adamw",
        &[a.values, a.grads, a.m, a.v, &a.chunks.offsets, a.norm_sq],
    )?;
    d.run().adamw(a)
}

/// One AdamW step (t from 1) on one parameter tensor with its gradient and moments (each a
/// whole f32 tensor of the same size); `param_bf16`, when given, receives a bf16 copy of the
/// updated weights. The parameter store's optimizer does the same over all parameters at once.
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
    if let Some(pb) = &param_bf16 {
        if pb.dtype != DType::BF16 || pb.shape != param.shape {
            bail!(
                "adamw: the bf16 copy must be bf16 with shape {:?}",
                param.shape
            );
        }
    }
    let d = check_device("adamw", &[param, grad, m, v])?;
    let mut table = ChunkTable::new(&[(0, param.numel(), 1.0, true)], &d)?;
    // No clipping: the norm is only the non-finite guard.
    grad_norm_sq(grad, &mut table)?;
    adamw_chunks(AdamWStep {
        values: param,
        m,
        v,
        compute: param_bf16,
        grads: grad,
        chunks: &table,
        norm_sq: &table.norm_sq,
        cfg: *cfg,
        t,
        max_norm: 0.0,
    })
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
