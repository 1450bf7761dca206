//! kernels/matmul_tf32.cu (matmul variant 3: f32 products on TF32 tensor cores) replayed under
//! the CPU emulation of CUDA (tests/common/emu.rs: warps as units, mma.sync m16n8k8 and
//! ldmatrix with the PTX ISA's fragment layouts, cp.async deferred with its target poisoned,
//! shuffled block order) with the launches the wrapper plans (`matmul_tf32::plan`, and
//! `SplitKViews::tf32` for the split weight gradients), over CPU tensors.
//!
//! The reference is a double-precision product of the inputs rounded to tf32 as `cvt.rna`
//! rounds them (to nearest, ties away from zero, 10 mantissa bits): the kernel must match it
//! to f32 accumulation error (1e-6), far below tf32's own (~1e-4 against the unrounded
//! inputs, printed alongside), so a kernel that skipped or truncated the rounding, or read a
//! fragment from the wrong place, fails. A second run must give the same bits.

mod common;
use common::{emu, rand_vec, rel_err_f64};
use seisfuse::backend::api::matmul::MatmulShape;
use seisfuse::backend::cuda::launch::Planned;
use seisfuse::backend::cuda::matmul_tc::{split_k, SplitKViews};
use seisfuse::backend::cuda::matmul_tf32::{
    self, MatmulTf32Nn, MatmulTf32Nt, MatmulTf32Tn, MatmulTf32Tt,
};
use seisfuse::Tensor;

/// f32 rounded to tf32 as `cvt.rna.tf32.f32` rounds it (finite inputs).
fn tf32(x: f32) -> f32 {
    f32::from_bits(x.to_bits().wrapping_add(0x1000) & 0xffff_e000)
}

fn shape(batch: usize, m: usize, n: usize, k: usize, ta: bool, tb: bool) -> MatmulShape {
    MatmulShape {
        batch,
        m,
        n,
        k,
        ta,
        tb,
        a_stride: m * k,
        b_stride: k * n,
    }
}

/// op(A)·op(B) (+ bias) (+ C0) in f64 over `round`ed inputs, C packed [batch][m][n].
fn reference(
    s: &MatmulShape,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    c0: Option<&[f32]>,
    round: fn(f32) -> f32,
) -> Vec<f64> {
    let (m, n, k) = (s.m, s.n, s.k);
    let mut out = vec![0f64; s.batch * m * n];
    for z in 0..s.batch {
        let (a, b) = (&a[z * s.a_stride..], &b[z * s.b_stride..]);
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0f64;
                for l in 0..k {
                    let x = if s.ta { a[l * m + i] } else { a[i * k + l] };
                    let y = if s.tb { b[j * k + l] } else { b[l * n + j] };
                    acc += round(x) as f64 * round(y) as f64;
                }
                let o = z * m * n + i * n + j;
                out[o] = acc + bias.map_or(0.0, |v| v[j] as f64) + c0.map_or(0.0, |v| v[o] as f64);
            }
        }
    }
    out
}

/// The one launch the wrapper makes for an unsplit product (its plan, its kernel for the
/// layout).
fn single<'a>(
    s: &MatmulShape,
    c: &'a Tensor,
    a: &'a Tensor,
    b: &'a Tensor,
    bias: Option<&'a Tensor>,
    accumulate: bool,
) -> Planned<'a> {
    let cfg = matmul_tf32::plan(s, 0, 0).expect("the TF32 kernels take this product");
    let (m, n, k) = (s.m as i32, s.n as i32, s.k as i32);
    let (a_stride, b_stride) = (s.a_stride as i64, s.b_stride as i64);
    let accumulate = accumulate as i32;
    macro_rules! p {
        ($k:ident) => {
            $k {
                c,
                a,
                b,
                bias,
                m,
                n,
                k,
                a_stride,
                b_stride,
                accumulate,
            }
            .planned(cfg)
        };
    }
    match (s.ta, s.tb) {
        (false, false) => p!(MatmulTf32Nn),
        (false, true) => p!(MatmulTf32Nt),
        (true, false) => p!(MatmulTf32Tn),
        (true, true) => p!(MatmulTf32Tt),
    }
}

