//! `seisfuse synth images|waveforms|paired`: write a synthetic dataset (.npy arrays,
//! metadata.csv, dataset.json, optional PNGs).

use super::output::Outputs;
use super::progress::Progress;
use crate::data::synth::export::{self, ExportOptions};
use crate::data::synth::images::ImageConfig;
use crate::data::synth::paired::PairedConfig;
use crate::data::synth::waveforms::WaveformConfig;
use crate::limits;
use crate::outln;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub type Args = super::KindArgs<Kind>;

#[derive(clap::Subcommand, Debug)]
pub enum Kind {
    /// Seismic sections with facies, salt, reflectivity, noisy and trace-decimated versions.
    Images {
        #[command(flatten)]
        common: Common,
        /// Image size, HxW or one number for a square (SFM: 224).
        #[arg(long, default_value = "224")]
        size: String,
    },
    /// 3-component waveforms (Z, N, E) with P/S picks and event/noise labels.
    Waveforms {
        #[command(flatten)]
        common: Common,
        /// Samples per component (SeisLM: 3001).
        #[arg(long, default_value_t = 3001)]
        samples: usize,
        /// Sampling rate in Hz.
        #[arg(long, default_value_t = 100.0)]
        sampling_rate: f64,
        /// Also write the SeisBench layout (metadata.csv + waveforms.hdf5) into OUT/seisbench.
        #[arg(long)]
        seisbench: bool,
        /// Label events with periods of an earthquake sequence (2 = foreshock/aftershock, as
        /// SeisLM's event classification task; more = finer aftershock periods), written as
        /// `sequence_class.npy` and a metadata column. 0: no such labels.
        #[arg(long, default_value_t = 0)]
        sequence_classes: usize,
    },
    /// Continuous 3-component miniSEED of a few stations recording synthetic earthquakes, and
    /// `catalog.csv` of their P/S picks (input for `seisfuse dataset build`).
    Continuous(ContinuousArgs),
    /// Image + waveform pairs from one layered earth model; label = low-velocity layer or not.
    Paired {
        #[command(flatten)]
        common: Common,
        /// Image size, HxW or one number for a square.
        #[arg(long, default_value = "224")]
        size: String,
        /// Waveform samples per component.
        #[arg(long, default_value_t = 3001)]
        samples: usize,
    },
}

#[derive(clap::Args, Debug)]
pub struct ContinuousArgs {
    /// Output folder (created; must be empty unless --force): NET.STA.mseed per station and
    /// catalog.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of stations.
    #[arg(long, default_value_t = 3)]
    pub stations: usize,
    /// Length of the recording in seconds.
    #[arg(long, default_value_t = 3600.0)]
    pub seconds: f64,
    /// Number of earthquakes.
    #[arg(long, default_value_t = 20)]
    pub events: usize,
    /// Sampling rate in Hz.
    #[arg(long, default_value_t = 100.0)]
    pub sampling_rate: f64,
    /// Time of the first sample (ISO-8601 UTC).
    #[arg(long, default_value = "2024-01-01T00:00:00Z")]
    pub start: String,
    /// Leave this many gaps of 5-20 s in the recordings (at random stations).
    #[arg(long, default_value_t = 0)]
    pub gaps: usize,
    /// Seed: the same seed and sizes give the same files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write into a folder that already holds files, replacing ours.
    #[arg(long)]
    pub force: bool,
}

