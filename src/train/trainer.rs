//! The training loop shared by every task: data order, gradient accumulation, the schedule,
//! AdamW over the parameter store, the log, evaluation, checkpoints, early stopping and
//! progress.
//!
//! Everything random in a step is a function of (seed, step): the data order (a permutation
//! per epoch), masks, negatives, dropout. With the parameters, the moments and the step
//! restored from a checkpoint, a resumed run therefore continues bit for bit.

use super::config::TrainConfig;
use super::data::{self, TaskData};
use super::run_dir::{self, layout_fingerprint, DataPosition, RunDir, TrainState};
use super::tasks::{self, Evaluation, StepCtx, Task};
use super::{AdamW, Schedule};
use crate::backend::DeviceRequest;
use crate::data::dataset::Dataset;
use crate::data::loader::build_batch;
use crate::dist::sampler::DistributedSampler;
use crate::nn::ParamStore;
use crate::nvtx;
use crate::ops::{self, AdamWConfig};
use crate::tensor::DType;
use crate::Device;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A task, its data and its packed parameters on a device: what train, eval and predict share.
pub struct Session {
    pub cfg: TrainConfig,
    pub device: Device,
    /// The run's data; `None` in a session made for prediction ([`Session::for_inference`]).
    pub data: Option<TaskData>,
    pub task: Box<dyn Task>,
    pub store: ParamStore,
}

/// How the trainer reports.
#[derive(Default)]
pub struct Report {
    pub progress: bool,
    /// Say what happens on standard error (the command line); tests set false.
    pub verbose: bool,
    /// Record where each step's time goes (`Outcome::times`, for `seisfuse bench train`).
    pub timings: bool,
}

/// Where one optimizer step's wall time went, in seconds. Every phase ends in a host read
/// (the batch upload, the loss, the gradient norm), so on a GPU these are device times too.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepTime {
    /// Reading, normalising and uploading the micro-batches.
    pub data: f64,
    /// Forward and backward of the micro-batches.
    pub model: f64,
    /// Gradient averaging, clipping, AdamW and zeroing the gradients.
    pub optimizer: f64,
    /// Logging and progress.
    pub other: f64,
    /// Evaluation and checkpoints that fell on this step.
    pub eval_checkpoint: f64,
}

fn say(r: &Report, msg: impl AsRef<str>) {
    if r.verbose {
        eprintln!("{}", msg.as_ref());
    }
}

impl Session {
    /// Builds the data, the task's model, loads `init` weights and packs the parameters.
    pub fn new(cfg: &TrainConfig, report: &Report) -> Result<Self> {
        let device = session_device(cfg)?;
        let data = data::load(cfg)?;
        if data.train.is_empty() || data.dev.is_empty() {
            bail!(
                "the data gives {} training and {} dev samples; both splits need samples",
                data.train.len(),
                data.dev.len()
            );
        }
        let classes = data.classes;
        Self::build(cfg, device, Some(data), classes, true, report)
    }

    /// The task's model without the run's data, for prediction with a checkpoint loaded
    /// afterwards: a run whose training data have moved still predicts. `classes` comes from
    /// the checkpoint ([`TrainState::classes`]).
    pub fn for_inference(cfg: &TrainConfig, classes: usize, report: &Report) -> Result<Self> {
        let device = session_device(cfg)?;
        Self::build(cfg, device, None, classes, false, report)
    }

    /// The run's data (an error in a session made for prediction).
    pub fn data(&self) -> Result<&TaskData> {
        data_of(&self.data)
    }

    fn build(
        cfg: &TrainConfig,
        device: Device,
        data: Option<TaskData>,
        classes: usize,
        init: bool,
        report: &Report,
    ) -> Result<Self> {
        let mut task = tasks::build(cfg, classes, &device)?;
        if init && !cfg.init.is_empty() {
            let r = weights_init(task.as_mut(), Path::new(&cfg.init))?;
            say(report, r);
        }
        let mut store = ParamStore::pack(task.model(), &device)?;
        if cfg.freeze_encoder {
            store.set_trainable("", false);
            let mut n = 0;
            for p in task.head_prefixes() {
                n += store.set_trainable(&p, true);
            }
            if n == 0 {
                bail!("freeze_encoder: this task's model has no head parameters to train");
            }
        }
        if cfg.layer_decay < 1.0 {
            let scales = task.layer_scales(cfg.layer_decay);
            if scales.is_empty() {
                bail!("layer_decay applies to the SFM fine-tuning tasks only");
            }
            for (p, s) in scales {
                store.set_lr_scale(&p, s);
            }
        }
        match cfg.precision.as_str() {
            "bf16" => store.set_compute_dtype(task.model(), DType::BF16)?,
            // f32 storage; on a GPU the products run on TF32 tensor cores (matmul variant 3).
            // The CPU backend computes in f32 (the variant choice concerns CUDA kernels only).
            "tf32" => crate::backend::variants::choose_tf32()?,
            _ => {}
        }
        Ok(Session {
            cfg: cfg.clone(),
            device,
            data,
            task,
            store,
        })
    }

