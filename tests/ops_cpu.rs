//! The CPU backend against plain f64 loops and known values.

mod common;
use common::*;
use seisfuse::backend::cpu::f32_to_bf16;
use seisfuse::ops::{self, AdamWConfig, DropoutKey};
use seisfuse::Tensor;

/// C = op(A)·op(B) + bias by a triple loop in f64 with the indexing written out here from the
/// stored shapes (op = transpose when asked; a rank-2 operand is shared by every batch), so
/// that a stride or transpose mistake in the op's shape logic cannot be repeated by the oracle.
fn matmul_by_loops(
    a: &[f32],
    ash: &[usize],
    b: &[f32],
    bsh: &[usize],
    ta: bool,
    tb: bool,
    bias: &[f32],
) -> (Vec<usize>, Vec<f32>) {
    let batch = if ash.len() == 3 {
        ash[0]
    } else if bsh.len() == 3 {
        bsh[0]
    } else {
        1
    };
    let (ar, ac) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (br, bc) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if tb { (bc, br) } else { (br, bc) };
    assert_eq!(k, k2);
    // element (i, l) of op(A) of batch bi, and (l, j) of op(B)
    let a_at = |bi: usize, i: usize, l: usize| {
        let base = if ash.len() == 3 { bi * ar * ac } else { 0 };
        let (r, c) = if ta { (l, i) } else { (i, l) };
        a[base + r * ac + c] as f64
    };
    let b_at = |bi: usize, l: usize, j: usize| {
        let base = if bsh.len() == 3 { bi * br * bc } else { 0 };
        let (r, c) = if tb { (j, l) } else { (l, j) };
        b[base + r * bc + c] as f64
    };
    let mut c = Vec::with_capacity(batch * m * n);
    for bi in 0..batch {
        for i in 0..m {
            for (j, &bj) in bias.iter().enumerate().take(n) {
                let acc: f64 = (0..k).map(|l| a_at(bi, i, l) * b_at(bi, l, j)).sum();
                c.push((acc + bj as f64) as f32);
            }
        }
    }
    let shape = if ash.len() == 3 || bsh.len() == 3 {
        vec![batch, m, n]
    } else {
        vec![m, n]
    };
    (shape, c)
}

#[test]
fn matmul_matches_f64_loop_on_odd_sizes() {
    for &(ash, bsh, ta, tb) in &[
        (&[67usize, 131][..], &[131usize, 45][..], false, false),
        (&[131, 67][..], &[45, 131][..], true, true),
        (&[3, 67, 131][..], &[3, 131, 45][..], false, false),
        (&[3, 131, 67][..], &[131, 45][..], true, false),
        (&[2, 33, 17][..], &[2, 29, 17][..], false, true),
        (&[2, 17, 33][..], &[17, 29][..], true, false),
    ] {
        let (a, b) = (rand_tensor(ash, 1), rand_tensor(bsh, 2));
        let n = if tb {
            bsh[bsh.len() - 2]
        } else {
            bsh[bsh.len() - 1]
        };
        let bias = rand_tensor(&[n], 3);
        let got = ops::matmul(&a, &b, ta, tb, Some(&bias)).unwrap();
        let (shape, want) = matmul_by_loops(
            &a.to_vec_f32().unwrap(),
            ash,
            &b.to_vec_f32().unwrap(),
            bsh,
            ta,
            tb,
            &bias.to_vec_f32().unwrap(),
        );
        assert_eq!(got.shape, shape, "{ash:?}x{bsh:?} ta={ta} tb={tb}");
        let e = rel_err(&got.to_vec_f32().unwrap(), &want);
        assert!(e < 1e-5, "{ash:?}x{bsh:?} ta={ta} tb={tb}: {e:.2e}");
    }
}

#[test]
fn matmul_accumulates_when_asked() {
    let (a, b) = (rand_tensor(&[5, 7], 1), rand_tensor(&[7, 3], 2));
    let once = ops::matmul(&a, &b, false, false, None).unwrap();
    let (s, _) = ops::matmul::infer_shape(&a.shape, &b.shape, false, false).unwrap();
    let mut c = once.try_clone().unwrap();
    ops::matmul_raw(&mut c, &a, &b, None, &s, true).unwrap();
    let (c, o) = (c.to_vec_f32().unwrap(), once.to_vec_f32().unwrap());
    for (x, y) in c.iter().zip(&o) {
        assert!((x - 2.0 * y).abs() < 1e-5);
    }
}

