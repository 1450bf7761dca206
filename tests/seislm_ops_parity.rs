//! CPU vs CUDA parity of the SeisLM op family (conv1d forward and backward, weight norm,
//! transpose, slice), fp32 and bf16, on odd sizes. The parity tests need a GPU: ignored by a
//! plain `cargo test`, failing without CUDA when run (`cargo test -- --include-ignored`).

mod common;
use common::*;
use seisfuse::ops;

#[test]
#[ignore = "needs a CUDA GPU"]
fn conv1d_parity() {
    // (batch, cin, cout, lin, k, stride, padding, groups)
    for &(b, cin, cout, lin, k, s, p, g) in &[
        (
            3usize, 3usize, 17usize, 301usize, 3usize, 2usize, 0usize, 1usize,
        ),
        (2, 17, 19, 150, 3, 2, 0, 1),
        (2, 30, 30, 77, 16, 1, 8, 5),     // positional conv, even kernel
        (1, 48, 48, 131, 128, 1, 64, 16), // seislm-base's kernel and groups, narrower
        (2, 7, 7, 45, 5, 3, 2, 7),
        (1, 40, 24, 260, 7, 1, 3, 1), // more input channels than one shared-memory pass
        (4, 3, 64, 3001, 3, 2, 0, 1), // the first feature conv: a long reduction, many splits
    ] {
        parity(
            &format!("conv1d b{b} cin{cin} cout{cout} l{lin} k{k} s{s} p{p} g{g}"),
            |d, dt| {
                let x = input(&[b, cin, lin], 1, d, dt);
                let w = input(&[cout, cin / g, k], 2, d, dt);
                let bias = input(&[cout], 3, d, dt);
                let y = ops::conv1d(&x, &w, Some(&bias), s, p, g).unwrap();
                let dy = input(&y.shape, 4, d, dt);
                let mut dw = input(&w.shape, 5, d, dt); // accumulates onto existing values
                let mut db = input(&[cout], 6, d, dt);
                let dx = ops::conv1d_backward(&dy, &x, &w, s, p, g, &mut dw, Some(&mut db), true)
                    .unwrap()
                    .unwrap();
                vec![y, dx, dw, db]
            },
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn weight_norm_parity() {
    for &(shape, dim) in &[
        ([48usize, 3usize, 128usize], 2usize),
        ([37, 5, 9], 2),
        ([7, 33, 5], 0),
    ] {
        parity(&format!("weight_norm {shape:?} dim {dim}"), |d, dt| {
            let gshape: Vec<usize> = (0..3)
                .map(|i| if i == dim { shape[i] } else { 1 })
                .collect();
            let g = input(&gshape, 1, d, dt);
            let v = input(&shape, 2, d, dt);
            let (w, cache) = ops::weight_norm(&g, &v, dim).unwrap();
            let dw = input(&shape, 3, d, dt);
            let mut dg = input(&gshape, 4, d, dt);
            let mut dv = input(&shape, 5, d, dt);
            ops::weight_norm_backward(&dw, &g, &v, dim, &cache, &mut dg, &mut dv).unwrap();
            vec![w, cache.norm, dg, dv]
        });
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn transpose_and_slice_parity() {
    for shape in [[3usize, 37usize, 70usize], [2, 749, 33], [1, 1, 5]] {
        parity(&format!("transpose_last2 {shape:?}"), |d, dt| {
            let x = input(&shape, 1, d, dt);
            vec![ops::transpose_last2(&x).unwrap()]
        });
    }
    for (shape, axis, start, len) in [
        ([3usize, 37usize, 71usize], 2usize, 0usize, 70usize),
        ([3, 37, 71], 1, 5, 20),
    ] {
        parity(
            &format!("slice_axis {shape:?} axis {axis} {start}+{len}"),
            |d, dt| {
                let x = input(&shape, 1, d, dt);
                let y = ops::slice_axis(&x, axis, start, len).unwrap();
                let dy = input(&y.shape, 2, d, dt);
                let dx = ops::slice_axis_backward(&dy, axis, start, shape[axis]).unwrap();
                vec![y, dx]
            },
        );
    }
}

#[test]
fn conv1d_weight_gradient_splits_cover_the_reduction() {
    use seisfuse::backend::cuda::conv1d::weight_grad_splits;
    // (tiles, batch·time, weights, groups): empty, tiny, the three SeisLM convs at batch 64
    for &(tiles, r, weights, groups) in &[
        (1usize, 0usize, 9usize, 1usize),
        (1, 5, 9, 1),
        (8, 64 * 1500, 256 * 9, 1),
        (192, 64 * 749, 256 * 768, 1),
        (960, 64 * 749, 240 * 15 * 128, 16),
    ] {
        let (splits, per) = weight_grad_splits(tiles, r, weights, groups);
        assert!(splits >= 1 && per % 32 == 0, "{splits} splits of {per}");
        assert!(
            splits * per >= r && (splits - 1) * per < r.max(1),
            "{splits} × {per} for {r}"
        );
        assert!(splits * groups <= 65535 && splits * weights <= 1 << 26);
        println!(
            "tiles {tiles} r {r}: {splits} splits of {per} ({} blocks)",
            tiles * splits
        );
    }
}
