//! Runs kernels/matmul_tc.cu (matmul variant 2, bf16 tensor cores) — the very source NVRTC
//! compiles, common.cuh and tc.cuh included — under the CPU emulation of CUDA
//! (tests/common/emu.rs over tools/cuda_emu/emu.h: warps executed as units, mma.sync / ldmatrix
//! with the PTX ISA's fragment layouts, cp.async deferred to its wait with the target poisoned,
//! launch limits, shuffled block order) at the layer shapes of sfm-base and seislm-base. The
//! launch is the wrapper's own: `matmul_tc::plan`'s grid and shared memory, and the kernel's
//! Rust declaration (`MatmulTcNn` ...) fills the argument list, replayed by the emulator. The
//! reference is a double product of the same bf16 inputs, with the epilogue's GELU or GELU
//! derivative in double. The small odd shapes run in tests/kernel_emu.rs (run.sh). Without a
//! C++20 compiler it is reported as skipped (a failure under SEISFUSE_REQUIRE_EMU).

mod common;

use common::{emu, rand_vec, rel_err_f64};
use seisfuse::backend::api::matmul::MatmulShape;
use seisfuse::backend::cuda::launch::Planned;
use seisfuse::backend::cuda::matmul_tc::Epilogue::{self, DGelu, Gelu, None as Plain};
use seisfuse::backend::cuda::matmul_tc::{self, MatmulTcNn, MatmulTcNt, MatmulTcTn, MatmulTcTt};
use seisfuse::{DType, Tensor};

fn gelu(v: f64) -> f64 {
    0.5 * v * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2))
}

fn gelu_grad(v: f64) -> f64 {
    let cdf = 0.5 * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2));
    let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
    cdf + v * pdf
}

/// v as stored in an array of `dt`.
fn stored(dt: DType, v: f64) -> f64 {
    if dt == DType::BF16 {
        half::bf16::from_f64(v).to_f64()
    } else {
        v as f32 as f64
    }
}

/// The launch the wrapper makes for `s` (its plan, its kernel for the layout).
#[allow(clippy::too_many_arguments)]
fn planned<'a>(
    s: &MatmulShape,
    c: &'a Tensor,
    a: &'a Tensor,
    b: &'a Tensor,
    bias: Option<&'a Tensor>,
    aux: Option<&'a Tensor>,
    epi: Epilogue,
) -> Planned<'a> {
    let cfg = matmul_tc::plan(s, 0, 0).expect("variant 2 takes this layer's product");
    let (m, n, k) = (s.m as i32, s.n as i32, s.k as i32);
    let (a_stride, b_stride) = (s.a_stride as i64, s.b_stride as i64);
    let epi = epi as i32;
    macro_rules! p {
        ($k:ident) => {
            $k {
                c,
                a,
                b,
                bias,
                aux,
                m,
                n,
                k,
                a_stride,
                b_stride,
                accumulate: 0,
                epi,
            }
            .planned(cfg)
        };
    }
    match (s.ta, s.tb) {
        (false, false) => p!(MatmulTcNn),
        (false, true) => p!(MatmulTcNt),
        (true, false) => p!(MatmulTcTn),
        (true, true) => p!(MatmulTcTt),
    }
}

