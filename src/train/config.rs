//! A training run's configuration: one flat TOML table (`run.toml`), resolved from the task's
//! defaults, then the file given with `--config`, then the command-line flags, and written
//! back whole into the run directory as `config.toml` so that a run can be resumed, evaluated
//! and reproduced from its folder alone.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The tasks `seisfuse train` knows, with what they train.
pub const TASKS: &[(&str, &str)] = &[
    ("mae", "SFM masked-autoencoder pretraining on sections"),
    (
        "facies",
        "SFM segmentation of facies classes (SETR-MLA head)",
    ),
    ("salt", "SFM segmentation of salt bodies (SETR-MLA head)"),
    ("denoise", "SFM regression: noisy section → clean section"),
    (
        "interpolation",
        "SFM regression: section with missing traces → full section",
    ),
    ("inversion", "SFM regression: section → reflectivity"),
    ("classify", "SFM classification of whole sections"),
    (
        "seislm-pretrain",
        "SeisLM contrastive pretraining on waveforms",
    ),
    (
        "pick",
        "SeisLM phase picking: detection and P/S probability curves",
    ),
    (
        "event-class",
        "SeisLM event classification (event vs noise, or foreshock/aftershock)",
    ),
    (
        "bind",
        "ImageBind-style binding of sections and waveforms (InfoNCE), then linear probes",
    ),
    (
        "fuse-late",
        "late fusion: pooled embeddings of both encoders → MLP → class",
    ),
    (
        "fuse-mid",
        "intermediate fusion: cross-attention between the token sequences → class",
    ),
    (
        "fuse-early",
        "early fusion: waveform → mel image stacked with the section → SFM → class",
    ),
    ("image-only", "baseline: the section alone (SFM) → class"),
    ("wave-only", "baseline: the waveform alone (SeisLM) → class"),
];

/// Is this one of the paired image + waveform tasks?
pub fn is_fusion_task(task: &str) -> bool {
    matches!(
        task,
        "bind" | "fuse-late" | "fuse-mid" | "fuse-early" | "image-only" | "wave-only"
    )
}

/// Everything a run needs. Every field is also a `run.toml` key and most are flags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// One of [`TASKS`].
    pub task: String,
    /// Model size: sfm-tiny|sfm-base|sfm-large or seislm-tiny|seislm-base|seislm-large.
    pub preset: String,
    /// `synth:images`, `synth:waveforms`, `synth:paired`, or a folder of files (see docs).
    pub data: String,
    /// Optimizer steps; 0 means `epochs` passes over the training set.
    pub steps: usize,
    pub epochs: usize,
    /// Samples per micro-batch.
    pub batch: usize,
    /// Micro-batches whose gradients are summed before one optimizer step.
    pub accum: usize,
    pub lr: f32,
    pub min_lr: f32,
    /// Linear warm-up steps before the cosine decay.
    pub warmup: usize,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub max_grad_norm: f32,
    /// Layer-wise learning-rate decay of the SFM encoder for fine-tuning (1 = off).
    pub layer_decay: f32,
    pub seed: u64,
    /// Evaluate on the dev split every this many steps (and at the end); 0 = only at the end.
    pub eval_every: usize,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Checkpoints kept besides the best one.
    pub keep: usize,
    /// Stop when the dev metric has not improved for this many evaluations (0 = never).
    pub patience: usize,
    /// Log a training line every this many steps.
    pub log_every: usize,
    /// fp32, tf32 or bf16.
    pub precision: String,
    /// auto, cpu, cuda or cuda:N.
    pub device: String,
    /// Initial weights (safetensors, checkpoint names of SFM/SeisLM or of a seisfuse run).
    pub init: String,
    /// Train the head only.
    pub freeze_encoder: bool,
    /// Image side in pixels (0: the preset's).
    pub image_size: usize,
    /// Waveform samples per trace (0: 3001, SeisLM's window).
    pub samples: usize,
    /// Sizes of the built-in synthetic splits.
    pub train_size: usize,
    pub dev_size: usize,
    pub test_size: usize,
    /// Regression loss: `mse` or `mse+msssim`.
    pub loss: String,
    /// Event classification labels: `event` (event vs noise) or `sequence` (foreshock /
    /// aftershock periods of a synthetic sequence).
    pub labels: String,
    /// Classes of the `sequence` labels.
    pub sequence_classes: usize,
    /// Paired synthetic data: `normal`, or `hard` (each modality alone ambiguous).
    pub difficulty: String,
    /// How gradients travel between ranks: `fp32`, or `bf16` (half the bytes, rounded).
    pub grad_comm: String,
}

