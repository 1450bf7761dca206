//! Runs kernels/attention_tc.cu (attention variant 2, the forward pass on bf16 tensor cores) —
//! the very source NVRTC compiles, common.cuh and tc.cuh included — under the CPU emulation of
//! CUDA (tools/cuda_emu/emu.h: warps executed as units, mma.sync / ldmatrix with the PTX ISA's
//! fragment layouts, cp.async deferred to its wait with the target poisoned, launch limits,
//! shuffled block order), with the launch the CUDA wrapper plans (`attention_tc::plan`), and
//! compares O and lse with a double-precision softmax over the same bf16 inputs
//! (tools/cuda_emu/attention_tc.cpp): small odd shapes (seq 1, 7, 65, 130, seq_q ≠ seq_k, every
//! head dim) and the layer shapes of sfm-base and seislm-base. Without a C++20 compiler it is
//! reported as skipped (a failure under SEISFUSE_REQUIRE_EMU).

mod common;

use seisfuse::backend::api::attention::{AttnShape, HeadLayout};
use seisfuse::backend::cuda::attention_tc;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn build() -> Result<PathBuf, String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    if Command::new(&cxx).arg("--version").output().is_err() {
        return Err(format!("no C++ compiler ({cxx})"));
    }
    let src = seisfuse::backend::cuda::kernel_source("attention_tc")
        .map_err(|e| e.to_string())?
        .source;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tc_emu");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let gen = dir.join(format!("attention_tc_{}.cu", std::process::id()));
    std::fs::write(&gen, src).map_err(|e| e.to_string())?;
    let exe = dir.join(format!("attention_tc_{}", std::process::id()));
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/cuda_emu");
    let out = Command::new(&cxx)
        .args(["-std=c++20", "-O2", "-pthread", "-w"])
        .arg(format!("-DTC_KERNEL_SOURCE=\"{}\"", gen.display()))
        .arg("-o")
        .arg(&exe)
        .arg(here.join("attention_tc.cpp"))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let log = String::from_utf8_lossy(&out.stderr);
        if log.contains("No such file") && !log.contains("attention_tc") {
            return Err(format!("{cxx} lacks a header the emulation needs:\n{log}"));
        }
        panic!("the emulated kernel failed to compile:\n{log}");
    }
    Ok(exe)
}

fn emulator() -> Option<&'static Path> {
    static E: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match E.get_or_init(build) {
        Ok(p) => Some(p),
        Err(why) => {
            common::skip("attention_tc_emu", common::Need::Emu, why);
            None
        }
    }
}

/// q, k, v as separate [B, N, H·D] projections (SeisLM) or one fused [B, N, 3·H·D] (the ViT).
fn shape(b: usize, h: usize, nq: usize, nk: usize, d: usize, fused: bool) -> AttnShape {
    let c = h * d;
    let (stride, offs) = if fused {
        (3 * c, [0, c, 2 * c])
    } else {
        (c, [0, 0, 0])
    };
    let l = |offset| HeadLayout { stride, offset };
    AttnShape {
        batch: b,
        heads: h,
        seq_q: nq,
        seq_k: nk,
        head_dim: d,
        q: l(offs[0]),
        k: l(offs[1]),
        v: l(offs[2]),
        scale: 1.0 / (d as f32).sqrt(),
    }
}

