//! Finite-difference gradient checks of every op's backward pass on the CPU.

mod common;
use common::*;
use seisfuse::ops::{self, DropoutKey};
use seisfuse::Tensor;

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape, v.to_vec()).unwrap()
}

/// (a shape, b shape, ta, tb, with bias)
type MatmulCase<'a> = (&'a [usize], &'a [usize], bool, bool, bool);

#[test]
fn matmul_all_transposes_batched_and_broadcast() {
    let cases: &[MatmulCase] = &[
        (&[3, 5], &[5, 4], false, false, true),
        (&[3, 5], &[4, 5], false, true, true),
        (&[5, 3], &[5, 4], true, false, false),
        (&[5, 3], &[4, 5], true, true, true),
        (&[2, 3, 5], &[2, 5, 4], false, false, false),
        (&[2, 3, 5], &[5, 4], false, false, true), // shared weight, folded rows
        (&[2, 5, 3], &[4, 5], true, true, false),  // shared weight, batched
        (&[3, 5], &[2, 5, 4], false, false, false), // shared left operand
    ];
    for (ci, &(ash, bsh, ta, tb, with_bias)) in cases.iter().enumerate() {
        let a = rand_tensor(ash, 10 + ci as u64);
        let b = rand_tensor(bsh, 20 + ci as u64);
        let (_, out_shape) = ops::matmul::infer_shape(ash, bsh, ta, tb).unwrap();
        let n = *out_shape.last().unwrap();
        let bias = rand_tensor(&[n], 30 + ci as u64);
        let biasr = if with_bias { Some(&bias) } else { None };
        let c = ops::matmul(&a, &b, ta, tb, biasr).unwrap();
        let w = rand_vec(c.numel(), 40 + ci as u64, -1.0, 1.0);
        let dc = t(&c.shape, &w);
        let g = ops::matmul_backward(&a, &b, ta, tb, with_bias, &dc).unwrap();
        let name = format!("matmul case {ci} {ash:?}x{bsh:?} ta={ta} tb={tb}");
        let (av, bv, biasv) = (
            a.to_vec_f32().unwrap(),
            b.to_vec_f32().unwrap(),
            bias.to_vec_f32().unwrap(),
        );
        check_grad(
            &format!("{name} dA"),
            &av,
            &w,
            &g.da.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |x| {
                ops::matmul(&t(ash, x), &b, ta, tb, biasr)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap()
            },
        );
        check_grad(
            &format!("{name} dB"),
            &bv,
            &w,
            &g.db.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |x| {
                ops::matmul(&a, &t(bsh, x), ta, tb, biasr)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap()
            },
        );
        if with_bias {
            check_grad(
                &format!("{name} dbias"),
                &biasv,
                &w,
                &g.dbias.unwrap().to_vec_f32().unwrap(),
                1e-2,
                1e-3,
                |x| {
                    ops::matmul(&a, &b, ta, tb, Some(&t(&[n], x)))
                        .unwrap()
                        .to_vec_f32()
                        .unwrap()
                },
            );
        }
    }
}

#[test]
fn gelu_backward_matches_differences() {
    let x = rand_vec(37, 1, -3.0, 3.0);
    let w = rand_vec(37, 2, -1.0, 1.0);
    let g = ops::gelu_backward(&t(&[37], &x), &t(&[37], &w))
        .unwrap()
        .to_vec_f32()
        .unwrap();
    check_grad("gelu", &x, &w, &g, 1e-3, 2e-3, |v| {
        ops::gelu(&t(&[37], v)).unwrap().to_vec_f32().unwrap()
    });
}

#[test]
fn add_and_bias_add_backward() {
    // add: each input's gradient is the output gradient.
    let a = rand_vec(15, 1, -1.0, 1.0);
    let b = rand_vec(15, 2, -1.0, 1.0);
    let w = rand_vec(15, 3, -1.0, 1.0);
    check_grad("add", &a, &w, &w, 1e-2, 1e-3, |v| {
        ops::add(&t(&[3, 5], v), &t(&[3, 5], &b))
            .unwrap()
            .to_vec_f32()
            .unwrap()
    });
    // bias_add: the bias gradient is the row sum of the output gradient.
    let bias = rand_vec(5, 4, -1.0, 1.0);
    let db = ops::sum_rows(&t(&[3, 5], &w))
        .unwrap()
        .to_vec_f32()
        .unwrap();
    check_grad("bias_add dbias", &bias, &w, &db, 1e-2, 1e-3, |v| {
        ops::bias_add(&t(&[3, 5], &a), &t(&[5], v))
            .unwrap()
            .to_vec_f32()
            .unwrap()
    });
}