impl TrainConfig {
    /// The defaults of `task`: sizes that train on a laptop in minutes.
    pub fn defaults(task: &str) -> Result<Self> {
        let Some(_) = TASKS.iter().find(|(t, _)| *t == task) else {
            bail!(
                "unknown task {task:?}; the tasks are: {}",
                TASKS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
            );
        };
        let wave = matches!(task, "seislm-pretrain" | "pick" | "event-class");
        let pretrain = matches!(task, "mae" | "seislm-pretrain");
        let paired = is_fusion_task(task);
        Ok(TrainConfig {
            task: task.to_string(),
            preset: if paired {
                "tiny"
            } else if wave {
                "seislm-tiny"
            } else {
                "sfm-tiny"
            }
            .into(),
            data: if paired {
                "synth:paired"
            } else if wave {
                "synth:waveforms"
            } else {
                "synth:images"
            }
            .into(),
            steps: 0,
            epochs: 10,
            batch: 8,
            accum: 1,
            lr: if pretrain { 1.5e-3 } else { 1e-3 },
            min_lr: 1e-5,
            warmup: 10,
            weight_decay: if pretrain { 0.05 } else { 0.01 },
            beta1: 0.9,
            beta2: if pretrain { 0.95 } else { 0.999 },
            max_grad_norm: 1.0,
            layer_decay: 1.0,
            seed: 0,
            eval_every: 0,
            checkpoint_every: 0,
            keep: 2,
            patience: 0,
            log_every: 10,
            precision: "fp32".into(),
            device: "auto".into(),
            init: String::new(),
            freeze_encoder: false,
            image_size: if paired { 32 } else { 0 },
            samples: if wave {
                601
            } else if paired {
                401
            } else {
                0
            },
            train_size: 256,
            dev_size: 64,
            test_size: 64,
            loss: if task == "interpolation" || task == "denoise" || task == "inversion" {
                "mse".into()
            } else {
                String::new()
            },
            labels: if task == "event-class" {
                "event".into()
            } else {
                String::new()
            },
            sequence_classes: 2,
            difficulty: "normal".into(),
            grad_comm: "fp32".into(),
        })
    }

    /// The config of a saved run (its table, which names the task), overlaid with `flags`.
    pub fn resolve_saved(saved: &toml::Table, flags: &toml::Table) -> Result<Self> {
        let task = saved.get("task").and_then(|v| v.as_str()).unwrap_or("");
        Self::resolve(task, Some(saved), flags)
    }