#[test]
fn layer_norm_matches_f64_formula() {
    let (rows, c) = (3, 301);
    let x = rand_vec(rows * c, 4, -3.0, 5.0);
    let w = rand_vec(c, 5, 0.5, 1.5);
    let b = rand_vec(c, 6, -1.0, 1.0);
    let (y, cache) = ops::layer_norm(
        &Tensor::from_f32(&[rows, c], x.clone()).unwrap(),
        &Tensor::from_f32(&[c], w.clone()).unwrap(),
        &Tensor::from_f32(&[c], b.clone()).unwrap(),
        1e-6,
    )
    .unwrap();
    let mut want = Vec::new();
    for r in 0..rows {
        let row = &x[r * c..(r + 1) * c];
        let mu = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
        let var = row.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / c as f64;
        for i in 0..c {
            want.push(
                (((row[i] as f64 - mu) / (var + 1e-6).sqrt()) * w[i] as f64 + b[i] as f64) as f32,
            );
        }
        assert!((cache.mean.f32s().unwrap()[r] as f64 - mu).abs() < 1e-5);
    }
    assert!(rel_err(&y.to_vec_f32().unwrap(), &want) < 1e-6);
}

/// The fused residual add + LayerNorm and the LayerNorm backward with a residual gradient are,
/// on the CPU, exactly the unfused ops (the models' results do not move when they switch).
#[test]
fn fused_residual_layer_norm_is_the_unfused_pair_bit_for_bit() {
    use seisfuse::DType;
    for dt in [DType::F32, DType::BF16] {
        let (rows, c) = (5, 96);
        let t = |shape: &[usize], seed| rand_tensor(shape, seed).to_dtype(dt).unwrap();
        let (x, r, w, b) = (t(&[rows, c], 1), t(&[rows, c], 2), t(&[c], 3), t(&[c], 4));
        let (s, y, cache) = ops::add_layer_norm(&x, &r, &w, &b, 1e-6).unwrap();
        let s2 = ops::add(&x, &r).unwrap();
        let (y2, cache2) = ops::layer_norm(&s2, &w, &b, 1e-6).unwrap();
        let v = |t: &Tensor| t.to_vec_f32().unwrap();
        assert_eq!(v(&s), v(&s2), "{dt} sum");
        assert_eq!(v(&y), v(&y2), "{dt} y");
        assert_eq!(v(&cache.rstd), v(&cache2.rstd), "{dt} rstd");
        let (dy, dres) = (t(&[rows, c], 5), t(&[rows, c], 6));
        let (mut dw, mut db) = (t(&[c], 7), t(&[c], 8));
        let (mut dw2, mut db2) = (dw.try_clone().unwrap(), db.try_clone().unwrap());
        let g = (&mut dw, &mut db);
        let dx = ops::layer_norm_backward(&dy, &s, &w, &cache, g, Some(&dres)).unwrap();
        let g2 = (&mut dw2, &mut db2);
        let mut dx2 = ops::layer_norm_backward(&dy, &s, &w, &cache, g2, None).unwrap();
        ops::add_assign(&mut dx2, &dres).unwrap();
        assert_eq!(v(&dx), v(&dx2), "{dt} dx + dres");
        assert_eq!((v(&dw), v(&db)), (v(&dw2), v(&db2)), "{dt} dw, db");
    }
}

#[test]
fn gelu_matches_pytorch_values() {
    // torch.nn.functional.gelu (erf form) at these points.
    let xs = [1.0f32, -0.5, 2.0, -3.0, 0.0];
    let want = [
        0.841_344_7f32,
        -0.154_268_77,
        1.954_499_7,
        -0.004_049_695,
        0.0,
    ];
    let got = ops::gelu(&Tensor::from_f32(&[5], xs.to_vec()).unwrap())
        .unwrap()
        .to_vec_f32()
        .unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}

