//! Fixed 2-D sin-cos position embeddings, exactly as MAE's `get_2d_sincos_pos_embed`:
//! the first half of the channels encodes the column (w) index, the second half the row (h)
//! index (MAE builds its grid with `meshgrid(grid_w, grid_h)`); each half is
//! [sin(pos·ω), cos(pos·ω)] with ω_i = 1 / 10000^(i / (D/4)). The cls row is zero.
//!
//! A randomly initialised model uses the exact table of its own grid. A checkpoint's table for
//! another grid is resampled as SFM-Finetune (MAE's `util/pos_embed.py::interpolate_pos_embed`)
//! does it: [`interpolate_pos_embed`] keeps the extra (cls) rows and resizes the grid rows with
//! PyTorch's bicubic interpolation ([`bicubic_resize`]). Fine-tuned checkpoints hold tables that
//! training moved away from sin-cos (timm's ViT trains `pos_embed`), so resampling the stored
//! table, not recomputing it, is what reproduces SFM.

use anyhow::{bail, Result};

fn sincos_1d(dim: usize, pos: f64, out: &mut [f32]) {
    let half = dim / 2;
    for i in 0..half {
        let omega = 1.0 / 10000f64.powf(i as f64 / half as f64);
        out[i] = (pos * omega).sin() as f32;
        out[half + i] = (pos * omega).cos() as f32;
    }
}

/// [1 + gh·gw, dim] row-major (row 0 is the cls token's zeros).
pub fn sincos_2d(dim: usize, gh: usize, gw: usize) -> Result<Vec<f32>> {
    if !dim.is_multiple_of(4) {
        bail!("sin-cos position embeddings need a width divisible by 4, found {dim}");
    }
    let mut out = vec![0.0f32; (1 + gh * gw) * dim];
    for y in 0..gh {
        for x in 0..gw {
            let row = &mut out[(1 + y * gw + x) * dim..(2 + y * gw + x) * dim];
            let (a, b) = row.split_at_mut(dim / 2);
            sincos_1d(dim / 2, x as f64, a);
            sincos_1d(dim / 2, y as f64, b);
        }
    }
    Ok(out)
}

/// PyTorch's cubic convolution weights (`get_cubic_upsample_coefficients`, A = −0.75) of the
/// four taps at offsets −1, 0, 1, 2 from ⌊src⌋, for the fraction `t` = src − ⌊src⌋.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0; // |x| ≤ 1
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A; // 1 < |x| < 2
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// The four (clamped) source indices and weights of each output index along one axis of
/// `in_len` → `out_len`, align_corners=False: src = (dst + 0.5)·(in/out) − 0.5, not clamped
/// (PyTorch's cubic source index); taps ⌊src⌋ − 1 … ⌊src⌋ + 2 clamped to [0, in − 1]. The
/// scale and source index are f32 as PyTorch computes them for f32 tensors.
fn bicubic_taps(in_len: usize, out_len: usize) -> Vec<([usize; 4], [f64; 4])> {
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|dst| {
            let src = scale * (dst as f32 + 0.5) - 0.5;
            let i0 = src.floor();
            let t = (src - i0) as f64;
            let last = in_len as i64 - 1;
            let idx = [-1i64, 0, 1, 2].map(|k| (i0 as i64 + k).clamp(0, last) as usize);
            (idx, cubic_weights(t))
        })
        .collect()
}

