//! The SFM head ops on the CPU: finite-difference gradient checks of every backward pass,
//! hand-computable forward values, and the MS-SSIM gradient against differences in f64.

mod common;
use common::*;
use seisfuse::backend::cpu::ssim as cpu_ssim;
use seisfuse::ops;
use seisfuse::Tensor;

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape, v.to_vec()).unwrap()
}

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::from_f32(shape, vec![0.0; shape.iter().product()]).unwrap()
}

#[test]
fn conv2d_3x3_and_1x1_backward_matches_differences() {
    for (ci, &(n, cin, cout, h, w, k, with_bias)) in [
        (2usize, 3usize, 4usize, 5usize, 6usize, 3usize, true),
        (1, 2, 3, 4, 3, 1, true),
        (2, 2, 2, 3, 4, 3, false),
        (1, 1, 2, 1, 5, 3, true),
    ]
    .iter()
    .enumerate()
    {
        let xs = [n, cin, h, w];
        let ws = [cout, cin, k, k];
        let x = rand_tensor(&xs, 100 + ci as u64);
        let wt = rand_tensor(&ws, 200 + ci as u64);
        let b = rand_tensor(&[cout], 300 + ci as u64);
        let bias = if with_bias { Some(&b) } else { None };
        let y = ops::conv2d(&x, &wt, bias).unwrap();
        assert_eq!(y.shape, vec![n, cout, h, w]);
        let gw = rand_vec(y.numel(), 400 + ci as u64, -1.0, 1.0);
        let dy = t(&y.shape, &gw);
        let mut dw = zeros(&ws);
        let mut db = zeros(&[cout]);
        let dx = ops::conv2d_backward(&dy, &x, &wt, &mut dw, with_bias.then_some(&mut db)).unwrap();
        let name = format!("conv2d case {ci} x{xs:?} w{ws:?}");
        check_grad(
            &format!("{name} dx"),
            &x.to_vec_f32().unwrap(),
            &gw,
            &dx.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |v| {
                ops::conv2d(&t(&xs, v), &wt, bias)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap()
            },
        );
        check_grad(
            &format!("{name} dw"),
            &wt.to_vec_f32().unwrap(),
            &gw,
            &dw.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |v| {
                ops::conv2d(&x, &t(&ws, v), bias)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap()
            },
        );
        if with_bias {
            check_grad(
                &format!("{name} dbias"),
                &b.to_vec_f32().unwrap(),
                &gw,
                &db.to_vec_f32().unwrap(),
                1e-2,
                1e-3,
                |v| {
                    ops::conv2d(&x, &wt, Some(&t(&[cout], v)))
                        .unwrap()
                        .to_vec_f32()
                        .unwrap()
                },
            );
        }
    }
}

#[test]
fn conv2d_forward_matches_a_plain_loop_and_gradients_accumulate() {
    let (n, cin, cout, h, w) = (2, 3, 2, 4, 5);
    let x = rand_tensor(&[n, cin, h, w], 1);
    let wt = rand_tensor(&[cout, cin, 3, 3], 2);
    let b = rand_tensor(&[cout], 3);
    let y = ops::conv2d(&x, &wt, Some(&b))
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let (xv, wv, bv) = (
        x.to_vec_f32().unwrap(),
        wt.to_vec_f32().unwrap(),
        b.to_vec_f32().unwrap(),
    );
    for bi in 0..n {
        for co in 0..cout {
            for oy in 0..h as i64 {
                for ox in 0..w as i64 {
                    let mut s = bv[co] as f64;
                    for c in 0..cin {
                        for ky in 0..3i64 {
                            for kx in 0..3i64 {
                                let (iy, ix) = (oy + ky - 1, ox + kx - 1);
                                if iy >= 0 && ix >= 0 && iy < h as i64 && ix < w as i64 {
                                    s += wv[((co * cin + c) * 3 + ky as usize) * 3 + kx as usize]
                                        as f64
                                        * xv[((bi * cin + c) * h + iy as usize) * w + ix as usize]
                                            as f64;
                                }
                            }
                        }
                    }
                    let got = y[((bi * cout + co) * h + oy as usize) * w + ox as usize];
                    assert!(
                        (got as f64 - s).abs() < 1e-5,
                        "y[{bi},{co},{oy},{ox}] = {got}, expected {s}"
                    );
                }
            }
        }
    }
    // Parameter gradients accumulate (+=).
    let dy = rand_tensor(&[n, cout, h, w], 4);
    let mut dw = zeros(&[cout, cin, 3, 3]);
    let mut db = zeros(&[cout]);
    ops::conv2d_backward(&dy, &x, &wt, &mut dw, Some(&mut db)).unwrap();
    let (once_w, once_b) = (dw.to_vec_f32().unwrap(), db.to_vec_f32().unwrap());
    ops::conv2d_backward(&dy, &x, &wt, &mut dw, Some(&mut db)).unwrap();
    let twice: Vec<f32> = once_w.iter().map(|v| 2.0 * v).collect();
    assert!(rel_err(&dw.to_vec_f32().unwrap(), &twice) < 1e-6);
    let twice_b: Vec<f32> = once_b.iter().map(|v| 2.0 * v).collect();
    assert!(rel_err(&db.to_vec_f32().unwrap(), &twice_b) < 1e-6);
}

