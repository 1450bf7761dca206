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
use seisfuse::{Device, Tensor};

use common::emu;

/// Replays one planned launch under the emulation (tests/common/emu.rs: the dispatcher is
/// generated from the Rust declarations, so the arguments travel exactly as planned).
fn run(l: Launch) -> anyhow::Result<()> {
    emu::run(&l.planned());
    Ok(())
}

/// Which forward kernel a launch runs.
fn kind(l: &Launch) -> &'static str {
    match l.kernel {
        MelKernel::FramesFft(_) => "pair",
        MelKernel::TileFft(_) => "tile",
        MelKernel::FramesDft(_) => "dft",
        _ => "other",
    }
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
    if !emu::available("emulated_log_mel_kernels_match_the_cpu_reference") {
        return;
    }
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
        (logmel(80, 20, PadMode::Reflect, true, db), true),  // FFT 8·2·5: the radix-2 stage
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
        // Both variants; variant 2 must take the tiled kernel wherever the FFT applies.
        for variant in [1, 2] {
            let out = nans(&[b, nm, f]);
            let mut kinds = Vec::new();
            forward_launches(variant, &tb, &tables, &out, &xt, dims, &mut |l| {
                kinds.push(kind(&l));
                run(l)
            })
            .unwrap();
            let expect = match (fast, variant) {
                (false, _) => "dft",
                (true, 1) => "pair",
                _ => "tile",
            };
            assert!(
                kinds.iter().all(|k| *k == expect),
                "{kinds:?}, want {expect}"
            );
            let got = out.to_vec_f32().unwrap();
            let r = rel(&got, &want);
            eprintln!("n_fft {n}, mel variant {variant} ({expect}): emulated forward rel {r:.2e}");
            assert!(
                r < 1e-5,
                "n_fft {n}, variant {variant}: forward rel {r:.3e}"
            );
        }

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
        backward_launches(&tb, &tables, a, dims, &mut run).unwrap();
        let r = rel(&dx.to_vec_f32().unwrap(), &want_dx);
        eprintln!("n_fft {n}: emulated backward rel {r:.2e}");
        assert!(r < 1e-4, "n_fft {n}: backward rel {r:.3e}");
    }
}

#[test]
fn emulated_image_kernels_match_the_cpu_reference() {
    if !emu::available("emulated_image_kernels_match_the_cpu_reference") {
        return;
    }
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
        forward_launches(
            seisfuse::backend::variants::variant("mel").unwrap(),
            &tb,
            &tables,
            &lmv,
            &xt,
            dims,
            &mut run,
        )
        .unwrap();
        run(finish_launch(&imgs, &lmv, &plan).unwrap()).unwrap();
        let avg = nans(&[n, 1, h, w]);
        if cfg.average_channels {
            run(mean_launch(&avg, &imgs, c).unwrap()).unwrap();
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

/// The benchmark's shape (docs/perf.md): 6000 samples → 224 mels × 223 frames (n_fft 448,
/// hop 27) → a 224×224 image with an 80 dB floor and min-max normalisation, on the default
/// (tiled) variant, two traces.
#[test]
fn emulated_mel_images_at_the_benchmark_shape() {
    if !emu::available("emulated_mel_images_at_the_benchmark_shape") {
        return;
    }
    let (n, t) = (2, 6000);
    let cfg = MelImageConfig::default().with_db(Some(80.0));
    let plan = MelImagePlan::new(&cfg, t).unwrap();
    assert_eq!((plan.n_fft, plan.hop, plan.frames), (448, 27, 223));
    let x = waves(n * t, 11);
    let (want, _) = mel_images(&x, n, 1, t, &cfg).unwrap();
    let tb = MelTables::new(&plan.log_mel().unwrap()).unwrap();
    let tables = MelTableTensors::new(&tb, &Device::Cpu).unwrap();
    let (h, w, f) = (cfg.height, cfg.width, plan.frames);
    let lmv = nans(&[n, h, f]);
    let imgs = nans(&[n, h, w]);
    let dims = MelDims {
        batch: n,
        t,
        frames: f,
    };
    let mut kinds = Vec::new();
    forward_launches(2, &tb, &tables, &lmv, &cpu(&[n, t], &x), dims, &mut |l| {
        kinds.push(kind(&l));
        run(l)
    })
    .unwrap();
    assert_eq!(kinds, ["tile"]);
    run(finish_launch(&imgs, &lmv, &plan).unwrap()).unwrap();
    let r = rel(&imgs.to_vec_f32().unwrap(), &want);
    eprintln!("benchmark shape, {n} traces: emulated images rel {r:.2e}");
    assert!(r < 1e-5, "images rel {r:.3e}");
}
