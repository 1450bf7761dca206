//! A run directory: `config.toml` (the resolved configuration), `log.jsonl` (one JSON object
//! per training or evaluation line), `step-N/` checkpoints and `figures/`.
//!
//! A checkpoint folder holds `model.safetensors` (every parameter and buffer under its
//! checkpoint name), `optimizer.safetensors` (AdamW's two moments over the store's flat
//! layout), `state.json` (step, optimizer step, best metric, early-stopping count, the layout's
//! fingerprint) and, written last, `DONE`. It is written as `step-N.partial/`, every file
//! synced, then renamed to `step-N/`: a run killed while writing leaves the previous
//! checkpoints intact, and a folder without `DONE` is never read.

use crate::nn::{ParamStore, Parameters};
use crate::tensor::Tensor;
use crate::weights::{self, SafetensorsFile};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.toml";
pub const LOG: &str = "log.jsonl";
const DONE: &str = "DONE";

/// What a checkpoint remembers besides tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: u64,
    /// AdamW's bias-correction step.
    pub adamw_t: u32,
    /// Best dev value of the primary metric so far, and its step.
    pub best: Option<(f64, u64)>,
    /// Evaluations since the best one (early stopping).
    pub evals_since_best: u64,
    /// Fingerprint of the parameter layout (names, shapes, offsets).
    pub layout: String,
    pub seisfuse: String,
    /// Where the data order stands after `step`. Absent in checkpoints written before it
    /// was kept: the position is then derived from `step` with the resumed run's batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataPosition>,
    /// Classes of the task's head as the run's data gave them, so that the model can be built
    /// for prediction without the data. Absent in older checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
}

/// A run's place in its data: the epoch and how many samples of that epoch's global order
/// (the same for any number of ranks) have been used. With it a run resumes where it stopped
/// on another number of ranks or with another batch, which moves the position by another
/// number of samples per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPosition {
    pub epoch: u64,
    /// Samples of the epoch's order used so far.
    pub position: usize,
    /// Samples per optimizer step when the checkpoint was written (ranks × batch × accum).
    pub global_batch: usize,
    /// Ranks of the run that wrote the checkpoint.
    pub world_size: usize,
}

pub struct RunDir {
    pub root: PathBuf,
}

/// A fingerprint of the store's layout: a checkpoint of another model is refused by it.
pub fn layout_fingerprint(store: &ParamStore) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for e in store.entries() {
        (&e.name, &e.shape, e.offset).hash(&mut h);
    }
    format!("{:016x}/{}", h.finish(), store.entries().len())
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

impl RunDir {
    /// Whether [`RunDir::create`] would accept `root`, without touching anything: a missing
    /// or empty folder, or (with `force`) a previous run.
    pub fn check_new(root: &Path, force: bool) -> Result<bool> {
        if !root.exists() {
            return Ok(false);
        }
        let is_run = root.join(CONFIG).exists();
        let empty = fs::read_dir(root)
            .with_context(|| format!("--out {}: reading it", root.display()))?
            .next()
            .is_none();
        if !(empty || force && is_run) {
            bail!(
                "{} exists and is not empty; choose another --out, --resume it, or (for a previous run) add --force to start over",
                root.display()
            );
        }
        Ok(!empty)
    }

    /// A new run in `root`: refuses a folder holding a run (or anything else) unless `force`,
    /// which removes only what a run writes.
    pub fn create(root: &Path, force: bool) -> Result<Self> {
        if Self::check_new(root, force)? {
            for e in fs::read_dir(root)? {
                let p = e?.path();
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let ours = name == CONFIG
                    || name == LOG
                    || name == "figures"
                    || (name.starts_with("eval-") && name.ends_with(".json"))
                    || name.starts_with("step-");
                if ours {
                    if p.is_dir() {
                        fs::remove_dir_all(&p)?;
                    } else {
                        fs::remove_file(&p)?;
                    }
                }
            }
        }
        fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        Ok(RunDir {
            root: root.to_path_buf(),
        })
    }

    /// The run in `root` as ranks other than 0 see it: they read checkpoints but write nothing,
    /// so nothing is checked or made here.
    pub fn at(root: &Path) -> Self {
        RunDir {
            root: root.to_path_buf(),
        }
    }

