//! The warp-per-row LayerNorm kernel (`add_layer_norm`: the row in registers, 16-byte loads
//! where aligned), fused with the residual add and plain, and LayerNorm's dx kernel with a
//! residual gradient, run under the CPU emulation of CUDA through the wrappers' own plans
//! (`layer_norm::warp_norm_plan`, `LayerNormBackwardDx` at `row_cfg`), against the CPU
//! twin (the unfused add and LayerNorm). Rows of sfm-base and seislm-base (768 columns),
//! sfm-large and seislm-large (1024), and shapes that take the scalar path: a width that is not
//! a multiple of 16 bytes' worth of elements, and a view at an odd offset.

mod common;
use common::{emu, rand_tensor, rel_err};
use seisfuse::backend::api::layer_norm::NormInput;
use seisfuse::backend::cuda::launch::ArgVal;
use seisfuse::backend::cuda::layer_norm::{row_cfg, warp_norm_plan, LayerNormBackwardDx};
use seisfuse::ops;
use seisfuse::{DType, Tensor};

fn nan_like(shape: &[usize], dt: DType) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_f32(shape, vec![f32::NAN; n])
        .unwrap()
        .to_dtype(dt)
        .unwrap()
}

fn input(shape: &[usize], seed: u64, dt: DType) -> Tensor {
    rand_tensor(shape, seed).to_dtype(dt).unwrap()
}

/// One case: `rows` × `cols` in `dt`, x read through a view at element offset `x_off`;
/// `vec` the 16-byte path the plan must choose.
fn case(rows: usize, cols: usize, dt: DType, x_off: usize, vec: bool) {
    let tag = format!("{rows}×{cols} {dt} offset {x_off}");
    let big = input(&[rows * cols + x_off], 1, dt);
    let x = big.view(x_off, &[rows, cols]).unwrap();
    let r = input(&[rows, cols], 2, dt);
    let w = input(&[cols], 3, dt);
    let b = input(&[cols], 4, dt);
    let eps = 1e-6;
    let (want_s, want_y, want_c) = ops::add_layer_norm(&x, &r, &w, &b, eps).unwrap();

    let s = nan_like(&[rows, cols], dt);
    let y = nan_like(&[rows, cols], dt);
    let mean = nan_like(&[rows], DType::F32);
    let rstd = nan_like(&[rows], DType::F32);
    let a = NormInput {
        x: &x,
        w: &w,
        b: &b,
        eps,
    };
    let p = warp_norm_plan([&y, &mean, &rstd], a, Some((&s, &r)))
        .expect("a row of at most 1024 columns is fused");
    assert!(
        matches!(p.args.last(), Some(ArgVal::I32(v)) if *v == vec as i32),
        "{tag}: 16-byte path expected {vec}"
    );
    emu::run(&p);
    let f = |t: &Tensor| t.to_vec_f32().unwrap();
    assert_eq!(f(&s), f(&want_s), "{tag}: the sum must be bit-identical");
    let (ey, em, er) = (
        rel_err(&f(&y), &f(&want_y)),
        rel_err(&f(&mean), &f(&want_c.mean)),
        rel_err(&f(&rstd), &f(&want_c.rstd)),
    );
    eprintln!("{tag}: y {ey:.2e}, mean {em:.2e}, rstd {er:.2e}");
    let tol_y = if dt == DType::BF16 { 4e-3 } else { 1e-5 };
    assert!(
        ey < tol_y && em < 1e-5 && er < 1e-5,
        "{tag}: {ey} {em} {er}"
    );

    // the plain LayerNorm forward takes the same kernel without the residual
    let (want_y1, want_c1) = ops::layer_norm(&x, &w, &b, eps).unwrap();
    let y1 = nan_like(&[rows, cols], dt);
    let (m1, r1) = (nan_like(&[rows], DType::F32), nan_like(&[rows], DType::F32));
    let p = warp_norm_plan([&y1, &m1, &r1], a, None).unwrap();
    assert!(matches!(p.args.last(), Some(ArgVal::I32(v)) if *v == vec as i32));
    emu::run(&p);
    let (ey1, er1) = (
        rel_err(&f(&y1), &f(&want_y1)),
        rel_err(&f(&r1), &f(&want_c1.rstd)),
    );
    eprintln!("{tag}: plain LayerNorm y {ey1:.2e}, rstd {er1:.2e}");
    assert!(ey1 < tol_y && er1 < 1e-5, "{tag}: plain {ey1} {er1}");

    // dx + dres through the dx kernel (dw and db are other kernels, not run here)
    let dy = input(&[rows, cols], 5, dt);
    let dres = input(&[rows, cols], 6, dt);
    let (mut dw, mut db) = (input(&[cols], 7, dt), input(&[cols], 8, dt));
    let g = (&mut dw, &mut db);
    let want_dx = ops::layer_norm_backward(&dy, &want_s, &w, &want_c, g, Some(&dres)).unwrap();
    let dx = nan_like(&[rows, cols], dt);
    let k = LayerNormBackwardDx {
        dx: &dx,
        dy: &dy,
        x: &want_s,
        w: &w,
        mean: &want_c.mean,
        rstd: &want_c.rstd,
        dres: Some(&dres),
        cols: cols as i32,
    };
    emu::run(&k.planned(row_cfg(rows, cols)));
    let e = rel_err(&f(&dx), &f(&want_dx));
    eprintln!("{tag}: dx + dres {e:.2e}");
    let tol = if dt == DType::BF16 { 1e-2 } else { 1e-5 };
    assert!(e < tol, "{tag}: dx + dres {e:.3e}");
}

#[test]
fn fused_add_layer_norm_matches_the_unfused_cpu_twin() {
    if !emu::available("fused_add_layer_norm_matches_the_unfused_cpu_twin") {
        return;
    }
    // sfm-base / seislm-base rows (batch 2 × 197 tokens), both dtypes, 16-byte path
    case(394, 768, DType::BF16, 0, true);
    case(394, 768, DType::F32, 0, true);
    // the large models' width: four 16-byte groups per lane in bf16, eight in f32
    case(19, 1024, DType::BF16, 0, true);
    case(19, 1024, DType::F32, 0, true);
    // scalar path: a width not a multiple of 8 (bf16) or 4 (f32), and an unaligned view
    case(11, 771, DType::F32, 0, false);
    case(11, 771, DType::BF16, 0, false);
    case(9, 768, DType::BF16, 3, false);
}

/// Rows wider than a warp holds are not fused (the unfused pair serves them).
#[test]
fn rows_wider_than_a_warp_holds_are_not_fused() {
    let (x, r) = (
        input(&[2, 1032], 1, DType::F32),
        input(&[2, 1032], 2, DType::F32),
    );
    let (w, b) = (input(&[1032], 3, DType::F32), input(&[1032], 4, DType::F32));
    let o = input(&[2, 1032], 5, DType::F32);
    let st = input(&[2], 6, DType::F32);
    let a = NormInput {
        x: &x,
        w: &w,
        b: &b,
        eps: 1e-6,
    };
    assert!(warp_norm_plan([&o, &st, &st], a, Some((&o, &r))).is_none());
    assert!(warp_norm_plan([&o, &st, &st], a, None).is_none());
}
