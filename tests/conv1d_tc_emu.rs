//! conv1d variant 2 (kernels/conv1d_tc.cu: stride-1 grouped convolutions as implicit GEMMs on
//! bf16 tensor cores) under the CPU emulation of CUDA (tests/common/emu.rs): the wrapper's own
//! planned launches (`conv1d_tc::forward`, `backward_input`, `backward_weight`: the partials
//! and their ordered sum) replayed over CPU tensors and compared with the CPU twin
//! (src/backend/cpu/conv1d.rs, f64 accumulation) on the same bf16 inputs: small odd shapes
//! (ragged time tiles, output channels not a multiple of 16, groups, taps not a multiple of 16,
//! several channel passes, pad 0 and pad k − 1) and seislm-base's positional conv (240
//! channels, 16 groups, 128 taps, pad 64, 749 frames). Outputs start as NaN, so an element never
//! written shows up. The tolerance is the bf16 output-rounding floor (the twin's result rounded
//! to bf16 against itself, times 1.2); variant 1's kernels, replayed the same way at the small shapes,
//! print their own error for comparison. A second run must give the same bits.

mod common;
use common::{emu, rand_vec, rel_err};
use seisfuse::backend::api::conv1d::Conv1dShape;
use seisfuse::backend::cpu::conv1d as twin;
use seisfuse::backend::cuda::{conv1d as v1, conv1d_tc};
use seisfuse::{DType, Tensor};

fn bf16(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_f32(shape, v)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap()
}

fn nan_bf16(shape: &[usize]) -> Tensor {
    bf16(shape, vec![f32::NAN; shape.iter().product()])
}

fn round_bf16(v: &[f32]) -> Vec<f32> {
    bf16(&[v.len()], v.to_vec()).to_vec_f32().unwrap()
}

struct Inputs {
    x: Tensor,
    w: Tensor,
    bias: Tensor,
    dy: Tensor,
    dw0: Tensor,
}

fn inputs(s: &Conv1dShape) -> Inputs {
    let lout = s.lout().unwrap();
    let xs = [s.batch, s.cin, s.lin];
    let ws = [s.cout, s.cin_per_group(), s.k];
    let ys = [s.batch, s.cout, lout];
    let n = |sh: &[usize]| sh.iter().product::<usize>();
    // weights scaled like an initialisation, so outputs stay O(1)
    let scale = 1.0 / ((s.cin_per_group() * s.k) as f32).sqrt();
    Inputs {
        x: bf16(&xs, rand_vec(n(&xs), 1, -1.0, 1.0)),
        w: bf16(&ws, rand_vec(n(&ws), 2, -scale, scale)),
        bias: bf16(&[s.cout], rand_vec(s.cout, 3, -1.0, 1.0)),
        dy: bf16(&ys, rand_vec(n(&ys), 4, -1.0, 1.0)),
        dw0: bf16(&ws, rand_vec(n(&ws), 5, -1.0, 1.0)),
    }
}

/// The CPU twin on the bf16 inputs (in f32): y, dx, dw0 + the weight gradient.
fn want(s: &Conv1dShape, i: &Inputs) -> [Vec<f32>; 3] {
    let f = |t: &Tensor| t.to_vec_f32().unwrap();
    let (x, w, bias, dy) = (f(&i.x), f(&i.w), f(&i.bias), f(&i.dy));
    let lout = s.lout().unwrap();
    let mut y = vec![0f32; s.batch * s.cout * lout];
    twin::conv1d(&mut y, &x, &w, Some(&bias), s);
    let mut dx = vec![0f32; x.len()];
    twin::conv1d_backward_input(&mut dx, &dy, &w, s);
    let mut dw = f(&i.dw0);
    twin::conv1d_backward_params(&mut dw, None, &dy, &x, s);
    [y, dx, dw]
}

