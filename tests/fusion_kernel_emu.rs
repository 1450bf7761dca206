//! Runs kernels/fusion.cu — the very source NVRTC compiles, common.cuh included — through the
//! CPU emulation of CUDA (tools/cuda_emu/emu.h: a fiber per CUDA thread, a barrier for
//! __syncthreads, shuffles through shared slots) built with the system C++ compiler, with the
//! launches planned by the CUDA backend's own planners (src/backend/cuda/fusion.rs: grids,
//! blocks, shared memory, argument order), and compares every output, f32 and bf16, with the
//! CPU twin (src/backend/cpu/fusion.rs). It checks indexing, synchronisation and arithmetic
//! where no GPU exists, not speed. Reported as skipped when no C++20 compiler is found (a failure
//! under SEISFUSE_REQUIRE_EMU).

mod common;
use common::rand_vec;
use seisfuse::backend::api::fusion::{
    InfonceBackward, ProjectBackward, SimilarityBackward, SimilarityInput,
};
use seisfuse::backend::cuda::fusion::{
    infonce_backward_launch, infonce_launch, project_backward_launches, project_forward_launch,
    similarity_backward_launches, similarity_launch, FusionKernel, FusionLaunch,
};
use seisfuse::ops::{self, L2_EPS, MAX_LOG_LOGIT_SCALE};
use seisfuse::{DType, Tensor};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use common::emu::Lib as Emu;

fn build() -> Result<Emu, String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    if Command::new(&cxx).arg("--version").output().is_err() {
        return Err(format!("no C++ compiler ({cxx})"));
    }
    // shared memory as tools/cuda_emu/run.sh rewrites it (tests/common/emu.rs)
    let src = common::emu::translate_shared(
        seisfuse::backend::cuda::kernel_source("fusion")
            .map_err(|e| e.to_string())?
            .source,
    )?;
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/cuda_emu");
    let read = |f: &str| std::fs::read_to_string(here.join(f)).map_err(|e| format!("{f}: {e}"));
    let all = format!(
        "{}\n{}\n#line 1 \"tools/cuda_emu/fusion_entry.cpp\"\n{}",
        read("emu.h")?,
        src,
        read("fusion_entry.cpp")?
    );
    common::emu::load(&all, "fusion_emu")
}

/// The emulation, built once; a skip without a C++ compiler (a failure under
/// SEISFUSE_REQUIRE_EMU), a failure when it does not build.
fn emu(test: &str) -> Option<&'static Emu> {
    static E: OnceLock<Result<Emu, String>> = OnceLock::new();
    common::cxx_or_skip(test)?;
    match E.get_or_init(build) {
        Ok(e) => Some(e),
        Err(why) => panic!("{test}: the kernel emulation did not build: {why}"),
    }
}

/// The host address of a CPU tensor view's first element (it does not move while the tensor
/// lives; the emulated kernels read and write through it).
fn addr(t: &Tensor) -> u64 {
    match t.dtype {
        DType::F32 => t.f32s().unwrap().as_ptr() as u64,
        DType::BF16 => t.host::<half::bf16>().unwrap().as_ptr() as u64,
        DType::I32 => t.i32s().unwrap().as_ptr() as u64,
    }
}

