//! The mel-image benchmark: 3072 traces × 6000 samples → 224 mels × 223 frames (n_fft 448,
//! hop 27) resampled to 224×224, on the current device. On the CPU a smaller batch is timed
//! on a rayon pool of one thread and of all cores.

use crate::backend::Device;
use crate::dsp::images::MelImageConfig;
use crate::dsp::mel::LogKind;
use crate::ops::mel::{log_mel, mel_images, LogMelSpec};
use crate::outln;
use crate::tensor::Tensor;
use anyhow::Result;
use std::time::Instant;

/// Traces and samples of the benchmark workload.
pub const TRACES: usize = 3072;
pub const SAMPLES: usize = 6000;
/// Traces timed on the CPU by default.
pub const CPU_TRACES: usize = 96;

fn workload(traces: usize) -> Vec<f32> {
    let mut s = 0x9E37_79B9u32;
    (0..traces * SAMPLES)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5 + (i as f32 * 0.07).sin()
        })
        .collect()
}

pub fn image_config() -> MelImageConfig {
    MelImageConfig::default().with_db(Some(80.0))
}

/// The log-mel alone (what torchaudio's MelSpectrogram + AmplitudeToDB compute).
pub fn log_mel_spec() -> Result<LogMelSpec> {
    let plan = crate::dsp::images::MelImagePlan::new(&image_config(), SAMPLES)?;
    Ok(LogMelSpec {
        stft: plan.stft,
        mel: plan.mel,
        log: LogKind::Db {
            amin: 1e-10,
            ref_value: 1.0,
        },
    })
}

/// Median of `iters` timings of `f` in ms (after one warm-up run).
fn time_ms(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut v = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(v[v.len() / 2])
}

/// The GPU launches of the full workload (3072 traces) with mel variant `variant`, planned by
/// the CUDA wrapper and priced by [`crate::backend::cuda::predict_mel`], without running
/// anything: the buffers the plan views are zero-filled and never touched.
pub fn mel_plan(variant: u32) -> Result<Vec<crate::backend::cuda::predict::Planned>> {
    use crate::backend::cuda::{predict_mel, stft_mel as k};
    use crate::tensor::DType;
    let cfg = image_config();
    let plan = crate::dsp::images::MelImagePlan::new(&cfg, SAMPLES)?;
    let tb = k::MelTables::new(&plan.log_mel()?)?;
    let tables = k::MelTableTensors::new(&tb, &Device::Cpu)?;
    let (h, w, f) = (cfg.height, cfg.width, plan.frames);
    let cpu = Device::Cpu;
    let x = Tensor::zeros(&[TRACES, SAMPLES], DType::F32, &cpu)?;
    let logmel = Tensor::zeros(&[TRACES, h, f], DType::F32, &cpu)?;
    let images = Tensor::zeros(&[TRACES, h, w], DType::F32, &cpu)?;
    let dims = k::MelDims {
        batch: TRACES,
        t: SAMPLES,
        frames: f,
    };
    let mut planned = Vec::new();
    k::forward_launches(variant, &tb, &tables, &logmel, &x, dims, &mut |l| {
        planned.push(predict_mel::planned(&l, &tb));
        Ok(())
    })?;
    planned.push(predict_mel::planned(
        &k::finish_launch(&images, &logmel, &plan)?,
        &tb,
    ));
    Ok(planned)
}

/// `bench mel --predict CARD`: [`mel_plan`] for the chosen mel variant, with ptxas's
/// resources, through cli/profile.rs's roofline.
pub fn run_mel_prediction(card_name: &str) -> Result<()> {
    let card = super::profile::card(card_name)?;
    let cfg = image_config();
    let plan = crate::dsp::images::MelImagePlan::new(&cfg, SAMPLES)?;
    let (h, w, f) = (cfg.height, cfg.width, plan.frames);
    let planned = mel_plan(crate::backend::variants::variant("mel")?)?;
    let (res, note) = match super::profile::ptxas(&["stft_mel"], card.arch) {
        Ok(r) => (r, format!("NVRTC, sm_{}", card.arch)),
        Err(e) => (Default::default(), format!("unavailable ({e:#})")),
    };
    let p = super::profile::predict(&card, &planned, &res);
    let (ceil, source) = card.ceilings();
    outln!(
        "PREDICTED (no GPU ran this): mel images of {TRACES} traces × {SAMPLES} samples → {h} mels × {f} frames (n_fft {}, hop {}) → {h}×{w}, dB top 80, min-max; kernels {}; on {} (sm_{}, {} SMs)",
        plan.n_fft,
        plan.hop,
        crate::backend::variants::describe()?,
        card.name,
        card.arch,
        card.sms
    )?;
    outln!(
        "ceilings: copy {:.0} GB/s, fp32 {:.1} TFLOP/s — {source}; kernel resources from ptxas: {note}",
        ceil.copy_gbs,
        ceil.fp32
    )?;
    super::profile::print_rows(&p)?;
    outln!(
        "total: {} launches, {:.2} GFLOP, {:.3} GB; predicted {:.3} ms ({:.0} traces/s); torchaudio on the H200: 6.1 ms; goal ≤ 0.6 ms",
        p.launches,
        p.flops / 1e9,
        p.bytes / 1e9,
        p.seconds * 1e3,
        TRACES as f64 / p.seconds
    )?;
    outln!(
        "a roofline lower bound: compulsory traffic only (re-reads that hit L2, the FFT's shared-memory traffic and bank conflicts are not counted); FFT compute divided by the share of lanes its stages keep busy"
    )?;
    Ok(())
}

