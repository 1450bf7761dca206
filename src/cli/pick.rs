//! `seisfuse pick`: P and S picks of 3-component traces with a SeisLM encoder and its
//! phase-picking head.
//!
//! Input: a float `.npy` of traces N×3×T (or one trace 3×T), components Z, N, E, or a miniSEED
//! file (`.mseed`, `.miniseed`, `.ms`) with Z/N/E (or Z/1/2) channels, read as one trace over
//! the components' common span (gaps zero-filled). A file of several stations or instruments
//! is refused with their list unless `--station` chooses one. Traces longer than `--window` samples (3001,
//! SeisLM's 30 s at 100 Hz) are cut into windows overlapping by `--overlap` (half), the last
//! one ending at the trace end; each window is normalised as SeisLM does (per channel: remove
//! the mean, divide by the standard deviation) and runs through the encoder and the head; the
//! windows' probabilities are combined by their maximum per sample (SeisBench's default
//! stacking). `--window 0` runs every trace whole.
//!
//! Weights: one safetensors file named as SeisLM's fine-tuned picker
//! (`MultiDimWav2Vec2ForFrameClassification`): the encoder under `wav2vec2.` + its HF names,
//! the head as `double_conv.double_conv.{0,4}.weight`, `double_conv.double_conv.{1,5}.{weight,
//! bias,running_mean,running_var}` and `classifier.{weight,bias}`, as `weights::save_from`
//! writes a [`SeislmPicker`]; a converted Lightning checkpoint's `model.` prefix is stripped.
//! Pretraining tensors (`masked_spec_embed`, `quantizer.*`, `project_hid`, `project_q`) and
//! BatchNorm's `num_batches_tracked` are skipped; anything else missing, unexpected or
//! mis-shaped is an error. The head width is read from the file.
//!
//! Picks: local maxima of the P and S probabilities at or above `--threshold`, at most one per
//! `--min-distance` seconds (1 s): the highest maximum wins and suppresses its neighbours.
//! CSV columns: trace, phase, sample, time_s (seconds from the trace start), probability.

use super::estimate;
use super::output::{OutputFile, Outputs, Staged};
use super::progress::Progress;
use crate::backend::{select, DeviceRequest};
use crate::data::mseed::MseedFile;
use crate::data::transforms::zscore_in_place;
use crate::limits;
use crate::models::seislm_heads::{SeislmPicker, PICKER_ENCODER_PREFIX};
use crate::nn::Parameters;
use crate::tensor::Tensor;
use crate::weights::{self, safetensors_io::SafetensorsFile, LoadOptions};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// seislm-tiny, seislm-base or seislm-large.
    #[arg(long, default_value = "seislm-base")]
    pub model: String,
    /// Encoder + picking-head weights (safetensors named as SeisLM's fine-tuned picker:
    /// `wav2vec2.*`, `double_conv.*`, `classifier.*`, optionally under `model.`).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Use randomly initialised weights instead of --weights (for trying the pipeline).
    #[arg(long, conflicts_with = "weights")]
    pub random_init: bool,
    /// DoubleConv width of a randomly initialised head (default hidden + 3, as SeisLM; with
    /// --weights it is read from the file).
    #[arg(long)]
    pub head_channels: Option<usize>,
    /// Traces: .npy N×3×T or 3×T (float), or a miniSEED file with Z, N, E channels.
    #[arg(long)]
    pub input: PathBuf,
    /// miniSEED holding several stations (or instruments): the one to pick, as NET.STA,
    /// NET.STA.LOC or NET.STA.LOC.BI (band and instrument letters, e.g. IU.ANMO.00.BH).
    #[arg(long)]
    pub station: Option<String>,
    /// Minimum probability of a pick.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// At most one pick per phase within this many seconds.
    #[arg(long, default_value_t = 1.0)]
    pub min_distance: f64,
    /// Sampling rate of .npy input in Hz (miniSEED carries its own).
    #[arg(long, default_value_t = 100.0)]
    pub sampling_rate: f64,
    /// Picks CSV (trace, phase, sample, time_s, probability); standard output when absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// fp32 or bf16 (bf16 weights and activations with fp32 accumulation; on the CPU emulated
    /// by rounding, so only slower there).
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: super::embed::Precision,
    /// Also write the per-sample probabilities as .npy N×3×T (P, S, noise).
    #[arg(long)]
    pub probs: Option<PathBuf>,
    /// Window length in samples (SeisLM: 3001); longer traces are cut into overlapping windows,
    /// each normalised and run alone, their probabilities combined by the maximum per sample.
    /// 0 runs every trace whole.
    #[arg(long, default_value_t = 3001)]
    pub window: usize,
    /// Fraction of a window shared with the next one, in [0, 1).
    #[arg(long, default_value_t = 0.5)]
    pub overlap: f64,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Overwrite --out and --probs if they exist.
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

