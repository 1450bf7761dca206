//! `seisfuse train` and `seisfuse eval`: the training product over `crate::train`.

use crate::backend::DeviceRequest;
use crate::cli::output::write_stdout;
use crate::train::config::{TrainConfig, TASKS};
use crate::train::run_dir::{self, RunDir};
use crate::train::tasks::Evaluation;
use crate::train::trainer::{self, Report, Session};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Flags that override `run.toml` keys (each is also a key).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Overrides {
    /// Model size: sfm-tiny|sfm-base|sfm-large or seislm-tiny|seislm-base|seislm-large.
    #[arg(long)]
    pub preset: Option<String>,
    /// synth:images, synth:waveforms, or a data folder (see docs/training.md).
    #[arg(long)]
    pub data: Option<String>,
    /// Optimizer steps (instead of --epochs).
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per micro-batch.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long)]
    pub accum: Option<usize>,
    #[arg(long)]
    pub lr: Option<f32>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// fp32, tf32 (fp32 with the products on TF32 tensor cores on a GPU) or bf16.
    #[arg(long)]
    pub precision: Option<String>,
    /// Initial weights: SFM/SeisLM safetensors, or a run / checkpoint folder.
    #[arg(long)]
    pub init: Option<String>,
    /// Train the head only.
    #[arg(long)]
    pub freeze_encoder: bool,
    /// Any other key of run.toml, as KEY=VALUE (TOML value), e.g. --set layer_decay=0.65.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl Overrides {
    pub(crate) fn table(&self, device: Option<DeviceRequest>) -> Result<toml::Table> {
        let mut t = toml::Table::new();
        let mut put = |k: &str, v: toml::Value| {
            t.insert(k.to_string(), v);
        };
        if let Some(v) = &self.preset {
            put("preset", v.clone().into());
        }
        if let Some(v) = &self.data {
            put("data", v.clone().into());
        }
        for (k, v) in [
            ("steps", self.steps),
            ("epochs", self.epochs),
            ("batch", self.batch),
            ("accum", self.accum),
        ] {
            if let Some(v) = v {
                put(k, (v as i64).into());
            }
        }
        if let Some(v) = self.lr {
            put("lr", (v as f64).into());
        }
        if let Some(v) = self.seed {
            if v > i64::MAX as u64 {
                bail!("--seed {v} is too large (at most {})", i64::MAX);
            }
            put("seed", (v as i64).into());
        }
        if let Some(v) = &self.precision {
            put("precision", v.clone().into());
        }
        if let Some(v) = &self.init {
            put("init", v.clone().into());
        }
        if self.freeze_encoder {
            put("freeze_encoder", true.into());
        }
        if let Some(d) = device {
            put("device", device_string(d).into());
        }
        for kv in &self.set {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("--set {kv}: expected KEY=VALUE");
            };
            let (k, v) = (k.trim(), v.trim());
            let parsed: toml::Table = format!("x = {v}")
                .parse()
                .or_else(|_| format!("x = {}", toml::Value::from(v)).parse())
                .with_context(|| format!("--set {kv}: not a TOML value"))?;
            put(k, parsed["x"].clone());
        }
        Ok(t)
    }
}

fn device_string(d: DeviceRequest) -> String {
    match d {
        DeviceRequest::Auto => "auto".into(),
        DeviceRequest::Cpu => "cpu".into(),
        DeviceRequest::Cuda(i) => format!("cuda:{i}"),
    }
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// The task (see `seisfuse train --list`).
    #[arg(long, required_unless_present_any = ["list", "config", "resume"])]
    pub task: Option<String>,
    /// A run.toml whose keys set the run (flags override them).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The run directory (config.toml, log.jsonl, step-N/ checkpoints, figures/).
    #[arg(long, required_unless_present_any = ["list", "resume"])]
    pub out: Option<PathBuf>,
    /// Continue a run: its folder, or `auto` (the newest complete checkpoint in --out, or a
    /// fresh start when there is none).
    #[arg(long)]
    pub resume: Option<String>,
    /// Start over in an --out that holds a previous run.
    #[arg(long)]
    pub force: bool,
    /// No progress bar or lines.
    #[arg(long)]
    pub quiet: bool,
    /// List the tasks and exit.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub set: Overrides,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// A run directory: its configuration and best checkpoint.
    #[arg(long, required_unless_present = "checkpoint")]
    pub run: Option<PathBuf>,
    /// Weights to evaluate instead (a safetensors file or checkpoint folder); needs --task.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    #[arg(long, requires = "checkpoint")]
    pub task: Option<String>,
    /// train, dev or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Also write the metrics as JSON here (default: RUN/eval-SPLIT.json for a run).
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub set: Overrides,
}

