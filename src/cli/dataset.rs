//! `seisfuse dataset build`: a SeisBench dataset (metadata.csv + waveforms.hdf5) of windows
//! cut from continuous miniSEED around catalogued picks, plus noise windows (see
//! `data::build` and docs/data.md).

use super::output::Outputs;
use super::progress::Progress;
use crate::data::build::{self, catalog, split, BuildConfig};
use crate::outln;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

pub type Args = super::KindArgs<Kind>;

#[derive(clap::Subcommand, Debug)]
pub enum Kind {
    /// Cut labelled windows around catalogued P/S picks (and noise windows away from every
    /// pick) out of continuous miniSEED into a SeisBench dataset, split by event.
    Build(BuildArgs),
    /// Read every trace of a SeisBench dataset folder (metadata.csv + waveforms.hdf5, or
    /// chunks) and report its traces per split and category.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The dataset folder.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Only this split (train, dev or test).
    #[arg(long)]
    pub split: Option<String>,
    /// Samples per window read (longer traces are cut, shorter ones padded).
    #[arg(long, default_value_t = 3001)]
    pub samples: usize,
}

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// miniSEED files, or folders searched for *.mseed, *.miniseed and *.ms.
    #[arg(long, num_args = 1.., required = true, value_name = "DIR_OR_FILES")]
    pub waveforms: Vec<PathBuf>,
    /// Pick catalog: CSV with columns event_id, network, station, location, phase, time
    /// (ISO-8601 UTC).
    #[arg(long, value_name = "CATALOG.csv")]
    pub picks: PathBuf,
    /// Output folder for metadata.csv and waveforms.hdf5 (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Window length in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub window: f64,
    /// Where the P pick falls in its window: MIN:MAX seconds after the start (uniformly
    /// random), or one number.
    #[arg(long, default_value = "3:12", value_name = "MIN:MAX")]
    pub p_offset: String,
    /// Noise windows per event (from a random station of the event).
    #[arg(long, default_value_t = 1)]
    pub noise_per_event: usize,
    /// No pick of the station within this many seconds of a noise window.
    #[arg(long, default_value_t = 60.0)]
    pub noise_margin: f64,
    /// Sampling rate of the dataset [default: the data's, which must then agree].
    #[arg(long)]
    pub sampling_rate: Option<f64>,
    /// Resample stations at another rate (low-pass, then interpolation) instead of refusing.
    #[arg(long)]
    pub resample: bool,
    /// Train, dev, test fractions of the events.
    #[arg(long, default_value = "0.7,0.1,0.2", value_parser = split::parse_fractions)]
    pub split: [f64; 3],
    /// Seed of the P offsets, the noise windows and the split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace metadata.csv and waveforms.hdf5 in --out.
    #[arg(long)]
    pub force: bool,
}

