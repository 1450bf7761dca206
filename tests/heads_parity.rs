//! CPU vs CUDA parity for the SFM head ops and heads, fp32 and bf16, on odd sizes (not
//! multiples of the tile sizes). Each test needs a GPU: ignored by a plain `cargo test`,
//! failing without CUDA when run (`cargo test -- --include-ignored`).

mod common;
use common::*;
use seisfuse::models::sfm_heads::{SetrMlaConfig, SetrMlaHead, TransUnetConfig, TransUnetHead};
use seisfuse::ops;
use seisfuse::{DType, Tensor};

#[test]
#[ignore = "needs a CUDA GPU"]
fn conv2d_parity() {
    for &(n, cin, cout, h, w, k, bias) in &[
        (2usize, 5usize, 11usize, 19usize, 23usize, 3usize, true),
        (1, 3, 9, 33, 17, 1, true),
        (3, 17, 4, 7, 5, 3, false),
        (1, 2, 8, 16, 16, 3, true),
    ] {
        parity(
            &format!("conv2d n{n} {cin}->{cout} {h}x{w} k{k} bias={bias}"),
            |d, dt| {
                let x = input(&[n, cin, h, w], 1, d, dt);
                let wt = input(&[cout, cin, k, k], 2, d, dt);
                let b = input(&[cout], 3, d, dt);
                let y = ops::conv2d(&x, &wt, bias.then_some(&b)).unwrap();
                let dy = input(&y.shape, 4, d, dt);
                // Accumulation onto existing gradients.
                let mut dw = input(&wt.shape, 5, d, dt);
                let mut db = input(&[cout], 6, d, dt);
                let dx =
                    ops::conv2d_backward(&dy, &x, &wt, &mut dw, bias.then_some(&mut db)).unwrap();
                vec![y, dx, dw, db]
            },
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn batch_norm_parity() {
    parity("batch_norm train/eval/backward", |d, dt| {
        let (n, c, h, w) = (3, 13, 9, 11);
        let x = input(&[n, c, h, w], 1, d, dt);
        let wt = input(&[c], 2, d, dt);
        let b = input(&[c], 3, d, dt);
        let mut rm = input(&[c], 4, d, DType::F32);
        let mut rv = ops::relu(&input(&[c], 5, d, DType::F32)).unwrap();
        let (y, cache) = ops::batch_norm_train(&x, &wt, &b, &mut rm, &mut rv, 1e-5, 0.1).unwrap();
        let ye = ops::batch_norm_eval(&x, &wt, &b, &rm, &rv, 1e-5).unwrap();
        let dy = input(&[n, c, h, w], 6, d, dt);
        let mut dw = input(&[c], 7, d, dt);
        let mut db = input(&[c], 8, d, dt);
        let dx = ops::batch_norm_backward(&dy, &x, &wt, &cache, &mut dw, &mut db).unwrap();
        vec![y, cache.mean, cache.rstd, rm, rv, ye, dx, dw, db]
    });
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn relu_parity() {
    parity("relu", |d, dt| {
        let x = input(&[7, 1001], 1, d, dt);
        let y = ops::relu(&x).unwrap();
        let dy = input(&[7, 1001], 2, d, dt);
        let dx = ops::relu_backward(&y, &dy).unwrap();
        vec![y, dx]
    });
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn upsample_parity() {
    for &(h, w, ho, wo) in &[
        (7usize, 9usize, 28usize, 36usize),
        (13, 11, 5, 7),
        (4, 4, 64, 64),
        (3, 5, 56, 72),
        (14, 14, 224, 224),
        (6, 4, 1, 7),
    ] {
        for ac in [false, true] {
            parity(
                &format!("bilinear {h}x{w} -> {ho}x{wo} align_corners={ac}"),
                |d, dt| {
                    let x = input(&[2, 3, h, w], 1, d, dt);
                    let y = ops::upsample_bilinear(&x, (ho, wo), ac).unwrap();
                    let dy = input(&y.shape, 2, d, dt);
                    let dx = ops::upsample_bilinear_backward(&dy, (h, w), ac).unwrap();
                    vec![y, dx]
                },
            );
        }
    }
    for k in [2usize, 4] {
        parity(&format!("nearest x{k}"), |d, dt| {
            let x = input(&[2, 3, 7, 5], 1, d, dt);
            let y = ops::upsample_nearest(&x, k).unwrap();
            let dy = input(&y.shape, 2, d, dt);
            let dx = ops::upsample_nearest_backward(&dy, k).unwrap();
            vec![y, dx]
        });
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn channels_and_pixel_loss_parity() {
    parity("concat/split/permute/pixel cross-entropy", |d, dt| {
        let a = input(&[2, 3, 5, 7], 1, d, dt);
        let b = input(&[2, 1, 5, 7], 2, d, dt);
        let c = input(&[2, 4, 5, 7], 3, d, dt);
        let cat = ops::concat_channels(&[&a, &b, &c]).unwrap();
        let mut parts = ops::split_channels(&cat, &[2, 6]).unwrap();
        let nhwc = ops::nchw_to_nhwc(&cat).unwrap();
        let back = ops::nhwc_to_nchw(&nhwc).unwrap();
        let tv: Vec<i32> = (0..70)
            .map(|i| if i % 13 == 0 { -100 } else { i * 7 % 8 })
            .collect();
        let targets = Tensor::from_i32(&[2, 5, 7], tv)
            .unwrap()
            .to_device(d)
            .unwrap();
        let l = ops::pixel_cross_entropy(&cat, &targets).unwrap();
        let g = ops::pixel_cross_entropy_backward(&cat, &targets, l.count, 1.0).unwrap();
        let second = parts.pop().unwrap();
        let first = parts.pop().unwrap();
        vec![
            cat,
            first,
            second,
            nhwc,
            back,
            g,
            Tensor::scalar_f32(l.loss),
        ]
    });
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn ms_ssim_parity() {
    // The GPU computes in fp32 (kernels/ssim.cu), the CPU reference in f64: E[x²] − μ² loses a
    // few digits in fp32 (as in PyTorch), hence 1e-3 for the gradient.
    let ms_tol = |dt: DType| if dt == DType::BF16 { 2e-2 } else { 1e-3 };
    parity_with(
        "ssim / ms_ssim / regression loss",
        &[DType::F32, DType::BF16],
        ms_tol,
        |d, dt| {
            // A smooth image and a noisy copy, two images of two channels, odd width.
            let (n, c, h, w) = (2usize, 2usize, 176usize, 183usize);
            let noise = rand_vec(n * c * h * w, 9, -0.2, 0.2);
            let clean: Vec<f32> = (0..n * c * h * w)
                .map(|i| {
                    let (p, r, col) = (i / (h * w), (i / w) % h, i % w);
                    (0.05 * r as f32 + 0.3 * p as f32).sin() * (0.04 * col as f32).cos()
                })
                .collect();
            let noisy: Vec<f32> = clean.iter().zip(&noise).map(|(a, b)| a + b).collect();
            let to = |v: Vec<f32>| {
                Tensor::from_f32(&[n, c, h, w], v)
                    .unwrap()
                    .to_dtype(dt)
                    .unwrap()
                    .to_device(d)
                    .unwrap()
            };
            let (x, y) = (to(noisy), to(clean));
            let s = ops::ssim(&x, &y, 2.0).unwrap();
            let l = ops::mse_ms_ssim_loss(&x, &y, ops::DENOISE_MSE_WEIGHT, 2.0).unwrap();
            let g =
                ops::mse_ms_ssim_loss_backward(&x, &y, ops::DENOISE_MSE_WEIGHT, 2.0, 1.0).unwrap();
            let (gm, v) = ops::ms_ssim_backward(&x, &y, 2.0, 1.0).unwrap();
            assert!((v - l.ms_ssim).abs() < 1e-6);
            vec![
                g,
                gm,
                Tensor::from_f32(&[4], vec![l.loss, l.mse, l.ms_ssim, s])
                    .unwrap()
                    .to_device(d)
                    .unwrap(),
            ]
        },
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn heads_parity() {
    // Whole heads, fp32 (errors compound over ~20 ops, hence 1e-4) and bf16 activations with fp32
    // parameters.
    let head_tol = |dt: DType| if dt == DType::BF16 { 5e-2 } else { 1e-4 };
    parity_with(
        "SETR-MLA head",
        &[DType::F32, DType::BF16],
        head_tol,
        |d, dt| {
            let cfg = SetrMlaConfig {
                in_channels: 12,
                width: 8,
                classes: 3,
                branch_upsample: 4,
            };
            let mut head = SetrMlaHead::new(cfg, 5).unwrap();
            let mut store = pack(&mut head, d);
            let feats: Vec<Tensor> = (0..4)
                .map(|i| input(&[2, 12, 3, 5], 10 + i, d, dt))
                .collect();
            let (logits, cache) = head
                .forward([&feats[0], &feats[1], &feats[2], &feats[3]], (45, 75))
                .unwrap();
            let dl = input(&logits.shape, 20, d, dt);
            let mut outs = vec![logits];
            outs.extend(head.backward(&cache, &dl, &mut store.grads).unwrap());
            for e in store.entries() {
                outs.push(store.grad(&e.name).unwrap().try_clone().unwrap());
                outs.push(store.value(&e.name).unwrap().try_clone().unwrap());
            }
            outs
        },
    );
    parity_with(
        "TransUNet head",
        &[DType::F32, DType::BF16],
        head_tol,
        |d, dt| {
            let cfg = TransUnetConfig {
                in_channels: 12,
                channels: [16, 8, 8, 8],
                skip_channels: 4,
                image_channels: 1,
                out_channels: 1,
            };
            let mut head = TransUnetHead::new(cfg, 6).unwrap();
            let mut store = pack(&mut head, d);
            let tokens = input(&[2, 12, 2, 3], 30, d, dt);
            let image = input(&[2, 1, 32, 48], 31, d, dt);
            let (pred, cache) = head.forward(&tokens, &image).unwrap();
            let dp = input(&pred.shape, 32, d, dt);
            let dt_ = head.backward(&cache, &dp, &mut store.grads).unwrap();
            let mut outs = vec![pred, dt_];
            for e in store.entries() {
                outs.push(store.grad(&e.name).unwrap().try_clone().unwrap());
            }
            outs
        },
    );
}
