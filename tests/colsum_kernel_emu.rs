//! The column sums (`colsum` variant 2: bias gradients through `sum_rows`, LayerNorm's dw and
//! db) under the CPU emulation of CUDA, replaying the launches the CUDA wrappers plan
//! (`reduce::sum_rows_plans`, `layer_norm::dwdb_plans`: grid, block and argument order
//! unchanged; tests/common/emu.rs) over CPU tensors, at small odd shapes and at the shapes of
//! sfm-base and seislm-base layers, and the mask token's gradient (the rows a gather filled:
//! `tokens::fill_grad_plans`). Each is compared with a double-precision sum; the emulator
//! runs blocks in a shuffled order, so two runs giving the same bits show that the result does
//! not depend on the order blocks run in. Variant 1 (one thread per column) runs beside it.

mod common;
use common::{emu, rand_vec, rel_err_f64};
use seisfuse::backend::api::layer_norm::NormBackward;
use seisfuse::backend::cuda::grid_1d;
use seisfuse::backend::cuda::launch::Planned;
use seisfuse::backend::cuda::layer_norm::{dwdb_plans, LayerNormBackwardDwdb};
use seisfuse::backend::cuda::matmul::SumRows;
use seisfuse::backend::cuda::reduce::{colsum_plan, sum_rows_plans};
use seisfuse::backend::cuda::tokens::{fill_grad_plans, GatherFillBackward};
use seisfuse::{DType, Tensor};

fn tensor(shape: &[usize], data: Vec<f32>, dt: DType) -> Tensor {
    Tensor::from_f32(shape, data).unwrap().to_dtype(dt).unwrap()
}

/// Values as the kernels read them (after rounding to the storage type).
fn read(t: &Tensor) -> Vec<f32> {
    t.to_vec_f32().unwrap()
}

fn run_all(plans: &[Planned]) {
    for p in plans {
        emu::run(p);
    }
}

/// Relative error tolerated for a sum stored as `dt` (bf16 output rounding: 2⁻⁹).
fn tol(dt: DType) -> f64 {
    if dt == DType::BF16 {
        4e-3
    } else {
        2e-6
    }
}

/// sum_rows: out (+)= Σ_r x[r, :], both variants; returns variant 2's result.
fn sum_rows_case(rows: usize, cols: usize, dt: DType, accumulate: bool) -> Vec<f32> {
    let x = tensor(
        &[rows, cols],
        rand_vec(rows * cols, 11 + rows as u64, -1.0, 1.0),
        dt,
    );
    let init = rand_vec(cols, 5, -1.0, 1.0);
    let xs = read(&x);
    let start = read(&tensor(&[cols], init.clone(), dt));
    let want: Vec<f64> = (0..cols)
        .map(|c| {
            let s: f64 = (0..rows).map(|r| xs[r * cols + c] as f64).sum();
            s + if accumulate { start[c] as f64 } else { 0.0 }
        })
        .collect();
    let plan = colsum_plan(rows, cols).unwrap();
    let partials = Tensor::from_f32(
        &[plan.partials_len(1)],
        vec![f32::NAN; plan.partials_len(1)],
    )
    .unwrap();
    let out = tensor(&[cols], init.clone(), dt);
    run_all(&sum_rows_plans(&plan, &out, &x, &partials, accumulate));
    let got = read(&out);
    let e = rel_err_f64(&got, &want);
    // variant 1 (kernels/matmul.cu sum_rows), as the wrapper launches it
    let out1 = tensor(&[cols], init, dt);
    emu::run(
        &SumRows {
            out: &out1,
            x: &x,
            rows: rows as i32,
            cols: cols as i32,
            accumulate: accumulate as i32,
        }
        .planned(grid_1d(cols, 128)),
    );
    let e1 = rel_err_f64(&read(&out1), &want);
    println!(
        "sum_rows {dt} {rows}×{cols} acc {accumulate}: {} × {} blocks, {} rows per split; \
         rel. error {e:.2e} (variant 1: {e1:.2e})",
        plan.tiles, plan.splits, plan.rows_per_split
    );
    assert!(e <= tol(dt) && e1 <= tol(dt), "{e} / {e1}");
    got
}