/// Whether the input is miniSEED (by its extension).
fn is_mseed(p: &Path) -> bool {
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(ext.as_str(), "mseed" | "miniseed" | "ms")
}

/// Traces as [N, 3, T] values and their sampling rate. Sizes are checked against the memory
/// budget before the samples are read (`extra_per_sample`: bytes the command needs besides
/// the samples, per sample and component).
fn read_traces(a: &Args, extra_per_sample: u128) -> Result<(Vec<f32>, usize, usize, f64)> {
    if is_mseed(&a.input) {
        let f = MseedFile::open(&a.input)?;
        let tc = f.three_components_of(a.station.as_deref())?;
        limits::check(
            format_args!(
                "{}: {} samples of {} with --window {} and --batch {}",
                a.input.display(),
                tc.samples,
                tc.stream,
                a.window,
                a.batch
            ),
            3 * tc.samples as u128 * extra_per_sample,
        )?;
        if tc.gap_samples > 0 {
            eprintln!(
                "warning: {}: {} samples (over the 3 components) fell in gaps and were set to 0",
                a.input.display(),
                tc.gap_samples
            );
        }
        if (tc.sampling_rate - 100.0).abs() > 1e-6 {
            eprintln!(
                "warning: {} is sampled at {} Hz; SeisLM models are trained at 100 Hz",
                a.input.display(),
                tc.sampling_rate
            );
        }
        return Ok((tc.data, 1, tc.samples, tc.sampling_rate));
    }
    if a.station.is_some() {
        bail!(
            "--station selects a stream of a miniSEED file; {} is not one (.mseed, .miniseed, .ms)",
            a.input.display()
        );
    }
    let ext = a
        .input
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext != "npy" {
        bail!(
            "{}: unknown input type '.{ext}'; give a .npy of traces N×3×T or a miniSEED file (.mseed, .miniseed, .ms)",
            a.input.display()
        );
    }
    let file = crate::data::npy::NpyFile::open(&a.input)?;
    let (n, s) = match file.shape()[..] {
        [n, 3, s] => (n, s),
        [3, s] => (1, s),
        _ => bail!(
            "{}: expected 3-component traces of shape N×3×T (or 3×T), found {:?}",
            a.input.display(),
            file.shape()
        ),
    };
    if n == 0 || s == 0 {
        bail!("{}: no traces ({:?})", a.input.display(), file.shape());
    }
    if !(a.sampling_rate > 0.0 && a.sampling_rate.is_finite()) {
        bail!(
            "--sampling-rate must be positive, found {}",
            a.sampling_rate
        );
    }
    limits::check(
        format_args!(
            "{}: {n} traces of {s} samples with --window {} and --batch {}",
            a.input.display(),
            a.window,
            a.batch
        ),
        limits::bytes_of(&[n, 3, s], 1).saturating_mul(4 + extra_per_sample),
    )?;
    Ok((file.to_f32_vec()?, n, s, a.sampling_rate))
}

