//! The command line: one file per subcommand, and the helpers they share (`output`: checked
//! output paths, files renamed into place, standard output that a closed pipe ends quietly;
//! `progress`: bars and periodic lines). Conventions: docs/cli-conventions.md.

pub mod bench;
pub mod bench_graph;
pub mod bench_mel;
pub mod bench_pick;
pub mod bench_train;
pub mod dataset;
pub mod demo;
pub mod doctor;
pub mod embed;
pub mod estimate;
pub mod launch;
pub mod mel;
pub mod output;
pub mod pick;
pub mod profile;
pub mod profile_host;
pub mod progress;
pub mod synth;
pub mod train;
pub mod viz;
pub mod weights;

use crate::backend::DeviceRequest;
use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

/// The arguments of a command that takes one of the subcommands `K` and nothing else.
#[derive(clap::Args, Debug)]
pub struct KindArgs<K: clap::Subcommand> {
    #[command(subcommand)]
    pub kind: K,
}

#[derive(Parser, Debug)]
#[command(
    name = "seisfuse",
    version,
    about = "Seismic foundation models (SFM, SeisLM) and their fusion, on CPU and CUDA"
)]
pub struct Cli {
    /// Where doctor, bench, mel, embed and pick run: auto (CUDA when usable, else CPU), cpu,
    /// cuda or cuda:N (also accepted after those commands).
    #[arg(long)]
    pub device: Option<DeviceRequest>,
    /// Memory limit for sizes taken from files, flags and time spans, checked before
    /// allocating, e.g. 512M, 4G [default: half of the machine's memory, or of `ulimit -v`].
    #[arg(long, global = true, value_name = "BYTES", value_parser = crate::limits::parse_bytes)]
    pub max_memory: Option<u64>,
    /// Kernel variants per op, e.g. matmul=2 (tensor cores for bf16 products), attention=2
    /// (attention on tensor cores), conv1d=2 (stride-1 convolutions on tensor cores), colsum=1
    /// (bias and LayerNorm gradients one thread per column); overrides SEISFUSE_KERNELS
    /// [default: colsum=2, variant 1 of the others].
    #[arg(long = "kernel", global = true, value_name = "OP=N[,OP=N]")]
    pub kernel: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// `--device` of the commands that run on a device.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct DeviceArg {
    /// Where to run: auto (CUDA when usable, else CPU), cpu, cuda or cuda:N [default: auto].
    #[arg(long)]
    pub device: Option<DeviceRequest>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The main job: the fusion experiment on built-in paired data (image only, waveform
    /// only, early / intermediate / late fusion, binding + probe over seeds) and its report.
    Demo(demo::Args),
    /// Report the machine: CPU threads, CUDA driver and NVRTC, GPUs, and every kernel compiled.
    Doctor(doctor::Args),
    /// Time the engine's ops and models on the current device.
    Bench(bench::Args),
    /// Per-kernel profile of a training step: measured on a GPU, predicted for a chosen card
    /// without one (`--device cpu` or no CUDA).
    Profile(profile::Args),
    /// Inspect weight files (safetensors): names, shapes, dtypes, parameter count, preset.
    Weights(weights::Args),
    /// Waveforms (N×C×T .npy) → mel-spectrogram images (N×C×H×W .npy), optional PNGs.
    Mel(mel::Args),
    /// Encoder features of images (SFM) or waveforms (SeisLM) from .npy: pooled or all tokens.
    Embed(embed::Args),
    /// P and S picks on continuous 3-component data (miniSEED files and folders of many
    /// stations, or .npy) with SeisLM + its picking head, as SeisBench's annotate/classify.
    Pick(pick::Args),
    /// Write a synthetic dataset: images, waveforms, image+waveform pairs, or continuous
    /// miniSEED with a pick catalog.
    Synth(synth::Args),
    /// Build a training dataset: SeisBench windows from continuous miniSEED and a catalog.
    Dataset(dataset::Args),
    /// Draw samples of .npy datasets as PNG figures.
    Viz(viz::Args),
    /// Train a task of SFM or SeisLM into a run directory (config, log, checkpoints, figures).
    Train(train::TrainArgs),
    /// Evaluate a run's best checkpoint (or given weights) on a split: the papers' metrics.
    Eval(train::EvalArgs),
    /// Run a trained model (a run's best checkpoint) on new inputs: masks, outputs,
    /// probabilities as .npy, with figures.
    Predict(train::PredictArgs),
    /// Start one process per local GPU running a seisfuse command, like torchrun:
    /// `seisfuse launch --nproc-per-node 8 -- train ...` (see docs/cluster.md).
    Launch(launch::Args),
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Doctor(_) => "doctor",
            Command::Bench(_) => "bench",
            Command::Profile(_) => "profile",
            Command::Weights(_) => "weights",
            Command::Mel(_) => "mel",
            Command::Embed(_) => "embed",
            Command::Pick(_) => "pick",
            Command::Synth(_) => "synth",
            Command::Dataset(_) => "dataset",
            Command::Viz(_) => "viz",
            Command::Launch(_) => "launch",
            Command::Train(_) => "train",
            Command::Eval(_) => "eval",
            Command::Predict(_) => "predict",
            Command::Demo(_) => "demo",
        }
    }

    /// The command's own `--device`, or None for commands that run on no device.
    fn device_arg(&self) -> Option<DeviceArg> {
        match self {
            Command::Doctor(a) => Some(a.device),
            Command::Bench(a) => Some(a.device()),
            Command::Profile(a) => Some(a.device),
            Command::Mel(a) => Some(a.device),
            Command::Embed(a) => Some(a.device),
            Command::Pick(a) => Some(a.device),
            Command::Train(a) => Some(a.device),
            Command::Eval(a) => Some(a.device),
            Command::Predict(a) => Some(a.device),
            Command::Demo(a) => Some(a.device),
            Command::Weights(_)
            | Command::Synth(_)
            | Command::Dataset(_)
            | Command::Viz(_)
            | Command::Launch(_) => None,
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    if let Some(m) = cli.max_memory {
        crate::limits::set_max_memory(m);
    }
    match &cli.kernel {
        Some(spec) => {
            crate::backend::variants::set(spec).map_err(|e| anyhow::anyhow!("--kernel: {e:#}"))?
        }
        None => crate::backend::variants::init_from_env()?,
    }
    let explicit_device =
        cli.device.is_some() || cli.command.device_arg().is_some_and(|d| d.device.is_some());
    let req = match (cli.command.device_arg(), cli.device) {
        (None, Some(_)) => bail!(
            "--device has no effect on `{}`, which runs on no device; it applies to doctor, \
             bench, profile, mel, embed, pick, train, eval, predict and demo",
            cli.command.name()
        ),
        (None, None) => DeviceRequest::Auto,
        (Some(DeviceArg { device: Some(a) }), Some(b)) if a != b => bail!(
            "--device given twice with different values ({b:?} before `{}`, {a:?} after it)",
            cli.command.name()
        ),
        (Some(DeviceArg { device }), top) => device.or(top).unwrap_or(DeviceRequest::Auto),
    };
    match cli.command {
        Command::Doctor(a) => doctor::run(req, a),
        Command::Bench(a) => bench::run(req, a),
        Command::Profile(a) => profile::run(req, a),
        Command::Weights(a) => weights::run(a),
        Command::Mel(a) => mel::run(req, a),
        Command::Embed(a) => embed::run(req, a),
        Command::Pick(a) => pick::run(req, a),
        Command::Synth(a) => synth::run(a),
        Command::Dataset(a) => dataset::run(a),
        Command::Viz(a) => viz::run(a),
        Command::Launch(a) => launch::run(a),
        Command::Train(a) => train::run_train(req, a, explicit_device),
        Command::Eval(a) => train::run_eval(req, a, explicit_device),
        Command::Predict(a) => train::run_predict(req, a, explicit_device),
        Command::Demo(a) => demo::run(req, a),
    }
}
