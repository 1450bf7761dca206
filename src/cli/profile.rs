//! `seisfuse profile`: where a training step's time goes, per kernel.
//!
//! On a GPU it runs the step (forward + backward + AdamW, as `bench sfm|seislm` builds it),
//! times every kernel with CUDA events (`cuda::profiler`) and sets each kernel's FLOPs and
//! bytes, counted from the shapes, against ceilings measured in the same run. Without one it
//! prints a *prediction* for a chosen card: the step is recorded on the CPU without computing
//! (`backend::record`), each op call is mapped to the launches the CUDA backend would make
//! (`cuda::predict`), ptxas reports each kernel's registers, shared memory and spills (NVRTC),
//! and a roofline bound, derated where a grid cannot fill the card, gives a time per kernel.

use crate::backend::cuda::predict::{self, Planned, Unit};
use crate::backend::{record, select, Device, DeviceRequest};
use crate::outln;
use crate::tensor::DType;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// sfm-tiny, sfm-base, sfm-large, seislm-tiny, seislm-base or seislm-large.
    #[arg(long)]
    pub model: String,
    /// What to profile: train (forward + backward + AdamW), infer (forward only) or mae (the
    /// MAE pretraining step, decoder D4d256; SFM models).
    #[arg(long, default_value = "train")]
    pub workload: String,
    /// Batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// fp32, tf32 (fp32 with the products on TF32 tensor cores: matmul variant 3) or bf16
    /// (bf16 activations and weight copies, fp32 masters and optimizer state).
    #[arg(long, default_value = "bf16")]
    pub precision: String,
    /// On a GPU: timed steps after one warm-up step.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Without a GPU: the card to predict for: h200, h100 (SXM) or a100 (SXM, 80 GB).
    #[arg(long, default_value = "h200")]
    pub card: String,
    /// Samples per waveform (SeisLM models).
    #[arg(long, default_value_t = 3001)]
    pub samples: usize,
    /// Without a GPU: skip ptxas's report (registers, shared memory, spills); occupancy is
    /// then computed from threads and dynamic shared memory only.
    #[arg(long)]
    pub no_ptxas: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// A card's limits and ceilings. `*_measured` are from PyTorch on that card (docs/perf.md);
/// where none was measured the ceiling is the datasheet figure times the H200's measured
/// fraction of its own datasheet figure, and the report says so.
#[derive(Clone, Debug)]
pub struct Card {
    pub name: &'static str,
    pub arch: u32,
    pub sms: u32,
    pub smem_per_sm: u32,
    /// Datasheet: HBM GB/s, dense bf16, tf32 and fp32 TFLOP/s.
    pub spec_gbs: f64,
    pub spec_bf16: f64,
    pub spec_tf32: f64,
    pub spec_fp32: f64,
    /// Measured on the card (None: not measured).
    pub measured: Option<Measured>,
}

#[derive(Clone, Copy, Debug)]
pub struct Measured {
    pub copy_gbs: f64,
    pub bf16: f64,
    pub tf32: f64,
    pub fp32: f64,
}

/// H200 measured with PyTorch 2.11 / CUDA 13.0, 2026-11-26 (docs/perf.md).
const H200_MEASURED: Measured = Measured {
    copy_gbs: 4051.0,
    bf16: 754.0,
    tf32: 403.0,
    fp32: 50.7,
};

pub fn card(name: &str) -> Result<Card> {
    Ok(match name.to_ascii_lowercase().as_str() {
        // NVIDIA H200 datasheet (SXM): 4.8 TB/s HBM3e, 989 TFLOP/s dense bf16, 494 tf32, 67 fp32.
        "h200" => Card {
            name: "H200 SXM",
            arch: 90,
            sms: 132,
            smem_per_sm: 228 * 1024,
            spec_gbs: 4800.0,
            spec_bf16: 989.4,
            spec_tf32: 494.7,
            spec_fp32: 66.9,
            measured: Some(H200_MEASURED),
        },
        // NVIDIA H100 SXM5 datasheet: 3.35 TB/s HBM3, same SM count and peaks as the H200.
        "h100" => Card {
            name: "H100 SXM",
            arch: 90,
            sms: 132,
            smem_per_sm: 228 * 1024,
            spec_gbs: 3350.0,
            spec_bf16: 989.4,
            spec_tf32: 494.7,
            spec_fp32: 66.9,
            measured: None,
        },
        // NVIDIA A100 SXM 80 GB datasheet: 2039 GB/s HBM2e, 312 bf16, 156 tf32, 19.5 fp32.
        "a100" => Card {
            name: "A100 SXM 80GB",
            arch: 80,
            sms: 108,
            smem_per_sm: 164 * 1024,
            spec_gbs: 2039.0,
            spec_bf16: 312.0,
            spec_tf32: 156.0,
            spec_fp32: 19.5,
            measured: None,
        },
        other => bail!("unknown card '{other}' for --card: expected h200, h100 or a100"),
    })
}