/// `synth continuous`.
fn run_continuous(a: &ContinuousArgs) -> Result<()> {
    use crate::data::synth::continuous::{self, ContinuousConfig};
    let mut outs = Outputs::new(a.force);
    outs.dir("--out", &a.out)?;
    if !(a.sampling_rate.is_finite() && a.sampling_rate > 0.0 && a.sampling_rate <= 10_000.0) {
        bail!("--sampling-rate {}: give 0 < Hz ≤ 10000", a.sampling_rate);
    }
    if !(a.seconds.is_finite() && a.seconds >= 10.0) {
        bail!("--seconds {}: give at least 10 seconds", a.seconds);
    }
    if a.stations == 0 || a.stations > 9999 {
        bail!("--stations {}: give 1 to 9999", a.stations);
    }
    if a.events > 100_000 || a.gaps > 100_000 {
        bail!("--events and --gaps: at most 100000");
    }
    let start =
        crate::data::time::parse_iso(&a.start).map_err(|e| anyhow::anyhow!("--start: {e}"))?;
    let mut cfg = ContinuousConfig::new(a.stations, a.seconds, a.events);
    cfg.sampling_rate = a.sampling_rate;
    cfg.start = start;
    let end = crate::data::time::civil(start + a.seconds);
    if end.year > 2100 {
        bail!(
            "--start {} --seconds {}: the recording would end after 2100",
            a.start,
            a.seconds
        );
    }
    let n = (a.seconds * a.sampling_rate).round() as u128;
    // One station at a time: f32 samples, the f64 noise, the miniSEED bytes.
    limits::check(
        format_args!(
            "--seconds {} at --sampling-rate {} ({n} samples per channel)",
            a.seconds, a.sampling_rate
        ),
        n * 3 * (4 + 8 + 4) + a.events as u128 * 256,
    )?;
    let disk = n * 3 * 4 * a.stations as u128;
    let dir = existing_folder(&a.out);
    if let Some(free) = limits::free_disk_bytes(&dir) {
        if disk > free as u128 {
            bail!(
                "--stations {} --seconds {}: the recordings would take {} but {} has only {} free",
                a.stations,
                a.seconds,
                limits::human(disk),
                dir.display(),
                limits::human(free as u128)
            );
        }
    }
    let p = Progress::new("synth continuous", a.stations as u64, "stations");
    continuous::write(&a.out, &cfg, a.seed, a.gaps, a.force, &|d| p.set(d as u64))?;
    p.finish();
    let picks = continuous::picks(&cfg, a.seed).len();
    outln!(
        "wrote {} stations × {} s of 3-component miniSEED and catalog.csv ({} events, {picks} picks) to {}",
        a.stations,
        a.seconds,
        a.events,
        a.out.display()
    )?;
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// Number of samples.
    #[arg(long, default_value_t = 100)]
    pub n: usize,
    /// Seed: the same seed and sizes give the same files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (created; must be empty unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write PNG figures of the first K samples into OUT/png.
    #[arg(long, default_value_t = 0)]
    pub png: usize,
    /// Write into a folder that already holds files, replacing ours.
    #[arg(long)]
    pub force: bool,
}

/// Parses "HxW" or "N".
pub fn parse_size(s: &str) -> Result<(usize, usize)> {
    let parts: Vec<&str> = s.split(['x', 'X', '×']).collect();
    let num = |p: &str| -> Result<usize> {
        p.trim()
            .parse::<usize>()
            .map_err(|_| anyhow::anyhow!("--size {s:?}: expected HxW or N, e.g. 224x224 or 64"))
    };
    let (h, w) = match parts.as_slice() {
        [n] => (num(n)?, num(n)?),
        [h, w] => (num(h)?, num(w)?),
        _ => bail!("--size {s:?}: expected HxW or N, e.g. 224x224 or 64"),
    };
    if h < 8 || w < 8 || h > 8192 || w > 8192 {
        bail!("--size {s:?}: each side must be between 8 and 8192");
    }
    Ok((h, w))
}

fn options(c: &Common, what: &str) -> Result<(ExportOptions, Arc<Progress>)> {
    if c.n == 0 {
        bail!("--n must be at least 1");
    }
    let p = Arc::new(Progress::new(
        &format!("synth {what}"),
        c.n as u64,
        "samples",
    ));
    let q = p.clone();
    Ok((
        ExportOptions {
            png: c.png,
            force: c.force,
            progress: Some(Box::new(move |done| q.set(done as u64))),
        },
        p,
    ))
}

/// Samples generated at once (in parallel) by the exporter.
const CHUNK: u128 = 64;
/// Bytes of metadata.csv per sample, kept in memory until the end (an upper estimate).
const CSV_PER_SAMPLE: u128 = 256;