#[test]
fn layer_norm_backward_matches_differences() {
    let (rows, c) = (4, 13);
    let x = rand_vec(rows * c, 5, -2.0, 2.0);
    let wv = rand_vec(c, 6, 0.5, 1.5);
    let bv = rand_vec(c, 7, -0.5, 0.5);
    let up = rand_vec(rows * c, 8, -1.0, 1.0);
    let eps = 1e-5;
    let (xt, wt, bt) = (t(&[rows, c], &x), t(&[c], &wv), t(&[c], &bv));
    let (_, cache) = ops::layer_norm(&xt, &wt, &bt, eps).unwrap();
    let mut dw = Tensor::from_f32(&[c], vec![0.0; c]).unwrap();
    let mut db = Tensor::from_f32(&[c], vec![0.0; c]).unwrap();
    let dx = ops::layer_norm_backward(
        &t(&[rows, c], &up),
        &xt,
        &wt,
        &cache,
        (&mut dw, &mut db),
        None,
    )
    .unwrap();
    let fwd = |x: &[f32], w: &[f32], b: &[f32]| {
        ops::layer_norm(&t(&[rows, c], x), &t(&[c], w), &t(&[c], b), eps)
            .unwrap()
            .0
            .to_vec_f32()
            .unwrap()
    };
    check_grad(
        "layer_norm dx",
        &x,
        &up,
        &dx.to_vec_f32().unwrap(),
        1e-2,
        5e-3,
        |v| fwd(v, &wv, &bv),
    );
    check_grad(
        "layer_norm dw",
        &wv,
        &up,
        &dw.to_vec_f32().unwrap(),
        1e-2,
        5e-3,
        |v| fwd(&x, v, &bv),
    );
    check_grad(
        "layer_norm db",
        &bv,
        &up,
        &db.to_vec_f32().unwrap(),
        1e-2,
        5e-3,
        |v| fwd(&x, &wv, v),
    );
    // Parameter gradients accumulate: a second backward doubles them.
    let dw1 = dw.to_vec_f32().unwrap();
    ops::layer_norm_backward(
        &t(&[rows, c], &up),
        &xt,
        &wt,
        &cache,
        (&mut dw, &mut db),
        None,
    )
    .unwrap();
    for (a, b) in dw.to_vec_f32().unwrap().iter().zip(&dw1) {
        assert!((a - 2.0 * b).abs() < 1e-5);
    }
}

#[test]
fn softmax_backward_matches_differences() {
    let x = rand_vec(3 * 11, 9, -3.0, 3.0);
    let w = rand_vec(3 * 11, 10, -1.0, 1.0);
    let y = ops::softmax(&t(&[3, 11], &x)).unwrap();
    let dx = ops::softmax_backward(&y, &t(&[3, 11], &w))
        .unwrap()
        .to_vec_f32()
        .unwrap();
    check_grad("softmax", &x, &w, &dx, 1e-2, 2e-3, |v| {
        ops::softmax(&t(&[3, 11], v)).unwrap().to_vec_f32().unwrap()
    });
}

#[test]
fn cross_entropy_backward_matches_differences() {
    let (rows, classes) = (5, 7);
    let x = rand_vec(rows * classes, 11, -3.0, 3.0);
    let targets = Tensor::from_i32(&[rows], vec![0, 6, -100, 3, 2]).unwrap();
    let lt = t(&[rows, classes], &x);
    let v = ops::cross_entropy(&lt, &targets).unwrap();
    assert_eq!(v.count, 4, "the -100 row is ignored");
    let g = ops::cross_entropy_backward(&lt, &targets, v.count, 1.0)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    check_grad("cross_entropy", &x, &[1.0], &g, 1e-2, 2e-3, |v| {
        vec![
            ops::cross_entropy(&t(&[rows, classes], v), &targets)
                .unwrap()
                .loss,
        ]
    });
}

#[test]
fn soft_cross_entropy_backward_matches_differences() {
    let (rows, classes) = (4, 5);
    let x = rand_vec(rows * classes, 12, -3.0, 3.0);
    let mut tv = rand_vec(rows * classes, 13, 0.0, 1.0);
    for r in tv.chunks_mut(classes) {
        let s: f32 = r.iter().sum();
        r.iter_mut().for_each(|v| *v /= s);
    }
    let tt = t(&[rows, classes], &tv);
    let g = ops::soft_cross_entropy_backward(&t(&[rows, classes], &x), &tt, 1.0)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    check_grad("soft_cross_entropy", &x, &[1.0], &g, 1e-2, 2e-3, |v| {
        vec![
            ops::soft_cross_entropy(&t(&[rows, classes], v), &tt)
                .unwrap()
                .loss,
        ]
    });
}

#[test]
fn mse_backward_matches_differences() {
    let x = rand_vec(19, 14, -1.0, 1.0);
    let y = t(&[19], &rand_vec(19, 15, -1.0, 1.0));
    let g = ops::mse_backward(&t(&[19], &x), &y, 1.0)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    check_grad("mse", &x, &[1.0], &g, 1e-2, 1e-3, |v| {
        vec![ops::mse(&t(&[19], v), &y).unwrap().loss]
    });
}

#[test]
fn dropout_backward_matches_differences() {
    let key = DropoutKey {
        seed: 42,
        step: 3,
        stream_id: 1,
    };
    let x = rand_vec(64, 16, -1.0, 1.0);
    let w = rand_vec(64, 17, -1.0, 1.0);
    let dx = ops::dropout_backward(&t(&[64], &w), 0.3, key)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    check_grad("dropout", &x, &w, &dx, 1e-2, 1e-3, |v| {
        ops::dropout(&t(&[64], v), 0.3, key)
            .unwrap()
            .to_vec_f32()
            .unwrap()
    });
}

#[test]
fn sum_and_mean_backward() {
    let x = rand_vec(10, 18, -1.0, 1.0);
    let xt = t(&[2, 5], &x);
    let gs = ops::reduce_backward(&xt, 1.0, false)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    check_grad("sum", &x, &[1.0], &gs, 1e-2, 1e-3, |v| {
        vec![ops::item(&ops::sum(&t(&[2, 5], v)).unwrap()).unwrap()]
    });
    let gm = ops::reduce_backward(&xt, 1.0, true)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    check_grad("mean", &x, &[1.0], &gm, 1e-2, 1e-3, |v| {
        vec![ops::item(&ops::mean(&t(&[2, 5], v)).unwrap()).unwrap()]
    });
}