impl Card {
    /// The ceilings used (copy GB/s, bf16, fp32 TFLOP/s) and where they come from.
    pub fn ceilings(&self) -> (Measured, &'static str) {
        match self.measured {
            Some(m) => (m, "measured on the card with PyTorch (docs/perf.md)"),
            None => {
                let h = card("h200").expect("h200 is a known card");
                let f = |spec: f64, hs: f64, hm: f64| spec * hm / hs;
                (
                    Measured {
                        copy_gbs: f(self.spec_gbs, h.spec_gbs, H200_MEASURED.copy_gbs),
                        bf16: f(self.spec_bf16, h.spec_bf16, H200_MEASURED.bf16),
                        tf32: f(self.spec_tf32, h.spec_tf32, H200_MEASURED.tf32),
                        fp32: f(self.spec_fp32, h.spec_fp32, H200_MEASURED.fp32),
                    },
                    "estimated: datasheet figure × the H200's measured/datasheet ratio (not measured on this card)",
                )
            }
        }
    }
}

/// The largest batch accepted (the CUDA grids' 65535 limit in y/z comes well before).
const MAX_BATCH: usize = 65535;

/// The step profiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Train,
    Infer,
    Mae,
}

from_keywords!(trim Workload, |other| "unknown --workload '{other}': expected train, infer or mae",
    "train" => Train,
    "infer" => Infer,
    "mae" => Mae,
);

impl Workload {
    fn describe(self) -> &'static str {
        match self {
            Workload::Train => "training step (forward + backward + AdamW)",
            Workload::Infer => "inference (forward only)",
            Workload::Mae => "MAE pretraining step (75 % masked, decoder, loss, backward, AdamW)",
        }
    }
}

enum Model {
    Sfm(crate::models::sfm::VitConfig),
    Seislm(crate::models::seislm::SeislmConfig),
}

fn model(name: &str) -> Result<Model> {
    if name.starts_with("sfm") {
        Ok(Model::Sfm(crate::models::sfm::VitConfig::preset(name)?))
    } else if name.starts_with("seislm") {
        Ok(Model::Seislm(crate::models::seislm::SeislmConfig::preset(
            name,
        )?))
    } else {
        bail!("unknown --model '{name}': expected sfm-tiny, sfm-base, sfm-large, seislm-tiny, seislm-base or seislm-large")
    }
}

fn precision(p: &str) -> Result<DType> {
    match p.trim().to_ascii_lowercase().as_str() {
        "bf16" => Ok(DType::BF16),
        "fp32" | "f32" => Ok(DType::F32),
        // f32 storage, products on TF32 tensor cores (matmul variant 3)
        "tf32" => {
            crate::backend::variants::choose_tf32()?;
            Ok(DType::F32)
        }
        other => bail!("unknown --precision '{other}': expected fp32, tf32 or bf16"),
    }
}

/// Checks the flags and the memory the step needs, before any device or model exists.
fn check(a: &Args) -> Result<(Model, DType, Workload)> {
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if a.batch > MAX_BATCH {
        bail!("--batch {} is larger than {MAX_BATCH}", a.batch);
    }
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    card(&a.card)?;
    let dt = precision(&a.precision)?;
    let w: Workload = a.workload.parse()?;
    let m = model(&a.model)?;
    if w == Workload::Mae && !matches!(m, Model::Sfm(_)) {
        bail!(
            "--workload mae needs an SFM model (sfm-tiny, sfm-base or sfm-large), not {}",
            a.model
        );
    }
    let need = match &m {
        Model::Sfm(cfg) => super::estimate::vit_bytes(cfg, a.batch),
        Model::Seislm(cfg) => {
            if cfg.frames(a.samples).is_none() {
                bail!("--samples {} is too few for {}", a.samples, a.model);
            }
            super::estimate::seislm_bytes(cfg, a.batch, a.samples, 0)
        }
    };
    crate::limits::check(
        format_args!(
            "profile --model {} --batch {} --samples {}",
            a.model, a.batch, a.samples
        ),
        need,
    )?;
    Ok((m, dt, w))
}