#[test]
fn batch_norm_train_backward_matches_differences_and_running_stats_are_pytorchs() {
    let xs = [3usize, 4, 3, 2];
    let c = xs[1];
    let x = rand_tensor(&xs, 11);
    let wt = rand_tensor(&[c], 12);
    let b = rand_tensor(&[c], 13);
    let mut rm = t(&[c], &[0.5, -0.5, 0.0, 1.0]);
    let mut rv = t(&[c], &[1.0, 2.0, 0.5, 1.5]);
    let (y, cache) = ops::batch_norm_train(&x, &wt, &b, &mut rm, &mut rv, 1e-5, 0.1).unwrap();
    // Running statistics: momentum 0.1, unbiased variance (PyTorch).
    let xv = x.to_vec_f32().unwrap();
    let m = (xs[0] * xs[2] * xs[3]) as f64;
    for ch in 0..c {
        let vals: Vec<f64> = (0..xs[0])
            .flat_map(|i| {
                xv[(i * c + ch) * 6..(i * c + ch) * 6 + 6]
                    .iter()
                    .map(|&v| v as f64)
                    .collect::<Vec<_>>()
            })
            .collect();
        let mu = vals.iter().sum::<f64>() / m;
        let var = vals.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / m;
        let rm0 = [0.5, -0.5, 0.0, 1.0][ch];
        let rv0 = [1.0, 2.0, 0.5, 1.5][ch];
        let want_rm = 0.9 * rm0 + 0.1 * mu;
        let want_rv = 0.9 * rv0 + 0.1 * var * m / (m - 1.0);
        assert!((rm.to_vec_f32().unwrap()[ch] as f64 - want_rm).abs() < 1e-6);
        assert!((rv.to_vec_f32().unwrap()[ch] as f64 - want_rv).abs() < 1e-6);
        let rs = 1.0 / (var + 1e-5).sqrt();
        assert!((cache.rstd.to_vec_f32().unwrap()[ch] as f64 - rs).abs() < 1e-4 * rs);
        // y normalised with the biased variance
        let yv = y.to_vec_f32().unwrap();
        let i0 = ch * 6;
        let want = (xv[i0] as f64 - mu) * rs * wt.to_vec_f32().unwrap()[ch] as f64
            + b.to_vec_f32().unwrap()[ch] as f64;
        assert!((yv[i0] as f64 - want).abs() < 1e-5);
    }
    let gw = rand_vec(y.numel(), 14, -1.0, 1.0);
    let dy = t(&xs, &gw);
    let mut dw = zeros(&[c]);
    let mut db = zeros(&[c]);
    let dx = ops::batch_norm_backward(&dy, &x, &wt, &cache, &mut dw, &mut db).unwrap();
    let fwd = |xx: &Tensor, ww: &Tensor, bb: &Tensor| {
        let mut rm = zeros(&[c]);
        let mut rv = zeros(&[c]);
        ops::batch_norm_train(xx, ww, bb, &mut rm, &mut rv, 1e-5, 0.1)
            .unwrap()
            .0
            .to_vec_f32()
            .unwrap()
    };
    check_grad(
        "batch_norm dx",
        &xv,
        &gw,
        &dx.to_vec_f32().unwrap(),
        1e-2,
        2e-3,
        |v| fwd(&t(&xs, v), &wt, &b),
    );
    check_grad(
        "batch_norm dw",
        &wt.to_vec_f32().unwrap(),
        &gw,
        &dw.to_vec_f32().unwrap(),
        1e-2,
        1e-3,
        |v| fwd(&x, &t(&[c], v), &b),
    );
    check_grad(
        "batch_norm db",
        &b.to_vec_f32().unwrap(),
        &gw,
        &db.to_vec_f32().unwrap(),
        1e-2,
        1e-3,
        |v| fwd(&x, &wt, &t(&[c], v)),
    );
}

#[test]
fn batch_norm_eval_uses_running_stats_and_bad_input_is_an_error() {
    let x = t(&[1, 2, 1, 2], &[1.0, 3.0, -2.0, 2.0]);
    let wt = t(&[2], &[2.0, 1.0]);
    let b = t(&[2], &[0.5, 0.0]);
    let rm = t(&[2], &[1.0, 0.0]);
    let rv = t(&[2], &[4.0 - 1e-5, 1.0 - 1e-5]);
    let y = ops::batch_norm_eval(&x, &wt, &b, &rm, &rv, 1e-5)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let want = [0.5, 2.0 * (2.0 / 2.0) + 0.5, -2.0, 2.0];
    assert!(rel_err(&y, &want) < 1e-5, "{y:?}");
    // One value per channel cannot be trained on; wrong shapes are errors, not panics.
    let mut rm1 = zeros(&[2]);
    let mut rv1 = zeros(&[2]);
    let one = t(&[1, 2, 1, 1], &[1.0, 2.0]);
    let e = ops::batch_norm_train(&one, &wt, &b, &mut rm1, &mut rv1, 1e-5, 0.1)
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("more than one value"), "{e:#}");
    let e = ops::batch_norm_eval(&x, &t(&[3], &[1.0; 3]), &b, &rm, &rv, 1e-5)
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("[2]"), "{e:#}");
}