fn is_auto(s: &Option<String>) -> bool {
    s.as_deref() == Some("auto")
}

pub fn run_train(req: DeviceRequest, a: TrainArgs, explicit_device: bool) -> Result<()> {
    if a.list {
        let mut s = String::new();
        for (t, what) in TASKS {
            s.push_str(&format!("{t:16} {what}\n"));
        }
        return write_stdout(format_args!("{s}"));
    }
    let flags = a.set.table(explicit_device.then_some(req))?;
    let file = a
        .config
        .as_deref()
        .map(TrainConfig::read_table)
        .transpose()?;
    // Where the run lives, and the checkpoint to resume from.
    let (root, resume_from) = match (&a.resume, &a.out) {
        (Some(r), out) if r != "auto" => {
            let root = PathBuf::from(r);
            if out.as_ref().is_some_and(|o| o != &root) {
                bail!("--resume {r} continues that run in place; drop --out (or give the same folder)");
            }
            let run = RunDir::open(&root)?;
            let Some((_, ck)) = run.latest()? else {
                bail!(
                    "{}: the run has no complete checkpoint to resume from",
                    root.display()
                );
            };
            (root, Some(ck))
        }
        (_, Some(out)) => {
            let ck = if is_auto(&a.resume) && out.join(run_dir::CONFIG).is_file() {
                RunDir::open(out)?.latest()?.map(|c| c.1)
            } else {
                None
            };
            (out.clone(), ck)
        }
        (_, None) => bail!("give --out RUN_DIR (or --resume RUN_DIR)"),
    };
    let cfg = if let Some(_ck) = &resume_from {
        // The run's own configuration; flags may change what does not alter the model
        // (e.g. more steps, or the batch when resuming on another number of GPUs: the
        // checkpoint keeps the position in the data, not a step of a fixed batch).
        let saved = RunDir::open(&root)?.config_table()?;
        for k in flags.keys() {
            if !matches!(
                k.as_str(),
                "steps"
                    | "epochs"
                    | "eval_every"
                    | "checkpoint_every"
                    | "keep"
                    | "patience"
                    | "log_every"
                    | "device"
                    | "batch"
                    | "accum"
                    | "grad_comm"
            ) {
                bail!("--resume continues the run as configured; {k} cannot change (start a new run with --init instead)");
            }
        }
        TrainConfig::resolve_saved(&saved, &flags)?
    } else {
        let task = a.task.clone().unwrap_or_default();
        TrainConfig::resolve(&task, file.as_ref(), &flags)?
    };
    // Of several ranks, rank 0 alone makes and writes the run folder.
    let main = crate::train::ranks::Ranks::from_env()?.is_none_or(|r| r.is_main());
    if resume_from.is_none() && main {
        RunDir::check_new(&root, a.force)?;
    }
    // The data are opened (files found, shapes checked against the model) before the run
    // folder is made, so that a wrong --data leaves nothing behind.
    crate::train::data::load(&cfg)?;
    let run = if !main {
        RunDir::at(&root)
    } else if resume_from.is_some() {
        RunDir::open(&root)?
    } else {
        let r = RunDir::create(&root, a.force)?;
        r.write_config(&cfg.to_toml()?)?;
        r
    };
    if resume_from.is_some() && main {
        run.write_config(&cfg.to_toml()?)?;
    }
    let report = Report {
        progress: !a.quiet,
        verbose: true,
        timings: false,
    };
    let mut out = trainer::train(&cfg, &run, resume_from.as_deref(), &report)?;
    if !main {
        return Ok(());
    }
    let figs = write_figures(&mut out.session, &run)?;
    let (primary, _) = primary_of(&cfg)?;
    write_stdout(format_args!(
        "trained {} for {} steps ({:.1} samples/s){}; last loss {:.4}; dev {primary} {}{}\nrun: {} (checkpoint {}, {} figures)\n",
        cfg.task,
        out.steps,
        out.samples_per_s,
        if out.stopped_early { ", stopped early" } else { "" },
        out.last_loss,
        out.dev.get(primary).map(|v| format!("{v:.4}")).unwrap_or_else(|| "n/a".into()),
        out.best
            .map(|(v, s)| format!(" (best {v:.4} at step {s})"))
            .unwrap_or_default(),
        run.root.display(),
        out.checkpoint
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none".into()),
        figs
    ))
}

