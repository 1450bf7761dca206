//! The binding ops of the fusion models (src/ops/fusion.rs): finite-difference gradient checks
//! of projection + L2 normalisation, the scaled similarity matrix (embeddings and logit scale,
//! the clamp included) and the symmetric InfoNCE loss on the CPU; the loss against a plain
//! f64 recomputation; and CPU/CUDA parity (ignored without a GPU, failing when CUDA does not
//! start).

mod common;
use common::*;
use seisfuse::backend::cuda::CudaBackend;
use seisfuse::ops::{self, MAX_LOG_LOGIT_SCALE};
use seisfuse::{DType, Device, Tensor};

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape, v.to_vec()).unwrap()
}

fn scalar(v: f32) -> Tensor {
    t(&[1], &[v])
}

#[test]
fn project_l2norm_rows_are_unit_and_match_a_plain_loop() {
    let (rows, d_in, d_out) = (5, 7, 4);
    let x = rand_vec(rows * d_in, 1, -1.0, 1.0);
    let w = rand_vec(d_out * d_in, 2, -1.0, 1.0);
    let out = ops::project_l2norm(&t(&[rows, d_in], &x), &t(&[d_out, d_in], &w)).unwrap();
    assert_eq!(out.e.shape, [rows, d_out]);
    let e = out.e.to_vec_f32().unwrap();
    let norms = out.norm.to_vec_f32().unwrap();
    for r in 0..rows {
        let z: Vec<f64> = (0..d_out)
            .map(|j| {
                (0..d_in)
                    .map(|k| x[r * d_in + k] as f64 * w[j * d_in + k] as f64)
                    .sum()
            })
            .collect();
        let n = z.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norms[r] as f64 - n).abs() < 1e-5 * n);
        for j in 0..d_out {
            assert!((e[r * d_out + j] as f64 - z[j] / n).abs() < 1e-6);
        }
    }
}

#[test]
fn project_l2norm_gradient_check() {
    let (rows, d_in, d_out) = (4, 6, 5);
    let x = rand_vec(rows * d_in, 3, -1.0, 1.0);
    let w = rand_vec(d_out * d_in, 4, -1.0, 1.0);
    let up = rand_vec(rows * d_out, 5, -1.0, 1.0);
    let (xt, wt) = (t(&[rows, d_in], &x), t(&[d_out, d_in], &w));
    let fwd = ops::project_l2norm(&xt, &wt).unwrap();
    // dw accumulates: start from ones and subtract them afterwards.
    let mut dw = t(&[d_out, d_in], &vec![1.0; d_out * d_in]);
    let dx = ops::project_l2norm_backward(&xt, &wt, &fwd, &t(&[rows, d_out], &up), &mut dw)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let dw: Vec<f32> = dw.to_vec_f32().unwrap().iter().map(|v| v - 1.0).collect();
    let f = |x: &Tensor, w: &Tensor| ops::project_l2norm(x, w).unwrap().e.to_vec_f32().unwrap();
    check_grad("project_l2norm dx", &x, &up, &dx, 1e-2, 2e-3, |v| {
        f(&t(&[rows, d_in], v), &wt)
    });
    check_grad("project_l2norm dw", &w, &up, &dw, 1e-2, 2e-3, |v| {
        f(&xt, &t(&[d_out, d_in], v))
    });
}