pub fn run_mel_bench(device: &Device) -> Result<()> {
    run_mel_bench_with(device, None)
}

pub fn run_mel_bench_with(device: &Device, cpu_traces: Option<usize>) -> Result<()> {
    let cfg = image_config();
    let spec = log_mel_spec()?;
    let plan = crate::dsp::images::MelImagePlan::new(&cfg, SAMPLES)?;
    outln!(
        "mel bench: {} samples/trace → {} mels × {} frames → {}×{} images (n_fft {}, hop {}, dB top 80, min-max)",
        SAMPLES, cfg.height, plan.frames, cfg.height, cfg.width, plan.n_fft, plan.hop
    )?;
    match device {
        Device::Cuda(b) => {
            use crate::backend::api::{Backend, StftMelOps};
            use crate::backend::cuda::stft_mel as k;
            use crate::tensor::DType;
            let x = Tensor::from_f32(&[TRACES, 1, SAMPLES], workload(TRACES))?.to_device(device)?;
            // Kernels alone, on buffers allocated once (as a caching allocator would serve them).
            let lm = plan.log_mel()?;
            let tables = k::LogMelDevice::new(b, &lm)?;
            let (h, w, f) = (cfg.height, cfg.width, plan.frames);
            let mut logmel = b.alloc(&[TRACES, h, f], DType::F32)?;
            let mut images = b.alloc(&[TRACES, h, w], DType::F32)?;
            let path = if tables.uses_fft() {
                "shared-memory FFT"
            } else {
                "direct DFT"
            };
            let frames_ms = time_ms(20, || {
                b.log_mel_frames(&tables, &mut logmel, &x)?;
                b.synchronize()
            })?;
            let images_ms = time_ms(20, || {
                b.log_mel_frames(&tables, &mut logmel, &x)?;
                b.mel_image_finish(&mut images, &logmel, &plan)?;
                b.synchronize()
            })?;
            // The tensor op end to end (tables uploaded and outputs allocated on every call).
            let op_ms = time_ms(10, || {
                let _y = mel_images(&x, &cfg)?;
                b.synchronize()
            })?;
            let x2 = x.try_clone()?.reshape(&[TRACES, SAMPLES])?;
            let lm_op_ms = time_ms(10, || {
                let _y = log_mel(&x2, &spec)?;
                b.synchronize()
            })?;
            outln!(
                "{} ({}): {TRACES} traces, {path}: log-mel kernel {frames_ms:.2} ms, log-mel + image finish {images_ms:.2} ms ({:.0} traces/s)",
                device.name(),
                b.name,
                TRACES as f64 / (images_ms / 1e3)
            )?;
            outln!(
                "  tensor ops with allocation: log_mel {lm_op_ms:.2} ms, mel_images {op_ms:.2} ms; PyTorch reference (H200, torchaudio MelSpectrogram): 6.1 ms"
            )?;
        }
        Device::Cpu => {
            let n = cpu_traces.unwrap_or(CPU_TRACES).max(1);
            let x = Tensor::from_f32(&[n, 1, SAMPLES], workload(n))?;
            let cores = rayon::current_num_threads();
            let mut results = Vec::new();
            for threads in [1, cores] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()?;
                let ms = pool.install(|| time_ms(3, || mel_images(&x, &cfg).map(|_| ())))?;
                results.push(ms);
                outln!(
                    "cpu, {threads} thread(s): {n} traces in {ms:.1} ms = {:.2} ms/trace ({:.0} traces/s); {TRACES} traces ≈ {:.2} s",
                    ms / n as f64,
                    n as f64 / (ms / 1e3),
                    ms / n as f64 * TRACES as f64 / 1e3
                )?;
            }
            if results.len() == 2 {
                outln!("speed-up on {cores} cores: {:.2}×", results[0] / results[1])?;
            }
        }
    }
    Ok(())
}