    /// An existing run.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.join(CONFIG).is_file() {
            bail!("{} is not a run directory (no {CONFIG})", root.display());
        }
        Ok(RunDir {
            root: root.to_path_buf(),
        })
    }

    pub fn write_config(&self, toml: &str) -> Result<()> {
        crate::atomic::write_atomic(&self.root.join(CONFIG), toml.as_bytes())
    }

    pub fn config_table(&self) -> Result<toml::Table> {
        super::config::TrainConfig::read_table(&self.root.join(CONFIG))
    }

    /// Appends one JSON line to the log.
    pub fn log(&self, line: &serde_json::Value) -> Result<()> {
        let p = self.root.join(LOG);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        writeln!(f, "{line}").with_context(|| format!("writing {}", p.display()))
    }

    /// Drops log lines after `step` (a resumed run writes them again).
    pub fn truncate_log(&self, step: u64) -> Result<()> {
        let p = self.root.join(LOG);
        let Ok(text) = fs::read_to_string(&p) else {
            return Ok(());
        };
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    .is_some_and(|s| s <= step)
            })
            .collect();
        let mut out = kept.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        crate::atomic::write_atomic(&p, out.as_bytes())
    }

    pub fn checkpoint_dir(&self, step: u64) -> PathBuf {
        self.root.join(format!("step-{step}"))
    }

    /// Complete checkpoints, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        for e in
            fs::read_dir(&self.root).with_context(|| format!("reading {}", self.root.display()))?
        {
            let p = e?.path();
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(n) = name
                .strip_prefix("step-")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if p.join(DONE).is_file() {
                out.push((n, p));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The newest complete checkpoint.
    pub fn latest(&self) -> Result<Option<(u64, PathBuf)>> {
        Ok(self.checkpoints()?.pop())
    }

    /// Writes checkpoint `state.step`, then keeps the newest `keep` and the best.
    pub fn save(
        &self,
        model: &mut dyn Parameters,
        store: &ParamStore,
        state: &TrainState,
        keep: usize,
    ) -> Result<PathBuf> {
        let dest = self.checkpoint_dir(state.step);
        let tmp = self.root.join(format!("step-{}.partial", state.step));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        weights::save_from(model, tmp.join("model.safetensors"), true)
            .with_context(|| format!("writing {}", tmp.display()))?;
        if let Some((m, v)) = store.moments() {
            let mut meta = HashMap::new();
            meta.insert("layout".to_string(), state.layout.clone());
            weights::save_tensors(
                tmp.join("optimizer.safetensors"),
                [("exp_avg", m), ("exp_avg_sq", v)],
                &weights::SaveOptions {
                    overwrite: true,
                    metadata: meta,
                },
            )?;
        }
        let json = serde_json::to_string_pretty(state)?;
        write_synced(&tmp.join("state.json"), json.as_bytes())?;
        write_synced(&tmp.join(DONE), b"complete\n")?;
        sync_dir(&tmp);
        if std::env::var_os("SEISFUSE_FAIL_CHECKPOINT_RENAME").is_some() {
            bail!(
                "checkpoint {}: rename failed (SEISFUSE_FAIL_CHECKPOINT_RENAME is set, a test of interrupted writes)",
                dest.display()
            );
        }
        if dest.exists() {
            fs::remove_dir_all(&dest)?;
        }
        fs::rename(&tmp, &dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        sync_dir(&self.root);
        self.prune(keep, state.best.map(|b| b.1))?;
        Ok(dest)
    }

    fn prune(&self, keep: usize, best: Option<u64>) -> Result<()> {
        let all = self.checkpoints()?;
        let n = all.len();
        for (i, (step, p)) in all.into_iter().enumerate() {
            if i + keep < n && Some(step) != best {
                fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        Ok(())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads a checkpoint's state (refusing an incomplete one).
pub fn read_state(dir: &Path) -> Result<TrainState> {
    if !dir.join(DONE).is_file() {
        bail!(
            "{} is not a complete checkpoint (no {DONE} marker: it was being written when the run stopped)",
            dir.display()
        );
    }
    let p = dir.join("state.json");
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a checkpoint state", p.display()))
}

/// Loads a checkpoint into a packed model: every tensor by name (strictly), the moments when
/// present. Errors name the file and the tensor.
pub fn load(dir: &Path, model: &mut dyn Parameters, store: &mut ParamStore) -> Result<TrainState> {
    let state = read_state(dir)?;
    let fp = layout_fingerprint(store);
    if state.layout != fp {
        bail!(
            "{}: the checkpoint's parameter layout ({}) is not this model's ({fp}); was it written for another task or preset?",
            dir.display(),
            state.layout
        );
    }
    let mp = dir.join("model.safetensors");
    weights::load_into(model, &mp, true).with_context(|| format!("loading {}", mp.display()))?;
    let op = dir.join("optimizer.safetensors");
    if op.exists() {
        let f = SafetensorsFile::open(&op)?;
        let get = |n: &str| -> Result<Tensor> {
            f.tensor(n)
                .with_context(|| format!("{}: tensor {n}", op.display()))
        };
        let (m, v) = (get("exp_avg")?, get("exp_avg_sq")?);
        store
            .set_moments(m, v)
            .with_context(|| format!("{}: exp_avg / exp_avg_sq", op.display()))?;
    }
    Ok(state)
}