#[test]
fn similarity_gradient_check_with_the_logit_scale() {
    let (ni, nw, dim) = (3, 4, 5);
    let ei = rand_vec(ni * dim, 6, -1.0, 1.0);
    let ew = rand_vec(nw * dim, 7, -1.0, 1.0);
    let up = rand_vec(ni * nw, 8, -1.0, 1.0);
    for s in [(1.0f32 / 0.07).ln(), 0.3] {
        let (a, b, st) = (t(&[ni, dim], &ei), t(&[nw, dim], &ew), scalar(s));
        let logits = ops::similarity(&a, &b, &st, MAX_LOG_LOGIT_SCALE).unwrap();
        let mut ds = scalar(0.5);
        let (dei, dew) = ops::similarity_backward(
            &a,
            &b,
            &st,
            &logits,
            &t(&[ni, nw], &up),
            MAX_LOG_LOGIT_SCALE,
            &mut ds,
        )
        .unwrap();
        let f = |a: &Tensor, b: &Tensor, s: f32| {
            ops::similarity(a, b, &scalar(s), MAX_LOG_LOGIT_SCALE)
                .unwrap()
                .to_vec_f32()
                .unwrap()
        };
        check_grad(
            "similarity dei",
            &ei,
            &up,
            &dei.to_vec_f32().unwrap(),
            1e-2,
            2e-3,
            |v| f(&t(&[ni, dim], v), &b, s),
        );
        check_grad(
            "similarity dew",
            &ew,
            &up,
            &dew.to_vec_f32().unwrap(),
            1e-2,
            2e-3,
            |v| f(&a, &t(&[nw, dim], v), s),
        );
        let got = ds.to_vec_f32().unwrap()[0] - 0.5;
        check_grad(
            "similarity d log_scale",
            &[s],
            &up,
            &[got],
            1e-3,
            2e-3,
            |v| f(&a, &b, v[0]),
        );
    }
}

#[test]
fn the_clamped_logit_scale_gets_no_gradient() {
    let (n, dim) = (3, 4);
    let a = t(&[n, dim], &rand_vec(n * dim, 9, -1.0, 1.0));
    let b = t(&[n, dim], &rand_vec(n * dim, 10, -1.0, 1.0));
    let s = scalar(5.0); // exp(5) > 100
    let logits = ops::similarity(&a, &b, &s, MAX_LOG_LOGIT_SCALE).unwrap();
    let at100 = ops::similarity(&a, &b, &scalar(MAX_LOG_LOGIT_SCALE), MAX_LOG_LOGIT_SCALE).unwrap();
    assert_eq!(
        logits.to_vec_f32().unwrap(),
        at100.to_vec_f32().unwrap(),
        "exp(s) is clamped at 100"
    );
    let mut ds = scalar(0.0);
    let up = t(&[n, n], &rand_vec(n * n, 11, -1.0, 1.0));
    ops::similarity_backward(&a, &b, &s, &logits, &up, MAX_LOG_LOGIT_SCALE, &mut ds).unwrap();
    assert_eq!(ds.to_vec_f32().unwrap()[0], 0.0);
}

/// The symmetric InfoNCE loss in f64.
fn infonce_f64(l: &[f32], n: usize) -> f64 {
    let mut total = 0.0;
    for i in 0..n {
        let row: Vec<f64> = (0..n).map(|j| l[i * n + j] as f64).collect();
        let col: Vec<f64> = (0..n).map(|j| l[j * n + i] as f64).collect();
        for line in [row, col] {
            let m = line.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + line.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            total += lse - l[i * n + i] as f64;
        }
    }
    total / (2 * n) as f64
}