#[test]
fn relu_backward_matches_differences() {
    // Values kept away from 0 so the differences do not straddle the kink.
    let mut xv = rand_vec(40, 21, -1.0, 1.0);
    for v in &mut xv {
        if v.abs() < 0.05 {
            *v += 0.1;
        }
    }
    let x = t(&[2, 4, 5], &xv);
    let y = ops::relu(&x).unwrap();
    let gw = rand_vec(40, 22, -1.0, 1.0);
    let dx = ops::relu_backward(&y, &t(&[2, 4, 5], &gw)).unwrap();
    check_grad(
        "relu",
        &xv,
        &gw,
        &dx.to_vec_f32().unwrap(),
        1e-2,
        1e-3,
        |v| ops::relu(&t(&[2, 4, 5], v)).unwrap().to_vec_f32().unwrap(),
    );
    let nan = ops::relu(&t(&[2], &[f32::NAN, -1.0]))
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!(nan[0].is_nan() && nan[1] == 0.0);
}

#[test]
fn bilinear_matches_pytorch_values() {
    // F.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]), size=(4, 4), mode='bilinear',
    // align_corners=False)
    let x = t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let y = ops::upsample_bilinear(&x, (4, 4), false)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let want = [
        1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
    ];
    assert!(rel_err(&y, &want) < 1e-7, "{y:?}");
    // Downsampling 4 → 2 averages pairs (source 0.5 and 2.5).
    let x = t(&[1, 1, 1, 4], &[1.0, 3.0, 5.0, 7.0]);
    let y = ops::upsample_bilinear(&x, (1, 2), false)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!(rel_err(&y, &[2.0, 6.0]) < 1e-7, "{y:?}");
    // Nearest ×2.
    let x = t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let y = ops::upsample_nearest(&x, 2).unwrap().to_vec_f32().unwrap();
    let want = [
        1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.,
    ];
    assert_eq!(y, want);
}

#[test]
fn upsample_backward_matches_differences() {
    for (&(h, w, ho, wo), ac) in [
        (3usize, 5usize, 12usize, 20usize),
        (5, 7, 3, 4),
        (4, 4, 7, 9),
        (2, 3, 2, 3),
        (1, 3, 4, 6),
        (6, 4, 1, 7),
    ]
    .iter()
    .flat_map(|s| [(s, false), (s, true)])
    {
        let xs = [2, 2, h, w];
        let x = rand_tensor(&xs, 31);
        let y = ops::upsample_bilinear(&x, (ho, wo), ac).unwrap();
        let gw = rand_vec(y.numel(), 32, -1.0, 1.0);
        let dx = ops::upsample_bilinear_backward(&t(&y.shape, &gw), (h, w), ac).unwrap();
        check_grad(
            &format!("bilinear {h}x{w} -> {ho}x{wo} align_corners={ac}"),
            &x.to_vec_f32().unwrap(),
            &gw,
            &dx.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |v| {
                ops::upsample_bilinear(&t(&xs, v), (ho, wo), ac)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap()
            },
        );
    }
    for k in [1usize, 2, 3] {
        let xs = [1, 3, 3, 2];
        let x = rand_tensor(&xs, 33);
        let y = ops::upsample_nearest(&x, k).unwrap();
        let gw = rand_vec(y.numel(), 34, -1.0, 1.0);
        let dx = ops::upsample_nearest_backward(&t(&y.shape, &gw), k).unwrap();
        check_grad(
            &format!("nearest x{k}"),
            &x.to_vec_f32().unwrap(),
            &gw,
            &dx.to_vec_f32().unwrap(),
            1e-2,
            1e-3,
            |v| {
                ops::upsample_nearest(&t(&xs, v), k)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap()
            },
        );
    }
}

#[test]
fn concat_split_and_permutes_are_exact_inverses() {
    let a = rand_tensor(&[2, 3, 2, 3], 41);
    let b = rand_tensor(&[2, 1, 2, 3], 42);
    let c = rand_tensor(&[2, 2, 2, 3], 43);
    let cat = ops::concat_channels(&[&a, &b, &c]).unwrap();
    assert_eq!(cat.shape, vec![2, 6, 2, 3]);
    let cv = cat.to_vec_f32().unwrap();
    // batch 1, channel 3 (= b's channel 0), pixel 4
    assert_eq!(cv[(6 + 3) * 6 + 4], b.to_vec_f32().unwrap()[6 + 4]);
    let parts = ops::split_channels(&cat, &[3, 1, 2]).unwrap();
    for (p, orig) in parts.iter().zip([&a, &b, &c]) {
        assert_eq!(p.shape, orig.shape);
        assert_eq!(p.to_vec_f32().unwrap(), orig.to_vec_f32().unwrap());
    }
    let nhwc = ops::nchw_to_nhwc(&a).unwrap();
    assert_eq!(nhwc.shape, vec![2, 2, 3, 3]);
    // a[1, 2, 1, 0] == nhwc[1, 1, 0, 2]
    assert_eq!(
        a.to_vec_f32().unwrap()[((3 + 2) * 2 + 1) * 3],
        nhwc.to_vec_f32().unwrap()[((2 + 1) * 3) * 3 + 2]
    );
    let back = ops::nhwc_to_nchw(&nhwc).unwrap();
    assert_eq!(back.shape, a.shape);
    assert_eq!(back.to_vec_f32().unwrap(), a.to_vec_f32().unwrap());
    assert!(ops::concat_channels(&[&a, &rand_tensor(&[2, 1, 3, 3], 1)]).is_err());
    assert!(ops::split_channels(&cat, &[3, 1]).is_err());
}

