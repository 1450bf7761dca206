//! Attention: the fused CPU op against a composition of plain ops, finite-difference gradients,
//! and CPU/CUDA parity for head dims 16, 20, 64 and 80.

mod common;
use common::*;
use seisfuse::ops;
use seisfuse::{DType, Device, Tensor};

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape, v.to_vec()).unwrap()
}

/// softmax(q kᵀ/√d) v for one head by matmul + softmax, from dense [N, D] blocks.
fn naive(q: &[f32], k: &[f32], v: &[f32], nq: usize, nk: usize, d: usize) -> Vec<f32> {
    let s = ops::matmul(&t(&[nq, d], q), &t(&[nk, d], k), false, true, None).unwrap();
    let mut s = s;
    ops::scale_assign(&mut s, 1.0 / (d as f32).sqrt()).unwrap();
    let p = ops::softmax(&s).unwrap();
    ops::matmul(&p, &t(&[nk, d], v), false, false, None)
        .unwrap()
        .to_vec_f32()
        .unwrap()
}

#[test]
fn fused_qkv_matches_matmul_softmax_composition() {
    let (b, n, heads, d) = (2, 7, 3, 5);
    let c = heads * d;
    let qkv = rand_tensor(&[b, n, 3 * c], 1);
    let out = ops::attention_qkv(&qkv, heads)
        .unwrap()
        .out
        .to_vec_f32()
        .unwrap();
    let x = qkv.to_vec_f32().unwrap();
    for bi in 0..b {
        for h in 0..heads {
            let part = |which: usize| -> Vec<f32> {
                (0..n)
                    .flat_map(|i| x[(bi * n + i) * 3 * c + which * c + h * d..][..d].to_vec())
                    .collect()
            };
            let want = naive(&part(0), &part(1), &part(2), n, n, d);
            for i in 0..n {
                for j in 0..d {
                    let got = out[(bi * n + i) * c + h * d + j];
                    assert!(
                        (got - want[i * d + j]).abs() < 1e-5,
                        "b{bi} h{h} i{i} d{j}: {got} vs {}",
                        want[i * d + j]
                    );
                }
            }
        }
    }
}

#[test]
fn fused_qkv_gradient_check() {
    let (b, n, heads, d) = (2, 5, 2, 3);
    let c = heads * d;
    let x = rand_vec(b * n * 3 * c, 2, -1.5, 1.5);
    let w = rand_vec(b * n * c, 3, -1.0, 1.0);
    let qkv = t(&[b, n, 3 * c], &x);
    let fwd = ops::attention_qkv(&qkv, heads).unwrap();
    let g = ops::attention_qkv_backward(&qkv, &fwd, &t(&[b, n, c], &w), heads).unwrap();
    check_grad(
        "attention_qkv",
        &x,
        &w,
        &g.to_vec_f32().unwrap(),
        1e-2,
        3e-3,
        |v| {
            ops::attention_qkv(&t(&[b, n, 3 * c], v), heads)
                .unwrap()
                .out
                .to_vec_f32()
                .unwrap()
        },
    );
}

#[test]
fn cross_attention_gradient_check() {
    let (b, nq, nk, heads, d) = (2, 3, 6, 2, 4);
    let c = heads * d;
    let (qv, kv, vv) = (
        rand_vec(b * nq * c, 4, -1.0, 1.0),
        rand_vec(b * nk * c, 5, -1.0, 1.0),
        rand_vec(b * nk * c, 6, -1.0, 1.0),
    );
    let w = rand_vec(b * nq * c, 7, -1.0, 1.0);
    let (q, k, v) = (
        t(&[b, nq, c], &qv),
        t(&[b, nk, c], &kv),
        t(&[b, nk, c], &vv),
    );
    let fwd = ops::attention(&q, &k, &v, heads).unwrap();
    let (dq, dk, dv) =
        ops::attention_backward(&q, &k, &v, &fwd, &t(&[b, nq, c], &w), heads).unwrap();
    let f = |q: &Tensor, k: &Tensor, v: &Tensor| {
        ops::attention(q, k, v, heads)
            .unwrap()
            .out
            .to_vec_f32()
            .unwrap()
    };
    check_grad(
        "cross dq",
        &qv,
        &w,
        &dq.to_vec_f32().unwrap(),
        1e-2,
        3e-3,
        |x| f(&t(&[b, nq, c], x), &k, &v),
    );
    check_grad(
        "cross dk",
        &kv,
        &w,
        &dk.to_vec_f32().unwrap(),
        1e-2,
        3e-3,
        |x| f(&q, &t(&[b, nk, c], x), &v),
    );
    check_grad(
        "cross dv",
        &vv,
        &w,
        &dv.to_vec_f32().unwrap(),
        1e-2,
        3e-3,
        |x| f(&q, &k, &t(&[b, nk, c], x)),
    );
}