/// Local maxima of `prob` at or above `threshold`, at most one within `min_distance` samples
/// of another (greedy, highest first); returned in sample order.
pub fn find_picks(prob: &[f32], threshold: f32, min_distance: usize) -> Vec<(usize, f32)> {
    let n = prob.len();
    let mut cand: Vec<(usize, f32)> = (0..n)
        .filter(|&i| {
            let v = prob[i];
            v >= threshold && (i == 0 || v > prob[i - 1]) && (i + 1 == n || v >= prob[i + 1])
        })
        .map(|i| (i, prob[i]))
        .collect();
    cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept: Vec<(usize, f32)> = Vec::new();
    for (i, v) in cand {
        if kept.iter().all(|&(j, _)| i.abs_diff(j) >= min_distance) {
            kept.push((i, v));
        }
    }
    kept.sort_by_key(|k| k.0);
    kept
}

/// Start samples of windows of `len` over `t` samples, `overlap` of a window shared with the
/// next; the last window ends at the trace end.
pub fn window_starts(t: usize, len: usize, overlap: f64) -> Vec<usize> {
    if len >= t {
        return vec![0];
    }
    let stride = ((len as f64 * (1.0 - overlap)).round() as usize).max(1);
    let mut out: Vec<usize> = (0..t - len).step_by(stride).collect();
    out.push(t - len);
    out
}

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

