//! Finite-difference checks of the SeisLM op family on the CPU: conv1d (input, weight and bias;
//! strides, padding, groups), weight norm (g and v), the last-two-axes transpose and the slice.
//! Also: conv1d against a plain f64 loop, accumulation of parameter gradients, and bad input.

mod common;
use common::*;
use seisfuse::ops;
use seisfuse::Tensor;

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape, v.to_vec()).unwrap()
}

/// (batch, cin, cout, lin, k, stride, padding, groups)
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize);

const CONV_CASES: &[ConvCase] = &[
    (2, 3, 4, 11, 3, 2, 0, 1), // feature extractor: 3 components, k3 s2
    (1, 4, 5, 9, 3, 1, 1, 1),
    (2, 6, 6, 7, 4, 1, 2, 3), // grouped, even kernel with padding k/2 (positional conv)
    (1, 4, 8, 10, 5, 3, 2, 2),
    (2, 4, 4, 5, 4, 1, 2, 4), // depthwise
];

#[test]
fn conv1d_matches_a_plain_f64_loop() {
    for (ci, &(b, cin, cout, lin, k, s, p, g)) in CONV_CASES.iter().enumerate() {
        let x = rand_tensor(&[b, cin, lin], 100 + ci as u64);
        let w = rand_tensor(&[cout, cin / g, k], 200 + ci as u64);
        let bias = rand_tensor(&[cout], 300 + ci as u64);
        let y = ops::conv1d(&x, &w, Some(&bias), s, p, g).unwrap();
        let lout = (lin + 2 * p - k) / s + 1;
        assert_eq!(y.shape, vec![b, cout, lout]);
        let (xv, wv, bv) = (
            x.to_vec_f32().unwrap(),
            w.to_vec_f32().unwrap(),
            bias.to_vec_f32().unwrap(),
        );
        let (cig, cog) = (cin / g, cout / g);
        let mut want = vec![0.0f32; b * cout * lout];
        for bi in 0..b {
            for co in 0..cout {
                for to in 0..lout {
                    let mut acc = bv[co] as f64;
                    for cl in 0..cig {
                        let c = (co / cog) * cig + cl;
                        for j in 0..k {
                            let pos = (to * s + j) as i64 - p as i64;
                            if pos >= 0 && (pos as usize) < lin {
                                acc += wv[(co * cig + cl) * k + j] as f64
                                    * xv[(bi * cin + c) * lin + pos as usize] as f64;
                            }
                        }
                    }
                    want[(bi * cout + co) * lout + to] = acc as f32;
                }
            }
        }
        let e = rel_err(&y.to_vec_f32().unwrap(), &want);
        assert!(e < 1e-6, "case {ci}: relative error {e:.2e}");
    }
}