/// One product through the emulated kernel with the wrapper's launch, C (and aux) of type
/// `out`, against the double reference.
#[allow(clippy::too_many_arguments)]
fn case(m: usize, n: usize, k: usize, ta: bool, tb: bool, bias: bool, epi: Epilogue, out: DType) {
    if !emu::available("tc_kernel_emu") {
        return;
    }
    let s = MatmulShape {
        batch: 1,
        m,
        n,
        k,
        ta,
        tb,
        a_stride: m * k,
        b_stride: k * n,
    };
    let bf16 = |v: Vec<f32>| {
        let n = v.len();
        Tensor::from_f32(&[n], v)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap()
    };
    let typed = |v: Vec<f32>| {
        let n = v.len();
        Tensor::from_f32(&[n], v).unwrap().to_dtype(out).unwrap()
    };
    let a = bf16(rand_vec(m * k, 21, -1.0, 1.0));
    let b = bf16(rand_vec(k * n, 22, -1.0, 1.0));
    let bias_t = typed(rand_vec(n, 23, -1.0, 1.0));
    // DGELU reads the pre-activation h from aux; GELU writes aux (poisoned until then)
    let aux = match epi {
        DGelu => typed(rand_vec(m * n, 24, -2.0, 2.0)),
        _ => typed(vec![f32::NAN; m * n]),
    };
    let c = typed(vec![f32::NAN; m * n]);
    let (av, bv, biasv, auxv) = (
        a.to_vec_f32().unwrap(),
        b.to_vec_f32().unwrap(),
        bias_t.to_vec_f32().unwrap(),
        aux.to_vec_f32().unwrap(),
    );
    let mut want_c = vec![0f64; m * n];
    let mut want_aux = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut x = 0f64;
            for l in 0..k {
                let p = if ta { av[l * m + i] } else { av[i * k + l] };
                let q = if tb { bv[j * k + l] } else { bv[l * n + j] };
                x += p as f64 * q as f64;
            }
            if bias {
                x += biasv[j] as f64;
            }
            let o = i * n + j;
            match epi {
                Plain => want_c[o] = x,
                Gelu => {
                    want_c[o] = x;
                    want_aux[o] = gelu(stored(out, x));
                }
                DGelu => want_c[o] = stored(out, x) * gelu_grad(auxv[o] as f64),
            }
        }
    }
    let use_aux = epi != Plain;
    let p = planned(
        &s,
        &c,
        &a,
        &b,
        bias.then_some(&bias_t),
        use_aux.then_some(&aux),
        epi,
    );
    let t = std::time::Instant::now();
    emu::run(&p);
    let took = t.elapsed();
    let got_c = c.to_vec_f32().unwrap();
    let tol = if out == DType::BF16 { 4e-3 } else { 1e-6 };
    let e = rel_err_f64(&got_c, &want_c);
    let mut line = format!(
        "matmul_tc {m}x{n}x{k} ta{} tb{} bias {bias} {epi:?} {out}: C rel err {e:.2e}",
        ta as u8, tb as u8
    );
    assert!(got_c.iter().all(|v| v.is_finite()), "{line}: C not written");
    assert!(e <= tol, "{line}");
    if epi == Gelu {
        let got_aux = aux.to_vec_f32().unwrap();
        let ea = rel_err_f64(&got_aux, &want_aux);
        line += &format!(", aux = gelu(C) {ea:.2e}");
        assert!(ea <= tol, "{line}");
    }
    println!("{line} (emulated in {took:.1?})");
}

/// sfm-base (ViT-B/16, 197 tokens of one image, width 768): the fused qkv projection
/// x[197, 768] · W[2304, 768]ᵀ + b (36 blocks), whole grid, bf16 out. (The MLP's fc1 with its
/// GELU has the layout of seislm-base's below.)
#[test]
fn sfm_base_qkv() {
    case(197, 2304, 768, false, true, true, Plain, DType::BF16);
}

/// sfm-base backward of the qkv projection: dX = dY[197, 2304] · W[2304, 768] (nn, K = 2304,
/// whole grid) and dW = dY[197, 2304]ᵀ · X[197, 768] (tn, K = 197 tokens, not a multiple of
/// 8 or 32; 108 blocks), whole grids, f32 out.
#[test]
fn sfm_base_qkv_backward_shapes() {
    case(197, 768, 2304, false, false, false, Plain, DType::F32);
    case(2304, 768, 197, true, false, false, Plain, DType::F32);
}

/// seislm-base (docs/reference.md: hidden 240, FFN 3072; 3001 samples give 749 frames): the
/// feed-forward's first product with its GELU, x[749, 240] · W[3072, 240]ᵀ + b, whole grid
/// (6 × 24 blocks; K = 240 is not a multiple of the 32-deep k-tile), bf16 out: C is the
/// pre-activation, aux its GELU. Then the backward product through the GELU: the input
/// gradient of fc2, dY[749, 240] · W2[240, 3072], times gelu'(h) in the epilogue.
#[test]
fn seislm_base_ffn_in_gelu() {
    case(749, 3072, 240, false, true, true, Gelu, DType::BF16);
    case(749, 3072, 240, false, false, false, DGelu, DType::BF16);
}
