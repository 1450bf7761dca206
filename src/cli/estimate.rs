//! Upper estimates of the memory a model needs, so that sizes from files and flags (image
//! size, trace length, batch, head width) are checked against the budget
//! ([`crate::limits`]) before the model is built. They count f32 parameters twice (master and
//! compute copy) and every activation of a forward pass kept for backward, as the encoders'
//! forward passes return their caches.

use crate::models::seislm::SeislmConfig;
use crate::models::sfm::VitConfig;

/// f64 arithmetic (no overflow for absurd sizes) to bytes, saturating.
fn bytes(floats: f64) -> u128 {
    let b = 4.0 * floats;
    if b.is_finite() && b < u128::MAX as f64 {
        b as u128
    } else {
        u128::MAX
    }
}

/// Bytes of an SFM ViT forward pass of `batch` images of the config's size.
pub fn vit_bytes(cfg: &VitConfig, batch: usize) -> u128 {
    let p = cfg.patch.max(1) as f64;
    let tokens = (cfg.img_h as f64 / p).floor() * (cfg.img_w as f64 / p).floor() + 1.0;
    let dim = cfg.dim as f64;
    let mlp = (dim * cfg.mlp_ratio as f64).ceil();
    let depth = cfg.depth as f64;
    let params = depth * (4.0 * dim * dim + 2.0 * dim * mlp + 8.0 * dim)
        + p * p * cfg.in_chans as f64 * dim
        + tokens * dim;
    let acts = batch as f64 * tokens * (depth * (10.0 * dim + 2.0 * mlp) + 4.0 * dim);
    bytes(2.0 * params + acts)
}

/// Bytes of a SeisLM forward pass of `batch` traces of `samples` samples, with a picking head
/// of DoubleConv width `head_channels` (0: no head).
pub fn seislm_bytes(
    cfg: &SeislmConfig,
    batch: usize,
    samples: usize,
    head_channels: usize,
) -> u128 {
    let b = batch as f64;
    let (h, ffn) = (cfg.hidden as f64, cfg.ffn as f64);
    let layers = cfg.layers as f64;
    let mut params = layers * (4.0 * h * h + 2.0 * h * ffn + 8.0 * h)
        + h * (h / cfg.pos_groups.max(1) as f64) * cfg.pos_kernel as f64;
    let mut acts = b * cfg.in_chans as f64 * samples as f64;
    let (mut len, mut cin) = (samples as f64, cfg.in_chans as f64);
    for &(c, k, s) in &cfg.conv_layers {
        let c = c as f64;
        params += c * cin * k as f64;
        len = if len >= k as f64 && s > 0 {
            ((len - k as f64) / s as f64).floor() + 1.0
        } else {
            0.0
        };
        acts += 4.0 * b * c * len;
        cin = c;
    }
    params += cin * h;
    acts += b * len * (layers * (10.0 * h + 2.0 * ffn) + 4.0 * h);
    if head_channels > 0 {
        let ch = head_channels as f64;
        params += ch * (h + 3.0) * 3.0 + ch * ch * 3.0 + 11.0 * ch;
        acts += 8.0 * b * samples as f64 * (ch + h + 3.0);
    }
    bytes(2.0 * params + acts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_grow_with_sizes_and_stay_finite() {
        let v = VitConfig::preset("sfm-base").unwrap();
        let a = vit_bytes(&v, 16);
        assert!(a > 100 << 20 && a < 8 << 30, "{a}");
        assert!(vit_bytes(&v, 32) > a);
        let s = SeislmConfig::preset("seislm-base").unwrap();
        let b = seislm_bytes(&s, 8, 3001, 243);
        assert!(b > 10 << 20 && b < 8 << 30, "{b}");
        assert!(seislm_bytes(&s, 8, 3001, 1 << 40) > 1 << 50);
        assert!(seislm_bytes(&s, usize::MAX, usize::MAX, usize::MAX) > 1 << 100);
    }
}
