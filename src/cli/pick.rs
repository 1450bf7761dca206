//! `seisfuse pick`: P and S picks on continuous 3-component data with a SeisLM encoder and its
//! phase-picking head, as SeisBench's `annotate` and `classify` make them (docs/pick.md).
//!
//! Inputs: miniSEED files or folders (every station, or those `--station` names) or a `.npy`
//! of traces N×3×T. Every stretch of data is resampled to 100 Hz, cut into windows of
//! `--window` samples overlapping by `--overlap` (plus one aligned to the end), each window
//! normalised as SeisLM does (per component: remove the mean, divide by the standard
//! deviation) and run through the model; the windows' probabilities, blinded at the window
//! edges (`--blinding`), are stacked (`--stacking avg|max`). Picks: on/off triggers per phase
//! (`--p-threshold`, `--s-threshold`), one pick at each triggered interval's peak.
//!
//! Weights: one safetensors file named as SeisLM's fine-tuned picker
//! (`MultiDimWav2Vec2ForFrameClassification`): the encoder under `wav2vec2.` + its HF names,
//! the head as `double_conv.double_conv.{0,4}.weight`, `double_conv.double_conv.{1,5}.{weight,
//! bias,running_mean,running_var}` and `classifier.{weight,bias}`, as `weights::save_from`
//! writes a [`SeislmPicker`]; a converted Lightning checkpoint's `model.` prefix is stripped.
//! Pretraining tensors (`masked_spec_embed`, `quantizer.*`, `project_hid`, `project_q`) and
//! BatchNorm's `num_batches_tracked` are skipped; anything else missing, unexpected or
//! mis-shaped is an error. The head width is read from the file.