/// LayerNorm's dw += Σ dy·x̂, db += Σ dy, both variants; returns variant 2's (dw, db).
fn dwdb_case(rows: usize, cols: usize, dt: DType) -> (Vec<f32>, Vec<f32>) {
    let seed = 100 + rows as u64;
    let x = tensor(&[rows, cols], rand_vec(rows * cols, seed, -2.0, 2.0), dt);
    let dy = tensor(
        &[rows, cols],
        rand_vec(rows * cols, seed + 1, -1.0, 1.0),
        dt,
    );
    let mean = Tensor::from_f32(&[rows], rand_vec(rows, seed + 2, -0.5, 0.5)).unwrap();
    let rstd = Tensor::from_f32(&[rows], rand_vec(rows, seed + 3, 0.5, 2.0)).unwrap();
    let dw0 = rand_vec(cols, seed + 4, -1.0, 1.0);
    let db0 = rand_vec(cols, seed + 5, -1.0, 1.0);
    let (xs, dys) = (read(&x), read(&dy));
    let (ms, rs) = (read(&mean), read(&rstd));
    let (sw, sb) = (
        read(&tensor(&[cols], dw0.clone(), dt)),
        read(&tensor(&[cols], db0.clone(), dt)),
    );
    let mut want_w = vec![0f64; cols];
    let mut want_b = vec![0f64; cols];
    for c in 0..cols {
        let (mut w, mut b) = (sw[c] as f64, sb[c] as f64);
        for r in 0..rows {
            let g = dys[r * cols + c] as f64;
            w += g * ((xs[r * cols + c] - ms[r]) * rs[r]) as f64;
            b += g;
        }
        want_w[c] = w;
        want_b[c] = b;
    }
    let plan = colsum_plan(rows, cols).unwrap();
    let partials = Tensor::from_f32(
        &[plan.partials_len(2)],
        vec![f32::NAN; plan.partials_len(2)],
    )
    .unwrap();
    let w = tensor(&[cols], vec![1.0; cols], dt);
    let mut dx = tensor(&[rows, cols], vec![0.0; rows * cols], dt);
    let mut dw = tensor(&[cols], dw0.clone(), dt);
    let mut db = tensor(&[cols], db0.clone(), dt);
    let a = NormBackward {
        dx: &mut dx,
        dw: &mut dw,
        db: &mut db,
        dy: &dy,
        x: &x,
        w: &w,
        mean: &mean,
        rstd: &rstd,
        dres: None,
    };
    run_all(&dwdb_plans(&plan, &a, &partials));

    let (gw, gb) = (read(&dw), read(&db));
    let (ew, eb) = (rel_err_f64(&gw, &want_w), rel_err_f64(&gb, &want_b));
    // variant 1 (one thread per column)
    let (dw1, db1) = (tensor(&[cols], dw0, dt), tensor(&[cols], db0, dt));
    emu::run(
        &LayerNormBackwardDwdb {
            dw: &dw1,
            db: &db1,
            dy: &dy,
            x: &x,
            mean: &mean,
            rstd: &rstd,
            rows: rows as i32,
            cols: cols as i32,
        }
        .planned(grid_1d(cols, 128)),
    );
    let (ew1, eb1) = (
        rel_err_f64(&read(&dw1), &want_w),
        rel_err_f64(&read(&db1), &want_b),
    );
    println!(
        "layer_norm dw, db {dt} {rows}×{cols}: {} × {} blocks; rel. error dw {ew:.2e} db {eb:.2e} \
         (variant 1: {ew1:.2e}, {eb1:.2e})",
        plan.tiles, plan.splits
    );
    for e in [ew, eb, ew1, eb1] {
        assert!(e <= tol(dt), "{e}");
    }
    (gw, gb)
}