/// The kernel's instantiated name and its arguments as 64-bit slots, in the kernel's parameter
/// order (that of the typed declaration, which tests/kernel_signatures.rs checks).
fn slots(l: &FusionLaunch) -> (String, Vec<u64>) {
    let p = addr;
    let i = |v: i32| v as u32 as u64;
    let f = |v: f32| v.to_bits() as u64;
    let suffix = |t: &Tensor| match t.dtype {
        DType::BF16 => "_bf16",
        _ => "_f32",
    };
    let base = l.name();
    let (sfx, v) = match &l.kernel {
        FusionKernel::ProjectForward(k) => (
            suffix(k.x),
            vec![
                p(k.e),
                p(k.norm),
                p(k.x),
                p(k.w),
                i(k.d_in),
                i(k.d_out),
                f(k.eps),
            ],
        ),
        FusionKernel::L2normBackward(k) => (
            suffix(k.e),
            vec![p(k.dz), p(k.e), p(k.de), p(k.norm), i(k.d_out), f(k.eps)],
        ),
        FusionKernel::ProjectDx(k) => (
            suffix(k.w),
            vec![p(k.dx), p(k.dz), p(k.w), i(k.d_in), i(k.d_out)],
        ),
        FusionKernel::ProjectDw(k) => (
            suffix(k.x),
            vec![p(k.dw), p(k.dz), p(k.x), i(k.rows), i(k.d_in), i(k.d_out)],
        ),
        FusionKernel::Similarity(k) => (
            suffix(k.ei),
            vec![
                p(k.logits),
                p(k.ei),
                p(k.ew),
                p(k.log_scale),
                i(k.n_img),
                i(k.n_wave),
                i(k.dim),
                f(k.max_log_scale),
            ],
        ),
        FusionKernel::InfonceLse(k) => ("", vec![p(k.lse), p(k.losses), p(k.logits), i(k.n)]),
        FusionKernel::InfonceBackward(k) => (
            "",
            vec![p(k.dlogits), p(k.logits), p(k.lse), i(k.n), f(k.scale)],
        ),
        FusionKernel::SimilarityBackward(k) => (
            suffix(k.ei),
            vec![
                p(k.dei),
                p(k.dew),
                p(k.dlogits),
                p(k.ei),
                p(k.ew),
                p(k.log_scale),
                i(k.n_img),
                i(k.n_wave),
                i(k.dim),
                f(k.max_log_scale),
            ],
        ),
        FusionKernel::LogitScaleBackward(k) => (
            "",
            vec![
                p(k.dlog_scale),
                p(k.dlogits),
                p(k.logits),
                p(k.log_scale),
                i(k.count),
                f(k.max_log_scale),
            ],
        ),
    };
    (format!("{base}{sfx}"), v)
}

/// Runs one planned launch through the emulation.
fn run(e: &Emu, l: &FusionLaunch) {
    let (name, slots) = slots(l);
    let cname = std::ffi::CString::new(name.clone()).unwrap();
    let (g, b) = (l.cfg.grid_dim, l.cfg.block_dim);
    // SAFETY: every pointer in the slots addresses a live host buffer of the planned size.
    let rc = unsafe {
        (e.run)(
            cname.as_ptr(),
            g.0,
            g.1,
            g.2,
            b.0,
            b.1,
            b.2,
            l.cfg.shared_mem_bytes,
            slots.as_ptr(),
            slots.len() as i32,
        )
    };
    assert_ne!(rc, -1, "the emulation does not know kernel {name}");
    assert_eq!(rc, 0, "the emulator reported errors in {name} (stderr)");
}