use super::estimate;
use super::output::{OutputFile, Outputs, Staged};
use super::progress::Progress;
use crate::backend::{Device, DeviceRequest};
use crate::limits;
use crate::models::seislm::SeislmConfig;
use crate::models::seislm_heads::{SeislmPicker, PICKER_ENCODER_PREFIX};
use crate::nn::Parameters;
use crate::pick::annotate::{Annotation, Config, Short, WindowModel, CLASSES};
use crate::pick::input::{self, Inputs};
use crate::pick::mseed_write::{write_trace, TraceOut};
use crate::pick::picks::{self, Pick, Thresholds};
use crate::pick::stack::{Blinding, Stacking};
use crate::pick::stream::{layout, GapMode, Layout, Resamplers, StationData};
use crate::pick::{default_blinding, pipeline, time, window, MODEL_RATE};
use crate::tensor::{DType, Tensor};
use crate::weights::{self, safetensors_io::SafetensorsFile, LoadOptions};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// seislm-tiny, seislm-base or seislm-large.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Encoder + picking-head weights (safetensors named as SeisLM's fine-tuned picker:
    /// `wav2vec2.*`, `double_conv.*`, `classifier.*`, optionally under `model.`).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Use randomly initialised weights instead of --weights (for trying the pipeline).
    #[arg(long, conflicts_with_all = ["weights", "run"])]
    pub random_init: bool,
    /// A `seisfuse train --task pick` run: its best checkpoint's weights and its preset (in
    /// place of --weights and --model).
    #[arg(long, conflicts_with = "weights")]
    pub run: Option<PathBuf>,
    /// DoubleConv width of a randomly initialised head (default hidden + 3, as SeisLM; with
    /// --weights it is read from the file).
    #[arg(long)]
    pub head_channels: Option<usize>,
    /// miniSEED files or folders (searched recursively; files named .mseed, .miniseed, .ms or
    /// starting with a miniSEED record), or one .npy of traces N×3×T (or 3×T), Z/N/E.
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// miniSEED stations to pick (all by default), comma-separated or repeated: NET.STA,
    /// NET.STA.LOC or NET.STA.LOC.BI (band and instrument letters, e.g. IU.ANMO.00.BH).
    #[arg(long, value_delimiter = ',')]
    pub station: Vec<String>,
    /// Sampling rate of .npy input in Hz (miniSEED carries its own); resampled to 100 Hz.
    #[arg(long, default_value_t = 100.0)]
    pub sampling_rate: f64,
    /// Time of the first sample of .npy traces (ISO 8601 UTC) [default: 1970-01-01T00:00:00Z].
    #[arg(long)]
    pub start_time: Option<String>,
    /// P trigger: ON or ON,OFF probabilities; a trigger starts above ON and ends at or below
    /// OFF (default OFF = ON / 2, as SeisBench) [default: 0.3, or --threshold].
    #[arg(long)]
    pub p_threshold: Option<String>,
    /// S trigger, as --p-threshold [default: 0.3, or --threshold].
    #[arg(long)]
    pub s_threshold: Option<String>,
    /// The on-threshold of both phases (off = half of it) where --p-threshold or
    /// --s-threshold is not given.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Of picks of one phase and station closer than this many seconds, keep only the most
    /// probable (0: keep all, as SeisBench).
    #[arg(long, default_value_t = 0.0)]
    pub min_distance: f64,
    /// Picks CSV (station,time,start_time,end_time,probability,phase); standard output when
    /// absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// fp32 or bf16 (bf16 weights and activations with fp32 accumulation; on the CPU emulated
    /// by rounding, so only slower there).
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: super::embed::Precision,
    /// Also write the probabilities as .npy [stations, 3, T] (P, S, noise) at 100 Hz over the
    /// span of all stations, NaN where there is no prediction.
    #[arg(long)]
    pub probs: Option<PathBuf>,
    /// Also write the probabilities as miniSEED, one file per station in this folder
    /// (NET.STA.LOC.MODEL.mseed; channels HXP, HXS, HXN for P, S and noise).
    #[arg(long)]
    pub probs_mseed: Option<PathBuf>,
    /// Window length in samples (SeisLM: 3001); 0 runs every stretch of data whole.
    #[arg(long, default_value_t = 3001)]
    pub window: usize,
    /// Overlap of neighbouring windows: a fraction of the window below 1, else samples.
    #[arg(long, default_value_t = 0.5)]
    pub overlap: f64,
    /// Samples of every window's prediction left out at its start and end, S0,S1
    /// [default: window / 12 at each end, 250,250 for 3001; 0,0 with --window 0].
    #[arg(long)]
    pub blinding: Option<String>,
    /// How overlapping windows are combined: avg (SeisBench's default) or max.
    #[arg(long, value_enum, default_value = "avg")]
    pub stacking: Stacking,
    /// Gaps (no component has data): split (each stretch picked alone, as SeisBench) or zero
    /// (filled with zeros, one stretch per station).
    #[arg(long, value_enum, default_value = "split")]
    pub gaps: GapMode,
    /// Stretches shorter than a window: pad (to a window, with their mean) or skip.
    #[arg(long, value_enum, default_value = "pad")]
    pub short: Short,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Overwrite --out, --probs and the files of --probs-mseed if they exist.
    #[arg(long)]
    pub force: bool,
}

/// Tensors of a pretraining checkpoint that the picker does not use.
const SKIPPED: [&str; 5] = [
    "wav2vec2.masked_spec_embed",
    "masked_spec_embed",
    "quantizer.",
    "project_hid",
    "project_q",
];

/// The tensor that holds the picking head's width.
const HEAD_WIDTH_TENSOR: &str = "double_conv.double_conv.0.weight";

/// miniSEED channel codes of the probability traces (band H: 100 Hz; instrument X: derived
/// data; the component is the class).
pub const PROB_CHANNELS: [&str; 3] = ["HXP", "HXS", "HXN"];

/// The DoubleConv width of the picking head stored in `path`, and the prefix in front of the
/// picker's names ("" or a Lightning checkpoint's "model.").
fn head_width(path: &Path) -> Result<(usize, String)> {
    let file = SafetensorsFile::open(path)?;
    let found = ["", "model."].iter().find_map(|p| {
        file.info(&format!("{p}{HEAD_WIDTH_TENSOR}"))
            .map(|i| (*p, i))
    });
    match found {
        Some((p, info)) if info.shape.len() == 3 => Ok((info.shape[0], p.to_string())),
        Some((p, info)) => bail!(
            "{}: {p}{HEAD_WIDTH_TENSOR} has shape {:?}; expected [channels, hidden + 3, 3]",
            path.display(),
            info.shape
        ),
        None => bail!(
            "{}: no picking head ({HEAD_WIDTH_TENSOR} is missing); the file must hold SeisLM's fine-tuned picker: the encoder under '{PICKER_ENCODER_PREFIX}' and the head as 'double_conv.*' and 'classifier.*' (see `seisfuse pick --help`)",
            path.display()
        ),
    }
}

