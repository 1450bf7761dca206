//! Runs kernels/stft_mel.cu — the very source NVRTC compiles, common.cuh included — through a
//! CPU emulation of CUDA (tools/cuda_emu/emu.h, shared with tests/kernel_emu.rs: a fiber per
//! CUDA thread, a barrier for __syncthreads) built with the system C++ compiler, with the
//! launches planned exactly as the CUDA wrappers plan them, and compares with the CPU reference.
//! It checks the kernels' indexing, synchronisation points and arithmetic where no GPU exists; it
//! says nothing about speed or about CUDA's memory model. Reported as skipped when no C++20
//! compiler is found.

mod common;
use seisfuse::backend::cuda::stft_mel::{
    backward_chunk, backward_launches, finish_launch, forward_launches, mean_launch, Launch,
    MelBackward, MelDims, MelKernel, MelTableTensors, MelTables,
};
use seisfuse::dsp::*;
use seisfuse::{DType, Device, Tensor};
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
        seisfuse::backend::cuda::kernel_source("stft_mel")
            .map_err(|e| e.to_string())?
            .source,
    )?;
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/cuda_emu");
    let read = |f: &str| std::fs::read_to_string(here.join(f)).map_err(|e| format!("{f}: {e}"));
    let all = format!(
        "{}\n{}\n#line 1 \"tools/cuda_emu/stft_mel_entry.cpp\"\n{}",
        read("emu.h")?,
        src,
        read("stft_mel_entry.cpp")?
    );
    common::emu::load(&all, "stft_mel_emu")
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

/// The host address of a CPU tensor view's first element (the emulated kernels read and write
/// the buffer through it; it does not move while the tensor lives).
fn addr(t: &Tensor) -> u64 {
    match t.dtype {
        DType::F32 => t.f32s().unwrap().as_ptr() as u64,
        DType::I32 => t.i32s().unwrap().as_ptr() as u64,
        d => panic!("no {d} buffers in kernels/stft_mel.cu"),
    }
}

/// A launch's arguments as the 64-bit slots of tools/cuda_emu/stft_mel_entry.cpp, in the
/// kernel's parameter order (the same as the typed declaration's, which
/// tests/kernel_signatures.rs checks against the .cu file).
fn slots(l: &Launch) -> Vec<u64> {
    let p = addr;
    let i = |v: i32| v as u32 as u64;
    let f = |v: f32| v.to_bits() as u64;
    match &l.kernel {
        MelKernel::FramesFft(k) => vec![
            p(k.out),
            p(k.x),
            p(k.window),
            p(k.twiddles),
            p(k.fb),
            p(k.fb_range),
            i(k.t),
            i(k.n_fft),
            i(k.hop),
            i(k.pad),
            i(k.reflect),
            i(k.frames),
            i(k.n_mels),
            k.radix_code,
            i(k.n_stages),
            i(k.log_kind),
            f(k.log_floor),
            f(k.log_offset),
        ],
        MelKernel::FramesDft(k) => vec![
            p(k.out),
            p(k.x),
            p(k.window),
            p(k.twiddles),
            p(k.fb),
            p(k.fb_range),
            i(k.t),
            i(k.n_fft),
            i(k.hop),
            i(k.pad),
            i(k.reflect),
            i(k.frames),
            i(k.n_mels),
            i(k.log_kind),
            f(k.log_floor),
            f(k.log_offset),
        ],
        MelKernel::FramesBackwardDft(k) => vec![
            p(k.dframes),
            p(k.x),
            p(k.dy),
            p(k.window),
            p(k.twiddles),
            p(k.fb),
            p(k.fb_range),
            i(k.t),
            i(k.n_fft),
            i(k.hop),
            i(k.pad),
            i(k.reflect),
            i(k.frames),
            i(k.n_mels),
            i(k.log_kind),
            f(k.log_floor),
        ],
        MelKernel::OverlapAddBackward(k) => vec![
            p(k.dx),
            p(k.dframes),
            k.total as u64,
            i(k.t),
            i(k.n_fft),
            i(k.hop),
            i(k.pad),
            i(k.reflect),
            i(k.frames),
        ],
        MelKernel::ImageFinish(k) => vec![
            p(k.out),
            p(k.logmel),
            i(k.h),
            i(k.f),
            i(k.w),
            i(k.has_top_db),
            f(k.top_db),
            i(k.normalize),
        ],
        MelKernel::MeanOverChannels(k) => vec![
            p(k.out),
            p(k.input),
            k.total as u64,
            i(k.channels),
            k.hw as u64,
        ],
    }
}

/// Runs one planned launch through the emulation.
fn run(e: &Emu, l: Launch) -> anyhow::Result<()> {
    let slots = slots(&l);
    let name = std::ffi::CString::new(l.name()).unwrap();
    let (g, b) = (l.cfg.grid_dim, l.cfg.block_dim);
    // SAFETY: every pointer in the slots addresses a live host buffer of the planned size.
    let rc = unsafe {
        (e.run)(
            name.as_ptr(),
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
    assert_ne!(rc, -1, "the emulation does not know kernel {}", l.name());
    assert_eq!(
        rc,
        0,
        "the emulator reported errors in {} (stderr)",
        l.name()
    );
    Ok(())
}

/// A CPU tensor of NaNs (every value the kernels should write).
fn nans(shape: &[usize]) -> Tensor {
    Tensor::from_f32(shape, vec![f32::NAN; shape.iter().product()]).unwrap()
}

fn cpu(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape, v.to_vec()).unwrap()
}

fn waves(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5 + (i as f32 * 0.05).sin()
        })
        .collect()
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert!(a.iter().all(|v| v.is_finite()), "non-finite output");
    let (mut n, mut d) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        n += (*x as f64 - *y as f64).powi(2);
        d += (*y as f64).powi(2);
    }
    (n / d.max(1e-300)).sqrt()
}