/// Refuses a dataset that would not fit: in memory (the metadata table grows with --n, a chunk
/// of samples is generated at once) or on the disk under --out. `disk_per` and `mem_per` are
/// bytes per sample; `flags` names the flags that set them.
fn check_sizes(c: &Common, disk_per: u128, mem_per: u128, flags: &str) -> Result<()> {
    let n = c.n as u128;
    limits::check(
        format_args!(
            "--n {}{flags} (metadata of every sample, {} at once)",
            c.n, CHUNK
        ),
        n * CSV_PER_SAMPLE + CHUNK.min(n) * mem_per,
    )?;
    let total = n * disk_per;
    let dir = existing_folder(&c.out);
    if let Some(free) = limits::free_disk_bytes(&dir) {
        if total > free as u128 {
            bail!(
                "--n {}{flags}: the dataset would take {} but {} has only {} free; \
                 give a smaller --n or another --out",
                c.n,
                limits::human(total),
                dir.display(),
                limits::human(free as u128)
            );
        }
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    let (common, what) = match &args.kind {
        Kind::Continuous(a) => return run_continuous(a),
        Kind::Images { common, .. } => (common, "images"),
        Kind::Waveforms { common, .. } => (common, "waveforms"),
        Kind::Paired { common, .. } => (common, "paired"),
    };
    let mut outs = Outputs::new(common.force);
    outs.dir("--out", &common.out)?;
    if common.n == 0 {
        bail!("--n must be at least 1");
    }
    let (n, seed, out) = (common.n, common.seed, &common.out);
    // Every size is checked before the first file is written.
    match &args.kind {
        Kind::Images { size, .. } => {
            let (h, w) = parse_size(size)?;
            let px = (h * w) as u128;
            // 4 f32 and 3 u8 arrays on disk; about 4× that while generating.
            check_sizes(common, px * 19, px * 19 * 4, &format!(" of --size {h}x{w}"))?;
        }
        Kind::Waveforms {
            samples,
            sampling_rate,
            seisbench,
            sequence_classes,
            ..
        } => {
            if *sequence_classes == 1 || *sequence_classes > 64 {
                bail!(
                    "--sequence-classes {sequence_classes}: give 0 (no labels) or 2 to 64 periods"
                );
            }
            if !(*sampling_rate > 0.0 && sampling_rate.is_finite()) {
                bail!("--sampling-rate must be a positive number of Hz");
            }
            if *samples < 16 {
                bail!("--samples {samples}: at least 16 samples per trace");
            }
            let per = 3 * *samples as u128 * 4;
            let disk = per * if *seisbench { 2 } else { 1 };
            check_sizes(common, disk, per * 4, &format!(" of --samples {samples}"))?;
        }
        Kind::Continuous(_) => {}
        Kind::Paired { size, samples, .. } => {
            let (h, w) = parse_size(size)?;
            if *samples < 16 {
                bail!("--samples {samples}: at least 16 samples per trace");
            }
            let per = (h * w) as u128 * 8 + 3 * *samples as u128 * 4;
            check_sizes(
                common,
                per,
                per * 4,
                &format!(" of --size {h}x{w} and --samples {samples}"),
            )?;
        }
    }
    let (opts, progress) = options(common, what)?;
    match &args.kind {
        Kind::Images { size, .. } => {
            let (h, w) = parse_size(size)?;
            export::write(out, &ImageConfig::new(h, w), n, seed, &opts)?
        }
        Kind::Waveforms {
            samples,
            sampling_rate,
            sequence_classes,
            ..
        } => {
            let mut cfg = WaveformConfig::new(*samples);
            cfg.sampling_rate = *sampling_rate;
            cfg.sequence_classes = *sequence_classes;
            export::write(out, &cfg, n, seed, &opts)?;
            if let Kind::Waveforms {
                seisbench: true, ..
            } = &args.kind
            {
                export::write_waveforms_seisbench(&out.join("seisbench"), &cfg, n, seed, false)?;
            }
        }
        Kind::Continuous(_) => {}
        Kind::Paired { size, samples, .. } => {
            let (h, w) = parse_size(size)?;
            export::write(out, &PairedConfig::new(h, w, *samples), n, seed, &opts)?
        }
    }
    progress.finish();
    outln!(
        "wrote {n} {what} samples to {} (metadata.csv, dataset.json{})",
        out.display(),
        if common.png > 0 { ", png/" } else { "" }
    )?;
    Ok(())
}

/// The closest folder that exists: `out` itself or the one it will be created in (`.` for a
/// relative path none of whose folders exist yet).
fn existing_folder(out: &Path) -> PathBuf {
    let mut dir = out.to_path_buf();
    while !dir.is_dir() {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
    dir
}
