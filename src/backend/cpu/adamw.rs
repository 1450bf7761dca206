//! AdamW (decoupled weight decay, bias correction) on fp32 master weights, as torch.optim.AdamW.

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

/// One step (t counts from 1): p ← p(1 − lr·wd) − lr · m̂ / (√v̂ + eps).
pub fn adamw_step(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    cfg: &AdamWConfig,
    t: u32,
) {
    let bc1 = 1.0 - (cfg.beta1 as f64).powi(t as i32);
    let bc2 = 1.0 - (cfg.beta2 as f64).powi(t as i32);
    let (bc1, bc2_sqrt) = (bc1 as f32, (bc2.sqrt()) as f32);
    p.par_iter_mut()
        .zip(g.par_iter())
        .zip(m.par_iter_mut().zip(v.par_iter_mut()))
        .with_min_len(4096)
        .for_each(|((p, &g), (m, v))| {
            *m = cfg.beta1 * *m + (1.0 - cfg.beta1) * g;
            *v = cfg.beta2 * *v + (1.0 - cfg.beta2) * g * g;
            let denom = v.sqrt() / bc2_sqrt + cfg.eps;
            *p *= 1.0 - cfg.lr * cfg.weight_decay;
            *p -= (cfg.lr / bc1) * *m / denom;
        });
}