#[test]
fn pixel_cross_entropy_backward_matches_differences() {
    let ls = [2usize, 3, 2, 3];
    let logits = rand_tensor(&ls, 51);
    let tv: Vec<i32> = vec![0, 1, 2, -100, 1, 0, 2, 2, 1, 0, -100, 1];
    let targets = Tensor::from_i32(&[2, 2, 3], tv.clone()).unwrap();
    let l = ops::pixel_cross_entropy(&logits, &targets).unwrap();
    assert_eq!(l.count, 10);
    // The same value as cross_entropy on rows built by hand.
    let lv = logits.to_vec_f32().unwrap();
    let mut rows = vec![0.0; lv.len()];
    for n in 0..2 {
        for p in 0..6 {
            for k in 0..3 {
                rows[(n * 6 + p) * 3 + k] = lv[(n * 3 + k) * 6 + p];
            }
        }
    }
    let l2 = ops::cross_entropy(&t(&[12, 3], &rows), &targets).unwrap();
    assert!((l.loss - l2.loss).abs() < 1e-6);
    let g = ops::pixel_cross_entropy_backward(&logits, &targets, l.count, 1.0).unwrap();
    assert_eq!(g.shape, logits.shape);
    check_grad(
        "pixel_cross_entropy",
        &lv,
        &[1.0],
        &g.to_vec_f32().unwrap(),
        1e-2,
        1e-3,
        |v| vec![ops::pixel_cross_entropy(&t(&ls, v), &targets).unwrap().loss],
    );
    assert!(ops::pixel_cross_entropy(&logits, &Tensor::from_i32(&[2, 6], tv).unwrap()).is_err());
}

/// A smooth test image (values in [0, 1]) and a noisy copy.
fn image_pair(h: usize, w: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let noise = rand_vec(h * w, seed, -0.15, 0.15);
    let y: Vec<f32> = (0..h * w)
        .map(|i| {
            let (r, c) = ((i / w) as f32, (i % w) as f32);
            0.5 + 0.3 * (r * 0.11).sin() * (c * 0.07).cos() + 0.1 * ((r + c) * 0.31).sin()
        })
        .collect();
    let x = y.iter().zip(&noise).map(|(a, b)| a + b).collect();
    (x, y)
}

#[test]
fn ms_ssim_hand_computable_cases() {
    let (h, w) = (176usize, 176usize);
    let (x, y) = image_pair(h, w, 61);
    let (xt, yt) = (t(&[1, 1, h, w], &x), t(&[1, 1, h, w], &y));
    // Identical images → 1.
    assert!((ops::ms_ssim(&yt, &yt, 1.0).unwrap() - 1.0).abs() < 1e-6);
    assert!((ops::ssim(&yt, &yt, 1.0).unwrap() - 1.0).abs() < 1e-6);
    // Symmetric, and below 1 for a noisy copy.
    let a = ops::ms_ssim(&xt, &yt, 1.0).unwrap();
    let b = ops::ms_ssim(&yt, &xt, 1.0).unwrap();
    assert!((a - b).abs() < 1e-6 && a < 0.99 && a > 0.0, "{a} {b}");
    // Constant images c1, c2: σ = 0 so cs = 1 at every scale and ssim = luminance term:
    // MS-SSIM = l^w5, SSIM = l, l = (2 c1 c2 + C1)/(c1² + c2² + C1), C1 = (0.01·range)².
    let (c1, c2, range) = (0.3f64, 0.5f64, 1.0f64);
    let cc1 = (0.01 * range) * (0.01 * range);
    let l = (2.0 * c1 * c2 + cc1) / (c1 * c1 + c2 * c2 + cc1);
    let p = t(&[1, 1, h, w], &vec![c1 as f32; h * w]);
    let q = t(&[1, 1, h, w], &vec![c2 as f32; h * w]);
    let ms = ops::ms_ssim(&p, &q, 1.0).unwrap() as f64;
    assert!(
        (ms - l.powf(0.1333)).abs() < 1e-5,
        "{ms} vs {}",
        l.powf(0.1333)
    );
    assert!((ops::ssim(&p, &q, 1.0).unwrap() as f64 - l).abs() < 1e-5);
    // Shifting both images by the same constant keeps cs (contrast-structure) but changes l;
    // with data_range scaled together with the images, MS-SSIM is scale invariant.
    let xs: Vec<f32> = x.iter().map(|v| v * 255.0).collect();
    let ys: Vec<f32> = y.iter().map(|v| v * 255.0).collect();
    let s255 = ops::ms_ssim(&t(&[1, 1, h, w], &xs), &t(&[1, 1, h, w], &ys), 255.0).unwrap();
    assert!((s255 - a).abs() < 1e-5, "{s255} vs {a}");
    // PSNR of a constant error 0.1 with range 1: 20 dB.
    let z = t(&[1, 1, 2, 2], &[0.0; 4]);
    let e = t(&[1, 1, 2, 2], &[0.1; 4]);
    assert!((ops::psnr(&z, &e, 1.0).unwrap() - 20.0).abs() < 1e-4);
    // Too small for 5 scales: an error naming the minimum.
    let small = t(&[1, 1, 64, 200], &vec![0.0; 64 * 200]);
    let err = ops::ms_ssim(&small, &small, 1.0).err().unwrap();
    assert!(format!("{err:#}").contains("161"), "{err:#}");
}

