//! Runs kernels/matmul_tc.cu (matmul variant 2, bf16 tensor cores) — the very source NVRTC
//! compiles, common.cuh and tc.cuh included — under the CPU emulation of CUDA
//! (tools/cuda_emu/emu.h: warps executed as units, mma.sync / ldmatrix with the PTX ISA's
//! fragment layouts, cp.async deferred to its wait with the target poisoned, launch limits,
//! shuffled block order) at the layer shapes of sfm-base and seislm-base, with the launch the
//! CUDA wrapper plans (`matmul_tc::plan`), and compares with a double triple loop over the same
//! bf16 inputs (tools/cuda_emu/tc_matmul.cpp). The small odd shapes run in tests/kernel_emu.rs
//! (run.sh). Without a C++20 compiler it is reported as skipped (a failure under
//! SEISFUSE_REQUIRE_EMU).

mod common;

use seisfuse::backend::api::matmul::MatmulShape;
use seisfuse::backend::cuda::matmul_tc;
use seisfuse::backend::cuda::matmul_tc::Epilogue::{DGelu as DGELU, Gelu as GELU, None as NONE};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn build() -> Result<PathBuf, String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    if Command::new(&cxx).arg("--version").output().is_err() {
        return Err(format!("no C++ compiler ({cxx})"));
    }
    let src = seisfuse::backend::cuda::kernel_source("matmul_tc")
        .map_err(|e| e.to_string())?
        .source;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tc_emu");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let gen = dir.join(format!("matmul_tc_{}.cu", std::process::id()));
    std::fs::write(&gen, src).map_err(|e| e.to_string())?;
    let exe = dir.join(format!("tc_matmul_{}", std::process::id()));
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/cuda_emu");
    let out = Command::new(&cxx)
        .args(["-std=c++20", "-O2", "-pthread", "-w"])
        .arg(format!("-DTC_KERNEL_SOURCE=\"{}\"", gen.display()))
        .arg("-o")
        .arg(&exe)
        .arg(here.join("tc_matmul.cpp"))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let log = String::from_utf8_lossy(&out.stderr);
        if log.contains("No such file") && !log.contains("matmul_tc") {
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
            common::skip("tc_kernel_emu", common::Need::Emu, why);
            None
        }
    }
}

/// One product through the emulated kernel with the wrapper's plan; `max_blocks` limits the
/// run to the first blocks (row-major over the grid) where the whole grid would take too long.
#[allow(clippy::too_many_arguments)]
fn case(
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    bias: bool,
    epi: matmul_tc::Epilogue,
    out_bf16: bool,
    max_blocks: Option<u32>,
) {
    let Some(exe) = emulator() else { return };
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
    let cfg = matmul_tc::plan(&s, 0, 0).expect("variant 2 takes this layer's product");
    assert_eq!(cfg.block_dim, (matmul_tc::THREADS, 1, 1));
    let b = |v: bool| (v as u8).to_string();
    let mut cmd = Command::new(exe);
    cmd.args([
        "1".to_string(),
        m.to_string(),
        n.to_string(),
        k.to_string(),
        b(ta),
        b(tb),
        b(bias),
        (epi as u8).to_string(),
        "0".into(),
        b(out_bf16),
        cfg.grid_dim.0.to_string(),
        cfg.grid_dim.1.to_string(),
        cfg.block_dim.0.to_string(),
        cfg.shared_mem_bytes.to_string(),
    ]);
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
        out.status.success() && text.contains(" ok"),
        "matmul_tc {m}x{n}x{k} under the emulator:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// sfm-base (ViT-B/16, 197 tokens of one image, width 768): the fused qkv projection
/// x[197, 768] · W[2304, 768]ᵀ + b (36 blocks) and the MLP's fc1 with its GELU fused,
/// x[197, 768] · W[3072, 768]ᵀ + b (48 blocks), whole grids, bf16 out.
#[test]
fn sfm_base_qkv_and_fc1_gelu() {
    case(197, 2304, 768, false, true, true, NONE, true, None);
    case(197, 3072, 768, false, true, true, GELU, true, None);
}

/// sfm-base backward of the qkv projection: dX = dY[197, 2304] · W[2304, 768] (nn, K = 2304,
/// whole grid) and dW = dY[197, 2304]ᵀ · X[197, 768] (tn, K = 197 tokens, not a multiple of
/// 8 or 32; 108 blocks), whole grids, f32 out. (`max_blocks` stays for shapes too large to
/// emulate whole; none of these needs it.)
#[test]
fn sfm_base_qkv_backward_shapes() {
    case(197, 768, 2304, false, false, false, NONE, false, None);
    case(2304, 768, 197, true, false, false, NONE, false, None);
}

/// seislm-base (docs/reference.md: hidden 240, FFN 3072; 3001 samples give 749 frames): the
/// feed-forward's first product with its GELU, x[749, 240] · W[3072, 240]ᵀ + b, whole grid
/// (6 × 24 blocks; K = 240 is not a multiple of the 32-deep k-tile), bf16 out: C is the
/// pre-activation, aux its GELU. Then the backward product through the GELU: the input
/// gradient of fc2, dY[749, 240] · W2[240, 3072], times gelu'(h) in the epilogue.
#[test]
fn seislm_base_ffn_in_gelu() {
    case(749, 3072, 240, false, true, true, GELU, true, None);
    case(749, 3072, 240, false, false, false, DGELU, true, None);
}
