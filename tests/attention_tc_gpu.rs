//! Attention variant 2 (forward and backward on bf16 tensor cores, kernels/attention_tc.cu) on
//! a GPU against the CPU twin: out and lse of the forward and the gradients of the backward, at the sfm-base (fused qkv) and seislm-base (separate
//! projections, head dim 20) layer shapes, cross-attention, every head dim, and calls variant 2
//! cannot take (which fall back to variant 1). Needs a CUDA GPU: run with
//! `cargo test --test attention_tc_gpu -- --ignored`; it fails, rather than passing quietly,
//! when CUDA cannot start. The same kernel runs without a GPU in tests/attention_tc_emu.rs.

mod common;
use common::{input, rel_err};
use seisfuse::backend::variants;
use seisfuse::ops;
use seisfuse::{DType, Device};

#[test]
#[ignore = "needs a CUDA GPU"]
fn attention_variant2_matches_cpu_twin() {
    let gpu = common::cuda("attention_variant2_matches_cpu_twin");
    variants::set("attention=2").unwrap();
    // (batch, seq_q, seq_k, heads, head_dim, fused qkv)
    for &(b, nq, nk, heads, hd, fused) in &[
        (2, 197, 197, 12, 64, true),  // sfm-base
        (2, 749, 749, 12, 20, false), // seislm-base
        (3, 50, 50, 16, 16, true),    // MAE decoder
        (2, 37, 130, 2, 80, false),   // cross-attention
        (1, 130, 65, 2, 128, false),  // D = 128 (80 KiB of shared memory: the opt-in)
        (1, 65, 7, 4, 32, false),     //
        (2, 33, 33, 3, 24, false),    // head dim 24: variant 1 runs
    ] {
        let c = heads * hd;
        let run = |d: &Device| {
            let dt = DType::BF16;
            let dout = input(&[b, nq, c], 4, d, dt);
            let outs = if fused {
                let qkv = input(&[b, nq, 3 * c], 5, d, dt);
                let f = ops::attention_qkv(&qkv, heads).unwrap();
                let g = ops::attention_qkv_backward(&qkv, &f, &dout, heads).unwrap();
                vec![f.out, f.lse, g]
            } else {
                let (q, k, v) = (
                    input(&[b, nq, c], 1, d, dt),
                    input(&[b, nk, c], 2, d, dt),
                    input(&[b, nk, c], 3, d, dt),
                );
                let f = ops::attention(&q, &k, &v, heads).unwrap();
                let (dq, dk, dv) = ops::attention_backward(&q, &k, &v, &f, &dout, heads).unwrap();
                vec![f.out, f.lse, dq, dk, dv]
            };
            outs.into_iter()
                .map(|x| x.to_vec_f32().unwrap())
                .collect::<Vec<_>>()
        };
        let (want, got) = (run(&Device::Cpu), run(&gpu));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let e = rel_err(g, w);
            println!(
                "attention=2 b{b} nq{nq} nk{nk} h{heads} d{hd} fused={fused} output {i}: {e:.2e}"
            );
            // lse (output 1) is f32 throughout; the rest bf16
            let tol = if i == 1 { 1e-5 } else { 2e-2 };
            assert!(
                e < tol,
                "b{b} nq{nq} nk{nk} h{heads} d{hd} output {i}: {e:.3e}"
            );
        }
    }
}