    /// The dev (or another split's) evaluation, model in eval mode.
    pub fn evaluate(&mut self, split: &str) -> Result<Evaluation> {
        self.task.set_training(false);
        let s = data_of(&self.data)?.split(split)?;
        let e = self.task.evaluate(s, self.cfg.batch, &mut self.store);
        self.task.set_training(true);
        e
    }
}

/// A session's data (`data_of(&s.data)` borrows only that field, so the task can be borrowed
/// mutably beside it); an error in a session made for prediction.
pub fn data_of(d: &Option<TaskData>) -> Result<&TaskData> {
    d.as_ref().ok_or_else(|| {
        anyhow::anyhow!("this session was made for prediction, without the run's data")
    })
}

/// The device a session of `cfg` runs on: under several ranks, a GPU rank uses cuda:LOCAL_RANK.
fn session_device(cfg: &TrainConfig) -> Result<Device> {
    let req: DeviceRequest = cfg
        .device
        .parse()
        .map_err(|e| anyhow::anyhow!("device {:?}: {e}", cfg.device))?;
    let req = match (super::ranks::Ranks::from_env()?, req) {
        // One GPU per rank: rank l of a node trains on cuda:l (see RankInfo::cuda_device).
        (Some(info), DeviceRequest::Cuda(_) | DeviceRequest::Auto)
            if crate::backend::select(req)?.is_cuda() =>
        {
            DeviceRequest::Cuda(info.local_rank)
        }
        (_, r) => r,
    };
    crate::backend::select(req)
}