/// Central differences of an f64 function at chosen elements, with the exact f32 step.
fn check_grad_at(
    name: &str,
    x: &[f32],
    analytic: &[f32],
    idx: &[usize],
    h: f32,
    tol: f64,
    f: impl Fn(&[f32]) -> f64,
) {
    let scale = idx
        .iter()
        .fold(1e-12f64, |m, &i| m.max(analytic[i].abs() as f64));
    let mut xp = x.to_vec();
    let mut worst = 0.0f64;
    for &i in idx {
        let o = xp[i];
        xp[i] = o + h;
        let hp = (xp[i] - o) as f64;
        let lp = f(&xp);
        xp[i] = o - h;
        let hm = (xp[i] - o) as f64;
        let lm = f(&xp);
        xp[i] = o;
        let num = (lp - lm) / (hp - hm);
        let err = (num - analytic[i] as f64).abs() / scale;
        worst = worst.max(err);
        assert!(err < tol, "{name}: d/dx[{i}] analytic {} vs numeric {num} (error {err:.2e} of max |g| {scale:.3e})", analytic[i]);
    }
    println!(
        "{name}: gradient check ok at {} elements, worst error {worst:.2e}",
        idx.len()
    );
}

#[test]
fn ms_ssim_and_regression_loss_backward_match_differences() {
    let (h, w) = (176usize, 177usize); // an odd width exercises the padded pooling
    let (x1, y1) = image_pair(h, w, 71);
    let (x2, y2) = image_pair(h, w, 72);
    let x: Vec<f32> = x1.iter().chain(&x2).copied().collect();
    let y: Vec<f32> = y1.iter().chain(&y2).map(|v| v * 0.9).collect();
    let shape = [2, 1, h, w];
    let (xt, yt) = (t(&shape, &x), t(&shape, &y));
    let (g, v) = ops::ms_ssim_backward(&xt, &yt, 1.0, 1.0).unwrap();
    assert!((v - ops::ms_ssim(&xt, &yt, 1.0).unwrap()).abs() < 1e-6);
    let g = g.to_vec_f32().unwrap();
    let hw = h * w;
    let idx = [
        0,
        1,
        w - 1,
        5 * w + 7,
        88 * w + 88,
        100 * w + 3,
        hw - 1,
        hw - w,
        hw + 17 * w + 150,
        2 * hw - 2,
        hw + 90 * w + 176,
    ];
    check_grad_at("ms_ssim", &x, &g, &idx, 1e-3, 2e-3, |v| {
        cpu_ssim::ms_ssim(v, &y, h, w, 1.0)
    });
    // 0.9·MSE + 0.1·(1 − MS-SSIM) against an f64 evaluation of the same formula.
    let a = ops::INTERPOLATION_MSE_WEIGHT;
    let l = ops::mse_ms_ssim_loss(&xt, &yt, a, 1.0).unwrap();
    let mse: f64 = x
        .iter()
        .zip(&y)
        .map(|(p, q)| ((p - q) as f64).powi(2))
        .sum::<f64>()
        / x.len() as f64;
    assert!((l.mse as f64 - mse).abs() < 1e-6 && (l.ms_ssim - v).abs() < 1e-6);
    assert!((l.loss - (a * l.mse + (1.0 - a) * (1.0 - l.ms_ssim))).abs() < 1e-6);
    let gl = ops::mse_ms_ssim_loss_backward(&xt, &yt, a, 1.0, 1.0)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let a64 = a as f64;
    check_grad_at(
        "0.9 mse + 0.1 (1 - ms_ssim)",
        &x,
        &gl,
        &idx,
        1e-3,
        2e-3,
        |v| {
            let m: f64 = v
                .iter()
                .zip(&y)
                .map(|(p, q)| ((p - q) as f64).powi(2))
                .sum::<f64>()
                / v.len() as f64;
            a64 * m + (1.0 - a64) * (1.0 - cpu_ssim::ms_ssim(v, &y, h, w, 1.0))
        },
    );
}