/// Variant 2's plans replayed: y, dx, dw (dw0 accumulated), the weight gradient split as the
/// wrapper plans it or, given `split`, into that many splits (then dw only).
fn variant2(s: &Conv1dShape, i: &Inputs, split: Option<usize>) -> [Vec<f32>; 3] {
    let lout = s.lout().unwrap();
    assert!(conv1d_tc::supported(s), "{s:?}");
    let y = nan_bf16(&[s.batch, s.cout, lout]);
    let dx = nan_bf16(&[s.batch, s.cin, s.lin]);
    if split.is_none() {
        emu::run(&conv1d_tc::forward(&y, &i.x, &i.w, Some(&i.bias), s));
        emu::run(&conv1d_tc::backward_input(&dx, &i.dy, &i.w, s));
    }
    let mut ws = conv1d_tc::weight_split(s);
    if let Some(n) = split {
        let units = ws.splits * ws.per;
        ws.per = units.div_ceil(n);
        ws.splits = units.div_ceil(ws.per);
    }
    let len = ws.partials_len(s);
    let part = Tensor::from_f32(&[len], vec![f32::NAN; len]).unwrap();
    let dw = i.dw0.try_clone().unwrap();
    for p in conv1d_tc::backward_weight(&dw, &part, &i.dy, &i.x, s, &ws) {
        emu::run(&p);
    }
    [y, dx, dw].map(|t| t.to_vec_f32().unwrap())
}

