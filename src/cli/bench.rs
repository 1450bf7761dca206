//! `seisfuse bench`: throughput of the engine's ops (and, as they land, whole models) on the
//! current device. Timings exclude the first (warm-up) run, which compiles kernels.

use crate::backend::counters::{self, Counts};
use crate::backend::{select, Device, DeviceRequest};
use crate::nn::{Grads, ParamStore};
use crate::ops;
use crate::outln;
use crate::tensor::{DType, Tensor};
use crate::train::AdamW;
use anyhow::{bail, Result};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

impl Args {
    /// The benchmark's `--device`.
    pub fn device(&self) -> super::DeviceArg {
        match &self.what {
            What::Ops(a) => a.device,
            What::Sfm(a) => a.device,
            What::Seislm(a) => a.device,
            What::Mel(a) => a.device,
            What::Pick(a) => a.device,
            What::Train(a) => a.device,
            What::Fusion(a) => a.device,
            // Each rank picks its own GPU (cuda:LOCAL_RANK).
            What::Allreduce(_) => super::DeviceArg { device: None },
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Matmul (fp32, bf16) at n³, LayerNorm and softmax; prints TFLOP/s or GB/s.
    Ops(OpsArgs),
    /// SFM encoder: training step (forward + backward + AdamW) and inference, images/s.
    Sfm(SfmArgs),
    /// SeisLM encoder: training step (forward + backward + AdamW) on 3×3001 waveforms.
    Seislm(SeislmArgs),
    /// Mel images of 3072 traces × 6000 samples (n_fft 448, hop 27, 224 mels); on the CPU a
    /// smaller batch, against one thread.
    Mel(MelArgs),
    /// `seisfuse pick` on continuous data: hours of 3-component data per second, resampling,
    /// windows, the model, stacking and triggers included (random weights).
    Pick(super::bench_pick::PickArgs),
    /// The trainer's whole loop for one task (`seisfuse train`'s settings and flags), per
    /// phase: reading the batch, forward + backward, optimizer, logging; samples/s.
    Train(super::bench_train::TrainArgs),
    /// `bench train` for each variant of the fusion experiment (`seisfuse demo`'s six).
    Fusion(super::bench_train::FusionArgs),
    /// All-reduce bandwidth by message size, like nccl-tests (algbw, busbw); run one process
    /// per GPU: `seisfuse launch --nproc-per-node 8 -- bench allreduce`.
    Allreduce(crate::dist::bench::AllreduceArgs),
}

#[derive(clap::Args, Debug)]
pub struct SeislmArgs {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// seislm-tiny, seislm-base or seislm-large.
    #[arg(long, default_value = "seislm-base")]
    pub preset: String,
    /// Batch (default 64 on a GPU as the PyTorch baselines of docs/perf.md, 2 on the CPU).
    #[arg(long)]
    pub batch: Option<usize>,
    #[arg(long, default_value_t = 3001)]
    pub samples: usize,
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Precisions to time, comma-separated: fp32 and/or bf16 (bf16 activations and weight
    /// copies, fp32 masters, gradients and optimizer state).
    #[arg(long, default_value = "fp32,bf16", value_parser = parse_precisions)]
    pub precision: Precisions,
    /// Also time a contrastive pretraining step (wav2vec2 objective, forward + backward +
    /// AdamW) and the objective's ops alone.
    #[arg(long)]
    pub pretrain: bool,
    /// Print per-step allocations, launches and host syncs (see `bench sfm --counts`).
    #[arg(long)]
    pub counts: bool,
    /// Replay the training step's forward and backward as one CUDA graph (see `bench sfm
    /// --graph`; GPU only, not with --pretrain).
    #[arg(long)]
    pub graph: bool,
}

/// The precisions a benchmark times, in order.
#[derive(Clone, Debug)]
pub struct Precisions(pub Vec<DType>);

/// "fp32,bf16" → [F32, BF16]; an error naming the accepted values otherwise.
fn parse_precisions(s: &str) -> std::result::Result<Precisions, String> {
    s.split(',')
        .map(|p| match p.trim() {
            "fp32" | "f32" => Ok(DType::F32),
            "bf16" => Ok(DType::BF16),
            other => Err(format!(
                "unknown precision '{other}': expected fp32 or bf16 (comma-separated)"
            )),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Precisions)
}

/// The benchmarks' AdamW (β1 0.9, ε 1e-8), as the models' papers set the rest.
pub(crate) fn adamw(lr: f32, beta2: f32, weight_decay: f32) -> crate::train::AdamW {
    crate::train::AdamW::new(ops::AdamWConfig {
        lr,
        beta1: 0.9,
        beta2,
        eps: 1e-8,
        weight_decay,
    })
}

/// What a bf16 figure means on the CPU, printed beside it.
fn emulation_note(d: &Device, dt: DType) -> &'static str {
    if dt == DType::BF16 && !d.is_cuda() {
        " (bf16 is emulated on the CPU: rounded, computed in f32)"
    } else {
        ""
    }
}

fn precision_name(dt: DType) -> &'static str {
    match dt {
        DType::BF16 => "bf16",
        _ => "fp32",
    }
}

#[derive(clap::Args, Debug)]
pub struct MelArgs {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// On the CPU: traces to time (default 96).
    #[arg(long)]
    pub traces: Option<usize>,
    /// Run nothing: print the GPU kernels' predicted profile for the full benchmark (3072
    /// traces) on a card (h200, h100 or a100; default h200), from the launch plan, ptxas and
    /// a roofline bound, as `seisfuse profile` does without a GPU.
    #[arg(long, value_name = "CARD", num_args = 0..=1, default_missing_value = "h200")]
    pub predict: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SfmArgs {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// sfm-tiny, sfm-base or sfm-large.
    #[arg(long, default_value = "sfm-base")]
    pub preset: String,
    /// Training batch (default 64 on a GPU as the PyTorch baselines of docs/perf.md, 2 on the CPU).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Inference batch (default 256 on a GPU, 4 on the CPU).
    #[arg(long)]
    pub infer_batch: Option<usize>,
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Precisions to time, comma-separated: fp32 and/or bf16.
    #[arg(long, default_value = "fp32,bf16", value_parser = parse_precisions)]
    pub precision: Precisions,
    /// Also time the MAE pretraining step (mae_vit_*D4d256 on the preset's encoder).
    #[arg(long)]
    pub mae: bool,
    /// MAE batch (default 256 on a GPU as the PyTorch baseline of docs/perf.md, 2 on the CPU).
    #[arg(long)]
    pub mae_batch: Option<usize>,
    /// Print what one steady-state training step asks of the device: buffer allocations,
    /// launches (op calls on the CPU) and host syncs, for the whole step and for the
    /// optimizer part (zero_grad, gradient norm, AdamW).
    #[arg(long)]
    pub counts: bool,
    /// Capture the training step's forward and backward (and the inference forward) into a
    /// CUDA graph after one ordinary step and time its replays, each followed by the
    /// optimizer step as ordinary launches. GPU only; not with --mae (its masks are uploaded
    /// every step).
    #[arg(long)]
    pub graph: bool,
}

#[derive(clap::Args, Debug)]
pub struct OpsArgs {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// Matrix size n for the n×n×n products (default: 4096 on a GPU, 1024 on the CPU).
    #[arg(long)]
    pub size: Option<usize>,
    /// Timed repetitions per op (after one warm-up run).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
}

/// `--NAME` must be at least 1.
fn positive(flag: &str, v: Option<usize>) -> Result<()> {
    if v == Some(0) {
        bail!("{flag} must be at least 1");
    }
    Ok(())
}

/// Refuses flags whose tensors would not fit in the memory budget, before the device starts.
fn check_args(args: &Args) -> Result<()> {
    use crate::limits::check;
    // The sizes of a GPU run are the larger defaults; check those (the device is not known yet).
    match &args.what {
        What::Ops(a) => {
            positive("--size", a.size)?;
            let n = a.size.unwrap_or(4096) as u128;
            // x, y, c in f32 and bf16 copies, and the random values made on the host
            check(
                format_args!("bench ops --size {n} ({n}×{n} matrices)"),
                n * n * 4 * 6,
            )?;
        }
        What::Sfm(a) => {
            positive("--batch", a.batch)?;
            positive("--infer-batch", a.infer_batch)?;
            positive("--mae-batch", a.mae_batch)?;
            if a.graph && a.mae {
                bail!("--graph times the plain training step: the MAE step uploads a new mask every step, which a CUDA graph cannot replay; drop --mae or --graph");
            }
            let cfg = crate::models::sfm::VitConfig::preset(&a.preset)?;
            let (b, bi) = (a.batch.unwrap_or(2), a.infer_batch.unwrap_or(4));
            // a training step keeps activations and their gradients
            check(
                format_args!("bench sfm --batch {b} --infer-batch {bi} on {}", a.preset),
                2 * super::estimate::vit_bytes(&cfg, b).max(super::estimate::vit_bytes(&cfg, bi)),
            )?;
            if a.mae {
                let mb = a.mae_batch.unwrap_or(2);
                check(
                    format_args!("bench sfm --mae --mae-batch {mb} on {}", a.preset),
                    2 * super::estimate::vit_bytes(&cfg, mb),
                )?;
            }
        }
        What::Seislm(a) => {
            positive("--batch", a.batch)?;
            if a.graph && a.pretrain {
                bail!("--graph times the plain training step: the pretraining step uploads new masks and negatives every step, which a CUDA graph cannot replay; drop --pretrain or --graph");
            }
            if a.samples == 0 {
                bail!("--samples must be at least 1");
            }
            let cfg = crate::models::seislm::SeislmConfig::preset(&a.preset)?;
            let b = a.batch.unwrap_or(2);
            check(
                format_args!(
                    "bench seislm --batch {b} --samples {} on {}",
                    a.samples, a.preset
                ),
                2 * super::estimate::seislm_bytes(&cfg, b, a.samples, 0),
            )?;
        }
        What::Mel(a) => {
            positive("--traces", a.traces)?;
            let t = a.traces.unwrap_or(super::bench_mel::CPU_TRACES) as u128;
            let s = super::bench_mel::SAMPLES as u128;
            // traces, their images and spectra
            check(
                format_args!("bench mel --traces {t}"),
                t * (s * 4 + 224 * 224 * 8 + 224 * 225 * 8),
            )?;
        }
        What::Pick(a) => super::bench_pick::check(a)?,
        // The trainer's configuration checks its own sizes.
        What::Train(_) | What::Fusion(_) => {}
        // Message sizes are checked by the all-reduce benchmark itself.
        What::Allreduce(_) => {}
    }
    Ok(())
}

pub fn run(req: DeviceRequest, args: Args) -> Result<()> {
    // Each rank picks its own GPU (cuda:LOCAL_RANK): no device is selected for it here.
    match args.what {
        What::Allreduce(a) => return crate::dist::bench::run(req, a),
        // The trainer selects its device from its configuration.
        What::Train(a) => return super::bench_train::run_train(req, a),
        What::Fusion(a) => return super::bench_train::run_fusion(req, a),
        // A prediction runs nothing on any device.
        What::Mel(MelArgs {
            predict: Some(card),
            traces,
            ..
        }) => {
            if traces.is_some() {
                bail!("--traces has no effect with --predict: the prediction is for the full benchmark ({} traces); drop one of them", super::bench_mel::TRACES);
            }
            return super::bench_mel::run_mel_prediction(&card);
        }
        _ => {}
    }
    check_args(&args)?;
    let device = select(req)?;
    match args.what {
        What::Ops(a) => bench_ops(&device, a),
        What::Sfm(a) => bench_sfm(&device, a),
        What::Seislm(a) => bench_seislm(&device, a),
        What::Mel(a) => super::bench_mel::run_mel_bench_with(&device, a.traces),
        What::Pick(a) => super::bench_pick::run(&device, a),
        What::Allreduce(_) | What::Train(_) | What::Fusion(_) => {
            unreachable!("handled before a device is selected")
        }
    }
}

/// The counts of one steady-state call of `step`: it runs twice and the second call is
/// counted (the first allocates the optimizer state and compiles kernels).
pub(super) fn step_counts(d: &Device, mut step: impl FnMut() -> Result<()>) -> Result<Counts> {
    step()?;
    sync(d)?;
    let c0 = counters::snapshot();
    step()?;
    sync(d)?;
    Ok(counters::snapshot() - c0)
}

/// The parameter store, optimizer and learning rate of a timed training step.
pub(super) type StepState<'a> = (&'a mut ParamStore, &'a mut AdamW, f32);

/// The device part of a training step: `forward()`, zero_grad, `backward(cache, grads)` into
/// the store's gradients, the gradients settled (what `bench --graph` captures); returns the
/// counts of its zero_grad.
pub(super) fn device_part<C>(
    store: &mut ParamStore,
    forward: impl Fn() -> Result<C>,
    backward: impl Fn(&C, &mut Grads) -> Result<()>,
) -> Result<Counts> {
    let cache = forward()?;
    let c0 = counters::snapshot();
    store.zero_grad()?;
    let zero = counters::snapshot() - c0;
    backward(&cache, &mut store.grads)?;
    store.grads.settle()?;
    Ok(zero)
}

/// One training step: [`device_part`], then AdamW; returns the counts of its optimizer part
/// (zero_grad and AdamW).
pub(super) fn train_step<C>(
    (store, opt, lr): &mut StepState,
    forward: impl Fn() -> Result<C>,
    backward: impl Fn(&C, &mut Grads) -> Result<()>,
) -> Result<Counts> {
    let zero = device_part(store, forward, backward)?;
    let c0 = counters::snapshot();
    opt.step(store, *lr)?;
    Ok(zero + (counters::snapshot() - c0))
}

/// Mean seconds of a [`train_step`] over `iters` steps; with `counts`, first prints under
/// that label what one steady-state step asks of the device.
fn time_train_step<C>(
    d: &Device,
    (iters, graph): (usize, bool),
    counts: Option<String>,
    mut step: StepState,
    forward: impl Fn() -> Result<C>,
    backward: impl Fn(&C, &mut Grads) -> Result<()>,
) -> Result<f64> {
    if graph {
        return super::bench_graph::time_graphed_train_step(
            d, iters, counts, step, forward, backward,
        );
    }
    if let Some(what) = counts {
        let mut opt_counts = Counts::default();
        let all = step_counts(d, || {
            opt_counts = train_step(&mut step, &forward, &backward)?;
            Ok(())
        })?;
        print_counts(&what, all, opt_counts)?;
    }
    time_it(d, iters, || {
        train_step(&mut step, &forward, &backward).map(drop)
    })
}

fn print_counts(what: &str, step: Counts, opt: Counts) -> Result<()> {
    outln!("{what}, per step: {step}")?;
    outln!("  of which zero_grad + gradient norm + AdamW: {opt}")
}

fn sync(d: &Device) -> Result<()> {
    if let Device::Cuda(b) = d {
        b.synchronize()?;
    }
    Ok(())
}

/// Mean seconds per call of `f` over `iters` calls, after one warm-up call.
pub fn time_it(d: &Device, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    sync(d)?;
    let t = Instant::now();
    for _ in 0..iters.max(1) {
        f()?;
    }
    sync(d)?;
    Ok(t.elapsed().as_secs_f64() / iters.max(1) as f64)
}

pub(crate) fn random(shape: &[usize], d: &Device, dtype: DType) -> Result<Tensor> {
    let mut s = crate::backend::cpu::philox::PhiloxStream::new(1, 0, 0);
    let n = shape.iter().product();
    Tensor::from_f32(shape, (0..n).map(|_| s.next_f32() - 0.5).collect())?
        .to_dtype(dtype)?
        .to_device(d)
}

fn bench_ops(d: &Device, a: OpsArgs) -> Result<()> {
    let n = a.size.unwrap_or(if d.is_cuda() { 4096 } else { 1024 });
    let where_ = match d {
        Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
        Device::Cuda(b) => format!("{} (sm_{})", b.name, b.arch()),
    };
    outln!("device: {where_}")?;
    let dtypes: &[DType] = if d.is_cuda() {
        &[DType::F32, DType::BF16]
    } else {
        &[DType::F32]
    };
    for &dt in dtypes {
        let x = random(&[n, n], d, dt)?;
        let y = random(&[n, n], d, dt)?;
        let (s, _) = ops::matmul::infer_shape(&x.shape, &y.shape, false, false)?;
        let mut c = Tensor::zeros(&[n, n], dt, d)?;
        let secs = time_it(d, a.iters, || {
            ops::matmul_raw(&mut c, &x, &y, None, &s, false)
        })?;
        outln!(
            "matmul {dt} {n}x{n}x{n}: {:.3} ms, {:.2} TFLOP/s",
            secs * 1e3,
            s.flops() / secs / 1e12
        )?;
    }
    let (rows, cols) = (if d.is_cuda() { 64 * 197 } else { 8 * 197 }, 768);
    for &dt in dtypes {
        let x = random(&[rows, cols], d, dt)?;
        let w = random(&[cols], d, dt)?;
        let b = random(&[cols], d, dt)?;
        let secs = time_it(d, a.iters, || ops::layer_norm(&x, &w, &b, 1e-6).map(|_| ()))?;
        // read x, write y (+ mean/rstd, negligible)
        let bytes = 2.0 * (rows * cols * dt.size_bytes()) as f64;
        outln!(
            "layer_norm {dt} {rows}x{cols}: {:.3} ms, {:.1} GB/s",
            secs * 1e3,
            bytes / secs / 1e9
        )?;
        let secs = time_it(d, a.iters, || ops::softmax(&x).map(|_| ()))?;
        outln!(
            "softmax {dt} {rows}x{cols}: {:.3} ms, {:.1} GB/s",
            secs * 1e3,
            bytes / secs / 1e9
        )?;
    }
    Ok(())
}

fn bench_sfm(d: &Device, a: SfmArgs) -> Result<()> {
    use crate::models::sfm::{Vit, VitConfig};
    let cfg = VitConfig::preset(&a.preset)?;
    if a.graph {
        super::bench_graph::require_cuda(d)?;
    }
    let mut vit = Vit::new(cfg.clone(), 0)?;
    let mut store = ParamStore::pack(&mut vit, d)?;
    let params = store.num_params();
    let gpu = d.is_cuda();
    let (bt, bi) = (
        a.batch.unwrap_or(if gpu { 64 } else { 2 }),
        a.infer_batch.unwrap_or(if gpu { 256 } else { 4 }),
    );
    outln!(
        "{} ({:.1}M parameters) on {}",
        a.preset,
        params as f64 / 1e6,
        d.name()
    )?;
    let note = |dt: DType| emulation_note(d, dt);
    for dt in a.precision.0.iter().copied() {
        let p = precision_name(dt);
        store.set_compute_dtype(&mut vit, dt)?;
        let mut opt = adamw(1e-4, 0.95, 0.05);
        let img = random(&[bt, 1, cfg.img_h, cfg.img_w], d, dt)?;
        let n = cfg.num_patches() + 1;
        let up = random(&[bt, n, cfg.dim], d, dt)?;
        let forward = || vit.forward(&img, None).map(|(_, cache)| cache);
        let backward = |c: &_, g: &mut _| vit.backward(c, &up, &[], false, g).map(drop);
        let counts = a.counts.then(|| format!("{p} train step, batch {bt}"));
        let step = (&mut store, &mut opt, 1e-4);
        let secs = time_train_step(d, (a.iters, a.graph), counts, step, forward, backward)?;
        outln!(
            "{p} train step, batch {bt}: {:.1} ms, {:.1} images/s{}",
            secs * 1e3,
            bt as f64 / secs,
            note(dt)
        )?;
        let img = random(&[bi, 1, cfg.img_h, cfg.img_w], d, dt)?;
        let infer = || vit.forward(&img, None).map(drop);
        let secs = match a.graph {
            true => super::bench_graph::time_replays(d, a.iters, infer)?,
            false => time_it(d, a.iters, infer)?,
        };
        outln!(
            "{p} inference, batch {bi}: {:.1} ms, {:.1} images/s{}",
            secs * 1e3,
            bi as f64 / secs,
            note(dt)
        )?;
    }
    drop(vit);
    if a.mae {
        bench_mae(d, &a)?;
    }
    Ok(())
}

/// The MAE pretraining step (masking, encoder on the visible quarter, decoder, masked loss,
/// backward, AdamW) at each precision.
fn bench_mae(d: &Device, a: &SfmArgs) -> Result<()> {
    use crate::models::mae::{Mae, MaeConfig, Masking};
    let cfg = MaeConfig::preset(&a.preset)?;
    let mut mae = Mae::new(cfg.clone(), 0)?;
    let mut store = ParamStore::pack(&mut mae, d)?;
    let b = a.mae_batch.unwrap_or(if d.is_cuda() { 256 } else { 2 });
    let e = &cfg.encoder;
    outln!(
        "MAE on {} ({:.1}M parameters with the decoder), batch {b}",
        a.preset,
        store.num_params() as f64 / 1e6
    )?;
    for dt in a.precision.0.iter().copied() {
        store.set_compute_dtype(&mut mae, dt)?;
        let mut opt = adamw(1.5e-4, 0.95, 0.05);
        let img = random(&[b, 1, e.img_h, e.img_w], d, dt)?;
        let mut step = 0u32;
        let secs = time_it(d, a.iters, || {
            step += 1;
            let m = Masking::random(0, step, b, e.num_patches(), cfg.len_keep())?;
            let out = mae.forward(&img, m)?;
            store.zero_grad()?;
            mae.backward(&out.cache, &mut store.grads)?;
            opt.step(&mut store, 1.5e-4)?;
            Ok(())
        })?;
        let note = emulation_note(d, dt);
        outln!(
            "{} MAE train step, batch {b}: {:.1} ms, {:.1} images/s{note}",
            precision_name(dt),
            secs * 1e3,
            b as f64 / secs
        )?;
    }
    Ok(())
}

fn bench_seislm(d: &Device, a: SeislmArgs) -> Result<()> {
    use crate::models::seislm::{Seislm, SeislmConfig};
    let cfg = SeislmConfig::preset(&a.preset)?;
    if a.graph {
        super::bench_graph::require_cuda(d)?;
    }
    let Some(frames) = cfg.frames(a.samples) else {
        anyhow::bail!("{} samples are too few for {}", a.samples, a.preset);
    };
    let mut model = Seislm::new(cfg.clone(), 0)?;
    let mut store = ParamStore::pack(&mut model, d)?;
    let b = a.batch.unwrap_or(if d.is_cuda() { 64 } else { 2 });
    outln!(
        "{} ({:.1}M parameters) on {}, batch {b} × 3 × {}",
        a.preset,
        store.num_params() as f64 / 1e6,
        d.name(),
        a.samples
    )?;
    for dt in a.precision.0.iter().copied() {
        store.set_compute_dtype(&mut model, dt)?;
        let mut opt = adamw(1e-4, 0.999, 0.0);
        let wave = random(&[b, 3, a.samples], d, dt)?;
        let up = random(&[b, frames, cfg.hidden], d, dt)?;
        let forward = || model.forward(&wave, None).map(|(_, cache)| cache);
        let backward = |c: &_, g: &mut _| model.backward(c, &up, None, false, g).map(drop);
        let counts = a
            .counts
            .then(|| format!("{} train step", precision_name(dt)));
        let step = (&mut store, &mut opt, 1e-4);
        let secs = time_train_step(d, (a.iters, a.graph), counts, step, forward, backward)?;
        let note = emulation_note(d, dt);
        outln!(
            "{} train step: {:.1} ms, {:.2} waveforms/s{note}",
            precision_name(dt),
            secs * 1e3,
            b as f64 / secs
        )?;
    }
    if a.pretrain {
        drop(model);
        bench_seislm_pretrain(d, &a, b)?;
    }
    Ok(())
}

fn bench_seislm_pretrain(d: &Device, a: &SeislmArgs, b: usize) -> Result<()> {
    use crate::models::seislm_pretrain::{PretrainConfig, SeislmPretrain};
    use crate::models::wav2vec2_objective as obj;
    let cfg = PretrainConfig::preset(&a.preset)?;
    let Some(t) = cfg.encoder.frames(a.samples) else {
        anyhow::bail!("{} samples are too few for {}", a.samples, a.preset);
    };
    let mut model = SeislmPretrain::new(cfg.clone(), 0)?;
    let mut store = ParamStore::pack(&mut model, d)?;
    let mut opt = adamw(1e-4, 0.999, 0.0);
    let wave = random(&[b, 3, a.samples], d, DType::F32)?;
    let mut step = 0u32;
    let secs = time_it(d, a.iters, || {
        store.zero_grad()?;
        model.train_step(&wave, 1.0, 0, step, &mut store.grads)?;
        opt.step(&mut store, 1e-4)?;
        step += 1;
        Ok(())
    })?;
    outln!(
        "pretrain step (wav2vec2 objective): {:.1} ms, {:.2} waveforms/s",
        secs * 1e3,
        b as f64 / secs
    )?;
    // the objective's ops alone, on the shapes of one step
    let (gv, f, cd) = (cfg.groups * cfg.vars, cfg.final_dim, cfg.codevector_dim);
    let mask = obj::span_mask(b, t, cfg.mask_prob, cfg.mask_span, cfg.min_spans, 0, 0)?;
    let (pos, negs) = obj::sample_negatives(&mask, b, t, cfg.negatives, 0, 0)?;
    let logits = random(&[b, t, gv], d, DType::F32)?;
    let code = random(&[1, gv, cd / cfg.groups], d, DType::F32)?;
    let weight: Vec<f32> = mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
    let weight = Tensor::from_f32(&[b * t], weight)?.to_device(d)?;
    let (c, q) = (
        random(&[b, t, f], d, DType::F32)?,
        random(&[b, t, f], d, DType::F32)?,
    );
    let mut dcode = Tensor::zeros(&code.shape, DType::F32, d)?;
    let secs = time_it(d, a.iters, || {
        let out = ops::gumbel_quantize(&logits, &code, cfg.groups, 1.0, 0, 0)?;
        let dq = Tensor::zeros(&out.q.shape, DType::F32, d)?;
        ops::gumbel_quantize_backward(&out, &code, &dq, &mut dcode)?;
        Ok(())
    })?;
    outln!("gumbel quantize forward + backward: {:.2} ms", secs * 1e3)?;
    let secs = time_it(d, a.iters, || {
        ops::codebook_perplexity(&logits, cfg.groups, &weight, 1.0).map(|_| ())
    })?;
    outln!("codebook perplexity + gradient: {:.2} ms", secs * 1e3)?;
    let secs = time_it(d, a.iters, || {
        let tg = ops::ContrastiveTargets::new(&pos, &negs, b * t, d)?;
        ops::contrastive_loss(&c, &q, &tg, cfg.kappa, 1.0).map(|_| ())
    })?;
    outln!(
        "contrastive loss + gradients ({} masked frames × {} candidates, indices uploaded): {:.2} ms",
        pos.len(),
        cfg.negatives + 1,
        secs * 1e3
    )?;
    Ok(())
}