/// Values from `pytorch_msssim` 1.0.0 with torch 2.11 (float64 images) for the image pair below:
/// `ms_ssim` / `ssim(x, y, data_range=1.0)` and ∂ms_ssim/∂x by autograd. The package builds its
/// Gaussian window in float32; with a float64 window passed as `win=` it agrees with ours to
/// rounding, and with its default float32 window to about 3e-7.
#[test]
fn ms_ssim_matches_pytorch_msssim() {
    let (n, h, w) = (2usize, 176usize, 181usize);
    let mut x = Vec::with_capacity(n * h * w);
    let mut y = Vec::with_capacity(n * h * w);
    for b in 0..n {
        for r in 0..h {
            for c in 0..w {
                let (bf, rf, cf) = (b as f64, r as f64, c as f64);
                let xv = 0.5
                    + 0.3 * (0.11 * rf + bf).sin() * (0.07 * cf).cos()
                    + 0.1 * (0.31 * (rf + cf)).sin();
                let yv =
                    xv + 0.08 * (1.7 * rf + 2.3 * cf + bf).sin() + 0.05 * (0.009 * rf * cf).cos();
                x.push(xv as f32);
                y.push(yv as f32);
            }
        }
    }
    let shape = [n, 1, h, w];
    let (xt, yt) = (t(&shape, &x), t(&shape, &y));
    let ms = cpu_ssim::ms_ssim(&x, &y, h, w, 1.0);
    assert!((ms - 0.9468268664966576).abs() < 1e-12, "ms_ssim {ms}");
    assert!(
        (ms - 0.9468270919276589).abs() < 1e-6,
        "ms_ssim {ms} vs the float32 window"
    );
    let s = cpu_ssim::ssim(&x, &y, h, w, 1.0);
    assert!((s - 0.5359614377224152).abs() < 1e-12, "ssim {s}");
    assert!(
        (s - 0.5359633120888525).abs() < 1e-5,
        "ssim {s} vs the float32 window"
    );
    assert!((ops::ms_ssim(&xt, &yt, 1.0).unwrap() as f64 - ms).abs() < 1e-7);
    let (g, _) = ops::ms_ssim_backward(&xt, &yt, 1.0, 1.0).unwrap();
    let g = g.to_vec_f32().unwrap();
    let want = [
        (0usize, 1.2540819014625405e-10),
        (1, 6.176091237736138e-10),
        (180, -1.5785267174596197e-11),
        (912, -1.0259387905032027e-05),
        (16016, 3.2128706360393436e-05),
        (31855, 4.009708850927065e-11),
        (31859, 7.220717172937835e-09),
        (63711, 9.110063118679536e-11),
    ];
    for (i, v) in want {
        assert!(
            (g[i] as f64 - v).abs() < 1e-6 * v.abs() + 1e-13,
            "grad[{i}] = {} vs PyTorch {v}",
            g[i]
        );
    }
    // Anti-correlated images: negative cs terms are clamped to 0 before the powers → 0.
    let z: Vec<f32> = x.iter().map(|v| 1.0 - v).collect();
    assert_eq!(cpu_ssim::ms_ssim(&x, &z, h, w, 1.0), 0.0);
}

/// `F.interpolate(x, size, mode='bilinear', align_corners=False)` from torch 2.11 for
/// x = (arange(15)^1.5).reshape(1, 1, 3, 5) (float32), up and down.
#[test]
fn bilinear_matches_pytorch_on_uneven_sizes() {
    let x: Vec<f32> = (0..15).map(|i| (i as f64).powf(1.5) as f32).collect();
    let x = t(&[1, 1, 3, 5], &x);
    let up: [f64; 63] = [
        0.0, 0.33333337, 0.88888896, 1.8126345, 2.828427, 4.143831, 5.507691, 7.065385, 8.0,
        1.5971915, 2.0503628, 2.8056488, 3.8960001, 5.0701175, 6.523571, 8.022772, 9.704969,
        10.714286, 6.388766, 7.201452, 8.555928, 10.146097, 11.795189, 13.662793, 15.568016,
        17.623722, 18.857143, 11.18034, 12.35254, 14.306206, 16.396193, 18.52026, 20.802015,
        23.11326, 25.542473, 27.0, 19.941385, 21.305511, 23.57906, 25.973598, 28.398386, 30.964851,
        33.55808, 36.258354, 37.878517, 28.702429, 30.258486, 32.851913, 35.551003, 38.276512,
        41.12769, 44.0029, 46.97423, 48.75703, 31.622776, 33.24281, 35.94286, 38.74347, 41.569218,
        44.5153, 47.4845, 50.546188, 52.3832,
    ];
    let y = ops::upsample_bilinear(&x, (7, 9), false)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!(rel_err(&y, &up.map(|v| v as f32)) < 1e-6, "{y:?}");
    let down: [f64; 6] = [
        3.338134765625,
        6.75138521194458,
        11.684656143188477,
        28.020240783691406,
        35.806976318359375,
        44.295257568359375,
    ];
    let y = ops::upsample_bilinear(&x, (2, 3), false)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!(rel_err(&y, &down.map(|v| v as f32)) < 1e-6, "{y:?}");
}