/// A training step of the model as `bench sfm|seislm` runs it (fixed upstream gradient of the
/// encoder's tokens, AdamW), on `d`.
fn step_fn(
    m: &Model,
    w: Workload,
    d: &Device,
    dt: DType,
    batch: usize,
    samples: usize,
) -> Result<Box<dyn FnMut() -> Result<()>>> {
    use super::bench::{adamw, random};
    use crate::nn::ParamStore;
    match (m, w) {
        (Model::Sfm(cfg), Workload::Mae) => {
            use crate::models::mae::{Mae, MaeConfig, Masking};
            // the MAE preset of the same encoder (bench sfm --mae)
            let name = match (cfg.dim, cfg.depth) {
                (64, 4) => "sfm-tiny",
                (1024, 24) => "sfm-large",
                _ => "sfm-base",
            };
            let mcfg = MaeConfig::preset(name)?;
            let mut mae = Mae::new(mcfg.clone(), 0)?;
            let mut store = ParamStore::pack(&mut mae, d)?;
            store.set_compute_dtype(&mut mae, dt)?;
            let mut opt = adamw(1.5e-4, 0.95, 0.05);
            let e = &mcfg.encoder;
            let img = random(&[batch, 1, e.img_h, e.img_w], d, dt)?;
            let (n, keep) = (e.num_patches(), mcfg.len_keep());
            let mut step = 0u32;
            Ok(Box::new(move || {
                step += 1;
                let m = Masking::random(0, step, batch, n, keep)?;
                let out = mae.forward(&img, m)?;
                store.zero_grad()?;
                mae.backward(&out.cache, &mut store.grads)?;
                opt.step(&mut store, 1.5e-4)?;
                Ok(())
            }))
        }
        (Model::Sfm(cfg), Workload::Infer) => {
            let mut vit = crate::models::sfm::Vit::new(cfg.clone(), 0)?;
            let mut store = ParamStore::pack(&mut vit, d)?;
            store.set_compute_dtype(&mut vit, dt)?;
            let img = random(&[batch, 1, cfg.img_h, cfg.img_w], d, dt)?;
            Ok(Box::new(move || {
                let _keep = &store;
                vit.forward(&img, None).map(|_| ())
            }))
        }
        (Model::Seislm(cfg), Workload::Infer) => {
            let mut model = crate::models::seislm::Seislm::new(cfg.clone(), 0)?;
            let mut store = ParamStore::pack(&mut model, d)?;
            store.set_compute_dtype(&mut model, dt)?;
            let wave = random(&[batch, 3, samples], d, dt)?;
            Ok(Box::new(move || {
                let _keep = &store;
                model.forward(&wave, None).map(|_| ())
            }))
        }
        (Model::Seislm(_), Workload::Mae) => {
            bail!("--workload mae needs an SFM model")
        }
        (Model::Sfm(cfg), Workload::Train) => {
            let mut vit = crate::models::sfm::Vit::new(cfg.clone(), 0)?;
            let mut store = ParamStore::pack(&mut vit, d)?;
            store.set_compute_dtype(&mut vit, dt)?;
            let mut opt = adamw(1e-4, 0.95, 0.05);
            let img = random(&[batch, 1, cfg.img_h, cfg.img_w], d, dt)?;
            let up = random(&[batch, cfg.num_patches() + 1, cfg.dim], d, dt)?;
            Ok(Box::new(move || {
                let (_, cache) = vit.forward(&img, None)?;
                store.zero_grad()?;
                vit.backward(&cache, &up, &[], false, &mut store.grads)?;
                opt.step(&mut store, 1e-4)?;
                Ok(())
            }))
        }
        (Model::Seislm(cfg), Workload::Train) => {
            let frames = cfg
                .frames(samples)
                .ok_or_else(|| anyhow!("{samples} samples are too few for this model"))?;
            let mut model = crate::models::seislm::Seislm::new(cfg.clone(), 0)?;
            let mut store = ParamStore::pack(&mut model, d)?;
            store.set_compute_dtype(&mut model, dt)?;
            let mut opt = adamw(1e-4, 0.999, 0.0);
            let wave = random(&[batch, 3, samples], d, dt)?;
            let up = random(&[batch, frames, cfg.hidden], d, dt)?;
            Ok(Box::new(move || {
                let (_, cache) = model.forward(&wave, None)?;
                store.zero_grad()?;
                model.backward(&cache, &up, None, false, &mut store.grads)?;
                opt.step(&mut store, 1e-4)?;
                Ok(())
            }))
        }
    }
}

/// The op calls of one steady-state training step (the second of two), recorded on the CPU;
/// `dry`: without computing (see `backend::record`).
pub fn record_step(
    model_name: &str,
    dt: DType,
    batch: usize,
    samples: usize,
    dry: bool,
) -> Result<Vec<record::Call>> {
    record_workload(model_name, Workload::Train, dt, batch, samples, dry)
}

/// Like [`record_step`], for any workload.
pub fn record_workload(
    model_name: &str,
    w: Workload,
    dt: DType,
    batch: usize,
    samples: usize,
    dry: bool,
) -> Result<Vec<record::Call>> {
    let m = model(model_name)?;
    let mut step = step_fn(&m, w, &Device::Cpu, dt, batch, samples)?;
    let rec = |step: &mut Box<dyn FnMut() -> Result<()>>| {
        if dry {
            record::record_dry(step)
        } else {
            record::record(step)
        }
    };
    let (r, _) = rec(&mut step);
    r.context("recording the first step")?;
    let (r, calls) = rec(&mut step);
    r.context("recording the step")?;
    Ok(calls)
}