/// Loads initial weights by name: SFM/SeisLM checkpoints or a seisfuse run's `model.safetensors`
/// (a run folder or a checkpoint folder is accepted too). Tensors that do not fit are reported,
/// not fatal; none fitting is an error.
pub fn weights_init(task: &mut dyn Task, path: &Path) -> Result<String> {
    let file = resolve_weights(path)?;
    let f = crate::weights::SafetensorsFile::open(&file)?;
    let opts = crate::weights::LoadOptions {
        strict: false,
        ..Default::default()
    };
    let r = crate::weights::load_from_file(task.model(), &f, &opts)?;
    if r.loaded.is_empty() {
        bail!(
            "{}: no tensor matches this model's parameter names (first of the file: {})",
            file.display(),
            f.names().into_iter().take(3).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(format!(
        "init: {} tensors loaded from {} ({} parameters kept their initial values, {} file tensors unused{})",
        r.loaded.len(),
        file.display(),
        r.missing.len(),
        r.unexpected.len(),
        if r.shape_mismatches.is_empty() {
            String::new()
        } else {
            format!(", {} of another shape", r.shape_mismatches.len())
        }
    ))
}

/// A weights file, or the newest checkpoint's model file of a run or checkpoint folder.
pub fn resolve_weights(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if path.join("model.safetensors").is_file() {
        return Ok(path.join("model.safetensors"));
    }
    if path.join(run_dir::CONFIG).is_file() {
        let run = RunDir::open(path)?;
        if let Some(best) = best_checkpoint(&run)? {
            return Ok(best.join("model.safetensors"));
        }
        bail!("{}: the run has no complete checkpoint", path.display());
    }
    bail!(
        "{}: neither a safetensors file nor a run or checkpoint folder",
        path.display()
    )
}

/// The checkpoint with the best dev metric (else the newest).
pub fn best_checkpoint(run: &RunDir) -> Result<Option<PathBuf>> {
    let all = run.checkpoints()?;
    let Some((_, newest)) = all.last() else {
        return Ok(None);
    };
    let st = run_dir::read_state(newest)?;
    if let Some((_, step)) = st.best {
        if let Some((_, p)) = all.iter().find(|(s, _)| *s == step) {
            return Ok(Some(p.clone()));
        }
    }
    Ok(Some(newest.clone()))
}

/// What a finished run reports, and its session (the model at its last step).
pub struct Outcome {
    pub session: Session,
    pub steps: u64,
    pub last_loss: f32,
    pub dev: Evaluation,
    pub best: Option<(f64, u64)>,
    pub stopped_early: bool,
    pub checkpoint: Option<PathBuf>,
    pub samples_per_s: f64,
    /// One entry per step when `Report::timings` is set.
    pub times: Vec<StepTime>,
}

/// Trains `cfg.task` into `run`, from `resume` (a checkpoint folder) when given.
pub fn train(
    cfg: &TrainConfig,
    run: &RunDir,
    resume: Option<&Path>,
    report: &Report,
) -> Result<Outcome> {
    let mut s = Session::new(cfg, report)?;
    // Several ranks: each takes its share of every global batch and the gradients are
    // averaged before the step; rank 0 alone writes the log and the checkpoints.
    let mut ranks = match super::ranks::Ranks::from_env()? {
        Some(info) => Some(super::ranks::Ranks::join(
            info,
            &mut s.store,
            &s.device,
            cfg.grad_comm.parse()?,
        )?),
        None => None,
    };
    let (rank, world) = ranks
        .as_ref()
        .map_or((0, 1), |r| (r.info.rank, r.info.world_size));
    let main = rank == 0;
    let report = &Report {
        progress: report.progress && main,
        verbose: report.verbose && main,
        timings: report.timings,
    };
    let gb = cfg.batch * cfg.accum;
    let sampler = DistributedSampler::new(data_of(&s.data)?.train.len(), gb, rank, world)?
        .with_seed(cfg.seed);
    let spe = sampler.steps_per_epoch() as u64;
    if spe == 0 {
        bail!(
            "the training split has {} samples, fewer than one step's batch × accum = {gb} × {world} ranks",
            data_of(&s.data)?.train.len()
        );
    }
    let mut state = TrainState {
        step: 0,
        adamw_t: 0,
        best: None,
        evals_since_best: 0,
        layout: layout_fingerprint(&s.store),
        seisfuse: env!("CARGO_PKG_VERSION").into(),
        data: None,
        classes: None,
    };
    if let Some(dir) = resume {
        state = run_dir::load(dir, s.task.model(), &mut s.store)?;
    }
    state.classes = Some(data_of(&s.data)?.classes);
    // Where the data order stands: the checkpoint's position, which holds on any number of
    // ranks (the epoch's order is global); older checkpoints only know their step.
    let gbw = gb * world;
    let mut cursor = match state.data {
        Some(d) => Cursor::new(d.epoch, d.position, &sampler),
        None => Cursor::new(
            state.step / spe,
            (state.step % spe) as usize * gbw,
            &sampler,
        ),
    };
    let total = if cfg.steps > 0 {
        cfg.steps as u64
    } else {
        state.step + cursor.steps_left(cfg.epochs as u64, &sampler)
    };
    let sched = Schedule {
        base_lr: cfg.lr,
        min_lr: cfg.min_lr.min(cfg.lr),
        warmup_steps: cfg.warmup,
        total_steps: total as usize,
    };
    let mut opt = AdamW::new(AdamWConfig {
        lr: cfg.lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: 1e-8,
        weight_decay: cfg.weight_decay,
    });
    opt.max_grad_norm = (cfg.max_grad_norm > 0.0).then_some(cfg.max_grad_norm);
    if let Some(dir) = resume {
        opt.t = state.adamw_t;
        if main {
            run.truncate_log(state.step)?;
        }
        let changed = match state.data {
            Some(d) if d.global_batch != gbw || d.world_size != world => format!(
                "; it was written by {} rank(s) taking {} samples per step, this run takes {gbw} ({world} rank(s) × batch {} × accum {})",
                d.world_size, d.global_batch, cfg.batch, cfg.accum
            ),
            _ => String::new(),
        };
        say(
            report,
            format!(
                "resumed from {} at step {} (epoch {}, sample {} of its order){changed}",
                dir.display(),
                state.step,
                cursor.epoch,
                cursor.position
            ),
        );
    } else {
        say(
            report,
            format!(
                "task {}: {} parameters ({} trained), data {} ({} train / {} dev / {} test), {} steps of {} samples on {}{}",
                cfg.task,
                s.store.num_params(),
                s.store.num_trainable(),
                data_of(&s.data)?.source,
                data_of(&s.data)?.train.len(),
                data_of(&s.data)?.dev.len(),
                data_of(&s.data)?.test.len(),
                total,
                gb * world,
                s.device.name(),
                if world > 1 {
                    format!(" × {world} ranks ({gb} per rank)")
                } else {
                    String::new()
                }
            ),
        );
    }
    let (primary, higher) = s.task.primary();
    let progress = if report.progress {
        crate::cli::progress::Progress::new("train", total, "steps")
    } else {
        crate::cli::progress::Progress::hidden("train", total, "steps")
    };
    progress.set(state.step);
    let shape = data_of(&s.data)?.train.input_shape();
    let mut scratch = Vec::new();
    let mut order: Option<(u64, Vec<usize>)> = None;
    let mut last_loss = f32::NAN;
    let mut last_ckpt = None;
    let mut stopped_early = false;
    let mut dev = Evaluation::default();
    let (mut window_samples, mut window_start) = (0usize, Instant::now());
    let mut run_samples = 0usize;
    let run_start = Instant::now();
    s.task.set_training(true);
    s.store.zero_grad()?;
    let mut times = Vec::new();
    while state.step < total {
        let step = state.step;
        // The step's data, forward, backward and optimizer; evaluation and checkpoints after.
        let step_range = nvtx::range_with(|| format!("train step {step}"));
        let mut st = StepTime::default();
        let mut clock = Instant::now();
        let mut lap = |slot: &mut f64| {
            let now = Instant::now();
            *slot += (now - clock).as_secs_f64();
            clock = now;
        };
        let epoch = cursor.epoch;
        if order.as_ref().map(|o| o.0) != Some(epoch) {
            order = Some((epoch, sampler.order(epoch)));
        }
        let ord = &order.as_ref().expect("order").1;
        // This rank's share of the global batch of this step.
        let pos = cursor.position + rank * gb;
        let mut loss_sum = 0f64;
        for micro in 0..cfg.accum {
            if micro + 1 == cfg.accum {
                if let Some(r) = ranks.as_mut() {
                    // The last micro-batch's backward pass all-reduces as it goes.
                    r.watch(&mut s.store.grads)?;
                }
            }
            let idx = &ord[pos + micro * cfg.batch..pos + (micro + 1) * cfg.batch];
            let batch = build_batch(
                &data_of(&s.data)?.train,
                &[],
                idx,
                &shape,
                cfg.seed,
                epoch,
                &mut scratch,
                Vec::new(),
            )
            .with_context(|| format!("step {step}: reading the batch"))?;
            lap(&mut st.data);
            let ctx = StepCtx {
                step,
                total_steps: total,
                seed: cfg.seed,
                micro: (rank * cfg.accum + micro) as u64,
                micro_slots: StepCtx::slots_for((world * cfg.accum) as u64),
            };
            let l = s
                .task
                .train_batch(&batch, &ctx, &mut s.store.grads)
                .with_context(|| format!("step {step}"))?;
            lap(&mut st.model);
            if !l.is_finite() {
                bail!(
                    "the loss is {l} at step {step} (micro-batch {micro}, samples {idx:?}); the run stops here, its last checkpoint is {}",
                    last_ckpt
                        .as_ref()
                        .map(|p: &PathBuf| p.display().to_string())
                        .unwrap_or_else(|| "none".into())
                );
            }
            loss_sum += l as f64;
        }
        if let Some(r) = ranks.as_mut() {
            r.finish(&mut s.store.grads)
                .with_context(|| format!("step {step}: averaging the gradients over the ranks"))?;
            loss_sum = r.mean(loss_sum)?;
        }
        if cfg.accum > 1 {
            let mut g = s.store.grads.flat()?.clone();
            ops::scale_assign(&mut g, 1.0 / cfg.accum as f32)?;
        }
        let lr = sched.lr(step as usize);
        let gnorm = opt
            .step(&mut s.store, lr)
            .with_context(|| format!("step {step}"))?;
        s.store.zero_grad()?;
        if let Some(r) = ranks.as_mut() {
            r.sync_buffers(&s.store)
                .with_context(|| format!("step {step}: averaging running statistics"))?;
        }
        lap(&mut st.optimizer);
        drop(step_range);
        state.step += 1;
        state.adamw_t = opt.t;
        cursor.advance(gbw, &sampler);
        state.data = Some(DataPosition {
            epoch: cursor.epoch,
            position: cursor.position,
            global_batch: gbw,
            world_size: world,
        });
        last_loss = (loss_sum / cfg.accum as f64) as f32;
        window_samples += gb * world;
        run_samples += gb * world;
        progress.set(state.step);
        let done = state.step == total;
        if state.step.is_multiple_of(cfg.log_every.max(1) as u64) || done {
            let el = window_start.elapsed().as_secs_f64().max(1e-9);
            let sps = window_samples as f64 / el;
            if main {
                run.log(&json!({
                    "kind": "train", "step": state.step, "epoch": epoch, "loss": last_loss,
                    "lr": lr, "grad_norm": gnorm, "samples_per_s": sps,
                }))?;
            }
            progress.set_message(format!("loss {last_loss:.4}, {sps:.1} samples/s"));
            window_samples = 0;
            window_start = Instant::now();
        }
        lap(&mut st.other);
        let eval_now =
            done || (cfg.eval_every > 0 && state.step.is_multiple_of(cfg.eval_every as u64));
        if eval_now {
            dev = s.evaluate("dev")?;
            let v = dev.get(primary).unwrap_or(f64::NAN);
            if let Some(r) = ranks.as_mut() {
                let all: Vec<u8> = dev.metrics.values().flat_map(|m| m.to_le_bytes()).collect();
                r.agree(&format!("the dev evaluation at step {}", state.step), &all)?;
            }
            if main {
                run.log(&json!({"kind": "eval", "step": state.step, "split": "dev", "metrics": finite_map(&dev)}))?;
            }
            let better = match state.best {
                None => v.is_finite(),
                Some((b, _)) => v.is_finite() && if higher { v > b } else { v < b },
            };
            if better {
                state.best = Some((v, state.step));
                state.evals_since_best = 0;
            } else {
                state.evals_since_best += 1;
            }
            say(
                report,
                format!(
                    "step {}: dev {primary} {v:.4} (loss {last_loss:.4})",
                    state.step
                ),
            );
            if cfg.patience > 0 && state.evals_since_best >= cfg.patience as u64 {
                stopped_early = true;
            }
        }
        let ckpt_now = done
            || stopped_early
            || (cfg.checkpoint_every > 0 && state.step.is_multiple_of(cfg.checkpoint_every as u64));
        if ckpt_now && main {
            last_ckpt = Some(run.save(s.task.model(), &s.store, &state, cfg.keep)?);
        }
        lap(&mut st.eval_checkpoint);
        if report.timings {
            times.push(st);
        }
        if std::env::var("SEISFUSE_STOP_AFTER_STEP")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            == Some(state.step)
        {
            bail!(
                "stopped after step {} (SEISFUSE_STOP_AFTER_STEP is set: a test of interrupted runs)",
                state.step
            );
        }
        if stopped_early {
            say(
                report,
                format!(
                    "early stop at step {}: dev {primary} has not improved for {} evaluations",
                    state.step, cfg.patience
                ),
            );
            break;
        }
    }
    progress.finish();
    Ok(Outcome {
        session: s,
        steps: state.step,
        last_loss,
        dev,
        best: state.best,
        stopped_early,
        checkpoint: last_ckpt,
        samples_per_s: run_samples as f64 / run_start.elapsed().as_secs_f64().max(1e-9),
        times,
    })
}

/// The next step's place in the data: an epoch and a position in its global order. An epoch
/// ends with its last full global batch (drop-last); the next step then starts the next epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    epoch: u64,
    position: usize,
}

impl Cursor {
    fn new(epoch: u64, position: usize, sampler: &DistributedSampler) -> Self {
        let mut c = Cursor { epoch, position };
        c.roll(sampler);
        c
    }

    /// Moves past a finished epoch.
    fn roll(&mut self, sampler: &DistributedSampler) {
        if sampler.steps_from(self.position) == 0 {
            self.epoch += 1;
            self.position = 0;
        }
    }

    fn advance(&mut self, global_batch: usize, sampler: &DistributedSampler) {
        self.position += global_batch;
        self.roll(sampler);
    }

    /// Steps from here to the end of epoch `epochs - 1`.
    fn steps_left(&self, epochs: u64, sampler: &DistributedSampler) -> u64 {
        if self.epoch >= epochs {
            return 0;
        }
        sampler.steps_from(self.position) as u64
            + (epochs - self.epoch - 1) * sampler.steps_per_epoch() as u64
    }
}

/// Metrics as a JSON object (non-finite values as null).
pub fn finite_map(e: &Evaluation) -> serde_json::Value {
    let m: serde_json::Map<String, serde_json::Value> = e
        .metrics
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if v.is_finite() {
                    json!(v)
                } else {
                    serde_json::Value::Null
                },
            )
        })
        .collect();
    serde_json::Value::Object(m)
}