/// `F.interpolate(x, size, mode='bilinear', align_corners=True)` (what SFM's heads use, also
/// `nn.UpsamplingBilinear2d`) from torch 2.11: the 2×2 case, and x = (arange(15)^1.5)
/// .reshape(1, 1, 3, 5) (float32) up, down and to one row.
#[test]
fn bilinear_align_corners_matches_pytorch() {
    let x = t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let y = ops::upsample_bilinear(&x, (4, 4), true)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let want: [f64; 16] = [
        1.0,
        1.3333332538604736,
        1.6666667461395264,
        2.0,
        1.6666666269302368,
        2.0,
        2.3333334922790527,
        2.6666665077209473,
        2.3333334922790527,
        2.6666665077209473,
        3.0,
        3.3333334922790527,
        3.0,
        3.3333332538604736,
        3.6666667461395264,
        4.0,
    ];
    assert!(rel_err(&y, &want.map(|v| v as f32)) < 1e-7, "{y:?}");
    let x: Vec<f32> = (0..15).map(|i| (i as f64).powf(1.5) as f32).collect();
    let x = t(&[1, 1, 3, 5], &x);
    let up: [f64; 63] = [
        0.0, 0.5, 1.0, 1.91421354, 2.82842708, 4.01228952, 5.19615221, 6.59807587, 8.0, 3.72677994,
        4.64621305, 5.56564617, 6.81234217, 8.05903816, 9.53280544, 11.0065737, 12.6699533,
        14.333333, 7.45355988, 8.79242611, 10.1312923, 11.7104712, 13.289649, 15.0533228,
        16.8169956, 18.7418308, 20.6666679, 11.1803398, 12.9386387, 14.6969385, 16.6085987,
        18.5202599, 20.5738373, 22.6274166, 24.8137093, 27.0, 17.9944859, 19.9767017, 21.9589176,
        24.0810814, 26.2032471, 28.4561253, 30.7090015, 33.0850334, 35.4610672, 24.8086319,
        27.0147648, 29.2208958, 31.5535641, 33.8862343, 36.3384094, 38.7905846, 41.3563614,
        43.9221382, 31.622776, 34.0528259, 36.482872, 39.0260468, 41.5692177, 44.2206917,
        46.8721657, 49.6276855, 52.3832016,
    ];
    let y = ops::upsample_bilinear(&x, (7, 9), true)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!(rel_err(&y, &up.map(|v| v as f32)) < 1e-6, "{y:?}");
    let down: [f64; 6] = [
        0.0,
        2.8284270763397217,
        8.0,
        31.62277603149414,
        41.569217681884766,
        52.383201599121094,
    ];
    let y = ops::upsample_bilinear(&x, (2, 3), true)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!(rel_err(&y, &down.map(|v| v as f32)) < 1e-6, "{y:?}");
    // One output row: scale 0, every row reads input row 0.
    let one: [f64; 4] = [0.0, 1.60947585105896, 4.406910419464111, 8.0];
    let y = ops::upsample_bilinear(&x, (1, 4), true)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!(rel_err(&y, &one.map(|v| v as f32)) < 1e-6, "{y:?}");
}