/// A kernel's static resources from ptxas.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resources {
    pub registers: Option<u32>,
    pub static_smem: u32,
    pub spill_bytes: u64,
}

/// ptxas's report for every kernel of the given files, compiled for `arch`.
pub fn ptxas(files: &[&str], arch: u32) -> Result<BTreeMap<String, Resources>> {
    let nvrtc = crate::backend::cuda::nvrtc::Nvrtc::global()?;
    let mut out = BTreeMap::new();
    for k in crate::backend::cuda::KERNEL_SOURCES {
        if !files.contains(&k.name) {
            continue;
        }
        let c = nvrtc
            .compile(k.source, k.file, arch, &["--ptxas-options=-v"])
            .with_context(|| format!("compiling {} for sm_{arch}", k.file))?;
        let mut stats = BTreeMap::new();
        crate::backend::cuda::sass::parse_ptxas(&c.log, &mut stats);
        let smem = parse_smem(&c.log);
        for (name, s) in stats {
            out.insert(
                name.clone(),
                Resources {
                    registers: s.registers,
                    static_smem: smem.get(&name).copied().unwrap_or(0),
                    spill_bytes: s.spill_stores + s.spill_loads,
                },
            );
        }
    }
    Ok(out)
}

/// Static shared memory per kernel from ptxas's "Used N registers, ..., S bytes smem" lines.
pub fn parse_smem(log: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut current = String::new();
    for line in log.lines() {
        if let Some(i) = line.find("Compiling entry function '") {
            current = line[i + 26..].split('\'').next().unwrap_or("").to_string();
        } else if let Some(i) = line.find("Function properties for ") {
            current = line[i + 24..].trim().to_string();
        } else if line.contains("Used ") {
            if let Some(i) = line.find(" bytes smem") {
                if let Some(v) = line[..i]
                    .split_whitespace()
                    .last()
                    .and_then(|v| v.parse().ok())
                {
                    out.insert(current.clone(), v);
                }
            }
        }
    }
    out
}

/// Blocks of `threads` threads that fit on one SM at once, and the occupancy (resident warps /
/// 64), from the limits of compute capability 8.0 and 9.0: 2048 threads, 32 blocks, 64 K
/// registers (allocated per warp in units of 256), the card's shared memory with 1 KiB
/// reserved per block.
pub fn occupancy(card: &Card, threads: u32, regs: Option<u32>, smem: u32) -> (u32, f64) {
    if threads == 0 {
        return (0, 0.0);
    }
    let warps = threads.div_ceil(32);
    let mut blocks = (2048 / (warps * 32)).min(32);
    if let Some(r) = regs {
        let per_warp = (r.max(1) * 32).div_ceil(256) * 256;
        blocks = blocks.min(65536 / (per_warp * warps));
    }
    blocks = blocks.min(card.smem_per_sm / (smem + 1024));
    (blocks, (blocks * warps) as f64 / 64.0)
}

/// Floor per launch: a kernel, however small, occupies the GPU for about this long (launch
/// gaps included, launches queued back to back).
const MIN_LAUNCH_S: f64 = 2e-6;

/// Resident warps per SM needed to reach the memory ceiling (assumed).
const WARPS_FOR_BANDWIDTH: f64 = 16.0;

/// The predicted time of one launch and what bounds it.
pub fn launch_time(card: &Card, p: &Planned, res: Option<&Resources>) -> (f64, &'static str, f64) {
    if !p.mapped() || p.block == 0 {
        // memset, memcpy, unmapped: bytes at the copy ceiling
        let (c, _) = card.ceilings();
        let t = p.bytes / (c.copy_gbs * 1e9);
        return (t.max(MIN_LAUNCH_S), "memory", 1.0);
    }
    let (c, _) = card.ceilings();
    let smem = p.dyn_smem + res.map_or(0, |r| r.static_smem);
    let (bps, _) = occupancy(card, p.block, res.and_then(|r| r.registers), smem);
    let bps = bps.max(1);
    let blocks = p.blocks() as f64;
    let sms = card.sms as f64;
    // share of the card's SMs doing work, and the last wave's idle SMs
    let fill = if blocks < sms {
        blocks / sms
    } else {
        let waves = blocks / (sms * bps as f64);
        if waves <= 1.0 {
            1.0
        } else {
            waves / waves.ceil()
        }
    };
    // resident warps per busy SM
    let warps_per_sm = (blocks / sms).ceil().min(bps as f64) * (p.block.div_ceil(32)) as f64;
    let mem_eff = fill * (warps_per_sm / WARPS_FOR_BANDWIDTH).min(1.0);
    let peak = match p.unit {
        Unit::TensorBf16 => c.bf16,
        Unit::TensorTf32 => c.tf32,
        Unit::Fp32 | Unit::Memory => c.fp32,
    } * 1e12;
    let t_compute = p.flops / (peak * fill * p.lanes.clamp(0.01, 1.0));
    let t_memory = p.bytes / (c.copy_gbs * 1e9 * mem_eff);
    let (t, bound) = if t_compute >= t_memory {
        (t_compute, "compute")
    } else {
        (t_memory, "memory")
    };
    (t.max(MIN_LAUNCH_S), bound, fill)
}