fn logmel(n_fft: usize, hop: usize, pad: PadMode, center: bool, log: LogKind) -> LogMel<f32> {
    let mut stft = StftConfig::new(n_fft, hop);
    stft.pad_mode = pad;
    stft.center = center;
    let mel = MelParams {
        sample_rate: 100.0,
        n_fft,
        n_mels: 24,
        f_min: 0.5,
        f_max: None,
        scale: MelScale::Slaney,
        norm: MelNorm::Slaney,
    };
    LogMel::new(&stft, &mel, log).unwrap()
}

#[test]
fn emulated_log_mel_kernels_match_the_cpu_reference() {
    let Some(e) = emu("emulated_log_mel_kernels_match_the_cpu_reference") else {
        return;
    };
    let ln = LogKind::Ln { floor: 1e-10 };
    let db = LogKind::Db {
        amin: 1e-10,
        ref_value: 1.0,
    };
    let cases = [
        (logmel(448, 27, PadMode::Reflect, true, db), true), // benchmark n_fft, FFT 8·8·7
        (logmel(60, 15, PadMode::Constant, true, ln), true), // FFT 4·3·5
        (
            logmel(64, 16, PadMode::Reflect, false, LogKind::Linear),
            true,
        ), // not centred
        (logmel(62, 20, PadMode::Reflect, true, ln), false), // 2·31: direct DFT
    ];
    let (b, t) = (2, 1201);
    let x = waves(b * t, 5);
    let xt = cpu(&[b, t], &x);
    for (lm, fast) in cases {
        let n = lm.stft.cfg.n_fft;
        let tb = MelTables::new(&lm).unwrap();
        assert_eq!(tb.radices.is_some(), fast, "n_fft {n}");
        let tables = MelTableTensors::new(&tb, &Device::Cpu).unwrap();
        let f = lm.n_frames(t).unwrap();
        let nm = lm.n_mels();
        let dims = MelDims {
            batch: b,
            t,
            frames: f,
        };
        let want: Vec<f32> = (0..b)
            .flat_map(|i| lm.forward(&x[i * t..(i + 1) * t]).unwrap())
            .collect();
        let out = nans(&[b, nm, f]);
        forward_launches(&tb, &tables, &out, &xt, dims, &mut |l| run(e, l)).unwrap();
        let got = out.to_vec_f32().unwrap();
        let r = rel(&got, &want);
        eprintln!("n_fft {n}: emulated forward rel {r:.2e}");
        assert!(r < 1e-5, "n_fft {n}: forward rel {r:.3e}");

        let dy = waves(b * nm * f, 8);
        let want_dx: Vec<f32> = (0..b)
            .flat_map(|i| {
                lm.backward(&x[i * t..(i + 1) * t], &dy[i * nm * f..(i + 1) * nm * f])
                    .unwrap()
            })
            .collect();
        let dx = nans(&[b, t]);
        let dframes = nans(&[backward_chunk(b) * f * n]);
        let a = MelBackward {
            dx: &dx,
            x: &xt,
            dy: &cpu(&[b, nm, f], &dy),
            dframes: &dframes,
        };
        backward_launches(&tb, &tables, a, dims, &mut |l| run(e, l)).unwrap();
        let r = rel(&dx.to_vec_f32().unwrap(), &want_dx);
        eprintln!("n_fft {n}: emulated backward rel {r:.2e}");
        assert!(r < 1e-4, "n_fft {n}: backward rel {r:.3e}");
    }
}

#[test]
fn emulated_image_kernels_match_the_cpu_reference() {
    let Some(e) = emu("emulated_image_kernels_match_the_cpu_reference") else {
        return;
    };
    let (n, c, t) = (2, 3, 1500);
    let x = waves(n * c * t, 3);
    let xt = cpu(&[n, c, t], &x);
    let base = MelImageConfig {
        height: 40,
        width: 48, // hop 31, 49 frames resampled to 48 columns
        ..Default::default()
    };
    let cfgs = [
        base.clone().with_db(Some(80.0)),
        MelImageConfig {
            normalize: Normalize::ZScore,
            average_channels: true,
            ..base.clone()
        },
        MelImageConfig {
            normalize: Normalize::None,
            width: 30,
            ..base
        },
    ];
    for cfg in cfgs {
        let (want, _) = mel_images(&x, n, c, t, &cfg).unwrap();
        let plan = MelImagePlan::new(&cfg, t).unwrap();
        let tb = MelTables::new(&plan.log_mel().unwrap()).unwrap();
        let tables = MelTableTensors::new(&tb, &Device::Cpu).unwrap();
        let (h, w, f) = (cfg.height, cfg.width, plan.frames);
        let lmv = nans(&[n * c, h, f]);
        let imgs = nans(&[n, c, h, w]);
        let dims = MelDims {
            batch: n * c,
            t,
            frames: f,
        };
        forward_launches(&tb, &tables, &lmv, &xt, dims, &mut |l| run(e, l)).unwrap();
        run(e, finish_launch(&imgs, &lmv, &plan).unwrap()).unwrap();
        let avg = nans(&[n, 1, h, w]);
        if cfg.average_channels {
            run(e, mean_launch(&avg, &imgs, c).unwrap()).unwrap();
        }
        let got = if cfg.average_channels { &avg } else { &imgs };
        let r = rel(&got.to_vec_f32().unwrap(), &want);
        eprintln!(
            "{:?} {}×{} from {f} frames: emulated images rel {r:.2e}",
            cfg.normalize, h, w
        );
        assert!(r < 1e-4, "{cfg:?}: images rel {r:.3e}");
    }
}