/// The shortest input the encoder takes (its feature extractor gives at least one frame).
pub fn min_samples(cfg: &SeislmConfig) -> usize {
    (1..100_000)
        .find(|&l| cfg.frames(l).is_some_and(|f| f > 0))
        .unwrap_or(100_000)
}

/// The SeisLM picker as a [`WindowModel`] on a device.
pub struct SeislmWindows<'a> {
    pub model: &'a mut SeislmPicker,
    pub device: Device,
    pub dtype: DType,
}

impl WindowModel for SeislmWindows<'_> {
    fn predict(&mut self, x: Vec<f32>, n: usize, len: usize) -> Result<Vec<f32>> {
        let x = Tensor::from_f32(&[n, 3, len], x)?.to_device(&self.device)?;
        let x = super::embed::in_dtype(x, self.dtype)?;
        self.model.probabilities(&x)?.to_vec_f32()
    }
}

/// `S0,S1` (or one number for both).
fn parse_blinding(s: &str) -> Result<Blinding> {
    let num = |x: &str| {
        x.trim().parse::<usize>().map_err(|_| {
            anyhow::anyhow!("--blinding '{s}': give two sample counts S0,S1 (e.g. 250,250)")
        })
    };
    Ok(match s.split_once(',') {
        Some((a, b)) => Blinding {
            start: num(a)?,
            end: num(b)?,
        },
        None => {
            let v = num(s)?;
            Blinding { start: v, end: v }
        }
    })
}

/// The window flags of `pick` (and `bench pick`).
pub struct WindowFlags {
    pub window: usize,
    pub overlap: f64,
    pub blinding: Option<String>,
    pub stacking: Stacking,
    pub short: Short,
    pub batch: usize,
}

/// Checks the window flags against the model's shortest input.
pub fn window_config(f: &WindowFlags, min_len: usize, model: &str) -> Result<Config> {
    let (window, overlap, batch) = (f.window, f.overlap, f.batch);
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    if window > 0 && window < min_len {
        bail!(
            "--window {window}: windows of {window} samples are too short for {model} (needs at least {min_len} samples)"
        );
    }
    let overlap = if window == 0 {
        if !(overlap.is_finite() && overlap >= 0.0) {
            bail!("--overlap must be a fraction in [0, 1) or a number of samples, found {overlap}");
        }
        0
    } else {
        window::overlap_samples(overlap, window)?
    };
    let blinding = match &f.blinding {
        Some(s) => parse_blinding(s)?,
        None => default_blinding(window),
    };
    if window > 0 && blinding.start + blinding.end >= window {
        bail!(
            "--blinding {},{} leaves nothing of a window of {window} samples",
            blinding.start,
            blinding.end
        );
    }
    if window > 0 {
        let stride = window - overlap;
        if blinding.start + blinding.end > overlap && stride > 0 {
            eprintln!(
                "note: --blinding {},{} with an overlap of {overlap} samples leaves {} samples \
                 between windows without a prediction",
                blinding.start,
                blinding.end,
                blinding.start + blinding.end - overlap
            );
        }
    }
    Ok(Config {
        window,
        overlap,
        blinding,
        stacking: f.stacking,
        short: f.short,
        batch,
        min_len,
    })
}

/// Seconds as "1.5 s", "12 min", "3.2 h".
fn span(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.2} s")
    } else if secs < 7200.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.2} h", secs / 3600.0)
    }
}