/// The fill (mask token) gradient: dfill += Σ over rows with idx < 0 of dout[row, :], both
/// variants; returns variant 2's result.
fn fill_grad_case(rows: usize, cols: usize, dt: DType) -> Vec<f32> {
    let seed = 300 + rows as u64;
    let dout = tensor(&[rows, cols], rand_vec(rows * cols, seed, -1.0, 1.0), dt);
    // about a third of the rows were filled (negative index), as in an MAE decoder's input
    let idx_v: Vec<i32> = rand_vec(rows, seed + 1, 0.0, 3.0)
        .iter()
        .enumerate()
        .map(|(r, &u)| if u < 1.0 { -1 } else { r as i32 })
        .collect();
    let idx = Tensor::from_i32(&[rows], idx_v.clone()).unwrap();
    let init = rand_vec(cols, seed + 2, -1.0, 1.0);
    let (ds, start) = (read(&dout), read(&tensor(&[cols], init.clone(), dt)));
    let want: Vec<f64> = (0..cols)
        .map(|c| {
            let s: f64 = (0..rows)
                .filter(|&r| idx_v[r] < 0)
                .map(|r| ds[r * cols + c] as f64)
                .sum();
            s + start[c] as f64
        })
        .collect();
    let plan = colsum_plan(rows, cols).unwrap();
    let partials = Tensor::from_f32(
        &[plan.partials_len(1)],
        vec![f32::NAN; plan.partials_len(1)],
    )
    .unwrap();
    let dfill = tensor(&[cols], init.clone(), dt);
    run_all(&fill_grad_plans(&plan, &dfill, &dout, &idx, &partials));
    let got = read(&dfill);
    let e = rel_err_f64(&got, &want);
    let dfill1 = tensor(&[cols], init, dt);
    emu::run(
        &GatherFillBackward {
            dfill: &dfill1,
            dout: &dout,
            idx: &idx,
            rows: rows as i64,
            c: cols as i32,
        }
        .planned(grid_1d(cols, 128)),
    );
    let e1 = rel_err_f64(&read(&dfill1), &want);
    println!(
        "fill gradient {dt} {rows}×{cols}: {} × {} blocks; rel. error {e:.2e} (variant 1: {e1:.2e})",
        plan.tiles, plan.splits
    );
    assert!(e <= tol(dt) && e1 <= tol(dt), "{e} / {e1}");
    got
}

#[test]
fn small_odd_shapes() {
    if !emu::available("colsum_kernel_emu") {
        return;
    }
    for dt in [DType::F32, DType::BF16] {
        for (rows, cols) in [(1, 1), (7, 45), (33, 131), (100, 64), (257, 3), (0, 5)] {
            for acc in [false, true] {
                if rows > 0 {
                    sum_rows_case(rows, cols, dt, acc);
                }
            }
            if rows > 0 {
                dwdb_case(rows, cols, dt);
                fill_grad_case(rows, cols, dt);
            }
        }
    }
}

/// sfm-base (width 768, MLP 3072, 197 tokens) at batch 2: the bias gradients of the qkv and
/// fc1 products, and a LayerNorm's dw, db; the same bits on a second run (blocks in another
/// shuffled order).
#[test]
fn sfm_base_layer_shapes_and_repeatability() {
    if !emu::available("colsum_kernel_emu") {
        return;
    }
    let rows = 2 * 197;
    let first = sum_rows_case(rows, 2304, DType::BF16, true);
    assert_eq!(first, sum_rows_case(rows, 2304, DType::BF16, true));
    sum_rows_case(rows, 3072, DType::F32, false);
    let a = dwdb_case(rows, 768, DType::BF16);
    assert_eq!(a, dwdb_case(rows, 768, DType::BF16));
    // the MAE decoder's mask token (width 512) over 2 × 197 rows
    let f = fill_grad_case(rows, 512, DType::BF16);
    assert_eq!(f, fill_grad_case(rows, 512, DType::BF16));
}

/// seislm-base (hidden 240; 3001 samples give 749 frames) at batch 4: many row splits over
/// few columns, where variant 1 has only 2 blocks.
#[test]
fn seislm_base_layer_shapes() {
    if !emu::available("colsum_kernel_emu") {
        return;
    }
    let rows = 4 * 749;
    let p = colsum_plan(rows, 240).unwrap();
    assert_eq!((p.tiles, p.splits), (4, 94));
    sum_rows_case(rows, 240, DType::BF16, true);
    dwdb_case(rows, 240, DType::F32);
}

#[test]
fn the_plan_fills_the_card_and_bounds_the_partials() {
    for (rows, cols) in [
        (12608, 768),
        (47936, 240),
        (12608, 3072),
        (1, 1),
        (5, 100_000),
    ] {
        let p = colsum_plan(rows, cols).unwrap();
        assert!(p.splits * p.rows_per_split >= rows);
        assert!((p.splits - 1) * p.rows_per_split < rows.max(1));
        assert!(p.tiles * p.splits <= 1024.max(p.tiles), "{p:?}");
        assert!(p.partials_len(2) <= 2 * 1024 * 64 + 2 * cols, "{p:?}");
    }
    // sfm-base at batch 64: 12 tiles × 85 splits instead of 6 blocks
    let p = colsum_plan(12608, 768).unwrap();
    assert_eq!((p.tiles, p.splits, p.rows_per_split), (12, 85, 149));
    assert!(colsum_plan(1 << 31, 4).is_err());
}
