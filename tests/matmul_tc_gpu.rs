//! Matmul variant 2 (bf16 tensor cores, kernels/matmul_tc.cu) on a GPU against the CPU twin:
//! every transpose, a batch, a bias, accumulation, the sfm-base qkv and seislm-base FFN shapes,
//! and shapes variant 2 cannot take (which fall back to variant 1). Needs a CUDA GPU: run with
//! `cargo test --test matmul_tc_gpu -- --ignored`; it fails, rather than passing quietly, when
//! CUDA cannot start. The same kernel runs without a GPU in tests/tc_kernel_emu.rs. Then
//! variant 3's f32 products on TF32 tensor cores (kernels/matmul_tf32.cu; without a GPU in
//! tests/tc_tf32_emu.rs).

mod common;
use common::{input, rel_err};
use seisfuse::backend::variants;
use seisfuse::ops;
use seisfuse::{DType, Device, Tensor};

#[test]
#[ignore = "needs a CUDA GPU"]
fn matmul_variant2_matches_cpu_twin() {
    let gpu = common::cuda("matmul_variant2_matches_cpu_twin");
    // variant 3 runs bf16 products exactly as variant 2 does; both tests of this file set it
    // (the choice is global and the tests run in parallel)
    variants::set("matmul=3").unwrap();
    for &(ash, bsh, ta, tb) in &[
        (&[197usize, 768][..], &[2304usize, 768][..], false, true),
        (&[149, 768][..], &[3072, 768][..], false, true),
        (&[197, 2304][..], &[2304, 768][..], false, false),
        (&[197, 2304][..], &[197, 768][..], true, false),
        (&[40, 37][..], &[24, 40][..], true, true),
        (&[3, 131, 72][..], &[72, 136][..], false, false),
        (&[5, 197, 64][..], &[5, 197, 64][..], false, true),
        // not for variant 2 (K = 53 is A's contiguous dimension): variant 1 runs
        (&[37, 53][..], &[53, 29][..], false, false),
    ] {
        let run = |d: &Device| -> Vec<Tensor> {
            let (a, b) = (input(ash, 1, d, DType::BF16), input(bsh, 2, d, DType::BF16));
            let (_, out) = ops::matmul::infer_shape(ash, bsh, ta, tb).unwrap();
            let bias = input(&[*out.last().unwrap()], 3, d, DType::BF16);
            let c = ops::matmul(&a, &b, ta, tb, Some(&bias)).unwrap();
            let dc = input(&c.shape, 4, d, DType::BF16);
            let g = ops::matmul_backward(&a, &b, ta, tb, false, &dc).unwrap();
            vec![c, g.da, g.db]
        };
        let (want, got) = (run(&Device::Cpu), run(&gpu));
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            let e = rel_err(&g.to_vec_f32().unwrap(), &w.to_vec_f32().unwrap());
            println!("matmul=2 {ash:?}x{bsh:?} ta={ta} tb={tb} output {i}: rel err {e:.2e}");
            assert!(
                e < 1e-2,
                "{ash:?}x{bsh:?} output {i}: relative error {e:.3e}"
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn matmul_variant3_tf32_matches_cpu_twin() {
    let gpu = common::cuda("matmul_variant3_tf32_matches_cpu_twin");
    variants::set("matmul=3").unwrap();
    for &(ash, bsh, ta, tb) in &[
        (&[197usize, 768][..], &[2304usize, 768][..], false, true),
        (&[197, 2304][..], &[2304, 768][..], false, false),
        // sfm-base's qkv weight gradient at batch 64 (K = 12,608 tokens): split along K
        (&[12608, 2304][..], &[12608, 768][..], true, false),
        (&[40, 36][..], &[24, 40][..], true, true),
        (&[3, 131, 72][..], &[72, 136][..], false, false),
        // not for the TF32 kernels (K = 53 is A's contiguous dimension): variant 1 runs
        (&[37, 53][..], &[53, 29][..], false, false),
    ] {
        let run = |d: &Device| -> Vec<Tensor> {
            let (a, b) = (input(ash, 1, d, DType::F32), input(bsh, 2, d, DType::F32));
            let (_, out) = ops::matmul::infer_shape(ash, bsh, ta, tb).unwrap();
            let bias = input(&[*out.last().unwrap()], 3, d, DType::F32);
            let c = ops::matmul(&a, &b, ta, tb, Some(&bias)).unwrap();
            let dc = input(&c.shape, 4, d, DType::F32);
            let g = ops::matmul_backward(&a, &b, ta, tb, false, &dc).unwrap();
            vec![c, g.da, g.db]
        };
        let (want, got) = (run(&Device::Cpu), run(&gpu));
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            let e = rel_err(&g.to_vec_f32().unwrap(), &w.to_vec_f32().unwrap());
            println!("matmul=3 f32 {ash:?}x{bsh:?} ta={ta} tb={tb} output {i}: rel err {e:.2e}");
            // tf32 keeps 10 mantissa bits: ~1e-4 relative per product
            assert!(
                e < 2e-3,
                "{ash:?}x{bsh:?} output {i}: relative error {e:.3e}"
            );
        }
    }
    assert_eq!(variants::variant("matmul").unwrap(), 3);
}