/// One call through the emulated kernel with the wrapper's plan; `max_blocks` limits the run to
/// the first blocks (query tiles fastest, then batch·head) where the whole grid is too slow.
fn case(s: AttnShape, max_blocks: Option<u32>) {
    let Some(exe) = emulator() else { return };
    let cfg = attention_tc::plan(&s, [0; 4]).expect("variant 2 takes this call");
    assert_eq!(cfg.block_dim, (attention_tc::THREADS, 1, 1));
    assert_eq!(cfg.grid_dim.2, 1);
    let mut cmd = Command::new(exe);
    cmd.args(
        [
            s.batch, s.heads, s.seq_q, s.seq_k, s.head_dim, s.q.stride, s.q.offset, s.k.stride,
            s.k.offset, s.v.stride, s.v.offset,
        ]
        .map(|v| v.to_string()),
    );
    cmd.args(
        [
            cfg.grid_dim.0,
            cfg.grid_dim.1,
            cfg.block_dim.0,
            cfg.shared_mem_bytes,
        ]
        .map(|v| v.to_string()),
    );
    if let Some(mb) = max_blocks {
        cmd.arg(mb.to_string());
    }
    let t = std::time::Instant::now();
    let out = cmd.output().expect("run the emulated kernel");
    let text = String::from_utf8_lossy(&out.stdout);
    println!(
        "{text}{}(emulated in {:.1?})",
        String::from_utf8_lossy(&out.stderr),
        t.elapsed()
    );
    assert!(
        out.status.success() && text.contains("failures: 0, emulator errors: 0"),
        "attention_tc {s:?} under the emulator:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Edges everywhere: one query and one key, seq 7, 65 and 130 (one past a 64-row tile, two
/// tiles and two), seq_q ≠ seq_k both ways (cross-attention), every head dim with a kernel
/// (20 computed padded to 32), batch and heads > 1, separate and fused layouts.
#[test]
fn small_odd_shapes() {
    case(shape(1, 1, 1, 1, 16, false), None);
    case(shape(1, 2, 7, 7, 32, true), None);
    case(shape(2, 1, 65, 130, 80, false), None);
    case(shape(1, 1, 130, 65, 128, false), None);
    case(shape(1, 2, 130, 7, 16, false), None);
    case(shape(1, 1, 1, 130, 64, false), None);
    case(shape(2, 3, 65, 130, 20, false), None);
    case(shape(1, 2, 7, 70, 64, true), None);
    case(shape(1, 1, 65, 1, 20, true), None);
}

/// sfm-base (ViT-B/16: 197 tokens, 12 heads of 64, the fused qkv projection [1, 197, 2304]),
/// the whole grid (4 query tiles × 12 heads).
#[test]
fn sfm_base_layer() {
    case(shape(1, 12, 197, 197, 64, true), None);
}

/// seislm-base (docs/reference.md: hidden 240, 12 heads of 20; 3001 samples give 749 frames;
/// separate q/k/v projections [1, 749, 240]): the first 24 of 144 blocks (all 12 query tiles
/// of two heads; the whole grid takes ~30 s here).
#[test]
fn seislm_base_layer() {
    case(shape(1, 12, 749, 749, 20, false), Some(24));
}

/// The plan refuses what the kernels cannot take (the wrapper then runs variant 1).
#[test]
fn plan_falls_back_where_it_must() {
    let ok = shape(1, 2, 9, 9, 64, false);
    assert!(attention_tc::plan(&ok, [0; 4]).is_some());
    for d in [8, 24, 48, 96, 129] {
        assert!(
            attention_tc::plan(&shape(1, 2, 9, 9, d, false), [0; 4]).is_none(),
            "head dim {d}"
        );
    }
    let mut s = ok;
    s.q.stride = 132;
    assert!(
        attention_tc::plan(&s, [0; 4]).is_none(),
        "stride not 8-aligned"
    );
    let mut s = ok;
    s.v.offset = 4;
    assert!(
        attention_tc::plan(&s, [0; 4]).is_none(),
        "offset not 8-aligned"
    );
    assert!(
        attention_tc::plan(&ok, [0, 0, 0, 2]).is_none(),
        "view offset"
    );
    let d20 = shape(1, 12, 749, 749, 20, false);
    assert!(
        attention_tc::plan(&d20, [0, 4, 8, 0]).is_some(),
        "head dim 20: 4-aligned"
    );
    assert!(attention_tc::plan(&d20, [0, 2, 0, 0]).is_none());
    for (nq, nk) in [(0, 5), (5, 0)] {
        assert!(attention_tc::plan(&shape(1, 1, nq, nk, 64, false), [0; 4]).is_none());
    }
    assert!(attention_tc::plan(&shape(65536, 1, 4, 4, 64, false), [0; 4]).is_none());
    let cfg = attention_tc::plan(&shape(3, 4, 129, 10, 128, false), [0; 4]).unwrap();
    assert_eq!(cfg.grid_dim, (3, 12, 1));
    assert_eq!(cfg.shared_mem_bytes, 5 * 64 * 128 * 2);
    let cfg = attention_tc::plan(&d20, [0; 4]).unwrap();
    assert_eq!(cfg.shared_mem_bytes, 5 * 64 * 32 * 2);
    // the backward: the same, and dout's and the gradients' view offsets too
    let p = attention_tc::plan_backward(&ok, [0; 8]).unwrap();
    assert_eq!(p.delta.grid_dim, ((2 * 9usize).div_ceil(4) as u32, 1, 1));
    assert_eq!(p.dkdv.shared_mem_bytes, 6 * 64 * 64 * 2 + 1024);
    assert_eq!(p.dq.shared_mem_bytes, 6 * 64 * 64 * 2);
    for i in 0..8 {
        let mut offs = [0; 8];
        offs[i] = 4;
        assert!(
            attention_tc::plan_backward(&ok, offs).is_none(),
            "offset {i}"
        );
    }
    assert!(attention_tc::plan_backward(&shape(1, 2, 9, 9, 24, false), [0; 8]).is_none());
}

/// The backward pass (the forward, then the delta, dK/dV and dQ kernels) through the emulated
/// kernels with the launches `attention_tc::plan_backward` gives, compared with a double
/// reference; `max_bh` limits the forward, dK/dV and dQ grids to their first batch·head rows.
fn backward_case(s: AttnShape, max_bh: Option<u32>) {
    let Some(exe) = emulator() else { return };
    let fwd = attention_tc::plan(&s, [0; 4]).expect("variant 2 takes this call");
    let p = attention_tc::plan_backward(&s, [0; 8]).expect("variant 2 takes this backward");
    for cfg in [p.delta, p.dkdv, p.dq] {
        assert_eq!(cfg.block_dim, (attention_tc::THREADS, 1, 1));
    }
    assert_eq!((p.delta.grid_dim.1, p.delta.grid_dim.2), (1, 1));
    assert_eq!(p.dkdv.grid_dim.1, fwd.grid_dim.1);
    assert_eq!(p.dq.grid_dim, fwd.grid_dim);
    let mut cmd = Command::new(exe);
    cmd.arg("bwd");
    cmd.args(
        [
            s.batch, s.heads, s.seq_q, s.seq_k, s.head_dim, s.q.stride, s.q.offset, s.k.stride,
            s.k.offset, s.v.stride, s.v.offset,
        ]
        .map(|v| v.to_string()),
    );
    cmd.args(
        [
            fwd.grid_dim.0,
            fwd.shared_mem_bytes,
            p.delta.grid_dim.0,
            p.dq.grid_dim.0,
            p.dq.shared_mem_bytes,
            p.dkdv.grid_dim.0,
            p.dkdv.shared_mem_bytes,
        ]
        .map(|v| v.to_string()),
    );
    if let Some(m) = max_bh {
        cmd.arg(m.to_string());
    }
    let t = std::time::Instant::now();
    let out = cmd.output().expect("run the emulated kernels");
    let text = String::from_utf8_lossy(&out.stdout);
    println!(
        "{text}{}(emulated in {:.1?})",
        String::from_utf8_lossy(&out.stderr),
        t.elapsed()
    );
    assert!(
        out.status.success() && text.contains("failures: 0, emulator errors: 0"),
        "attention_tc backward {s:?} under the emulator:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The backward's edges: one query or one key, tiles of 65 and 130, cross-attention both ways,
/// every head dim, fused and separate layouts (dq, dk, dv written on q's, k's and v's layouts).
#[test]
fn backward_small_odd_shapes() {
    backward_case(shape(1, 1, 1, 1, 16, false), None);
    backward_case(shape(2, 3, 65, 130, 20, false), None);
    backward_case(shape(1, 1, 130, 65, 128, false), None);
    backward_case(shape(1, 2, 7, 70, 80, true), None);
    backward_case(shape(1, 2, 130, 7, 32, false), None);
    backward_case(shape(1, 1, 1, 130, 64, false), None);
    backward_case(shape(1, 1, 130, 1, 16, true), None);
}

/// The backward at the sfm-base layer (fused qkv [1, 197, 2304], head dim 64) and the
/// seislm-base layer (separate [1, 749, 240], head dim 20), the first two heads (sfm-base) and
/// the first head (seislm-base) of the grids.
#[test]
fn backward_layers() {
    backward_case(shape(1, 12, 197, 197, 64, true), Some(2));
    backward_case(shape(1, 12, 749, 749, 20, false), Some(1));
}