/// `F.interpolate(x, size=(oh, ow), mode='bicubic', align_corners=False)` of a channels-last
/// grid: `src` is [ih·iw, channels] row-major (position-major, as a position table's rows are),
/// the result [oh·ow, channels]. Sums in f64.
pub fn bicubic_resize(
    src: &[f32],
    channels: usize,
    (ih, iw): (usize, usize),
    (oh, ow): (usize, usize),
) -> Result<Vec<f32>> {
    if ih == 0 || iw == 0 || oh == 0 || ow == 0 || channels == 0 {
        bail!("bicubic resize: sizes must be non-zero, found {ih}×{iw} → {oh}×{ow} with {channels} channels");
    }
    if src.len() != ih * iw * channels {
        bail!(
            "bicubic resize: expected {ih}×{iw}×{channels} = {} values, found {}",
            ih * iw * channels,
            src.len()
        );
    }
    let ys = bicubic_taps(ih, oh);
    let xs = bicubic_taps(iw, ow);
    let mut out = vec![0.0f32; oh * ow * channels];
    let mut acc = vec![0.0f64; channels];
    for (oy, (yi, yw)) in ys.iter().enumerate() {
        for (ox, (xi, xw)) in xs.iter().enumerate() {
            acc.fill(0.0);
            for (&y, &wy) in yi.iter().zip(yw) {
                for (&x, &wx) in xi.iter().zip(xw) {
                    let w = wy * wx;
                    let row = &src[(y * iw + x) * channels..(y * iw + x + 1) * channels];
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += w * v as f64;
                    }
                }
            }
            let o = &mut out[(oy * ow + ox) * channels..(oy * ow + ox + 1) * channels];
            for (o, a) in o.iter_mut().zip(&acc) {
                *o = *a as f32;
            }
        }
    }
    Ok(out)
}

/// SFM's `interpolate_pos_embed` for a table [extra + gh·gw, dim] (row-major): the first
/// `extra` rows (the cls token's) are kept, the grid rows are resized bicubically from `from`
/// = (gh, gw) to `to`. Returns [extra + to.0·to.1, dim].
pub fn interpolate_pos_embed(
    table: &[f32],
    dim: usize,
    extra: usize,
    from: (usize, usize),
    to: (usize, usize),
) -> Result<Vec<f32>> {
    let want = (extra + from.0 * from.1) * dim;
    if table.len() != want {
        bail!(
            "position table: {} values do not make {extra} extra rows and a {}×{} grid of width {dim} ({want} values)",
            table.len(),
            from.0,
            from.1
        );
    }
    let (head, grid) = table.split_at(extra * dim);
    let mut out = head.to_vec();
    out.extend(bicubic_resize(grid, dim, from, to)?);
    Ok(out)
}

/// The grid of a stored table with `tokens` grid rows, for a model whose grid is `target`:
/// square when `tokens` is a perfect square (SFM's checkpoints; its code assumes this), else
/// the factorisation with the target's aspect ratio. None when neither exists.
pub fn infer_grid(tokens: usize, target: (usize, usize)) -> Option<(usize, usize)> {
    let s = (tokens as f64).sqrt().round() as usize;
    if s > 0 && s * s == tokens {
        return Some((s, s));
    }
    (1..=tokens)
        .filter(|a| tokens.is_multiple_of(*a))
        .map(|a| (a, tokens / a))
        .find(|&(a, b)| a * target.1 == b * target.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn matches_mae_formula_at_a_point() {
        // dim 8, grid 2×3: token (y=1, x=2) → [sin(2), sin(2/100), cos(2), cos(2/100), sin(1), sin(1/100), cos(1), cos(1/100)]
        let e = sincos_2d(8, 2, 3).unwrap();
        let row = &e[(1 + 5) * 8..(2 + 5) * 8];
        let want = [
            2f64.sin(),
            0.02f64.sin(),
            2f64.cos(),
            0.02f64.cos(),
            1f64.sin(),
            0.01f64.sin(),
            1f64.cos(),
            0.01f64.cos(),
        ];
        for (g, w) in row.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{row:?}");
        }
        assert!(e[..8].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn bicubic_keeps_a_grid_of_the_same_size_and_constants() {
        let src: Vec<f32> = (0..3 * 5 * 2).map(|i| (i as f32 * 0.37).sin()).collect();
        assert_eq!(bicubic_resize(&src, 2, (3, 5), (3, 5)).unwrap(), src);
        // The weights sum to one: a constant stays constant, up and down.
        let c = vec![2.5f32; 4 * 4 * 3];
        for to in [(7, 7), (3, 5), (1, 1)] {
            let y = bicubic_resize(&c, 3, (4, 4), to).unwrap();
            assert!(y.iter().all(|v| (v - 2.5).abs() < 1e-6), "{to:?}: {y:?}");
        }
        assert!(bicubic_resize(&c, 3, (4, 5), (2, 2)).is_err());
        assert_eq!(infer_grid(196, (32, 32)), Some((14, 14)));
        assert_eq!(infer_grid(8, (2, 4)), Some((2, 4)));
        assert_eq!(infer_grid(7, (2, 4)), None);
    }
}