/// A CPU tensor of NaNs in `dtype` (every value a kernel should write).
fn nans(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_f32(shape, vec![f32::NAN; shape.iter().product()])
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn rand(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    Tensor::from_f32(shape, rand_vec(shape.iter().product(), seed, -1.0, 1.0))
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn compare(what: &str, got: &Tensor, want: &Tensor, dtype: DType) {
    let (g, w) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
    assert!(g.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    let e = common::rel_err(&g, &w);
    let tol = if dtype == DType::BF16 { 1e-2 } else { 1e-5 };
    eprintln!("{what} {dtype}: emulated vs CPU twin rel {e:.2e}");
    assert!(e < tol, "{what} {dtype}: rel {e:.3e}");
}

#[test]
fn emulated_projection_kernels_match_the_cpu_twin() {
    let Some(e) = emu("emulated_projection_kernels_match_the_cpu_twin") else {
        return;
    };
    // (rows, d_in, d_out): odd sizes (partial warps, a warp loop that ends early), and the
    // tiny presets' binding shapes (64 → 32, 48 → 32).
    for &(rows, d_in, d_out) in &[(3, 37, 19), (4, 64, 32), (2, 48, 40)] {
        for dtype in [DType::F32, DType::BF16] {
            let x = rand(&[rows, d_in], 1, dtype);
            let w = rand(&[d_out, d_in], 2, dtype);
            let de = rand(&[rows, d_out], 3, dtype);
            let want = ops::project_l2norm(&x, &w).unwrap();
            let (ge, gn) = (nans(&[rows, d_out], dtype), nans(&[rows], DType::F32));
            run(
                e,
                &project_forward_launch(&ge, &gn, &x, &w, L2_EPS).unwrap(),
            );
            compare("project_l2norm e", &ge, &want.e, dtype);
            compare("project_l2norm norm", &gn, &want.norm, DType::F32);

            let dw0 = rand(&[d_out, d_in], 4, dtype);
            let mut want_dw = dw0.try_clone().unwrap();
            let want_dx = ops::project_l2norm_backward(&x, &w, &want, &de, &mut want_dw).unwrap();
            let (mut dx, mut dw, mut dz) = (
                nans(&[rows, d_in], dtype),
                dw0.try_clone().unwrap(),
                nans(&[rows, d_out], DType::F32),
            );
            let a = ProjectBackward {
                dx: &mut dx,
                dw: &mut dw,
                dz: &mut dz,
                x: &x,
                w: &w,
                e: &want.e,
                norm: &want.norm,
                de: &de,
                eps: L2_EPS,
            };
            for l in project_backward_launches(&a).unwrap() {
                run(e, &l);
            }
            compare("project_l2norm dx", &dx, &want_dx, dtype);
            compare("project_l2norm dw (accumulated)", &dw, &want_dw, dtype);
        }
    }
}

#[test]
fn emulated_similarity_and_infonce_kernels_match_the_cpu_twin() {
    let Some(e) = emu("emulated_similarity_and_infonce_kernels_match_the_cpu_twin") else {
        return;
    };
    // (n, dim, log scale): a batch with a partial last block, one above the clamp.
    for &(n, dim, s) in &[(9, 19, (1.0f32 / 0.07).ln()), (5, 32, 5.0), (33, 40, 2.0)] {
        for dtype in [DType::F32, DType::BF16] {
            let ei = rand(&[n, dim], 5, dtype);
            let ew = rand(&[n, dim], 6, dtype);
            let st = Tensor::from_f32(&[1], vec![s]).unwrap();
            let want = ops::similarity(&ei, &ew, &st, MAX_LOG_LOGIT_SCALE).unwrap();
            let logits = nans(&[n, n], DType::F32);
            let fwd = SimilarityInput {
                ei: &ei,
                ew: &ew,
                log_scale: &st,
                max_log_scale: MAX_LOG_LOGIT_SCALE,
            };
            run(e, &similarity_launch(&logits, fwd).unwrap());
            compare("similarity", &logits, &want, DType::F32);

            let nce = ops::infonce(&want).unwrap();
            let (lse, losses) = (nans(&[2 * n], DType::F32), nans(&[2 * n], DType::F32));
            run(e, &infonce_launch(&lse, &losses, &want).unwrap());
            compare("infonce lse", &lse, &nce.lse, DType::F32);
            let total: f32 = losses.to_vec_f32().unwrap().iter().sum::<f32>() / (2 * n) as f32;
            assert!(
                (total - nce.loss.loss).abs() < 1e-5 * nce.loss.loss.abs().max(1.0),
                "infonce loss {total} vs {}",
                nce.loss.loss
            );

            let want_dl = ops::infonce_backward(&want, &nce, 1.0).unwrap();
            let mut dl = nans(&[n, n], DType::F32);
            let a = InfonceBackward {
                dlogits: &mut dl,
                logits: &want,
                lse: &nce.lse,
                scale: 1.0 / (2 * n) as f32,
            };
            run(e, &infonce_backward_launch(&a).unwrap());
            compare("infonce dlogits", &dl, &want_dl, DType::F32);

            let mut want_ds = Tensor::from_f32(&[1], vec![0.5]).unwrap();
            let (want_dei, want_dew) = ops::similarity_backward(
                &ei,
                &ew,
                &st,
                &want,
                &want_dl,
                MAX_LOG_LOGIT_SCALE,
                &mut want_ds,
            )
            .unwrap();
            let (mut dei, mut dew) = (nans(&[n, dim], dtype), nans(&[n, dim], dtype));
            let mut ds = Tensor::from_f32(&[1], vec![0.5]).unwrap();
            let a = SimilarityBackward {
                dei: &mut dei,
                dew: &mut dew,
                dlog_scale: &mut ds,
                input: fwd,
                logits: &want,
                dlogits: &want_dl,
            };
            for l in similarity_backward_launches(&a).unwrap() {
                run(e, &l);
            }
            compare("similarity dei", &dei, &want_dei, dtype);
            compare("similarity dew", &dew, &want_dew, dtype);
            compare("similarity d log_scale", &ds, &want_ds, DType::F32);
            if s > MAX_LOG_LOGIT_SCALE {
                assert_eq!(ds.to_vec_f32().unwrap()[0], 0.5, "clamped: no gradient");
            }
        }
    }
}