/// Variant 1's kernels (kernels/conv1d.cu) with the launches its wrapper makes.
fn variant1(s: &Conv1dShape, i: &Inputs) -> [Vec<f32>; 3] {
    let lout = s.lout().unwrap();
    let tile = v1::TILE;
    let d = |t: &Tensor| t.to_vec_f32().unwrap();
    let y = nan_bf16(&[s.batch, s.cout, lout]);
    let win = (tile - 1) * s.stride + s.k;
    let cc = v1::channels_per_pass(win + s.k, s.cin_per_group()).unwrap();
    let cfg = |gx: usize, gy: usize, smem: usize| cudarc::driver::LaunchConfig {
        grid_dim: (gx as u32, gy as u32, s.batch as u32),
        block_dim: (tile as u32, 1, 1),
        shared_mem_bytes: smem as u32,
    };
    let (cin, cout, lin, k) = (s.cin as i32, s.cout as i32, s.lin as i32, s.k as i32);
    let (stride, pad, groups) = (s.stride as i32, s.padding as i32, s.groups as i32);
    emu::run(
        &v1::Conv1dForward {
            y: &y,
            x: &i.x,
            w: &i.w,
            bias: Some(&i.bias),
            cin,
            cout,
            lin,
            lout: lout as i32,
            k,
            stride,
            pad,
            groups,
            cc: cc as i32,
        }
        .planned(cfg(lout.div_ceil(tile), s.cout, cc * (win + s.k) * 4)),
    );
    let dx = nan_bf16(&[s.batch, s.cin, s.lin]);
    let cc = v1::channels_per_pass(s.k, s.cout_per_group()).unwrap();
    emu::run(
        &v1::Conv1dBackwardInput {
            dx: &dx,
            dy: &i.dy,
            w: &i.w,
            cin,
            cout,
            lin,
            lout: lout as i32,
            k,
            stride,
            pad,
            groups,
            cc: cc as i32,
        }
        .planned(cfg(s.lin.div_ceil(tile), s.cin, cc * s.k * 4)),
    );
    let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
    let n = cig * s.k;
    let wt = v1::WG_TILE;
    let tiles = n.div_ceil(wt) * cog.div_ceil(wt) * s.groups;
    let (splits, per) = v1::weight_grad_splits(tiles, s.batch * lout, s.cout * n, s.groups);
    let part =
        Tensor::from_f32(&[splits * s.cout * n], vec![f32::NAN; splits * s.cout * n]).unwrap();
    let dw = i.dw0.try_clone().unwrap();
    emu::run(
        &v1::Conv1dBackwardWeightPartial {
            part: &part,
            dy: &i.dy,
            x: &i.x,
            batch: s.batch as i32,
            cin,
            cout,
            lin,
            lout: lout as i32,
            k,
            stride,
            pad,
            groups,
            splits: splits as i32,
            per: per as i64,
        }
        .planned(v1::weight_grad_cfg(n, cog, s.groups, splits)),
    );
    emu::run(
        &v1::Conv1dBackwardWeightReduce {
            dw: &dw,
            part: &part,
            n: (s.cout * n) as i64,
            splits: splits as i32,
        }
        .planned(cudarc::driver::LaunchConfig {
            grid_dim: (((s.cout * n).div_ceil(256)) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }),
    );
    [d(&y), d(&dx), d(&dw)]
}

fn shape(
    b: usize,
    cin: usize,
    cout: usize,
    lin: usize,
    k: usize,
    pad: usize,
    g: usize,
) -> Conv1dShape {
    Conv1dShape {
        batch: b,
        cin,
        cout,
        lin,
        k,
        stride: 1,
        padding: pad,
        groups: g,
    }
}

const NAMES: [&str; 3] = ["y", "dx", "dw"];

/// Runs variant 2 twice (same bits), compares with the twin at the bf16 output-rounding
/// floor; with `with_v1`, prints variant 1's error too.
fn check(s: &Conv1dShape, with_v1: bool) {
    let i = inputs(s);
    let want = want(s, &i);
    let t = std::time::Instant::now();
    let got = variant2(s, &i, None);
    let took = t.elapsed();
    let again = variant2(s, &i, None);
    // one split: every block loops over all the (waveform, chunk) units
    let one = variant2(s, &i, Some(1));
    let v1e = with_v1.then(|| variant1(s, &i));
    for (o, name) in NAMES.iter().enumerate() {
        assert!(
            got[o] == again[o],
            "{s:?} {name}: a second run gave different bits"
        );
        let e = rel_err(&got[o], &want[o]);
        let floor = rel_err(&round_bf16(&want[o]), &want[o]);
        let e1 = v1e.as_ref().map_or(String::new(), |v| {
            format!(", variant 1 {:.2e}", rel_err(&v[o], &want[o]))
        });
        println!(
            "b{} cin{} cout{} g{} lin{} k{} pad{} {name}: variant 2 {e:.2e} (bf16 floor {floor:.2e}{e1})",
            s.batch, s.cin, s.cout, s.groups, s.lin, s.k, s.padding
        );
        assert!(
            got[o].iter().all(|v| v.is_finite()),
            "{s:?} {name}: non-finite output (an element never written?)"
        );
        assert!(
            e <= 1.2 * floor + 1e-6,
            "{s:?} {name}: {e:.3e} vs floor {floor:.3e}"
        );
    }
    let e = rel_err(&one[2], &want[2]);
    let floor = rel_err(&round_bf16(&want[2]), &want[2]);
    println!("  dw in one split: {e:.2e}");
    assert!(e <= 1.2 * floor + 1e-6, "{s:?} dw in one split: {e:.3e}");
    println!("  (variant 2 emulated in {took:.1?})");
}

#[test]
fn plans_and_support() {
    // seislm-base's positional conv at batch 64
    let s = shape(64, 240, 240, 749, 128, 64, 16);
    assert!(conv1d_tc::supported(&s));
    assert_eq!(conv1d_tc::channels_per_pass(15, 128), 8);
    let ws = conv1d_tc::weight_split(&s);
    assert_eq!((ws.splits, ws.per), (8, 48));
    // strided (the feature extractor), padding ≥ k: variant 1
    let mut fe = shape(64, 256, 256, 1499, 3, 0, 1);
    fe.stride = 2;
    assert!(!conv1d_tc::supported(&fe));
    assert!(!conv1d_tc::supported(&shape(1, 4, 4, 10, 3, 3, 1)));
    assert!(conv1d_tc::supported(&shape(1, 4, 4, 10, 3, 2, 1)));
}

#[test]
fn small_odd_shapes() {
    if !emu::available("conv1d_tc_emu") {
        return;
    }
    for s in [
        shape(2, 6, 10, 37, 5, 2, 2),     // 5 outputs per group, taps < 16
        shape(1, 3, 20, 300, 19, 9, 1),   // two m tiles, two time tiles (ragged)
        shape(3, 8, 8, 130, 16, 0, 4),    // pad 0, lout 115
        shape(1, 5, 7, 9, 1, 0, 1),       // pointwise
        shape(1, 24, 6, 150, 100, 50, 2), // 12 channels per group in two passes of 6
        shape(2, 30, 30, 77, 32, 31, 2),  // pad k − 1: the input gradient's pad is 0
    ] {
        check(&s, true);
    }
}

/// seislm-base's positional conv (one waveform: the whole grid of each launch).
#[test]
fn seislm_base_positional_conv() {
    if !emu::available("conv1d_tc_emu") {
        return;
    }
    check(&shape(1, 240, 240, 749, 128, 64, 16), false);
}