#[test]
fn infonce_matches_f64_and_its_gradient_checks() {
    let n = 5;
    let l: Vec<f32> = rand_vec(n * n, 12, -4.0, 4.0);
    let lt = t(&[n, n], &l);
    let fwd = ops::infonce(&lt).unwrap();
    assert_eq!(fwd.loss.count, n);
    let want = infonce_f64(&l, n);
    assert!(
        (fwd.loss.loss as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
        "{} vs {want}",
        fwd.loss.loss
    );
    let g = ops::infonce_backward(&lt, &fwd, 1.0).unwrap();
    check_grad(
        "infonce dlogits",
        &l,
        &[1.0],
        &g.to_vec_f32().unwrap(),
        1e-2,
        2e-3,
        |v| vec![ops::infonce(&t(&[n, n], v)).unwrap().loss.loss],
    );
    // Rows of the gradient sum to zero (each softmax sums to one, as does each one-hot).
    let gv = g.to_vec_f32().unwrap();
    assert!(gv.iter().sum::<f32>().abs() < 1e-5);
}

#[test]
fn recall_at_1_reads_the_diagonal() {
    // Row 1's best is column 0; column 2's best is row 0.
    let l = t(
        &[3, 3],
        &[
            5.0, 0.0, 6.0, //
            9.0, 1.0, 0.0, //
            0.0, 0.0, 2.0,
        ],
    );
    let (r, c) = ops::recall_at_1(&l).unwrap();
    assert!((r - 1.0 / 3.0).abs() < 1e-6, "{r}");
    assert!((c - 1.0 / 3.0).abs() < 1e-6, "{c}");
}

#[test]
fn fusion_ops_reject_bad_shapes() {
    let x = rand_tensor(&[3, 4], 1);
    assert!(ops::project_l2norm(&x, &rand_tensor(&[5, 3], 2)).is_err());
    assert!(ops::similarity(&x, &rand_tensor(&[3, 5], 2), &scalar(1.0), 4.6).is_err());
    assert!(ops::similarity(&x, &x, &t(&[2], &[1.0, 2.0]), 4.6).is_err());
    assert!(ops::infonce(&rand_tensor(&[3, 4], 3)).is_err());
    assert!(ops::infonce(&rand_tensor(&[3, 4, 1], 3)).is_err());
}

/// The CUDA device; a failure (not a skip) when CUDA cannot start.
fn require_cuda() -> Device {
    match CudaBackend::get(0) {
        Ok(b) => Device::Cuda(b),
        Err(e) => panic!("this test needs a CUDA GPU: {e:#}"),
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn fusion_ops_parity_cpu_vs_cuda() {
    let gpu = require_cuda();
    // (rows, d_in, d_out): the tiny presets, odd sizes, the base presets (768 → 512, 240 → 512).
    for &(rows, d_in, d_out) in &[(8, 64, 32), (5, 37, 19), (64, 768, 512), (64, 240, 512)] {
        for dtype in [DType::F32, DType::BF16] {
            let run = |d: &Device| -> Vec<Tensor> {
                let x = input(&[rows, d_in], 1, d, dtype);
                let w = input(&[d_out, d_in], 2, d, dtype);
                let up = input(&[rows, d_out], 3, d, dtype);
                let fwd = ops::project_l2norm(&x, &w).unwrap();
                let mut dw = input(&[d_out, d_in], 4, d, dtype);
                let dx = ops::project_l2norm_backward(&x, &w, &fwd, &up, &mut dw).unwrap();
                // the similarity and the loss on the projected embeddings (square batch)
                let y = input(&[rows, d_in], 5, d, dtype);
                let ew = ops::project_l2norm(&y, &w).unwrap().e;
                let s = scalar((1.0f32 / 0.07).ln()).to_device(d).unwrap();
                let logits = ops::similarity(&fwd.e, &ew, &s, MAX_LOG_LOGIT_SCALE).unwrap();
                let nce = ops::infonce(&logits).unwrap();
                let dl = ops::infonce_backward(&logits, &nce, 1.0).unwrap();
                let mut ds = scalar(0.25).to_device(d).unwrap();
                let (dei, dew) = ops::similarity_backward(
                    &fwd.e,
                    &ew,
                    &s,
                    &logits,
                    &dl,
                    MAX_LOG_LOGIT_SCALE,
                    &mut ds,
                )
                .unwrap();
                let loss = scalar(nce.loss.loss);
                vec![
                    fwd.e, fwd.norm, dx, dw, logits, nce.lse, loss, dl, dei, dew, ds,
                ]
            };
            let (want, got) = (run(&Device::Cpu), run(&gpu));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.shape, w.shape, "output {i}");
                let e = rel_err(&g.to_vec_f32().unwrap(), &w.to_vec_f32().unwrap());
                println!("fusion ops rows {rows} {d_in}→{d_out} {dtype} output {i}: {e:.2e}");
                assert!(e < tol(dtype), "output {i}: {e:.3e}");
            }
        }
    }
    // rectangular similarity (retrieval of 7 waveforms for 3 images)
    let run = |d: &Device| {
        let a = input(&[3, 33], 6, d, DType::F32);
        let b = input(&[7, 33], 7, d, DType::F32);
        let s = scalar(2.0).to_device(d).unwrap();
        ops::similarity(&a, &b, &s, MAX_LOG_LOGIT_SCALE)
            .unwrap()
            .to_vec_f32()
            .unwrap()
    };
    let e = rel_err(&run(&gpu), &run(&Device::Cpu));
    assert!(e < 1e-5, "rectangular similarity: {e:.3e}");
}