#[test]
fn conv1d_gradients() {
    for (ci, &(b, cin, cout, lin, k, s, p, g)) in CONV_CASES.iter().enumerate() {
        let x = rand_tensor(&[b, cin, lin], 10 + ci as u64);
        let w = rand_tensor(&[cout, cin / g, k], 20 + ci as u64);
        let bias = rand_tensor(&[cout], 30 + ci as u64);
        let y = ops::conv1d(&x, &w, Some(&bias), s, p, g).unwrap();
        let up = rand_vec(y.numel(), 40 + ci as u64, -1.0, 1.0);
        let dy = t(&y.shape, &up);
        let mut dw = Tensor::from_f32(&w.shape, vec![0.0; w.numel()]).unwrap();
        let mut db = Tensor::from_f32(&[cout], vec![0.0; cout]).unwrap();
        let dx = ops::conv1d_backward(&dy, &x, &w, s, p, g, &mut dw, Some(&mut db), true)
            .unwrap()
            .unwrap();
        let name =
            format!("conv1d case {ci} (b{b} cin{cin} cout{cout} l{lin} k{k} s{s} p{p} g{g})");
        let (xs, ws) = (x.shape.clone(), w.shape.clone());
        check_grad(
            &format!("{name} dx"),
            &x.to_vec_f32().unwrap(),
            &up,
            &dx.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |v| {
                ops::conv1d(&t(&xs, v), &w, Some(&bias), s, p, g)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap()
            },
        );
        check_grad(
            &format!("{name} dw"),
            &w.to_vec_f32().unwrap(),
            &up,
            &dw.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |v| {
                ops::conv1d(&x, &t(&ws, v), Some(&bias), s, p, g)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap()
            },
        );
        check_grad(
            &format!("{name} dbias"),
            &bias.to_vec_f32().unwrap(),
            &up,
            &db.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |v| {
                ops::conv1d(&x, &w, Some(&t(&[cout], v)), s, p, g)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap()
            },
        );
        // Parameter gradients accumulate: a second backward doubles them; dx is written.
        let dw1 = dw.to_vec_f32().unwrap();
        let db1 = db.to_vec_f32().unwrap();
        let dx2 = ops::conv1d_backward(&dy, &x, &w, s, p, g, &mut dw, Some(&mut db), true)
            .unwrap()
            .unwrap();
        let twice = |v: &[f32]| v.iter().map(|x| 2.0 * x).collect::<Vec<_>>();
        assert!(rel_err(&dw.to_vec_f32().unwrap(), &twice(&dw1)) < 1e-6);
        assert!(rel_err(&db.to_vec_f32().unwrap(), &twice(&db1)) < 1e-6);
        assert_eq!(dx2.to_vec_f32().unwrap(), dx.to_vec_f32().unwrap());
        // Without a bias and without dx.
        let none = ops::conv1d_backward(&dy, &x, &w, s, p, g, &mut dw, None, false).unwrap();
        assert!(none.is_none());
    }
}

#[test]
fn weight_norm_gradients() {
    // HF wav2vec2's positional conv: v [Cout, Cin/groups, K], g [1, 1, K], norm over dims 0, 1.
    for (shape, dim) in [
        (vec![5usize, 3, 4], 2usize),
        (vec![4, 3, 2], 0),
        (vec![3, 4, 5], 1),
    ] {
        let v = rand_tensor(&shape, 7);
        let gshape: Vec<usize> = (0..3)
            .map(|i| if i == dim { shape[i] } else { 1 })
            .collect();
        let g = Tensor::from_f32(&gshape, rand_vec(shape[dim], 8, 0.5, 1.5)).unwrap();
        let (w, cache) = ops::weight_norm(&g, &v, dim).unwrap();
        // w = g v / ||v|| slice by slice: each slice's norm is |g|.
        let wv = w.to_vec_f32().unwrap();
        let gv = g.to_vec_f32().unwrap();
        let inner: usize = shape[dim + 1..].iter().product();
        let mut ss = vec![0.0f64; shape[dim]];
        for (i, &x) in wv.iter().enumerate() {
            ss[(i / inner) % shape[dim]] += (x as f64).powi(2);
        }
        for (k, s) in ss.iter().enumerate() {
            assert!(
                (s.sqrt() - gv[k] as f64).abs() < 1e-5,
                "slice {k}: norm {} vs g {}",
                s.sqrt(),
                gv[k]
            );
        }
        let up = rand_vec(w.numel(), 9, -1.0, 1.0);
        let dw = t(&shape, &up);
        let mut dg = Tensor::from_f32(&gshape, vec![0.0; shape[dim]]).unwrap();
        let mut dv = Tensor::from_f32(&shape, vec![0.0; v.numel()]).unwrap();
        ops::weight_norm_backward(&dw, &g, &v, dim, &cache, &mut dg, &mut dv).unwrap();
        let name = format!("weight_norm {shape:?} dim {dim}");
        check_grad(
            &format!("{name} dg"),
            &gv,
            &up,
            &dg.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |x| {
                ops::weight_norm(&t(&gshape, x), &v, dim)
                    .unwrap()
                    .0
                    .to_vec_f32()
                    .unwrap()
            },
        );
        check_grad(
            &format!("{name} dv"),
            &v.to_vec_f32().unwrap(),
            &up,
            &dv.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |x| {
                ops::weight_norm(&g, &t(&shape, x), dim)
                    .unwrap()
                    .0
                    .to_vec_f32()
                    .unwrap()
            },
        );
    }
}