#[test]
fn attention_rejects_bad_shapes() {
    let qkv = rand_tensor(&[2, 5, 18], 1);
    assert!(
        ops::attention_qkv(&qkv, 4).is_err(),
        "6 is not divisible by 4 heads"
    );
    assert!(ops::attention_qkv(&rand_tensor(&[2, 5, 19], 1), 1).is_err());
    let q = rand_tensor(&[2, 3, 8], 1);
    assert!(ops::attention(
        &q,
        &rand_tensor(&[2, 4, 6], 2),
        &rand_tensor(&[2, 4, 6], 3),
        2
    )
    .is_err());
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn attention_parity_cpu_vs_cuda() {
    let gpu = cuda("attention parity");
    // (batch, seq_q, seq_k, heads, head_dim): ViT-base, MAE decoder, SeisLM-base, odd cases.
    for &(b, nq, nk, heads, hd) in &[
        (2, 197, 197, 12, 64),
        (3, 50, 50, 16, 16),
        (2, 77, 77, 12, 20),
        (2, 37, 53, 2, 80),
    ] {
        let c = heads * hd;
        for dtype in [DType::F32, DType::BF16] {
            let run = |dev: &Device| {
                let q = rand_tensor(&[b, nq, c], 1)
                    .to_dtype(dtype)
                    .unwrap()
                    .to_device(dev)
                    .unwrap();
                let k = rand_tensor(&[b, nk, c], 2)
                    .to_dtype(dtype)
                    .unwrap()
                    .to_device(dev)
                    .unwrap();
                let v = rand_tensor(&[b, nk, c], 3)
                    .to_dtype(dtype)
                    .unwrap()
                    .to_device(dev)
                    .unwrap();
                let dout = rand_tensor(&[b, nq, c], 4)
                    .to_dtype(dtype)
                    .unwrap()
                    .to_device(dev)
                    .unwrap();
                let fwd = ops::attention(&q, &k, &v, heads).unwrap();
                let (dq, dk, dv) = ops::attention_backward(&q, &k, &v, &fwd, &dout, heads).unwrap();
                let mut outs = vec![fwd.out, fwd.lse, dq, dk, dv];
                if nq == nk {
                    let qkv = rand_tensor(&[b, nq, 3 * c], 5)
                        .to_dtype(dtype)
                        .unwrap()
                        .to_device(dev)
                        .unwrap();
                    let f = ops::attention_qkv(&qkv, heads).unwrap();
                    let g = ops::attention_qkv_backward(&qkv, &f, &dout, heads).unwrap();
                    outs.extend([f.out, g]);
                }
                outs.into_iter()
                    .map(|x| x.to_vec_f32().unwrap())
                    .collect::<Vec<_>>()
            };
            let (want, got) = (run(&Device::Cpu), run(&gpu));
            let tol = if dtype == DType::BF16 { 2e-2 } else { 1e-5 };
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let e = rel_err(g, w);
                println!("attention b{b} nq{nq} nk{nk} h{heads} d{hd} {dtype} output {i}: {e:.2e}");
                assert!(e < tol, "output {i}: {e:.3e}");
            }
        }
    }
}