#[test]
fn adamw_matches_the_pytorch_update_rule() {
    let cfg = AdamWConfig {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.05,
    };
    let p0 = rand_vec(17, 1, -1.0, 1.0);
    let mut p = Tensor::from_f32(&[17], p0.clone()).unwrap();
    let (mut m, mut v) = (
        Tensor::from_f32(&[17], vec![0.0; 17]).unwrap(),
        Tensor::from_f32(&[17], vec![0.0; 17]).unwrap(),
    );
    let (mut pr, mut mr, mut vr) = (
        p0.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        vec![0.0f64; 17],
        vec![0.0f64; 17],
    );
    for t in 1..=4u32 {
        let g = rand_vec(17, 100 + t as u64, -1.0, 1.0);
        ops::adamw_step(
            &mut p,
            &Tensor::from_f32(&[17], g.clone()).unwrap(),
            &mut m,
            &mut v,
            None,
            &cfg,
            t,
        )
        .unwrap();
        for i in 0..17 {
            let gi = g[i] as f64;
            mr[i] = 0.9 * mr[i] + 0.1 * gi;
            vr[i] = 0.95 * vr[i] + 0.05 * gi * gi;
            let mh = mr[i] / (1.0 - 0.9f64.powi(t as i32));
            let vh = vr[i] / (1.0 - 0.95f64.powi(t as i32));
            pr[i] *= 1.0 - 1e-2 * 0.05;
            pr[i] -= 1e-2 * mh / (vh.sqrt() + 1e-8);
        }
    }
    let got = p.to_vec_f32().unwrap();
    for i in 0..17 {
        assert!(
            (got[i] as f64 - pr[i]).abs() < 1e-5,
            "{i}: {} vs {}",
            got[i],
            pr[i]
        );
    }
}

#[test]
fn clip_grad_norm_scales_to_the_limit() {
    let mut a = Tensor::from_f32(&[2], vec![3.0, 0.0]).unwrap();
    let mut b = Tensor::from_f32(&[1], vec![4.0]).unwrap();
    let norm = ops::clip_grad_norm(&mut [&mut a, &mut b], 1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-6);
    let after = ops::grad_norm(&[&a, &b]).unwrap();
    assert!((after - 1.0).abs() < 1e-5, "{after}");
    // Below the limit nothing changes.
    let n2 = ops::clip_grad_norm(&mut [&mut a, &mut b], 10.0).unwrap();
    assert!((n2 - after).abs() < 1e-6 && (ops::grad_norm(&[&a, &b]).unwrap() - after).abs() < 1e-7);
}

#[test]
fn dropout_is_seeded_and_unbiased() {
    let n = 100_000;
    let x = Tensor::from_f32(&[n], vec![1.0; n]).unwrap();
    let key = DropoutKey {
        seed: 1,
        step: 2,
        stream_id: 3,
    };
    let y = ops::dropout(&x, 0.3, key).unwrap().to_vec_f32().unwrap();
    let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
    assert!((kept - 0.7).abs() < 0.01, "kept fraction {kept}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
    let mean: f64 = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    assert!((mean - 1.0).abs() < 0.02, "expectation kept: {mean}");
    assert_eq!(
        y,
        ops::dropout(&x, 0.3, key).unwrap().to_vec_f32().unwrap(),
        "same key, same mask"
    );
    let other = ops::dropout(&x, 0.3, DropoutKey { step: 3, ..key })
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_ne!(y, other, "another step draws another mask");
}

#[test]
fn bf16_rounds_to_nearest_even() {
    assert_eq!(f32_to_bf16(1.0).to_bits(), 0x3f80);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
    assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0).to_bits(), 0x3f80);
    // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
    assert_eq!(f32_to_bf16(1.0 + 3.0 / 256.0).to_bits(), 0x3f82);
    assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0 + 1e-6).to_bits(), 0x3f81);
    assert!(f32_to_bf16(f32::NAN).to_f32().is_nan());
    assert_eq!(f32_to_bf16(f32::INFINITY).to_f32(), f32::INFINITY);
}

#[test]
fn cross_entropy_of_uniform_logits_is_log_classes() {
    let logits = Tensor::from_f32(&[4, 10], vec![0.5; 40]).unwrap();
    let t = Tensor::from_i32(&[4], vec![1, 2, 3, 9]).unwrap();
    let v = ops::cross_entropy(&logits, &t).unwrap();
    assert!((v.loss - 10f32.ln()).abs() < 1e-6);
    let all_ignored = Tensor::from_i32(&[4], vec![-100; 4]).unwrap();
    assert_eq!(
        ops::cross_entropy(&logits, &all_ignored).unwrap(),
        ops::LossValue {
            loss: 0.0,
            count: 0
        }
    );
}

