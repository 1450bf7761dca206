//! Split-K for the weight-gradient products of matmul variant 2 (`matmul_tc::split_k`): the
//! three launches the CUDA wrapper plans (`SplitKViews::plans`: the equal splits as one
//! batched tensor-core launch, the shorter last split, the ordered sum of the f32 slices into
//! C) replayed under the CPU emulation of CUDA (tests/common/emu.rs) over CPU tensors, and
//! compared with a double-precision product of the same bf16 inputs. Emulated blocks run in a
//! shuffled order; a second run must give the same bits.

mod common;
use common::{emu, rand_vec, rel_err_f64};
use seisfuse::backend::api::matmul::MatmulShape;
use seisfuse::backend::cuda::matmul_tc::{split_k, SplitK, SplitKViews};
use seisfuse::{DType, Tensor};

fn shape(m: usize, n: usize, k: usize) -> MatmulShape {
    MatmulShape {
        batch: 1,
        m,
        n,
        k,
        ta: true,
        tb: false,
        a_stride: m * k,
        b_stride: k * n,
    }
}

/// C (+)= Aᵀ·B with A stored [K, M] and B [K, N], through the split plan; returns C.
fn case(m: usize, n: usize, k: usize, c_dt: DType, accumulate: bool) -> Vec<f32> {
    let s = shape(m, n, k);
    let sk = split_k(&s, false).expect("a split for this shape");
    let bf = |v: Vec<f32>, shape: &[usize]| {
        Tensor::from_f32(shape, v)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap()
    };
    let a = bf(rand_vec(k * m, 1, -1.0, 1.0), &[k, m]);
    let b = bf(rand_vec(k * n, 2, -1.0, 1.0), &[k, n]);
    let c0 = Tensor::from_f32(&[m, n], rand_vec(m * n, 3, -1.0, 1.0))
        .unwrap()
        .to_dtype(c_dt)
        .unwrap();
    let (av, bv, cv) = (
        a.to_vec_f32().unwrap(),
        b.to_vec_f32().unwrap(),
        c0.to_vec_f32().unwrap(),
    );
    let mut want = vec![0f64; m * n];
    for l in 0..k {
        for i in 0..m {
            let x = av[l * m + i] as f64;
            for j in 0..n {
                want[i * n + j] += x * bv[l * n + j] as f64;
            }
        }
    }
    if accumulate {
        for (w, c) in want.iter_mut().zip(&cv) {
            *w += *c as f64;
        }
    }
    let len = sk.splits * m * n;
    let ws = Tensor::from_f32(&[len], vec![f32::NAN; len]).unwrap();
    let c = c0.try_clone().unwrap();
    let views = SplitKViews::new(&s, sk, &a, &b, &ws).unwrap();
    let t = std::time::Instant::now();
    for p in views.plans(&s, &c, &a, &b, &ws, accumulate).unwrap() {
        emu::run(&p);
    }
    let got = c.to_vec_f32().unwrap();
    let e = rel_err_f64(&got, &want);
    println!(
        "split-K {m}×{n}×{k} C {c_dt} acc {accumulate}: {sk:?}, rel. error {e:.2e} \
         (emulated in {:.1?})",
        t.elapsed()
    );
    let tol = if c_dt == DType::BF16 { 4e-3 } else { 1e-6 };
    assert!(e <= tol, "rel. error {e}");
    got
}

#[test]
fn the_split_depends_on_the_shape_only() {
    // seislm-base's FFN weight gradients at batch 64 (K = 64 × 749 frames): 48 tiles
    let s = shape(3072, 240, 47936);
    assert_eq!(
        split_k(&s, false),
        Some(SplitK {
            splits: 11,
            k_split: 4384
        })
    );
    // sfm-base's qkv weight gradient at batch 64: 108 tiles
    let sk = split_k(&shape(2304, 768, 12608), false).unwrap();
    assert_eq!((sk.splits, sk.k_split), (5, 2528));
    // no split: bias, non-transposed A, a full grid, too short a K
    assert_eq!(split_k(&shape(2304, 768, 12608), true), None);
    assert_eq!(split_k(&shape(4096, 4096, 12608), false), None);
    assert_eq!(split_k(&shape(768, 768, 300), false), None);
    let mut nn = shape(768, 768, 12608);
    nn.ta = false;
    assert_eq!(split_k(&nn, false), None);
}

#[test]
fn small_splits_with_a_shorter_last_one() {
    if !emu::available("tc_splitk_emu") {
        return;
    }
    case(40, 24, 600, DType::F32, false);
    let first = case(136, 72, 1000, DType::F32, true);
    assert_eq!(first, case(136, 72, 1000, DType::F32, true));
    case(24, 16, 777, DType::BF16, true);
}

/// seislm-base's FFN output weight gradient for one waveform: dW[240, 3072] = dYᵀ·X with
/// K = 749 frames (48 tiles, 2 splits of 384 and 365).
#[test]
fn seislm_base_ffn_weight_gradient() {
    if !emu::available("tc_splitk_emu") {
        return;
    }
    case(240, 3072, 749, DType::F32, true);
}
