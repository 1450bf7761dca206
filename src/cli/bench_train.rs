//! `seisfuse bench train` and `bench fusion`: the trainer's whole loop (batches read from the
//! task's data, forward and backward, AdamW, logging) timed phase by phase, so that what the
//! loop costs around the model step shows. Runs go to a temporary folder that is removed.

use super::train::Overrides;
use crate::backend::DeviceRequest;
use crate::outln;
use crate::train::config::{TrainConfig, TASKS};
use crate::train::run_dir::RunDir;
use crate::train::trainer::{self, Report, StepTime};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// The task (as `seisfuse train --task`).
    #[arg(long)]
    pub task: String,
    #[command(flatten)]
    pub timing: Timing,
}

#[derive(clap::Args, Debug)]
pub struct FusionArgs {
    #[command(flatten)]
    pub device: super::DeviceArg,
    #[command(flatten)]
    pub timing: Timing,
}

/// What both benchmarks share.
#[derive(clap::Args, Debug)]
pub struct Timing {
    /// Timed steps (after the warm-up steps).
    #[arg(long = "timed-steps", default_value_t = 5)]
    pub timed: usize,
    /// Untimed steps first (kernel compiles, first allocations, caches).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    #[command(flatten)]
    pub set: Overrides,
}

/// The fusion variants `bench fusion` times, as `seisfuse demo` trains them.
const FUSION: &[&str] = &[
    "image-only",
    "wave-only",
    "fuse-early",
    "fuse-mid",
    "fuse-late",
    "bind",
];

impl Timing {
    fn check(&self) -> Result<()> {
        if self.timed == 0 || self.timed > 100_000 {
            bail!("--timed-steps must be in 1..=100000");
        }
        if self.warmup > 100_000 {
            bail!("--warmup must be at most 100000");
        }
        if self.set.steps.is_some() || self.set.epochs.is_some() {
            bail!("bench sets the steps itself: give --timed-steps and --warmup instead");
        }
        Ok(())
    }
}

/// Mean time per step of each phase over the timed steps, and samples per second.
struct Summary {
    task: String,
    batch: usize,
    data: f64,
    model: f64,
    optimizer: f64,
    other: f64,
    samples_per_s: f64,
}

impl Summary {
    fn step(&self) -> f64 {
        self.data + self.model + self.optimizer + self.other
    }
    /// The share of a step spent outside forward, backward and the optimizer.
    fn overhead(&self) -> f64 {
        (self.data + self.other) / self.step().max(1e-12)
    }
}

fn summarize(task: &str, batch: usize, times: &[StepTime]) -> Summary {
    let n = times.len().max(1) as f64;
    let mean = |f: fn(&StepTime) -> f64| times.iter().map(f).sum::<f64>() / n;
    let mut s = Summary {
        task: task.to_string(),
        batch,
        data: mean(|t| t.data),
        model: mean(|t| t.model),
        optimizer: mean(|t| t.optimizer),
        other: mean(|t| t.other),
        samples_per_s: 0.0,
    };
    s.samples_per_s = batch as f64 / s.step().max(1e-12);
    s
}

/// Removes the temporary run folder however the benchmark ends.
struct TempRun(PathBuf);

impl Drop for TempRun {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench_one(task: &str, req: DeviceRequest, t: &Timing) -> Result<Summary> {
    let mut flags = t.set.table(Some(req))?;
    let total = t.warmup + t.timed;
    flags.insert("steps".into(), (total as i64).into());
    // No evaluation or checkpoint inside the timed steps; the final ones are not timed.
    for (k, v) in [("eval_every", 0i64), ("checkpoint_every", 0), ("keep", 1)] {
        flags.insert(k.into(), v.into());
    }
    flags
        .entry("log_every")
        .or_insert_with(|| (total.max(1) as i64).into());
    let mut cfg = TrainConfig::resolve(task, None, &flags)?;
    // Small dev and test splits: the final evaluation is not what is measured.
    cfg.dev_size = cfg.dev_size.min(cfg.batch.max(2));
    cfg.test_size = cfg.test_size.min(cfg.batch.max(2));
    cfg.validate()?;
    let dir = std::env::temp_dir().join(format!(
        "seisfuse-bench-train-{}-{task}",
        std::process::id()
    ));
    let _guard = TempRun(dir.clone());
    let run = RunDir::create(&dir, true)?;
    let report = Report {
        progress: false,
        verbose: false,
        timings: true,
    };
    let out = trainer::train(&cfg, &run, None, &report).with_context(|| format!("task {task}"))?;
    if out.times.len() != total {
        bail!(
            "task {task}: {} of {total} steps ran (the run stopped early)",
            out.times.len()
        );
    }
    Ok(summarize(
        task,
        cfg.batch * cfg.accum,
        &out.times[t.warmup..],
    ))
}

fn print(device: &str, rows: &[Summary], timed: usize) -> Result<()> {
    outln!(
        "device: {device}; mean of {timed} timed steps, in ms per optimizer step (data: reading, normalising, uploading the batch; model: forward + backward; optimizer: clip + AdamW + zero; other: log and progress)"
    )?;
    outln!(
        "{:<16} {:>6} {:>10} {:>9} {:>9} {:>10} {:>9} {:>9} {:>10}",
        "task",
        "batch",
        "samples/s",
        "step",
        "data",
        "model",
        "optimizer",
        "other",
        "overhead"
    )?;
    for r in rows {
        outln!(
            "{:<16} {:>6} {:>10.1} {:>9.2} {:>9.2} {:>10.2} {:>9.2} {:>9.2} {:>9.1}%",
            r.task,
            r.batch,
            r.samples_per_s,
            r.step() * 1e3,
            r.data * 1e3,
            r.model * 1e3,
            r.optimizer * 1e3,
            r.other * 1e3,
            r.overhead() * 100.0
        )?;
    }
    Ok(())
}

fn device_name(req: DeviceRequest) -> Result<String> {
    Ok(crate::backend::select(req)?.name())
}

pub fn run_train(req: DeviceRequest, a: TrainArgs) -> Result<()> {
    a.timing.check()?;
    if !TASKS.iter().any(|(t, _)| *t == a.task) {
        bail!(
            "unknown task {:?}; `seisfuse train --list` lists them",
            a.task
        );
    }
    let name = device_name(req)?;
    let row = bench_one(&a.task, req, &a.timing)?;
    print(&name, &[row], a.timing.timed)
}

pub fn run_fusion(req: DeviceRequest, a: FusionArgs) -> Result<()> {
    a.timing.check()?;
    let name = device_name(req)?;
    let progress =
        crate::cli::progress::Progress::new("bench fusion", FUSION.len() as u64, "variants");
    let mut rows = Vec::new();
    for task in FUSION {
        progress.set_message(task.to_string());
        rows.push(bench_one(task, req, &a.timing)?);
        progress.inc(1);
    }
    progress.finish();
    print(&name, &rows, a.timing.timed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_splits_a_step_into_its_phases() {
        let t = |d, m, o, x| StepTime {
            data: d,
            model: m,
            optimizer: o,
            other: x,
            eval_checkpoint: 9.0,
        };
        let s = summarize("facies", 4, &[t(0.1, 0.5, 0.2, 0.0), t(0.3, 0.7, 0.2, 0.2)]);
        assert!((s.step() - 1.1).abs() < 1e-12);
        assert!((s.overhead() - 0.3 / 1.1).abs() < 1e-12);
        assert!((s.samples_per_s - 4.0 / 1.1).abs() < 1e-9);
    }
}
