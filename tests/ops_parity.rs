//! CPU vs CUDA parity for every op, fp32 and bf16, on odd sizes (not multiples of 16).
//! Each test needs a GPU: ignored by a plain `cargo test`, failing without CUDA when run
//! (`cargo test -- --include-ignored`, as scripts/gpu-run.sh does).

mod common;
use common::*;
use seisfuse::ops::{self, AdamWConfig, DropoutKey};
use seisfuse::{DType, Device, Tensor};

#[test]
#[ignore = "needs a CUDA GPU"]
fn matmul_parity() {
    for &(ash, bsh, ta, tb) in &[
        (&[37usize, 53][..], &[53usize, 29][..], false, false),
        (&[37, 53][..], &[29, 53][..], false, true),
        (&[53, 37][..], &[53, 29][..], true, false),
        (&[53, 37][..], &[29, 53][..], true, true),
        (&[3, 131, 67][..], &[67, 45][..], false, false),
        (&[3, 67, 131][..], &[3, 45, 67][..], true, true),
        (&[5, 197, 64][..], &[5, 197, 64][..], false, true),
    ] {
        parity(
            &format!("matmul {ash:?}x{bsh:?} ta={ta} tb={tb}"),
            |d, dt| {
                let (a, b) = (input(ash, 1, d, dt), input(bsh, 2, d, dt));
                let (_, out) = ops::matmul::infer_shape(ash, bsh, ta, tb).unwrap();
                let bias = input(&[*out.last().unwrap()], 3, d, dt);
                let c = ops::matmul(&a, &b, ta, tb, Some(&bias)).unwrap();
                let dc = input(&c.shape, 4, d, dt);
                let g = ops::matmul_backward(&a, &b, ta, tb, true, &dc).unwrap();
                vec![c, g.da, g.db, g.dbias.unwrap()]
            },
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn elementwise_parity() {
    parity("add/bias_add/gelu/scale", |d, dt| {
        let (a, b) = (input(&[7, 33], 1, d, dt), input(&[7, 33], 2, d, dt));
        let bias = input(&[33], 3, d, dt);
        let mut s = a.try_clone().unwrap();
        ops::scale_assign(&mut s, 0.37).unwrap();
        vec![
            ops::add(&a, &b).unwrap(),
            ops::bias_add(&a, &bias).unwrap(),
            ops::gelu(&a).unwrap(),
            ops::gelu_backward(&a, &b).unwrap(),
            s,
            ops::cast(&a, DType::F32).unwrap(),
        ]
    });
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn layer_norm_parity() {
    parity("layer_norm", |d, dt| {
        let c = 771;
        let x = input(&[9, c], 1, d, dt);
        let w = input(&[c], 2, d, dt);
        let b = input(&[c], 3, d, dt);
        let (y, cache) = ops::layer_norm(&x, &w, &b, 1e-6).unwrap();
        let dy = input(&[9, c], 4, d, dt);
        let mut dw = input(&[c], 5, d, dt);
        let mut db = input(&[c], 6, d, dt);
        let dx = ops::layer_norm_backward(&dy, &x, &w, &cache, (&mut dw, &mut db), None).unwrap();
        vec![y, dx, dw, db, cache.mean, cache.rstd]
    });
}

/// The fused residual add + LayerNorm (one warp per row; 16-byte loads at 768 columns, scalar
/// at 771 and on a view at an odd offset) and the backward with a residual gradient.
#[test]
#[ignore = "needs a CUDA GPU"]
fn add_layer_norm_parity() {
    for c in [768usize, 771] {
        parity("add_layer_norm", |d, dt| {
            let x = input(&[9, c], 1, d, dt);
            let r = input(&[9, c], 7, d, dt);
            let w = input(&[c], 2, d, dt);
            let b = input(&[c], 3, d, dt);
            let (s, y, cache) = ops::add_layer_norm(&x, &r, &w, &b, 1e-6).unwrap();
            // a view one element in: no 16-byte loads
            let big = input(&[9 * c + 1], 8, d, dt);
            let xo = big.view(1, &[9, c]).unwrap();
            let (so, yo, _) = ops::add_layer_norm(&xo, &r, &w, &b, 1e-6).unwrap();
            let dy = input(&[9, c], 4, d, dt);
            let dres = input(&[9, c], 9, d, dt);
            let mut dw = input(&[c], 5, d, dt);
            let mut db = input(&[c], 6, d, dt);
            let g = (&mut dw, &mut db);
            let dx = ops::layer_norm_backward(&dy, &s, &w, &cache, g, Some(&dres)).unwrap();
            vec![s, y, so, yo, dx, dw, db, cache.mean, cache.rstd]
        });
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn softmax_and_losses_parity() {
    parity("softmax/losses", |d, dt| {
        let x = input(&[13, 1037], 1, d, dt);
        let y = ops::softmax(&x).unwrap();
        let dy = input(&[13, 1037], 2, d, dt);
        let dx = ops::softmax_backward(&y, &dy).unwrap();
        let logits = input(&[11, 7], 3, d, dt);
        let targets = Tensor::from_i32(&[11], vec![0, 6, -100, 3, 2, 1, 1, 5, 4, 7, 0])
            .unwrap()
            .to_device(d)
            .unwrap();
        let ce = ops::cross_entropy(&logits, &targets).unwrap();
        let dce = ops::cross_entropy_backward(&logits, &targets, ce.count, 1.0).unwrap();
        let soft = ops::softmax(&input(&[11, 7], 4, d, dt)).unwrap();
        let sce = ops::soft_cross_entropy(&logits, &soft).unwrap();
        let dsce = ops::soft_cross_entropy_backward(&logits, &soft, 1.0).unwrap();
        let other = input(&[11, 7], 5, d, dt);
        let mse = ops::mse(&logits, &other).unwrap();
        let dmse = ops::mse_backward(&logits, &other, 1.0).unwrap();
        let scalars =
            Tensor::from_f32(&[4], vec![ce.loss, ce.count as f32, sce.loss, mse.loss]).unwrap();
        vec![y, dx, dce, dsce, dmse, scalars]
    });
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn dropout_and_reductions_parity() {
    parity("dropout/sum/mean", |d, dt| {
        let x = input(&[1001, 3], 1, d, dt);
        let key = DropoutKey {
            seed: 7,
            step: 11,
            stream_id: 2,
        };
        vec![
            ops::dropout(&x, 0.25, key).unwrap(),
            ops::sum(&x).unwrap(),
            ops::mean(&x).unwrap(),
            ops::sum_squares(&x).unwrap(),
        ]
    });
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn adamw_and_clip_parity() {
    let gpu = cuda("adamw");
    let cfg = AdamWConfig {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.05,
    };
    let run = |d: &Device| {
        let mut p = rand_tensor(&[1234], 1).to_device(d).unwrap();
        let mut m = Tensor::zeros(&[1234], DType::F32, d).unwrap();
        let mut v = Tensor::zeros(&[1234], DType::F32, d).unwrap();
        let mut pb = Tensor::zeros(&[1234], DType::BF16, d).unwrap();
        for t in 1..=3 {
            let mut g = rand_tensor(&[1234], 10 + t as u64).to_device(d).unwrap();
            ops::clip_grad_norm(&mut [&mut g], 5.0).unwrap();
            ops::adamw_step(&mut p, &g, &mut m, &mut v, Some(&mut pb), &cfg, t).unwrap();
        }
        [p, m, v, pb].map(|t| t.to_vec_f32().unwrap())
    };
    let (want, got) = (run(&Device::Cpu), run(&gpu));
    for i in 0..4 {
        let e = rel_err(&got[i], &want[i]);
        assert!(
            e < if i == 3 { 1e-2 } else { 1e-5 },
            "adamw output {i}: {e:.3e}"
        );
    }
}