/// Parameter gradients accumulate in place into views of one flat buffer (as an optimizer's
/// flat gradient buffer holds them), exactly as into separate tensors.
#[test]
fn parameter_gradients_accumulate_into_views_of_one_buffer() {
    /// Runs `f` on gradients of `shapes` given as separate tensors and as views of one buffer,
    /// both starting from the same nonzero values, and compares the results bit for bit.
    fn check(what: &str, shapes: &[&[usize]], f: impl Fn(&mut [Tensor])) {
        let sizes: Vec<usize> = shapes.iter().map(|s| s.iter().product()).collect();
        let total: usize = sizes.iter().sum::<usize>() + 3;
        let init = rand_vec(total, 99, -1.0, 1.0);
        let mut offs = vec![1usize];
        for n in &sizes {
            offs.push(offs.last().unwrap() + n);
        }
        let mut separate: Vec<Tensor> = shapes
            .iter()
            .zip(&offs)
            .map(|(s, &o)| {
                let n: usize = s.iter().product();
                Tensor::from_f32(s, init[o..o + n].to_vec()).unwrap()
            })
            .collect();
        f(&mut separate);
        let flat = Tensor::from_f32(&[total], init.clone()).unwrap();
        let mut views: Vec<Tensor> = shapes
            .iter()
            .zip(&offs)
            .map(|(s, &o)| flat.view(o, s).unwrap())
            .collect();
        f(&mut views);
        drop(views);
        let got = flat.to_vec_f32().unwrap();
        assert_eq!(got[0], init[0], "{what}: wrote before the first view");
        assert_eq!(
            got[total - 2..],
            init[total - 2..],
            "{what}: wrote past the views"
        );
        for (i, (t, &o)) in separate.iter().zip(&offs).enumerate() {
            let want = t.to_vec_f32().unwrap();
            assert_eq!(got[o..o + want.len()], want[..], "{what}: gradient {i}");
            assert_ne!(
                want[..],
                init[o..o + want.len()],
                "{what}: gradient {i} unchanged"
            );
        }
    }

    let (x, w) = (rand_tensor(&[2, 4, 9], 1), rand_tensor(&[6, 2, 3], 2));
    let dy = rand_tensor(&[2, 6, 5], 3);
    check("conv1d", &[&[6, 2, 3], &[6]], |g| {
        let [dw, db] = g else { unreachable!() };
        ops::conv1d_backward(&dy, &x, &w, 2, 1, 2, dw, Some(db), true).unwrap();
    });

    let (x, w) = (rand_tensor(&[2, 3, 5, 4], 4), rand_tensor(&[5, 3, 3, 3], 5));
    let dy = rand_tensor(&[2, 5, 5, 4], 6);
    check("conv2d", &[&[5, 3, 3, 3], &[5]], |g| {
        let [dw, db] = g else { unreachable!() };
        ops::conv2d_backward(&dy, &x, &w, dw, Some(db)).unwrap();
    });

    let (x, w, b) = (
        rand_tensor(&[3, 4, 2, 5], 7),
        rand_tensor(&[4], 8),
        rand_tensor(&[4], 9),
    );
    let (mut rm, mut rv) = (
        Tensor::from_f32(&[4], vec![0.0; 4]).unwrap(),
        Tensor::from_f32(&[4], vec![1.0; 4]).unwrap(),
    );
    let (_, cache) = ops::batch_norm_train(&x, &w, &b, &mut rm, &mut rv, 1e-5, 0.1).unwrap();
    let dy = rand_tensor(&[3, 4, 2, 5], 10);
    check("batch_norm", &[&[4], &[4]], |g| {
        let [dw, db] = g else { unreachable!() };
        ops::batch_norm_backward(&dy, &x, &w, &cache, dw, db).unwrap();
    });

    let (g, v) = (rand_tensor(&[1, 1, 3], 11), rand_tensor(&[4, 2, 3], 12));
    let (_, cache) = ops::weight_norm(&g, &v, 2).unwrap();
    let dw = rand_tensor(&[4, 2, 3], 13);
    check("weight_norm", &[&[1, 1, 3], &[4, 2, 3]], |gr| {
        let [dg, dv] = gr else { unreachable!() };
        ops::weight_norm_backward(&dw, &g, &v, 2, &cache, dg, dv).unwrap();
    });
}