fn parse_offset(s: &str) -> Result<(f64, f64)> {
    let bad =
        || anyhow::anyhow!("--p-offset {s:?}: give MIN:MAX seconds (e.g. 3:12) or one number");
    let num = |p: &str| p.trim().parse::<f64>().map_err(|_| bad());
    match s.split_once(':') {
        Some((a, b)) => Ok((num(a)?, num(b)?)),
        None => {
            let v = num(s)?;
            Ok((v, v))
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    match args.kind {
        Kind::Build(a) => run_build(a),
        Kind::Check(a) => run_check(a),
    }
}

fn run_check(a: CheckArgs) -> Result<()> {
    use crate::data::seisbench::SeisBenchDataset;
    use crate::data::{Dataset, Target};
    if a.samples == 0 || a.samples > 10_000_000 {
        bail!("--samples {}: give 1 to 10000000", a.samples);
    }
    crate::limits::check(
        format_args!("--samples {} (one window of 3 components)", a.samples),
        a.samples as u128 * 3 * 4 * 2,
    )?;
    let d = SeisBenchDataset::open(&a.dataset, a.split.as_deref(), a.samples)?;
    if d.is_empty() {
        bail!(
            "{}: no trace{}",
            a.dataset.display(),
            a.split
                .as_ref()
                .map(|s| format!(" in split {s:?}"))
                .unwrap_or_default()
        );
    }
    let p = Progress::new("dataset check", d.len() as u64, "traces");
    let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
    let (mut with_p, mut with_s) = (0, 0);
    let mut buf = vec![0f32; 3 * a.samples];
    for i in 0..d.len() {
        let t = d.get_into(i, &mut buf)?;
        if let Target::Picks { p, s } = t {
            with_p += usize::from(p.is_some());
            with_s += usize::from(s.is_some());
        }
        let m = d.trace(i).expect("index in range");
        *counts
            .entry((
                m.split.clone().unwrap_or_else(|| "-".into()),
                d.category(i).unwrap_or("-").to_string(),
            ))
            .or_default() += 1;
        p.set(i as u64 + 1);
    }
    p.finish();
    outln!(
        "{}: {} traces read ({with_p} with a P pick, {with_s} with an S pick)",
        a.dataset.display(),
        d.len()
    )?;
    for ((split, cat), n) in &counts {
        outln!("  {split} {cat}: {n}")?;
    }
    Ok(())
}

fn run_build(a: BuildArgs) -> Result<()> {
    let cfg = BuildConfig {
        window_s: a.window,
        p_offset_s: parse_offset(&a.p_offset)?,
        noise_per_event: a.noise_per_event,
        noise_margin_s: a.noise_margin,
        sampling_rate: a.sampling_rate,
        resample: a.resample,
        split: a.split,
        seed: a.seed,
    };
    cfg.check()?;
    if a.noise_per_event > 1000 {
        bail!("--noise-per-event {}: at most 1000", a.noise_per_event);
    }
    // Outputs first.
    let files = build::inputs(&a.waveforms)?;
    let mut outs = Outputs::new(a.force);
    outs.input(&a.picks);
    for f in &files {
        outs.input(f);
    }
    outs.dir("--out", &a.out)?;
    if a.out.is_dir() {
        outs.file("--out", &a.out.join("metadata.csv"))?;
        outs.file("--out", &a.out.join("waveforms.hdf5"))?;
    }
    // The catalog, then the recordings.
    let f = crate::data::open_file(&a.picks)?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    crate::limits::check(
        format_args!("--picks {} ({len} bytes)", a.picks.display()),
        len as u128 * 8,
    )?;
    let text = std::fs::read_to_string(&a.picks)
        .with_context(|| format!("reading {} (a UTF-8 CSV file)", a.picks.display()))?;
    let cat = catalog::parse_catalog(&text, &a.picks.display().to_string())?;
    if cat.arrivals.is_empty() {
        bail!("{}: holds no P or S pick", a.picks.display());
    }
    let p = Progress::new("dataset build: reading", files.len() as u64, "files");
    let rec = build::streams::Recordings::read(&files, &|d| p.set(d as u64))?;
    p.finish();
    let created = crate::atomic::create_dir_all_tracked(&a.out)?;
    // The number of windows is known once they are planned.
    let p: std::cell::OnceCell<Progress> = std::cell::OnceCell::new();
    let result = build::build(&cfg, &cat, &rec, &a.out, &|done, total| {
        p.get_or_init(|| Progress::new("dataset build", total as u64, "windows"))
            .set(done as u64)
    });
    let (outputs, summary) = match result {
        Ok(r) => r,
        Err(e) => {
            crate::atomic::remove_created(&created);
            return Err(e);
        }
    };
    let mut staged = crate::atomic::Staged::new();
    for o in outputs {
        staged.add(o);
    }
    staged.commit()?;
    if let Some(p) = p.get() {
        p.finish();
    }
    if !summary.unknown_stations.is_empty() {
        eprintln!(
            "warning: {} catalog station(s) have no recordings and were skipped: {}{}",
            summary.unknown_stations.len(),
            summary
                .unknown_stations
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if summary.unknown_stations.len() > 10 {
                ", …"
            } else {
                ""
            }
        );
    }
    outln!(
        "wrote {} windows of 3×{} samples at {} Hz to {} (metadata.csv, waveforms.hdf5)",
        summary.total(),
        summary.npts,
        summary.sampling_rate,
        a.out.display()
    )?;
    for s in split::SPLITS {
        let get = |c: &str| {
            summary
                .written
                .get(&(s.to_string(), c.to_string()))
                .copied()
                .unwrap_or(0)
        };
        outln!(
            "  {s}: {} earthquake, {} noise",
            get("earthquake"),
            get("noise")
        )?;
    }
    outln!("  skipped: {}", build::skipped_text(&summary))?;
    if cat.other_phases > 0 {
        outln!(
            "  catalog rows of other phases (not P or S): {}",
            cat.other_phases
        )?;
    }
    Ok(())
}
