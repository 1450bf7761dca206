//! The command line: one file per subcommand.

pub mod bench;
pub mod bench_mel;
pub mod doctor;
pub mod embed;
pub mod launch;
pub mod mel;
pub mod pick;
pub mod synth;
pub mod viz;
pub mod weights;

use crate::backend::DeviceRequest;
use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "seisfuse",
    version,
    about = "Seismic foundation models (SFM, SeisLM) and their fusion, on CPU and CUDA"
)]
pub struct Cli {
    /// Where to run: auto (CUDA when usable, else CPU), cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "auto")]
    pub device: DeviceRequest,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Report the machine: CPU threads, CUDA driver and NVRTC, GPUs, and every kernel compiled.
    Doctor(doctor::Args),
    /// Time the engine's ops and models on the current device.
    Bench(bench::Args),
    /// Inspect weight files (safetensors): names, shapes, dtypes, parameter count, preset.
    Weights(weights::Args),
    /// Waveforms (N×C×T .npy) → mel-spectrogram images (N×C×H×W .npy), optional PNGs.
    Mel(mel::Args),
    /// Encoder features of images (SFM) or waveforms (SeisLM) from .npy: pooled or all tokens.
    Embed(embed::Args),
    /// P and S picks of 3-component traces (.npy or miniSEED) with SeisLM + its picking head.
    Pick(pick::Args),
    /// Write a synthetic dataset: images, waveforms or image+waveform pairs.
    Synth(synth::Args),
    /// Draw samples of .npy datasets as PNG figures.
    Viz(viz::Args),
    /// Start one process per local GPU running a seisfuse command, like torchrun:
    /// `seisfuse launch --nproc-per-node 8 -- train ...` (see docs/cluster.md).
    Launch(launch::Args),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Doctor(a) => doctor::run(cli.device, a),
        Command::Bench(a) => bench::run(cli.device, a),
        Command::Weights(a) => weights::run(a),
        Command::Mel(a) => mel::run(cli.device, a),
        Command::Embed(a) => embed::run(cli.device, a),
        Command::Pick(a) => pick::run(cli.device, a),
        Command::Synth(a) => synth::run(a),
        Command::Viz(a) => viz::run(a),
        Command::Launch(a) => launch::run(a),
    }
}