    /// Defaults of the task, overlaid with the keys of a TOML table (unknown keys are errors).
    pub fn resolve(task: &str, file: Option<&toml::Table>, flags: &toml::Table) -> Result<Self> {
        let task = flags
            .get("task")
            .and_then(|v| v.as_str())
            .or_else(|| file.and_then(|f| f.get("task")).and_then(|v| v.as_str()))
            .unwrap_or(task)
            .to_string();
        let base = Self::defaults(&task)?;
        let mut table = toml::Table::try_from(&base).context("encoding the defaults")?;
        for (src, over) in [("the config file", file), ("the flags", Some(flags))] {
            let Some(over) = over else { continue };
            for (k, v) in over {
                if !table.contains_key(k) {
                    bail!(
                        "{src}: unknown key {k:?}; the keys are: {}",
                        table.keys().cloned().collect::<Vec<_>>().join(", ")
                    );
                }
                table.insert(k.clone(), v.clone());
            }
        }
        let cfg: TrainConfig = toml::Value::Table(table)
            .try_into()
            .context("reading the configuration (a key has the wrong type?)")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a TOML file into a table.
    pub fn read_table(path: &Path) -> Result<toml::Table> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if meta.len() > 1 << 20 {
            bail!(
                "{}: {} bytes is too large for a run configuration",
                path.display(),
                meta.len()
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        text.parse::<toml::Table>()
            .with_context(|| format!("{}: not valid TOML", path.display()))
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("writing the configuration as TOML")
    }

    /// Is this task trained on waveforms?
    pub fn is_waveform_task(&self) -> bool {
        matches!(
            self.task.as_str(),
            "seislm-pretrain" | "pick" | "event-class"
        )
    }

    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("batch", self.batch),
            ("accum", self.accum),
            ("train_size", self.train_size),
            ("dev_size", self.dev_size),
        ];
        for (k, v) in positive {
            if v == 0 {
                bail!("{k} must be at least 1");
            }
        }
        if self.steps == 0 && self.epochs == 0 {
            bail!("give steps or epochs (both are 0)");
        }
        if self.batch > 1 << 16 || self.accum > 1 << 16 {
            bail!(
                "batch {} × accum {} is beyond reason",
                self.batch,
                self.accum
            );
        }
        for (k, v) in [
            ("lr", self.lr),
            ("min_lr", self.min_lr),
            ("weight_decay", self.weight_decay),
            ("max_grad_norm", self.max_grad_norm),
        ] {
            if !v.is_finite() || v < 0.0 {
                bail!("{k} must be a finite number ≥ 0, found {v}");
            }
        }
        for (k, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                bail!("{k} must be in [0, 1), found {v}");
            }
        }
        if !(self.layer_decay > 0.0 && self.layer_decay <= 1.0) {
            bail!("layer_decay must be in (0, 1], found {}", self.layer_decay);
        }
        let family_ok = if is_fusion_task(&self.task) {
            matches!(
                self.preset
                    .trim_start_matches("sfm-")
                    .trim_start_matches("seislm-"),
                "tiny" | "base" | "large"
            )
        } else if self.is_waveform_task() {
            self.preset.starts_with("seislm-")
        } else {
            self.preset.starts_with("sfm-")
        };
        if !family_ok {
            bail!(
                "task {} needs a {} preset, found {}",
                self.task,
                if is_fusion_task(&self.task) {
                    "tiny|base|large"
                } else if self.is_waveform_task() {
                    "seislm-*"
                } else {
                    "sfm-*"
                },
                self.preset
            );
        }
        if !matches!(self.precision.as_str(), "fp32" | "tf32" | "bf16") {
            bail!(
                "precision must be fp32, tf32 or bf16, found {}",
                self.precision
            );
        }
        if matches!(
            self.task.as_str(),
            "denoise" | "interpolation" | "inversion"
        ) && !matches!(self.loss.as_str(), "mse" | "mse+msssim")
        {
            bail!("loss must be mse or mse+msssim, found {:?}", self.loss);
        }
        if self.task == "event-class" && !matches!(self.labels.as_str(), "event" | "sequence") {
            bail!("labels must be event or sequence, found {:?}", self.labels);
        }
        if !matches!(self.grad_comm.as_str(), "fp32" | "bf16") {
            bail!("grad_comm must be fp32 or bf16, found {:?}", self.grad_comm);
        }
        if !matches!(self.difficulty.as_str(), "normal" | "hard") {
            bail!(
                "difficulty must be normal or hard, found {:?}",
                self.difficulty
            );
        }
        if self.keep == 0 {
            bail!("keep must be at least 1 (the newest checkpoint is what resume reads)");
        }
        let sizes = [self.train_size, self.dev_size, self.test_size];
        if sizes
            .iter()
            .try_fold(0usize, |a, &b| a.checked_add(b))
            .is_none_or(|n| n > 1 << 30)
        {
            bail!(
                "train_size {} + dev_size {} + test_size {} is beyond reason (at most 2^30 samples)",
                self.train_size,
                self.dev_size,
                self.test_size
            );
        }
        if self.steps > 1 << 40 || self.epochs > 1 << 30 {
            bail!(
                "steps {} or epochs {} is beyond reason",
                self.steps,
                self.epochs
            );
        }
        if self.image_size > 4096 || self.samples > 1 << 20 {
            bail!(
                "image_size {} or samples {} is beyond reason",
                self.image_size,
                self.samples
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_override_the_defaults() {
        let file: toml::Table = "lr = 0.01\nbatch = 4\n".parse().unwrap();
        let flags: toml::Table = "batch = 2\n".parse().unwrap();
        let c = TrainConfig::resolve("salt", Some(&file), &flags).unwrap();
        assert_eq!((c.lr, c.batch, c.task.as_str()), (0.01, 2, "salt"));
        let back: toml::Table = c.to_toml().unwrap().parse().unwrap();
        assert_eq!(
            TrainConfig::resolve("mae", Some(&back), &toml::Table::new()).unwrap(),
            c
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let bad: toml::Table = "lerning_rate = 1.0".parse().unwrap();
        let e = TrainConfig::resolve("salt", Some(&bad), &toml::Table::new()).unwrap_err();
        assert!(format!("{e:#}").contains("lerning_rate"), "{e:#}");
        let bad: toml::Table = "preset = \"seislm-tiny\"".parse().unwrap();
        assert!(TrainConfig::resolve("salt", Some(&bad), &toml::Table::new()).is_err());
        assert!(TrainConfig::defaults("segment").is_err());
    }
}