fn primary_of(cfg: &TrainConfig) -> Result<(&'static str, bool)> {
    Ok(match cfg.task.as_str() {
        "mae" | "seislm-pretrain" => ("loss", false),
        "facies" | "salt" => ("miou", true),
        "denoise" | "interpolation" | "inversion" => ("psnr", true),
        "pick" => ("p_within_0.5s", true),
        "bind" => ("loss", false),
        _ => ("accuracy", true),
    })
}

/// Figures of the best checkpoint on dev samples, into RUN/figures, and the curves of the log.
fn write_figures(s: &mut Session, run: &RunDir) -> Result<usize> {
    let dir = run.root.join("figures");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(best) = trainer::best_checkpoint(run)? {
        crate::weights::load_into(s.task.model(), best.join("model.safetensors"), true)?;
        s.store.refresh_compute()?;
    }
    s.task.set_training(false);
    let names = s.task.figures(&trainer::data_of(&s.data)?.dev, &dir, 4)?;
    let curves = crate::plot::curves_from_log(&run.root.join(run_dir::LOG), &dir)?;
    Ok(names.len() + curves.len())
}

pub fn run_eval(req: DeviceRequest, a: EvalArgs, explicit_device: bool) -> Result<()> {
    let flags = a.set.table(explicit_device.then_some(req))?;
    let (cfg, weights, json_default) = match (&a.run, &a.checkpoint) {
        (Some(r), ck) => {
            let run = RunDir::open(r)?;
            let saved = run.config_table()?;
            let mut cfg = TrainConfig::resolve_saved(&saved, &flags)?;
            cfg.init = String::new();
            let w = match ck {
                Some(c) => trainer::resolve_weights(c)?,
                None => trainer::best_checkpoint(&run)?
                    .map(|p| p.join("model.safetensors"))
                    .ok_or_else(|| anyhow::anyhow!("{}: no complete checkpoint", r.display()))?,
            };
            (cfg, w, Some(r.join(format!("eval-{}.json", a.split))))
        }
        (None, Some(c)) => {
            let Some(task) = &a.task else {
                bail!("--checkpoint without --run needs --task");
            };
            let mut cfg = TrainConfig::resolve(task, None, &flags)?;
            cfg.init = String::new();
            (cfg, trainer::resolve_weights(c)?, None)
        }
        (None, None) => bail!("give --run RUN_DIR or --checkpoint C --task T"),
    };
    let json_path = a.json.clone().or(json_default);
    if let Some(j) = &a.json {
        let mut o = crate::cli::output::Outputs::new(a.force);
        o.file("--json", j)?;
    }
    let quiet = Report {
        progress: false,
        verbose: false,
        timings: false,
    };
    let mut s = Session::new(&cfg, &quiet)?;
    let strict = weights
        .file_name()
        .is_some_and(|n| n == "model.safetensors");
    let r = crate::weights::load_into(s.task.model(), &weights, strict)
        .with_context(|| format!("loading {}", weights.display()))?;
    if r.loaded.is_empty() {
        bail!("{}: no tensor matches this task's model", weights.display());
    }
    let e = s.evaluate(&a.split)?;
    let table = format_table(&cfg.task, &a.split, &e);
    if let Some(p) = &json_path {
        let v = serde_json::json!({
            "task": cfg.task, "split": a.split, "samples": e.samples,
            "weights": weights.display().to_string(),
            "metrics": trainer::finite_map(&e),
            "confusion": e.confusion, "classes": e.class_names,
        });
        crate::atomic::write_atomic(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    write_stdout(format_args!(
        "{table}{}",
        json_path
            .map(|p| format!("json: {}\n", p.display()))
            .unwrap_or_default()
    ))
}

/// Metrics as an aligned table, the confusion matrix under it.
pub fn format_table(task: &str, split: &str, e: &Evaluation) -> String {
    let mut s = format!("{task} on {split} ({} samples)\n", e.samples);
    let w = e.metrics.keys().map(|k| k.len()).max().unwrap_or(6);
    for (k, v) in &e.metrics {
        s.push_str(&format!("  {k:w$}  {v:.4}\n"));
    }
    if let Some(m) = &e.confusion {
        s.push_str("  confusion (rows true, columns predicted):\n");
        let nw = e
            .class_names
            .iter()
            .map(|n| n.len())
            .max()
            .unwrap_or(4)
            .max(6);
        s.push_str(&format!("  {:nw$}", ""));
        for n in &e.class_names {
            s.push_str(&format!(" {n:>nw$}"));
        }
        s.push('\n');
        for (i, r) in m.iter().enumerate() {
            let name = e.class_names.get(i).cloned().unwrap_or_default();
            s.push_str(&format!("  {name:nw$}"));
            for c in r {
                s.push_str(&format!(" {c:>nw$}"));
            }
            s.push('\n');
        }
    }
    s
}

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// A run directory (its configuration and best checkpoint).
    #[arg(long)]
    pub run: PathBuf,
    /// Inputs as .npy [N, H, W] / [N, 1, H, W] sections or [N, 3, T] traces, shaped as the
    /// run's model takes them.
    #[arg(long)]
    pub input: PathBuf,
    /// Output folder: one .npy per output (class maps, regression outputs, probabilities,
    /// reconstructions) and PNG figures of the first samples.
    #[arg(long)]
    pub out: PathBuf,
    /// Samples per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Figures of the first K samples.
    #[arg(long, default_value_t = 4)]
    pub png: usize,
    #[arg(long)]
    pub force: bool,
}

pub fn run_predict(req: DeviceRequest, a: PredictArgs, explicit_device: bool) -> Result<()> {
    let run = RunDir::open(&a.run)?;
    let saved = run.config_table()?;
    let mut flags = toml::Table::new();
    if explicit_device {
        flags.insert("device".into(), device_string(req).into());
    }
    let mut cfg = TrainConfig::resolve_saved(&saved, &flags)?;
    cfg.init = String::new();
    let mut outs = crate::cli::output::Outputs::new(a.force);
    outs.input(&a.input);
    outs.dir("--out", &a.out)?;
    let holds_files = std::fs::read_dir(&a.out).is_ok_and(|mut d| d.next().is_some());
    if holds_files && !a.force {
        bail!(
            "--out {} exists and is not empty; pass --force to write the predictions into it (files of the same names are replaced) or choose another folder",
            a.out.display()
        );
    }
    let split = crate::train::data::inputs_file(&cfg, &a.input)?;
    let weights = trainer::best_checkpoint(&run)?
        .map(|p| p.join("model.safetensors"))
        .ok_or_else(|| anyhow::anyhow!("{}: no complete checkpoint", a.run.display()))?;
    let quiet = Report {
        progress: false,
        verbose: false,
        timings: false,
    };
    // The model alone when the checkpoint knows its classes: the run's training data may
    // have moved since (older checkpoints need them to size the head).
    let classes = weights
        .parent()
        .map(crate::train::run_dir::read_state)
        .transpose()?
        .and_then(|st| st.classes);
    let mut s = match classes {
        Some(k) => Session::for_inference(&cfg, k, &quiet)?,
        None => Session::new(&cfg, &quiet)?,
    };
    crate::weights::load_into(s.task.model(), &weights, true)
        .with_context(|| format!("loading {}", weights.display()))?;
    s.store.refresh_compute()?;
    s.task.set_training(false);
    let mut acc: Vec<crate::train::tasks::Output> = Vec::new();
    let n = crate::data::dataset::Dataset::len(&split);
    let progress = crate::cli::progress::Progress::new("predict", n as u64, "samples");
    crate::train::tasks::for_batches(&split, a.batch.max(1), |b| {
        let x = b.inputs.to_device(&s.device)?;
        let outs = s.task.predict(&x)?;
        if acc.is_empty() {
            acc = outs;
        } else {
            for (a, o) in acc.iter_mut().zip(outs) {
                a.shape[0] += o.shape[0];
                a.values.extend(o.values);
            }
        }
        progress.inc(x.shape[0] as u64);
        Ok(())
    })?;
    progress.finish();
    for o in &acc {
        if let Some(v) = o.values.iter().find(|v| !v.is_finite()) {
            bail!("the model's {} holds a non-finite value ({v})", o.name);
        }
        let p = a.out.join(format!("{}.npy", o.name));
        if crate::cli::output::same_file(&p, &a.input) {
            bail!(
                "--out {}: the prediction {} would replace the input {}; choose another folder",
                a.out.display(),
                p.display(),
                a.input.display()
            );
        }
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut written = Vec::new();
    for o in &acc {
        let p = a.out.join(format!("{}.npy", o.name));
        crate::data::npy::write(&p, &o.shape, &o.values)?;
        written.push(p.display().to_string());
    }
    if a.png > 0 && !cfg.task.ends_with("pretrain") {
        let figs = a.out.join("figures");
        std::fs::create_dir_all(&figs)?;
        prediction_figures(&cfg, &split, &acc, &figs, a.png)?;
        written.push(figs.display().to_string());
    }
    write_stdout(format_args!(
        "{} samples through {} ({}):\n  {}\n",
        n,
        cfg.task,
        weights.display(),
        written.join("\n  ")
    ))
}

/// Input beside prediction for the first `k` samples.
fn prediction_figures(
    cfg: &TrainConfig,
    split: &crate::train::data::Split,
    outs: &[crate::train::tasks::Output],
    dir: &std::path::Path,
    k: usize,
) -> Result<()> {
    use crate::data::dataset::Dataset;
    let shape = split.input_shape();
    let per: usize = shape.iter().product();
    for i in 0..k.min(split.len()) {
        let mut x = vec![0f32; per];
        split.get_into(i, &mut x)?;
        let o = &outs[0];
        let m: usize = o.shape[1..].iter().product();
        let y = &o.values[i * m..(i + 1) * m];
        let path = dir.join(format!("{}-{i}.png", o.name));
        match (cfg.is_waveform_task(), o.name) {
            (false, "classes") => {
                let c: Vec<i32> = y.iter().map(|&v| v as i32).collect();
                let pred: Vec<usize> = y.iter().map(|&v| v as usize).collect();
                crate::train::figures::segmentation(
                    &path,
                    &x,
                    &c,
                    &pred,
                    (shape[1], shape[2]),
                    &[],
                )?
            }
            (false, "output") | (false, "reconstruction") => {
                crate::train::figures::regression(&path, &x, y, y, (shape[1], shape[2]))?
            }
            (true, "probabilities") if o.shape.len() == 3 => {
                let len = shape[1];
                let mut p = vec![0f32; 3 * len];
                for t in 0..len {
                    for c in 0..3 {
                        p[t * 3 + c] = y[c * len + t];
                    }
                }
                crate::train::figures::picks(&path, &x, &p, (None, None), 100.0)?
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}