/// Notes on what the layouts hold: missing components, gaps, short stretches.
fn layout_notes(stations: &[StationData], layouts: &[Layout], cfg: &Config, gaps: GapMode) {
    for (st, l) in stations.iter().zip(layouts) {
        for &c in &l.missing {
            eprintln!(
                "warning: {}: no {} component; it is filled with zeros",
                st.label(),
                ["Z", "N/1", "E/2"][c]
            );
        }
        if gaps == GapMode::Split && l.groups.len() > 1 {
            eprintln!(
                "note: {}: {} stretches of data separated by gaps, each picked alone (--gaps zero \
                 fills the gaps instead)",
                st.label(),
                l.groups.len()
            );
        }
        let short: Vec<usize> = l
            .groups
            .iter()
            .map(|g| g.len)
            .filter(|&n| cfg.is_short(n))
            .collect();
        if !short.is_empty() {
            let (lo, hi) = (
                *short.iter().min().expect("non-empty"),
                *short.iter().max().expect("non-empty"),
            );
            let need = if cfg.window == 0 {
                cfg.min_len
            } else {
                cfg.window
            };
            let sizes = if lo == hi {
                span(lo as f64 / l.rate)
            } else {
                format!(
                    "{} to {}",
                    span(lo as f64 / l.rate),
                    span(hi as f64 / l.rate)
                )
            };
            let what = match cfg.short {
                Short::Pad => "padded to a window with their mean (--short skip leaves them out)",
                Short::Skip => "left out (--short pad pads them to a window)",
            };
            eprintln!(
                "note: {}: {} stretch{} of data shorter than a window of {need} samples ({}): {sizes}; {what}",
                st.label(),
                short.len(),
                if short.len() == 1 { "" } else { "es" },
                span(need as f64 / l.rate),
            );
        }
    }
}

/// `(network, station, location)` of `NET.STA.LOC`.
fn nsl(id: &str) -> (String, String, String) {
    let mut it = id.splitn(3, '.');
    (
        it.next().unwrap_or("").to_string(),
        it.next().unwrap_or("").to_string(),
        it.next().unwrap_or("").to_string(),
    )
}

/// The file of a station's probabilities in the --probs-mseed folder.
fn mseed_path(dir: &Path, station: &str, model: &str) -> PathBuf {
    dir.join(format!("{station}.{model}.mseed"))
}

/// Writes one station's probability traces into `f`.
fn write_station_mseed(f: &mut OutputFile, ann: &Annotation) -> Result<()> {
    let (net, sta, loc) = nsl(&ann.station);
    let mut seq = 1;
    for (c, cha) in PROB_CHANNELS.iter().enumerate() {
        for g in &ann.groups {
            write_trace(
                f,
                &TraceOut {
                    network: &net,
                    station: &sta,
                    location: &loc,
                    channel: cha,
                    start: g.start,
                    rate: g.rate,
                    data: g.class(c),
                },
                &mut seq,
            )
            .with_context(|| format!("writing {}", f.dest().display()))?;
        }
    }
    Ok(())
}

/// Per-sample bytes of the work besides the model: the stacker of a group and the assembled
/// group (samples, "filled" flags, the resampled piece).
const STACK_BYTES: u128 = 16;
const GROUP_BYTES: u128 = 3 * 4 + 3 + 4;

/// `--run RUN`: the weights of the run's best checkpoint and its preset.
fn from_run(run: &Path, model: &str) -> Result<(PathBuf, String)> {
    let dir = crate::train::run_dir::RunDir::open(run)?;
    let cfg = dir.config_table()?;
    let task = cfg.get("task").and_then(|v| v.as_str()).unwrap_or("");
    if task != "pick" {
        bail!(
            "{}: a {task:?} run; --run takes a run of `seisfuse train --task pick`",
            run.display()
        );
    }
    let preset = cfg
        .get("preset")
        .and_then(|v| v.as_str())
        .unwrap_or("seislm-base")
        .to_string();
    if model != DEFAULT_MODEL && model != preset {
        bail!("--model {model} differs from the run's preset {preset}; drop --model with --run");
    }
    let ck = crate::train::trainer::best_checkpoint(&dir)?
        .ok_or_else(|| anyhow::anyhow!("{}: the run has no complete checkpoint", run.display()))?;
    Ok((ck.join("model.safetensors"), preset))
}

/// The default of --model.
const DEFAULT_MODEL: &str = "seislm-base";