/// One row of the predicted table: a kernel and all its launches in a step.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub kernel: String,
    pub file: &'static str,
    pub unit: &'static str,
    pub launches: u64,
    pub blocks_min: u64,
    pub blocks_max: u64,
    pub threads: u32,
    pub dyn_smem: u32,
    pub resources: Option<Resources>,
    pub occupancy: f64,
    pub flops: f64,
    pub bytes: f64,
    pub seconds: f64,
    pub bound: BTreeMap<&'static str, u64>,
    pub min_fill: f64,
}

/// The predicted profile of a recorded step.
pub struct Prediction {
    pub rows: Vec<Row>,
    pub unmapped: Vec<String>,
    pub seconds: f64,
    pub flops: f64,
    pub bytes: f64,
    pub launches: u64,
}

/// Maps calls to launches and aggregates them per kernel.
pub fn plan_step(calls: &[record::Call]) -> Result<Vec<Planned>> {
    let mut v = Vec::new();
    for c in calls {
        v.extend(predict::plan(c).with_context(|| format!("mapping {}", c.op))?);
    }
    Ok(v)
}

pub fn predict(card: &Card, planned: &[Planned], res: &BTreeMap<String, Resources>) -> Prediction {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut unmapped = Vec::new();
    for p in planned {
        let r = res.get(&p.kernel);
        let (t, bound, fill) = launch_time(card, p, r);
        if !p.mapped() && !unmapped.contains(&p.op.to_string()) {
            unmapped.push(p.op.to_string());
        }
        let row = rows.entry(p.kernel.clone()).or_insert_with(|| Row {
            kernel: p.kernel.clone(),
            file: p.file,
            unit: p.unit.name(),
            blocks_min: u64::MAX,
            threads: p.block,
            dyn_smem: p.dyn_smem,
            resources: r.copied(),
            min_fill: 1.0,
            ..Row::default()
        });
        row.launches += 1;
        row.blocks_min = row.blocks_min.min(p.blocks());
        row.blocks_max = row.blocks_max.max(p.blocks());
        row.dyn_smem = row.dyn_smem.max(p.dyn_smem);
        row.flops += p.flops;
        row.bytes += p.bytes;
        row.seconds += t;
        row.min_fill = row.min_fill.min(fill);
        *row.bound.entry(bound).or_insert(0) += 1;
        if p.block > 0 {
            let smem = p.dyn_smem + r.map_or(0, |r| r.static_smem);
            row.occupancy = occupancy(card, p.block, r.and_then(|r| r.registers), smem).1;
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    Prediction {
        seconds: rows.iter().map(|r| r.seconds).sum(),
        flops: rows.iter().map(|r| r.flops).sum(),
        bytes: rows.iter().map(|r| r.bytes).sum(),
        launches: rows.iter().map(|r| r.launches).sum(),
        rows,
        unmapped,
    }
}

const ASSUMPTIONS: &[&str] = &[
    "a prediction: no GPU ran this; the kernel list and shapes are those of a step recorded on the CPU and mapped to the CUDA backend's launches",
    "time per launch = max(FLOPs / the ceiling of its unit, bytes / the copy ceiling), a roofline lower bound with compulsory traffic only (no L2 misses, no re-reads, no bank conflicts, no pipeline stalls)",
    "derated by grid fill: a grid of fewer blocks than SMs uses that share of the card, a last partial wave idles the rest; memory-bound work also by resident warps per SM below 16",
    "fp32 kernels (matmul variant 1, attention variant 1, conv1d) are bounded by the fp32 FMA ceiling, which these SIMT kernels reach only in part: their times are optimistic",
    "at least 2 µs per launch on the GPU; the step and the table assume launches back to back, as a CUDA graph replays them (bench --graph); the 'launch by launch' line adds an assumed 3 µs of host time per launch queued one by one",
    "host work, the loss and the gradient-norm read are not counted",
];

pub fn run(req: DeviceRequest, a: Args) -> Result<()> {
    let (m, dt, w) = check(&a)?;
    let device = match req {
        DeviceRequest::Cpu => Device::Cpu,
        _ => select(req)?,
    };
    match &device {
        Device::Cuda(_) => measure(&device, &a, &m, dt, w),
        Device::Cpu => run_predicted(&a, dt, w),
    }
}

fn samples_unit(model: &str) -> &'static str {
    if model.starts_with("seislm") {
        "waveforms/s"
    } else {
        "images/s"
    }
}

fn run_predicted(a: &Args, dt: DType, w: Workload) -> Result<()> {
    let card = card(&a.card)?;
    if a.batch >= 16 && !a.json {
        eprintln!("profile: recording one step on the CPU (not computed)…");
    }
    let calls = record_workload(&a.model, w, dt, a.batch, a.samples, true)?;
    let planned = plan_step(&calls)?;
    let mut files: Vec<&str> = planned
        .iter()
        .filter(|p| !p.file.is_empty())
        .map(|p| p.file)
        .collect();
    files.sort();
    files.dedup();
    let (res, ptxas_note) = if a.no_ptxas {
        (BTreeMap::new(), "skipped (--no-ptxas)".to_string())
    } else {
        eprintln!(
            "profile: compiling {} kernel files with NVRTC for sm_{} (ptxas report)…",
            files.len(),
            card.arch
        );
        match ptxas(&files, card.arch) {
            Ok(r) => (r, format!("NVRTC, sm_{}", card.arch)),
            Err(e) => (BTreeMap::new(), format!("unavailable ({e:#})")),
        }
    };
    let p = predict(&card, &planned, &res);
    let times: Vec<f64> = planned
        .iter()
        .map(|x| launch_time(&card, x, res.get(&x.kernel)).0)
        .collect();
    let host = super::profile_host::timeline(&times, super::profile_host::HOST_LAUNCH_S);
    let budget = super::profile_host::host_budget(&times, 0.05);
    let (ceil, source) = card.ceilings();
    let rate = a.batch as f64 / p.seconds;
    let unit = samples_unit(&a.model);
    let prec = if dt == DType::BF16 {
        "bf16"
    } else if crate::backend::variants::variant("matmul")? == 3 {
        "tf32"
    } else {
        "fp32"
    };
    let variant = crate::backend::variants::variant("matmul")?;
    let variants = crate::backend::variants::describe()?;
    if a.json {
        let kernels: Vec<_> = p
            .rows
            .iter()
            .map(|r| {
                json!({
                    "kernel": r.kernel,
                    "file": r.file,
                    "unit": r.unit,
                    "launches": r.launches,
                    "blocks_min": r.blocks_min,
                    "blocks_max": r.blocks_max,
                    "threads": r.threads,
                    "dynamic_smem_bytes": r.dyn_smem,
                    "registers": r.resources.and_then(|x| x.registers),
                    "static_smem_bytes": r.resources.map(|x| x.static_smem),
                    "spill_bytes": r.resources.map(|x| x.spill_bytes),
                    "occupancy": r.occupancy,
                    "min_grid_fill": r.min_fill,
                    "flops": r.flops,
                    "bytes": r.bytes,
                    "predicted_ms": r.seconds * 1e3,
                    "percent_of_step": 100.0 * r.seconds / p.seconds,
                    "bound": r.bound,
                })
            })
            .collect();
        let v = json!({
            "mode": "predicted",
            "model": a.model,
            "workload": a.workload,
            "batch": a.batch,
            "precision": prec,
            "matmul_variant": variant,
            "kernel_variants": variants,
            "card": {
                "name": card.name,
                "arch": card.arch,
                "sms": card.sms,
                "ceilings": {
                    "copy_gbs": ceil.copy_gbs,
                    "bf16_tflops": ceil.bf16,
                    "fp32_tflops": ceil.fp32,
                    "source": source,
                },
                "spec": {
                    "hbm_gbs": card.spec_gbs,
                    "bf16_tflops": card.spec_bf16,
                    "tf32_tflops": card.spec_tf32,
                    "fp32_tflops": card.spec_fp32,
                },
            },
            "ptxas": ptxas_note,
            "kernels": kernels,
            "total": {
                "launches": p.launches,
                "op_calls": calls.len(),
                "flops": p.flops,
                "bytes": p.bytes,
                "predicted_step_ms": p.seconds * 1e3,
                "predicted_samples_per_s": rate,
                "host_launch_us_assumed": super::profile_host::HOST_LAUNCH_S * 1e6,
                "launch_by_launch_step_ms": host.launch_by_launch_s * 1e3,
                "launch_by_launch_gpu_idle_ms": host.gpu_idle_s * 1e3,
                "graph_step_ms": host.graph_s * 1e3,
                "host_budget_us_per_launch_5_percent": budget * 1e6,
            },
            "unmapped_ops": p.unmapped,
            "assumptions": ASSUMPTIONS,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    outln!(
        "PREDICTED profile (no GPU ran this): {} {}, batch {}, {prec}, kernels {variants}, on {} (sm_{}, {} SMs)",
        a.model, w.describe(), a.batch, card.name, card.arch, card.sms
    )?;
    outln!(
        "ceilings: copy {:.0} GB/s, bf16 tensor {:.0} TFLOP/s, tf32 tensor {:.0} TFLOP/s, fp32 {:.1} TFLOP/s — {source}",
        ceil.copy_gbs,
        ceil.bf16,
        ceil.tf32,
        ceil.fp32
    )?;
    outln!("kernel resources from ptxas: {ptxas_note}")?;
    print_rows(&p)?;
    outln!(
        "total: {} launches ({} op calls), {:.1} GFLOP, {:.2} GB; predicted step {:.2} ms → {:.0} {unit}",
        p.launches,
        calls.len(),
        p.flops / 1e9,
        p.bytes / 1e9,
        p.seconds * 1e3,
        rate
    )?;
    outln!(
        "host: launch by launch (an assumed {:.0} µs each) the GPU waits {:.2} ms for the host → {:.2} ms ({:.0} {unit}); as one CUDA graph (bench --graph) {:.2} ms ({:.0} {unit})",
        super::profile_host::HOST_LAUNCH_S * 1e6,
        host.gpu_idle_s * 1e3,
        host.launch_by_launch_s * 1e3,
        a.batch as f64 / host.launch_by_launch_s,
        host.graph_s * 1e3,
        a.batch as f64 / host.graph_s,
    )?;
    outln!(
        "host budget: launch by launch, the step stays within 5 % of the GPU's busy time while the host spends at most {:.1} µs per launch; beyond that a CUDA graph pays",
        budget * 1e6
    )?;
    if !p.unmapped.is_empty() {
        outln!(
            "ops without a mapping (counted as one memory-bound launch each): {}",
            p.unmapped.join(", ")
        )?;
    }
    outln!("assumptions:")?;
    for s in ASSUMPTIONS {
        outln!("  - {s}")?;
    }
    Ok(())
}

/// The predicted table: one row per kernel, slowest first.
pub fn print_rows(p: &Prediction) -> Result<()> {
    outln!(
        "{:<32} {:>6} {:>13} {:>5} {:>5} {:>7} {:>5} {:>5} {:>9} {:>8} {:>9} {:>6}  bound",
        "kernel",
        "calls",
        "blocks",
        "thr",
        "regs",
        "smem",
        "spill",
        "occ",
        "GFLOP",
        "GB",
        "pred ms",
        "%"
    )?;
    for r in &p.rows {
        let blocks = if r.blocks_min == r.blocks_max {
            r.blocks_min.to_string()
        } else {
            format!("{}-{}", r.blocks_min, r.blocks_max)
        };
        let res = r.resources;
        let bound = r
            .bound
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(" ");
        outln!(
            "{:<32} {:>6} {:>13} {:>5} {:>5} {:>7} {:>5} {:>5} {:>9.2} {:>8.3} {:>9.3} {:>6.1}  {bound}",
            r.kernel,
            r.launches,
            blocks,
            r.threads,
            res.and_then(|x| x.registers).map_or("-".into(), |v| v.to_string()),
            r.dyn_smem + res.map_or(0, |x| x.static_smem),
            res.map_or("-".into(), |x| x.spill_bytes.to_string()),
            if r.threads > 0 { format!("{:.0}%", 100.0 * r.occupancy) } else { "-".into() },
            r.flops / 1e9,
            r.bytes / 1e9,
            r.seconds * 1e3,
            100.0 * r.seconds / p.seconds
        )?;
    }
    Ok(())
}

/// On a GPU: kernel times from CUDA events over `--steps` steps, FLOPs and bytes from the
/// same step recorded on the CPU, and ceilings measured in this run.
fn measure(d: &Device, a: &Args, m: &Model, dt: DType, w: Workload) -> Result<()> {
    let Device::Cuda(be) = d else {
        bail!("measuring needs a CUDA device")
    };
    let (copy_gbs, bf16_tflops) = measure_ceilings(d)?;
    let mut step = step_fn(m, w, d, dt, a.batch, a.samples)?;
    step()?;
    be.synchronize()?;
    be.profiler.set_enabled(true);
    let t = std::time::Instant::now();
    for _ in 0..a.steps {
        step()?;
    }
    be.synchronize()?;
    let wall = t.elapsed().as_secs_f64() / a.steps as f64;
    be.profiler.set_enabled(false);
    let times = be.profiler.collect()?;
    drop(step);
    // FLOPs and bytes per kernel per step, from the shapes
    let planned = plan_step(&record_workload(&a.model, w, dt, a.batch, a.samples, true)?)?;
    let mut work: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for p in &planned {
        let e = work.entry(p.kernel.clone()).or_default();
        e.0 += p.flops;
        e.1 += p.bytes;
    }
    let steps = a.steps as f64;
    let mut rows: Vec<_> = times.into_iter().collect();
    rows.sort_by(|x, y| y.1.total_ms.total_cmp(&x.1.total_ms));
    let kernel_ms: f64 = rows.iter().map(|r| r.1.total_ms).sum::<f64>() / steps;
    let unit = samples_unit(&a.model);
    let mut out = Vec::new();
    for (name, kt) in &rows {
        let ms = kt.total_ms / steps;
        let (fl, by) = work.get(*name).copied().unwrap_or((0.0, 0.0));
        let s = ms / 1e3;
        out.push(json!({
            "kernel": name,
            "calls_per_step": kt.launches as f64 / steps,
            "ms_per_step": ms,
            "percent_of_step": 100.0 * ms / (wall * 1e3),
            "flops": fl,
            "bytes": by,
            "tflops": fl / s / 1e12,
            "gbs": by / s / 1e9,
            "percent_of_bf16_ceiling": 100.0 * fl / s / 1e12 / bf16_tflops,
            "percent_of_copy_ceiling": 100.0 * by / s / 1e9 / copy_gbs,
        }));
    }
    if a.json {
        let v = json!({
            "mode": "measured",
            "device": be.name,
            "model": a.model,
            "workload": a.workload,
            "batch": a.batch,
            "precision": if dt == DType::BF16 { "bf16" } else { "fp32" },
            "steps": a.steps,
            "ceilings": { "copy_gbs": copy_gbs, "bf16_tflops": bf16_tflops,
                "source": "measured in this run: a 1 GiB device copy and an 8192³ bf16 product with seisfuse's own tensor-core kernel (matmul variant 2)" },
            "kernels": out,
            "total": { "step_ms": wall * 1e3, "kernel_ms": kernel_ms,
                "samples_per_s": a.batch as f64 / wall },
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    outln!(
        "MEASURED profile on {}: {} {}, batch {}, {} steps; step {:.2} ms ({:.0} {unit}), kernels {:.2} ms",
        be.name, a.model, w.describe(), a.batch, a.steps, wall * 1e3, a.batch as f64 / wall, kernel_ms
    )?;
    outln!(
        "ceilings measured now: copy {copy_gbs:.0} GB/s, bf16 product {bf16_tflops:.0} TFLOP/s (seisfuse's own tensor-core kernel)"
    )?;
    outln!(
        "{:<32} {:>8} {:>9} {:>6} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "kernel",
        "calls",
        "ms",
        "%",
        "GFLOP",
        "GB",
        "TFLOP/s",
        "GB/s",
        "%bf16",
        "%copy"
    )?;
    for r in &out {
        let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
        outln!(
            "{:<32} {:>8.0} {:>9.3} {:>6.1} {:>9.2} {:>8.3} {:>8.2} {:>8.0} {:>6.1} {:>6.1}",
            r["kernel"].as_str().unwrap_or("?"),
            f("calls_per_step"),
            f("ms_per_step"),
            f("percent_of_step"),
            f("flops") / 1e9,
            f("bytes") / 1e9,
            f("tflops"),
            f("gbs"),
            f("percent_of_bf16_ceiling"),
            f("percent_of_copy_ceiling")
        )?;
    }
    Ok(())
}

/// A 1 GiB device-to-device copy (GB/s, read + write) and an 8192³ bf16 product on the
/// tensor-core kernel (TFLOP/s), each the best of 5.
fn measure_ceilings(d: &Device) -> Result<(f64, f64)> {
    use crate::backend::api::matmul::MatmulShape;
    use crate::tensor::Tensor;
    let Device::Cuda(be) = d else {
        bail!("measuring needs a CUDA device")
    };
    let n = 256 << 20;
    let src = Tensor::zeros(&[n], DType::F32, d)?;
    let mut dst = Tensor::zeros(&[n], DType::F32, d)?;
    let mut best = f64::MAX;
    for _ in 0..6 {
        be.synchronize()?;
        let t = std::time::Instant::now();
        d.backend().copy(&mut dst, &src)?;
        be.synchronize()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let copy_gbs = 2.0 * (n * 4) as f64 / best / 1e9;
    drop((src, dst));
    let k = 8192;
    let a = Tensor::zeros(&[k, k], DType::BF16, d)?;
    let b = Tensor::zeros(&[k, k], DType::BF16, d)?;
    let mut c = Tensor::zeros(&[k, k], DType::BF16, d)?;
    let s = MatmulShape {
        batch: 1,
        m: k,
        n: k,
        k,
        ta: false,
        tb: false,
        a_stride: 0,
        b_stride: 0,
    };
    let mut best = f64::MAX;
    for _ in 0..6 {
        be.synchronize()?;
        let t = std::time::Instant::now();
        let x = crate::backend::api::MatmulInput {
            a: &a,
            b: &b,
            bias: None,
            accumulate: false,
        };
        if !crate::backend::cuda::matmul_tc::try_matmul(be, &mut c, x, &s, false)? {
            bail!("the tensor-core kernel refused an 8192³ bf16 product");
        }
        be.synchronize()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok((copy_gbs, s.flops() / best / 1e12))
}