/// Runs `s` through the planned launches and checks the result against the references; with
/// `twice`, runs it again and requires the same bits.
fn case(s: MatmulShape, with_bias: bool, accumulate: bool, twice: bool) {
    let a_len = s.batch * s.a_stride;
    let b_len = s.batch * s.b_stride;
    let av = rand_vec(a_len, 11, -1.0, 1.0);
    let bv = rand_vec(b_len, 12, -1.0, 1.0);
    let biasv = rand_vec(s.n, 13, -1.0, 1.0);
    let c0v = rand_vec(s.batch * s.m * s.n, 14, -1.0, 1.0);
    let a = Tensor::from_f32(&[a_len], av.clone()).unwrap();
    let b = Tensor::from_f32(&[b_len], bv.clone()).unwrap();
    let bias = Tensor::from_f32(&[s.n], biasv.clone()).unwrap();
    let bias_t = with_bias.then_some(&bias);
    let c0 = accumulate.then_some(c0v.as_slice());
    let want = reference(&s, &av, &bv, with_bias.then_some(&biasv[..]), c0, tf32);
    let exact = reference(&s, &av, &bv, with_bias.then_some(&biasv[..]), c0, |x| x);
    let run = || {
        let start = if accumulate {
            c0v.clone()
        } else {
            vec![f32::NAN; c0v.len()]
        };
        let c = Tensor::from_f32(&[c0v.len()], start).unwrap();
        match split_k(&s, with_bias) {
            Some(sk) => {
                let ws_len = sk.splits * s.m * s.n;
                let ws = Tensor::from_f32(&[ws_len], vec![f32::NAN; ws_len]).unwrap();
                let views = SplitKViews::new(&s, sk, &a, &b, &ws).unwrap().tf32();
                for p in views.plans(&s, &c, &a, &b, &ws, accumulate).unwrap() {
                    emu::run(&p);
                }
            }
            None => emu::run(&single(&s, &c, &a, &b, bias_t, accumulate)),
        }
        c.to_vec_f32().unwrap()
    };
    let t = std::time::Instant::now();
    let got = run();
    let took = t.elapsed();
    if twice {
        assert!(got == run(), "a second run gave different bits");
    }
    let e = rel_err_f64(&got, &want);
    let e_exact = rel_err_f64(&got, &exact);
    println!(
        "tf32 B{} {}x{}x{} ta{} tb{} bias {with_bias} acc {accumulate} split {:?}: {e:.2e} \
         against tf32-rounded inputs, {e_exact:.2e} against f32 ones (emulated in {took:.1?})",
        s.batch,
        s.m,
        s.n,
        s.k,
        s.ta as u8,
        s.tb as u8,
        split_k(&s, with_bias).map(|sk| sk.splits),
    );
    assert!(got.iter().all(|v| v.is_finite()), "an output never written");
    assert!(
        e <= 1e-6,
        "rel. error {e:.3e} against the tf32-rounded product"
    );
}

#[test]
fn odd_shapes_in_every_layout() {
    if !emu::available("tc_tf32_emu") {
        return;
    }
    // ragged edges in every dimension (M, N not multiples of 128, K not of 16), batch 2
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        case(shape(2, 36, 44, 20, ta, tb), true, false, true);
    }
    case(shape(1, 130, 136, 72, false, true), true, true, true);
    case(shape(1, 4, 4, 4, true, false), false, false, false);
}

/// sfm-base (ViT-B/16, 197 tokens of one image, width 768) in fp32: the qkv projection
/// x[197, 768] · W[2304, 768]ᵀ + b (nt, 36 blocks) and the input gradient of the attention's
/// output projection dY[197, 768] · W[768, 768] (nn: B read by 32-bit loads; 12 blocks),
/// whole grids, once each.
#[test]
fn sfm_base_qkv_forward_and_proj_input_gradient() {
    if !emu::available("tc_tf32_emu") {
        return;
    }
    case(shape(1, 197, 2304, 768, false, true), true, false, false);
    case(shape(1, 197, 768, 768, false, false), false, false, false);
}

/// A weight gradient dW = dYᵀ·X (tn) deep enough to be split along K (8 splits of 256 rows),
/// through the split plan: the splits on the TF32 kernel, then the ordered sum.
#[test]
fn split_weight_gradient() {
    if !emu::available("tc_tf32_emu") {
        return;
    }
    let s = shape(1, 256, 128, 2048, true, false);
    assert_eq!(split_k(&s, false).map(|sk| sk.splits), Some(8));
    case(s, false, true, true);
}