pub fn run(req: DeviceRequest, mut a: Args) -> Result<()> {
    if let Some(r) = &a.run {
        let (w, preset) = from_run(r, &a.model)?;
        eprintln!("{}: weights {}, preset {preset}", r.display(), w.display());
        a.weights = Some(w);
        a.model = preset;
    }
    // Outputs first: nothing is read or computed for an output that cannot be written.
    let mut outs = Outputs::new(a.force);
    for i in &a.input {
        outs.input(i);
    }
    if let Some(w) = &a.weights {
        outs.input(w);
    }
    if let Some(p) = &a.out {
        outs.file("--out", p)?;
    }
    if let Some(p) = &a.probs {
        outs.file("--probs", p)?;
    }
    if let Some(d) = &a.probs_mseed {
        outs.dir("--probs-mseed", d)?;
    }
    if !a.model.starts_with("seislm-") {
        bail!(
            "pick runs SeisLM models (seislm-tiny, seislm-base, seislm-large); found --model {}",
            a.model
        );
    }
    if let Some(t) = a.threshold {
        if !(t > 0.0 && t <= 1.0) {
            bail!("--threshold must be in (0, 1], found {t}");
        }
    }
    let default_th = a.threshold.unwrap_or(0.3);
    let default_th = Thresholds {
        on: default_th,
        off: default_th / 2.0,
    };
    let p_th = match &a.p_threshold {
        Some(s) => Thresholds::parse("--p-threshold", s)?,
        None => default_th,
    };
    let s_th = match &a.s_threshold {
        Some(s) => Thresholds::parse("--s-threshold", s)?,
        None => default_th,
    };
    if !(a.min_distance >= 0.0 && a.min_distance.is_finite()) {
        bail!(
            "--min-distance must be a non-negative number of seconds, found {}",
            a.min_distance
        );
    }
    if a.head_channels == Some(0) {
        bail!("--head-channels must be at least 1");
    }
    if a.weights.is_some() && a.head_channels.is_some() {
        bail!("--head-channels sets the width of a random head; with --weights it is read from the file");
    }
    let cfg = SeislmConfig::preset(&a.model)?;
    let min_len = min_samples(&cfg);
    let wcfg = window_config(
        &WindowFlags {
            window: a.window,
            overlap: a.overlap,
            blinding: a.blinding.clone(),
            stacking: a.stacking,
            short: a.short,
            batch: a.batch,
        },
        min_len,
        &a.model,
    )?;
    let (channels, prefix) = match (&a.weights, a.random_init) {
        (Some(w), _) => head_width(w)?,
        (None, true) => (a.head_channels.unwrap_or(cfg.hidden + 3), String::new()),
        (None, false) => bail!(
            "give --weights FILE (encoder + picking head, safetensors), --run RUN (a `seisfuse train --task pick` run), or --random-init to try the pipeline"
        ),
    };
    let model_bytes = |batch: usize, len: usize| estimate::seislm_bytes(&cfg, batch, len, channels);
    let what_head = match &a.weights {
        Some(w) => format!("{}: a picking head of {channels} channels", w.display()),
        None => format!("--head-channels {channels}"),
    };
    limits::check(
        format_args!("{what_head} on {}", a.model),
        model_bytes(1, if a.window == 0 { 3001 } else { a.window }),
    )?;

    // Inputs: headers and samples, then the layout of every station.
    let inputs = input::classify(&a.input)?;
    let stations = match &inputs {
        Inputs::Npy(p) => {
            if !a.station.is_empty() {
                bail!(
                    "--station selects stations of miniSEED input; {} is not miniSEED (.mseed, .miniseed, .ms)",
                    p.display()
                );
            }
            if !(a.sampling_rate > 0.0 && a.sampling_rate.is_finite()) {
                bail!(
                    "--sampling-rate must be positive, found {}",
                    a.sampling_rate
                );
            }
            let start = match &a.start_time {
                Some(s) => time::parse_iso(s).context("--start-time")?,
                None => 0.0,
            };
            input::read_npy(p, a.sampling_rate, start)?
        }
        Inputs::Mseed(files) => {
            if a.start_time.is_some() {
                bail!(
                    "--start-time sets the time of .npy traces; miniSEED records carry their own"
                );
            }
            if a.sampling_rate != 100.0 {
                eprintln!(
                    "note: --sampling-rate applies to .npy input; miniSEED records carry their own rate"
                );
            }
            // Progress of reading for many files only.
            let reading = if files.len() >= 10 {
                Progress::new("read", files.len() as u64, "files")
            } else {
                Progress::hidden("read", files.len() as u64, "files")
            };
            let r = input::read_mseed(files, &a.station, || reading.inc(1))?;
            reading.finish();
            for n in &r.notes {
                eprintln!("note: {n}");
            }
            if r.stations.is_empty() {
                bail!(
                    "{}: no station with Z, N, E, 1 or 2 channels to pick",
                    files[0].display()
                );
            }
            eprintln!(
                "{} miniSEED file{}: {} station{} ({} records)",
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                r.stations.len(),
                if r.stations.len() == 1 { "" } else { "s" },
                r.records
            );
            r.stations
        }
    };
    let input_name = match &inputs {
        Inputs::Npy(p) => p.display().to_string(),
        Inputs::Mseed(f) if f.len() == 1 => f[0].display().to_string(),
        Inputs::Mseed(f) => format!("{} and {} more files", f[0].display(), f.len() - 1),
    };
    let mut rs = Resamplers::default();
    let mut layouts = Vec::with_capacity(stations.len());
    for st in &stations {
        layouts.push(layout(st, MODEL_RATE, a.gaps, &mut rs)?);
    }
    layout_notes(&stations, &layouts, &wcfg, a.gaps);

    // Output files of --probs-mseed: one per station, none existing unless --force.
    let mseed_files: Vec<PathBuf> = match &a.probs_mseed {
        Some(d) => stations
            .iter()
            .map(|s| mseed_path(d, &s.id, &a.model))
            .collect(),
        None => vec![],
    };
    if a.probs_mseed.is_some() {
        for st in &stations {
            let (net, sta, loc) = nsl(&st.id);
            crate::pick::mseed_write::check_codes(&TraceOut {
                network: &net,
                station: &sta,
                location: &loc,
                channel: PROB_CHANNELS[0],
                start: 0.0,
                rate: MODEL_RATE,
                data: &[],
            })
            .context("--probs-mseed")?;
        }
    }
    for f in &mseed_files {
        if f.exists() && !a.force {
            bail!(
                "--probs-mseed: {} exists; pass --force to overwrite it or choose another folder",
                f.display()
            );
        }
    }

    // The memory budget of the work.
    let samples: Vec<u128> = layouts.iter().map(|l| l.samples() as u128).collect();
    let total: u128 = samples.iter().sum();
    let raw: u128 = stations.iter().map(|s| s.samples() as u128 * 4).sum();
    let mut largest = samples.clone();
    largest.sort_unstable_by(|x, y| y.cmp(x));
    let open: u128 = largest.iter().take(a.batch.saturating_add(1)).sum();
    let longest = layouts.iter().map(|l| l.longest()).max().unwrap_or(0) as u128;
    let len = if a.window == 0 {
        (longest as usize).max(min_len)
    } else {
        a.window
    };
    let (t0, t1) = layouts
        .iter()
        .flat_map(|l| l.groups.iter())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), g| {
            (lo.min(g.start), hi.max(g.start + g.len as f64 / MODEL_RATE))
        });
    let grid_len = if total == 0 {
        0
    } else {
        ((t1 - t0) * MODEL_RATE).round().max(0.0) as u128
    };
    let probs_bytes = match &a.probs {
        Some(_) => (stations.len() as u128 * 3 * grid_len * 4).saturating_add(total * 12),
        None => 0,
    };
    limits::check(
        format_args!(
            "{input_name}: {} station{}, {} of data at {MODEL_RATE} Hz{} (--window {}, --batch {}{})",
            stations.len(),
            if stations.len() == 1 { "" } else { "s" },
            span(total as f64 / MODEL_RATE),
            if a.probs.is_some() {
                format!(
                    ", a span of {} for --probs",
                    span(grid_len as f64 / MODEL_RATE)
                )
            } else {
                String::new()
            },
            a.window,
            a.batch,
            if a.gaps == GapMode::Zero {
                ", --gaps zero"
            } else {
                ""
            }
        ),
        raw.saturating_add(open.saturating_mul(STACK_BYTES))
            .saturating_add(longest.saturating_mul(GROUP_BYTES))
            .saturating_add(model_bytes(a.batch, len))
            .saturating_add(a.batch as u128 * 3 * len as u128 * 8)
            .saturating_add(probs_bytes),
    )?;
    if a.window == 0 {
        limits::check(
            format_args!("--window 0: the longest stretch of {longest} samples in one pass"),
            model_bytes(1, len),
        )?;
    }

    // The model.
    let mut model = SeislmPicker::new(&a.model, channels, 0)?;
    if let Some(w) = &a.weights {
        let report = weights::load_into_with(
            &mut model,
            w,
            &LoadOptions {
                strict: true,
                strip_prefix: (!prefix.is_empty()).then(|| prefix.clone()),
                ignore: SKIPPED.iter().map(|s| s.to_string()).collect(),
                ignore_suffixes: vec![],
            },
        )
        .with_context(|| format!("loading {} as a {} picker", w.display(), a.model))?;
        eprintln!(
            "loaded {} tensors ({:.2}M parameters) from {}",
            report.loaded.len(),
            model.num_params()? as f64 / 1e6,
            w.display()
        );
    } else {
        eprintln!("warning: random weights (--random-init): the picks mean nothing");
    }
    let (device, _store, dtype) = a.precision.place(&mut model, req)?;
    let n_windows: usize = layouts
        .iter()
        .flat_map(|l| l.groups.iter())
        .map(|g| wcfg.windows(g.len).len())
        .sum();
    let stretches: usize = layouts.iter().map(|l| l.groups.len()).sum();
    let plural = |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    let how = if a.window == 0 {
        format!(
            "{n_windows} run whole ({})",
            match wcfg.stacking {
                Stacking::Avg => "avg",
                Stacking::Max => "max",
            }
        )
    } else {
        format!(
            "{n_windows} window{} of {} samples (overlap {}, blinding {},{}, {} stacking)",
            plural(n_windows, "", "s"),
            a.window,
            wcfg.overlap,
            wcfg.blinding.start,
            wcfg.blinding.end,
            match wcfg.stacking {
                Stacking::Avg => "avg",
                Stacking::Max => "max",
            }
        )
    };
    eprintln!(
        "{} of data in {stretches} stretch{}: {how}",
        span(total as f64 / MODEL_RATE),
        plural(stretches, "", "es"),
    );

    // The work: stations stream through the model; each finished one is triggered and
    // written (miniSEED) or kept (--probs).
    let created = match &a.probs_mseed {
        Some(d) => crate::atomic::create_dir_all_tracked(d)?,
        None => vec![],
    };
    let n_stations = stations.len();
    let station_ids: Vec<String> = stations.iter().map(|s| s.id.clone()).collect();
    let result = (|| -> Result<(Vec<Pick>, Staged, Vec<Annotation>, usize)> {
        let mut staged = Staged::new();
        let mut all_picks: Vec<Pick> = Vec::new();
        let mut kept: Vec<Annotation> = Vec::new();
        let mut annotated = 0usize;
        let mut k = 0;
        let progress = Progress::new("pick", n_windows as u64, "windows");
        let mut runner = SeislmWindows {
            model: &mut model,
            device: device.clone(),
            dtype,
        };
        pipeline::run(
            stations,
            &layouts,
            wcfg,
            &mut runner,
            |n| progress.inc(n as u64),
            |ann, stats| {
                if stats.zero_filled > 0 {
                    eprintln!(
                        "note: {}: {} of component data missing inside stretches of data{}, filled with zeros",
                        stats.label,
                        span(stats.zero_filled as f64 / MODEL_RATE),
                        match a.gaps {
                            GapMode::Zero => " (gaps included)",
                            GapMode::Split => " (where other components have data)",
                        }
                    );
                }
                if stats.overlapped > 0 {
                    eprintln!(
                        "note: {}: {} samples of overlapping records off the sample grid were left out",
                        stats.label, stats.overlapped
                    );
                }
                annotated += ann
                    .groups
                    .iter()
                    .map(|g| g.class(0).iter().filter(|v| v.is_finite()).count())
                    .sum::<usize>();
                all_picks.extend(picks::picks_of(&ann, p_th, s_th, a.min_distance));
                if let Some(d) = &a.probs_mseed {
                    let mut f = OutputFile::create(&mseed_path(d, &ann.station, &a.model))?;
                    write_station_mseed(&mut f, &ann)?;
                    staged.add(f);
                }
                if a.probs.is_some() {
                    kept.push(ann);
                }
                k += 1;
                Ok(())
            },
        )?;
        progress.finish();
        debug_assert_eq!(k, n_stations);
        Ok((all_picks, staged, kept, annotated))
    })();
    let (mut all_picks, mut staged, kept, annotated) = match result {
        Ok(r) => r,
        Err(e) => {
            crate::atomic::remove_created(&created);
            return Err(e);
        }
    };
    if annotated == 0 {
        crate::atomic::remove_created(&created);
        bail!(
            "{input_name}: no probabilities: every stretch of data is too short for a prediction \
             (windows of {} samples{}, blinding {},{}); use --short pad, a smaller --blinding or \
             longer data",
            if a.window == 0 {
                "whole".to_string()
            } else {
                a.window.to_string()
            },
            match a.short {
                Short::Skip => ", shorter stretches skipped",
                Short::Pad => "",
            },
            wcfg.blinding.start,
            wcfg.blinding.end
        );
    }
    picks::sort(&mut all_picks);
    let csv = picks::csv(&all_picks);
    let probs_shape = if let Some(p) = &a.probs {
        let t = grid_len as usize;
        let mut arr = vec![f32::NAN; n_stations * 3 * t];
        for (i, ann) in kept.iter().enumerate() {
            for g in &ann.groups {
                let off = ((g.start - t0) * MODEL_RATE).round().max(0.0) as usize;
                for c in 0..CLASSES.len() {
                    let row = &mut arr[(i * 3 + c) * t..(i * 3 + c + 1) * t];
                    let n = g.n.min(t.saturating_sub(off));
                    row[off..off + n].copy_from_slice(&g.class(c)[..n]);
                }
            }
        }
        staged.add(crate::data::npy::create(p, &[n_stations, 3, t], &arr)?);
        Some([n_stations, 3, t])
    } else {
        None
    };
    if let Some(p) = &a.out {
        let mut f = OutputFile::create(p)?;
        f.write_all(csv.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
        staged.add(f);
    }
    if let Err(e) = staged.commit() {
        crate::atomic::remove_created(&created);
        return Err(e);
    }
    let (np, ns) = (
        all_picks.iter().filter(|p| p.phase == "P").count(),
        all_picks.iter().filter(|p| p.phase == "S").count(),
    );
    match &a.out {
        Some(p) => eprintln!(
            "{}: {np} P and {ns} S picks at {} station{}",
            p.display(),
            n_stations,
            if n_stations == 1 { "" } else { "s" }
        ),
        None => std::io::stdout()
            .write_all(csv.as_bytes())
            .context("writing the picks to standard output")?,
    }
    if let (Some(p), Some(shape)) = (&a.probs, probs_shape) {
        let names = if station_ids.len() <= 4 {
            station_ids.join(", ")
        } else {
            format!(
                "{}, … {}",
                station_ids[..3].join(", "),
                station_ids[station_ids.len() - 1]
            )
        };
        eprintln!(
            "{}: probabilities {shape:?} (P, S, noise) at {MODEL_RATE} Hz from {}; rows: {names}",
            p.display(),
            time::iso(t0)
        );
    }
    if let Some(d) = &a.probs_mseed {
        eprintln!(
            "{}: {} miniSEED file{} of probabilities ({})",
            d.display(),
            mseed_files.len(),
            if mseed_files.len() == 1 { "" } else { "s" },
            PROB_CHANNELS.join(", ")
        );
    }
    Ok(())
}
