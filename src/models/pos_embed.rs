//! Fixed 2-D sin-cos position embeddings, exactly as MAE's `get_2d_sincos_pos_embed`:
//! the first half of the channels encodes the column (w) index, the second half the row (h)
//! index (MAE builds its grid with `meshgrid(grid_w, grid_h)`); each half is
//! [sin(pos·ω), cos(pos·ω)] with ω_i = 1 / 10000^(i / (D/4)). The cls row is zero.

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
}