/// Whole heads: the analytic input and parameter gradients against central differences of
/// Σ w ⊙ output (BatchNorm in train mode, tiny sizes).
#[test]
fn heads_backward_matches_differences() {
    use seisfuse::models::sfm_heads::{SetrMlaConfig, SetrMlaHead, TransUnetConfig, TransUnetHead};
    use seisfuse::nn::{ParamStore, Parameters};
    use seisfuse::Device;
    use std::cell::RefCell;

    fn param(store: &ParamStore, name: &str) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
        let v = store.value(name).unwrap();
        (
            v.shape.clone(),
            v.to_vec_f32().unwrap(),
            grad_of(store, name),
        )
    }
    fn set_param(head: &mut impl Parameters, name: &str, v: &[f32]) {
        head.visit("", &mut |n, p| {
            if n == name {
                p.value.f32s_mut()?.copy_from_slice(v);
            }
            Ok(())
        })
        .unwrap();
    }

    // SETR-MLA: gradients of feature map 2 and of two weights.
    let cfg = SetrMlaConfig {
        in_channels: 3,
        width: 2,
        classes: 2,
        branch_upsample: 4,
    };
    // (A seed whose ReLU inputs sit within a step of 0 makes a central difference cross the
    // kink; this one has none there.)
    let mut seg = SetrMlaHead::new(cfg, 23).unwrap();
    let mut store = pack(&mut seg, &Device::Cpu);
    let head = RefCell::new(seg);
    let fs = [2usize, 3, 2, 2];
    let feats: Vec<Tensor> = (0..4).map(|i| rand_tensor(&fs, 500 + i)).collect();
    let size = (6, 10);
    let (y, cache) = head
        .borrow_mut()
        .forward([&feats[0], &feats[1], &feats[2], &feats[3]], size)
        .unwrap();
    let gw = rand_vec(y.numel(), 510, -1.0, 1.0);
    let df = head
        .borrow()
        .backward(&cache, &t(&y.shape, &gw), &mut store.grads)
        .unwrap();
    let run = |f2: &Tensor| {
        let (y, _) = head
            .borrow_mut()
            .forward([&feats[0], &feats[1], f2, &feats[3]], size)
            .unwrap();
        y.to_vec_f32().unwrap()
    };
    check_grad(
        "SETR-MLA d feature map 2",
        &feats[2].to_vec_f32().unwrap(),
        &gw,
        &df[2].to_vec_f32().unwrap(),
        1e-3,
        1e-2,
        |v| run(&t(&fs, v)),
    );
    for name in [
        "decoder.cls.weight",
        "decoder.mlahead.head3.0.weight",
        "decoder.mlahead.head5.4.weight",
    ] {
        let (shape, value, grad) = param(&store, name);
        check_grad(
            &format!("SETR-MLA d {name}"),
            &value,
            &gw,
            &grad,
            1e-3,
            1e-2,
            |v| {
                set_param(&mut *head.borrow_mut(), name, v);
                let out = run(&feats[2]);
                set_param(&mut *head.borrow_mut(), name, &value);
                assert_eq!(shape.iter().product::<usize>(), v.len());
                out
            },
        );
    }

    // TransUNet: gradients of the tokens and of the skip branch and head weights. Ten
    // conv+BN+ReLU layers at up to full resolution put many ReLU inputs near 0, and f32
    // differences then cross kinks; with every BN bias at 4 all ReLUs stay active, the head is
    // smooth, and larger steps (3e-2) beat the f32 rounding. (ReLU masking is checked by itself.)
    let cfg = TransUnetConfig {
        in_channels: 3,
        channels: [4, 3, 2, 2],
        skip_channels: 2,
        image_channels: 1,
        out_channels: 1,
    };
    let mut reg = TransUnetHead::new(cfg, 22).unwrap();
    let mut store = pack(&mut reg, &Device::Cpu);
    let head = RefCell::new(reg);
    head.borrow_mut()
        .visit("", &mut |n, p| {
            // The BatchNorm biases (Sequential index 1 of each Conv2dReLU).
            if n.ends_with(".1.bias") {
                p.value.f32s_mut()?.fill(4.0);
            }
            Ok(())
        })
        .unwrap();
    let ts = [2usize, 3, 1, 2];
    let tokens = rand_tensor(&ts, 520);
    let image = rand_tensor(&[2, 1, 16, 32], 521);
    let (y, cache) = head.borrow_mut().forward(&tokens, &image).unwrap();
    let gw = rand_vec(y.numel(), 522, -1.0, 1.0);
    let dtok = head
        .borrow()
        .backward(&cache, &t(&y.shape, &gw), &mut store.grads)
        .unwrap();
    let run = |tk: &Tensor| {
        head.borrow_mut()
            .forward(tk, &image)
            .unwrap()
            .0
            .to_vec_f32()
            .unwrap()
    };
    check_grad(
        "TransUNet d tokens",
        &tokens.to_vec_f32().unwrap(),
        &gw,
        &dtok.to_vec_f32().unwrap(),
        3e-2,
        1e-2,
        |v| run(&t(&ts, v)),
    );
    for name in [
        "decoder.conv_more.0.weight",
        "decoder.blocks.3.conv1.0.weight",
        "decoder.blocks.0.conv2.1.weight",
        "segmentation_head.0.weight",
        "segmentation_head.0.bias",
    ] {
        let (_, value, grad) = param(&store, name);
        check_grad(
            &format!("TransUNet d {name}"),
            &value,
            &gw,
            &grad,
            3e-2,
            1e-2,
            |v| {
                set_param(&mut *head.borrow_mut(), name, v);
                let out = run(&tokens);
                set_param(&mut *head.borrow_mut(), name, &value);
                out
            },
        );
    }
}

/// Bad shapes are errors that say what was expected, never panics.
#[test]
fn bad_input_is_a_clear_error() {
    use seisfuse::models::sfm_heads::{SetrMlaConfig, SetrMlaHead, TransUnetConfig, TransUnetHead};
    let msg = |r: anyhow::Result<Tensor>| format!("{:#}", r.expect_err("an error"));
    let x = rand_tensor(&[1, 3, 4, 4], 1);
    let m = msg(ops::conv2d(&x, &rand_tensor(&[2, 4, 3, 3], 2), None));
    assert!(m.contains("input channels"), "{m}");
    let m = msg(ops::conv2d(&x, &rand_tensor(&[2, 3, 5, 5], 2), None));
    assert!(m.contains("k = 1 or 3"), "{m}");
    let m = msg(ops::conv2d(
        &rand_tensor(&[3, 4, 4], 1),
        &rand_tensor(&[2, 3, 3, 3], 2),
        None,
    ));
    assert!(m.contains("NCHW"), "{m}");
    let m = msg(ops::upsample_nearest_backward(&x, 3));
    assert!(m.contains("multiple"), "{m}");
    let m = msg(ops::nhwc_to_nchw(&rand_tensor(&[2, 3], 1)));
    assert!(m.contains("4-D"), "{m}");
    let cfg = SetrMlaConfig {
        in_channels: 3,
        width: 2,
        classes: 2,
        branch_upsample: 4,
    };
    let mut seg = SetrMlaHead::new(cfg, 1).unwrap();
    let f = rand_tensor(&[1, 3, 2, 2], 3);
    let g = rand_tensor(&[1, 3, 2, 3], 4);
    let e = seg.forward([&f, &f, &g, &f], (8, 8)).err().unwrap();
    assert!(format!("{e:#}").contains("feature map 2"), "{e:#}");
    let cfg = TransUnetConfig {
        in_channels: 3,
        channels: [2, 2, 2, 2],
        skip_channels: 1,
        image_channels: 1,
        out_channels: 1,
    };
    let mut reg = TransUnetHead::new(cfg, 1).unwrap();
    let e = reg
        .forward(&f, &rand_tensor(&[1, 1, 30, 32], 5))
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("16×"), "{e:#}");
}
