//! AdamW (decoupled weight decay, bias correction) on fp32 master weights, as torch.optim.AdamW.

use super::Cpu;
use crate::backend::api::optim::{AdamWStep, OptimOps};
use crate::ops::ChunkTable;
use crate::tensor::Tensor;
use anyhow::Result;
use half::bf16;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// The bias corrections of step t (from 1): 1 − β1ᵗ and √(1 − β2ᵗ), computed in f64.
pub fn bias_corrections(cfg: &AdamWConfig, t: u32) -> (f32, f32) {
    let bc1 = 1.0 - (cfg.beta1 as f64).powi(t as i32);
    let bc2 = 1.0 - (cfg.beta2 as f64).powi(t as i32);
    (bc1 as f32, bc2.sqrt() as f32)
}

/// The scalars of one step on one range.
struct RangeStep {
    cfg: AdamWConfig,
    /// Learning rate and weight decay, scaled for the range.
    lr: f32,
    wd: f32,
    /// Gradient scale from clipping (1 when not clipped).
    clip: f32,
    /// Bias corrections (see [`bias_corrections`]).
    bc1: f32,
    bc2_sqrt: f32,
}

/// One step on a range: p ← p(1 − lr·wd) − lr · m̂ / (√v̂ + eps), with the same operation
/// order as the kernel. `compute`, when given, receives bf16 copies.
fn adamw_range(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    compute: Option<&mut [bf16]>,
    s: &RangeStep,
) {
    let (cfg, lr, wd, clip, bc1, bc2_sqrt) = (&s.cfg, s.lr, s.wd, s.clip, s.bc1, s.bc2_sqrt);
    for i in 0..p.len() {
        let gi = g[i] * clip;
        let mi = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * gi;
        let vi = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        let denom = vi.sqrt() / bc2_sqrt + cfg.eps;
        let mut pi = p[i] * (1.0 - lr * wd);
        pi -= (lr / bc1) * mi / denom;
        p[i] = pi;
    }
    if let Some(c) = compute {
        for (c, &pi) in c.iter_mut().zip(p.iter()) {
            *c = super::f32_to_bf16(pi);
        }
    }
}

/// Mutable sub-slices of `x` at the sorted, disjoint ranges `(offset, len)`.
fn ranges_mut<'a, T>(mut x: &'a mut [T], ranges: &[(usize, usize)]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(ranges.len());
    let mut at = 0;
    for &(o, l) in ranges {
        let (_, rest) = std::mem::take(&mut x).split_at_mut(o - at);
        let (mine, rest) = rest.split_at_mut(l);
        out.push(mine);
        x = rest;
        at = o + l;
    }
    out
}

impl OptimOps for Cpu {
    fn grad_norm_sq(
        &self,
        norm_sq: &mut Tensor,
        grads: &Tensor,
        chunks: &ChunkTable,
    ) -> Result<()> {
        let g = grads.f32s()?;
        let (off, len) = (chunks.offsets.i32s()?, chunks.lens.i32s()?);
        let mut partials = chunks.partials.clone();
        let mut p = partials.f32s_mut()?;
        p.par_iter_mut()
            .take(chunks.count)
            .enumerate()
            .for_each(|(c, out)| {
                let r = off[c] as usize..(off[c] + len[c]) as usize;
                *out = g[r].iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() as f32;
            });
        let total: f64 = p[..chunks.count].iter().map(|&x| x as f64).sum();
        norm_sq.f32s_mut()?[0] = total as f32;
        Ok(())
    }

    fn adamw(&self, a: AdamWStep) -> Result<()> {
        let nsq = a.norm_sq.f32s()?[0];
        if !nsq.is_finite() {
            return Ok(());
        }
        let norm = nsq.sqrt();
        let clip = if a.max_norm > 0.0 && norm > a.max_norm {
            a.max_norm / (norm + 1e-6)
        } else {
            1.0
        };
        let (bc1, bc2_sqrt) = bias_corrections(&a.cfg, a.t);
        let (off, len) = (a.chunks.offsets.i32s()?, a.chunks.lens.i32s()?);
        let (lrs, dec) = (a.chunks.lr_scale.f32s()?, a.chunks.decay.f32s()?);
        let ranges: Vec<(usize, usize)> = (0..a.chunks.count)
            .map(|c| (off[c] as usize, len[c] as usize))
            .collect();
        let g = a.grads.f32s()?;
        let mut p = a.values.f32s_mut()?;
        let mut m = a.m.f32s_mut()?;
        let mut v = a.v.f32s_mut()?;
        let mut compute = match a.compute {
            Some(c) => Some(c.host_mut::<bf16>()?),
            None => None,
        };
        let ps = ranges_mut(&mut p, &ranges);
        let ms = ranges_mut(&mut m, &ranges);
        let vs = ranges_mut(&mut v, &ranges);
        let cs: Vec<Option<&mut [bf16]>> = match compute.as_mut() {
            Some(c) => ranges_mut(c, &ranges).into_iter().map(Some).collect(),
            None => (0..ranges.len()).map(|_| None).collect(),
        };
        let cfg = a.cfg;
        ps.into_par_iter()
            .zip(ms)
            .zip(vs)
            .zip(cs)
            .enumerate()
            .for_each(|(c, (((p, m), v), comp))| {
                let (o, l) = ranges[c];
                let step = RangeStep {
                    cfg,
                    lr: cfg.lr * lrs[c],
                    wd: cfg.weight_decay * dec[c],
                    clip,
                    bc1,
                    bc2_sqrt,
                };
                adamw_range(p, &g[o..o + l], m, v, comp, &step);
            });
        Ok(())
    }
}
