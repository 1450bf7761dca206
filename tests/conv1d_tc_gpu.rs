//! conv1d variant 2 (stride-1 grouped convolutions on bf16 tensor cores, kernels/conv1d_tc.cu)
//! on a GPU against the CPU twin: y, dx, dw (accumulated) and db of seislm-base's positional
//! conv, small odd shapes, and calls variant 2 cannot take (stride 2, the feature extractor's;
//! they fall back to variant 1). Needs a CUDA GPU: run with
//! `cargo test --test conv1d_tc_gpu -- --ignored`; it fails, rather than passing quietly, when
//! CUDA cannot start. The same kernels run without a GPU in tests/conv1d_tc_emu.rs.

mod common;
use common::{input, rel_err};
use seisfuse::backend::variants;
use seisfuse::ops;
use seisfuse::{DType, Device};

#[test]
#[ignore = "needs a CUDA GPU"]
fn conv1d_variant2_matches_cpu_twin() {
    let gpu = common::cuda("conv1d_variant2_matches_cpu_twin");
    variants::set("conv1d=2").unwrap();
    // (batch, cin, cout, lin, k, stride, pad, groups)
    for &(b, cin, cout, lin, k, stride, pad, groups) in &[
        (4, 240, 240, 749, 128, 1, 64, 16), // seislm-base's positional conv
        (2, 6, 10, 37, 5, 1, 2, 2),
        (1, 3, 20, 300, 19, 1, 9, 1),
        (3, 8, 8, 130, 16, 1, 0, 4),
        (1, 24, 6, 150, 100, 1, 50, 2),
        (2, 30, 30, 77, 32, 1, 31, 2),
        (2, 64, 64, 99, 3, 2, 0, 1), // strided: variant 1 runs
    ] {
        let run = |d: &Device| {
            let dt = DType::BF16;
            let x = input(&[b, cin, lin], 1, d, dt);
            let w = input(&[cout, cin / groups, k], 2, d, dt);
            let bias = input(&[cout], 3, d, dt);
            let y = ops::conv1d(&x, &w, Some(&bias), stride, pad, groups).unwrap();
            let dy = input(&y.shape, 4, d, dt);
            let mut dw = input(&w.shape, 5, d, dt);
            let mut db = input(&[cout], 6, d, dt);
            let dx = ops::conv1d_backward(
                &dy,
                &x,
                &w,
                stride,
                pad,
                groups,
                &mut dw,
                Some(&mut db),
                true,
            )
            .unwrap()
            .unwrap();
            [y, dx, dw, db].map(|t| t.to_vec_f32().unwrap())
        };
        let (want, got) = (run(&Device::Cpu), run(&gpu));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let e = rel_err(g, w);
            println!(
                "conv1d=2 b{b} cin{cin} cout{cout} lin{lin} k{k} s{stride} p{pad} g{groups} output {i}: {e:.2e}"
            );
            assert!(e < 1e-2, "b{b} cin{cin} k{k} output {i}: {e:.3e}");
        }
    }
}