pub fn run(req: DeviceRequest, a: Args) -> Result<()> {
    // Outputs first: nothing is read or computed for an output that cannot be written.
    let mut outs = Outputs::new(a.force);
    outs.input(&a.input);
    if let Some(w) = &a.weights {
        outs.input(w);
    }
    if let Some(p) = &a.out {
        outs.file("--out", p)?;
    }
    if let Some(p) = &a.probs {
        outs.file("--probs", p)?;
    }
    if !a.model.starts_with("seislm-") {
        bail!(
            "pick runs SeisLM models (seislm-tiny, seislm-base, seislm-large); found --model {}",
            a.model
        );
    }
    if !(a.threshold > 0.0 && a.threshold <= 1.0) {
        bail!("--threshold must be in (0, 1], found {}", a.threshold);
    }
    if !(a.min_distance >= 0.0 && a.min_distance.is_finite()) {
        bail!(
            "--min-distance must be a non-negative number of seconds, found {}",
            a.min_distance
        );
    }
    if !(0.0..1.0).contains(&a.overlap) {
        bail!("--overlap must be in [0, 1), found {}", a.overlap);
    }
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if a.head_channels == Some(0) {
        bail!("--head-channels must be at least 1");
    }
    if a.weights.is_some() && a.head_channels.is_some() {
        bail!("--head-channels sets the width of a random head; with --weights it is read from the file");
    }
    let cfg = crate::models::seislm::SeislmConfig::preset(&a.model)?;
    let hidden = cfg.hidden;
    let (channels, prefix) = match (&a.weights, a.random_init) {
        (Some(w), _) => head_width(w)?,
        (None, true) => (a.head_channels.unwrap_or(hidden + 3), String::new()),
        (None, false) => bail!(
            "give --weights FILE (encoder + picking head, safetensors), or --random-init to try the pipeline"
        ),
    };
    // The model (with the head width from the flag or the file) before it is built.
    let win = if a.window == 0 { usize::MAX } else { a.window };
    let model_bytes = |batch: usize, len: usize| estimate::seislm_bytes(&cfg, batch, len, channels);
    let what_head = match &a.weights {
        Some(w) => format!("{}: a picking head of {channels} channels", w.display()),
        None => format!("--head-channels {channels}"),
    };
    limits::check(
        format_args!("{what_head} on {}", a.model),
        model_bytes(1, win.min(3001)),
    )?;
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
    // Per sample and component: the probabilities (4 bytes) and the CSV's share; the windows
    // of one batch are counted by the model estimate.
    let (data, n, t, rate) = read_traces(&a, 8)?;
    let len = if a.window == 0 { t } else { a.window.min(t) };
    let per_trace = window_starts(t, len, a.overlap).len();
    limits::check(
        format_args!(
            "{}: {} windows of {len} samples (--window {}, --overlap {}) through {} (--batch {})",
            a.input.display(),
            n * per_trace,
            a.window,
            a.overlap,
            a.model,
            a.batch
        ),
        model_bytes(a.batch.min(n * per_trace), len) + 16 * (n * per_trace) as u128,
    )?;
    if model.encoder.cfg.frames(len).is_none_or(|f| f == 0) {
        bail!(
            "{}: windows of {len} samples are too short for {} (needs at least {} samples)",
            a.input.display(),
            a.model,
            (1..10_000)
                .find(|&l| model.encoder.cfg.frames(l).is_some_and(|f| f > 0))
                .unwrap_or(0)
        );
    }
    if data.iter().any(|v| !v.is_finite()) {
        bail!(
            "{}: the traces hold NaN or infinite values",
            a.input.display()
        );
    }
    let starts = window_starts(t, len, a.overlap);
    if starts.len() > 1 {
        eprintln!(
            "{} windows of {len} samples per trace ({} overlap), probabilities combined by their maximum",
            starts.len(),
            a.overlap
        );
    }
    let device = select(req)?;
    let mut store = crate::nn::ParamStore::pack(&mut model, &device)?;
    let dt = a.precision.dtype();
    if dt != crate::tensor::DType::F32 {
        store.set_compute_dtype(&mut model, dt)?;
    }
    // Per trace [3, t] (P, S, noise), the maximum over the windows covering each sample.
    let mut probs = vec![f32::NEG_INFINITY; n * 3 * t];
    let windows: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| starts.iter().map(move |&s| (i, s)))
        .collect();
    let progress = Progress::new("pick", windows.len() as u64, "windows");
    for batch in windows.chunks(a.batch) {
        let mut x = Vec::with_capacity(batch.len() * 3 * len);
        for &(i, s) in batch {
            for c in 0..3 {
                let off = (i * 3 + c) * t + s;
                let mut ch = data[off..off + len].to_vec();
                zscore_in_place(&mut ch, 1e-6);
                x.extend(ch);
            }
        }
        let x = Tensor::from_f32(&[batch.len(), 3, len], x)?.to_device(&device)?;
        let x = super::embed::in_dtype(x, dt)?;
        let p = model.probabilities(&x)?.to_vec_f32()?; // [windows, len, 3]
        if let Some(k) = p.iter().position(|v| !v.is_finite()) {
            let (i, s) = batch[k / (len * 3)];
            bail!(
                "{}: the model gives {} probabilities for trace {i} (window at sample {s}){}; \
                 no picks can be made from them",
                a.input.display(),
                p[k],
                match &a.weights {
                    Some(w) => format!(" with the weights of {}", w.display()),
                    None => String::new(),
                }
            );
        }
        for (w, &(i, s)) in batch.iter().enumerate() {
            for k in 0..len {
                for c in 0..3 {
                    let dst = &mut probs[(i * 3 + c) * t + s + k];
                    *dst = dst.max(p[(w * len + k) * 3 + c]);
                }
            }
        }
        progress.inc(batch.len() as u64);
    }
    progress.finish();
    let min_dist = (a.min_distance * rate).round() as usize;
    let mut rows = Vec::new();
    for i in 0..n {
        for (c, phase) in [(0, "P"), (1, "S")] {
            let row = &probs[(i * 3 + c) * t..(i * 3 + c + 1) * t];
            for (s, v) in find_picks(row, a.threshold, min_dist) {
                rows.push(format!("{i},{phase},{s},{:.4},{v:.4}", s as f64 / rate));
            }
        }
    }
    let mut csv = String::from("trace,phase,sample,time_s,probability\n");
    for r in &rows {
        csv.push_str(r);
        csv.push('\n');
    }
    // Both files complete under temporary names, then renamed together.
    let mut staged = Staged::new();
    if let Some(p) = &a.out {
        let mut f = OutputFile::create(p)?;
        f.write_all(csv.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
        staged.add(f);
    }
    if let Some(p) = &a.probs {
        staged.add(crate::data::npy::create(p, &[n, 3, t], &probs)?);
    }
    staged.commit()?;
    match &a.out {
        Some(p) => eprintln!("{}: {} picks in {n} traces", p.display(), rows.len()),
        None => std::io::stdout()
            .write_all(csv.as_bytes())
            .context("writing the picks to standard output")?,
    }
    if let Some(p) = &a.probs {
        eprintln!("{}: probabilities [{n}, 3, {t}] (P, S, noise)", p.display());
    }
    Ok(())
}