#[test]
fn transpose_and_slice_gradients() {
    let x = rand_tensor(&[2, 3, 5], 1);
    let y = ops::transpose_last2(&x).unwrap();
    assert_eq!(y.shape, vec![2, 5, 3]);
    let (xv, yv) = (x.to_vec_f32().unwrap(), y.to_vec_f32().unwrap());
    assert_eq!(yv[(5 + 4) * 3 + 1], xv[(3 + 1) * 5 + 4]);
    let up = rand_vec(y.numel(), 2, -1.0, 1.0);
    let dx = ops::transpose_last2_backward(&t(&y.shape, &up)).unwrap();
    assert_eq!(dx.shape, x.shape);
    check_grad(
        "transpose_last2",
        &xv,
        &up,
        &dx.to_vec_f32().unwrap(),
        1e-2,
        1e-3,
        |v| {
            ops::transpose_last2(&t(&[2, 3, 5], v))
                .unwrap()
                .to_vec_f32()
                .unwrap()
        },
    );

    for (axis, start, len) in [(2usize, 0usize, 6usize), (1, 1, 2), (0, 1, 1)] {
        let x = rand_tensor(&[2, 3, 7], 3);
        let y = ops::slice_axis(&x, axis, start, len).unwrap();
        let up = rand_vec(y.numel(), 4, -1.0, 1.0);
        let dx = ops::slice_axis_backward(&t(&y.shape, &up), axis, start, x.shape[axis]).unwrap();
        assert_eq!(dx.shape, x.shape);
        check_grad(
            &format!("slice_axis axis {axis} {start}+{len}"),
            &x.to_vec_f32().unwrap(),
            &up,
            &dx.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |v| {
                ops::slice_axis(&t(&[2, 3, 7], v), axis, start, len)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap()
            },
        );
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let x = rand_tensor(&[2, 4, 9], 1);
    let w = rand_tensor(&[6, 2, 3], 2);
    let e = |r: anyhow::Result<Tensor>| format!("{:#}", r.expect_err("must fail"));
    assert!(e(ops::conv1d(&x, &w, None, 1, 0, 3)).contains("groups"));
    assert!(e(ops::conv1d(&x, &w, None, 1, 0, 1)).contains("input channels per group"));
    assert!(e(ops::conv1d(&x, &w, None, 0, 0, 2)).contains("stride"));
    let long = rand_tensor(&[6, 2, 12], 3);
    assert!(e(ops::conv1d(&x, &long, None, 1, 1, 2)).contains("longer"));
    let badb = rand_tensor(&[5], 4);
    assert!(e(ops::conv1d(&x, &w, Some(&badb), 1, 0, 2)).contains("bias"));
    assert!(e(ops::conv1d(&rand_tensor(&[4, 9], 5), &w, None, 1, 0, 2)).contains("[batch"));
    assert!(e(ops::slice_axis(&x, 2, 5, 5)).contains("out of range"));
    assert!(e(ops::slice_axis(&x, 3, 0, 1)).contains("out of range"));
    assert!(e(ops::transpose_last2(&rand_tensor(&[2, 2, 2, 2], 6))).contains("transpose"));
    let v = rand_tensor(&[6, 2, 3], 7);
    let g = rand_tensor(&[1, 3, 1], 8);
    assert!(ops::weight_norm(&g, &v, 2).is_err());
    assert!(ops::weight_norm(&g, &v, 5).is_err());
}
