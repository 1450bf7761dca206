//! Where a task's samples come from: the built-in synthetic generators (drawn on the fly,
//! deterministic per index) or a folder of files, cut into train/dev/test splits, with the
//! input normalisation each model expects.
//!
//! Folder layouts (`--data DIR`):
//! - image tasks: arrays `[N, H, W]` (or `[N, 1, H, W]`) as `seisfuse synth images` writes
//!   them: the input (`noisy.npy`, `decimated.npy` for interpolation, `clean.npy` for
//!   inversion) and the target (`facies.npy`, `salt.npy`, `clean.npy`, `noisy.npy`,
//!   `reflectivity.npy`, or `labels.npy` `[N]` for classification);
//! - waveform tasks: `waveforms.npy` `[N, 3, T]` with `picks.npy` `[N, 2]` (P, S sample, −1
//!   for none), `labels.npy` `[N]` (1 event, 0 noise) and `sequence_class.npy` `[N]`, as
//!   `seisfuse synth waveforms` writes them; or a SeisBench folder (`metadata.csv` +
//!   `waveforms.hdf5`) with its own splits.
//!
//! Splits of a folder without its own: the first 70 % train, the next 15 % dev, the rest test
//! (as the synthetic writers split).

use crate::data::dataset::{Dataset, NpyDataset, Target};
use crate::data::synth::{images, paired, split_of, waveforms};
use crate::train::config::TrainConfig;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a model wants done to each input before it sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Norm {
    None,
    /// (x − mean) / (std + 1e-6) over the whole sample (SFM's image normalisation).
    PerSample,
    /// Each channel demeaned and divided by its std (SeisLM's waveform normalisation).
    PerChannel,
}

fn normalise(x: &mut [f32], norm: Norm, channels: usize) {
    let parts = match norm {
        Norm::None => return,
        Norm::PerSample => 1,
        Norm::PerChannel => channels.max(1),
    };
    let n = x.len() / parts;
    if n == 0 {
        return;
    }
    for c in x.chunks_mut(n) {
        let mean = c.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = c.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let inv = 1.0 / (var.sqrt() + 1e-6);
        c.iter_mut()
            .for_each(|v| *v = ((*v as f64 - mean) * inv) as f32);
    }
}

/// Maps a target before the model sees it.
pub type TargetMap = fn(Target) -> Result<Target>;

/// A split of a dataset: some of its indices, reshaped to the model's input and normalised.
pub struct Split {
    inner: Arc<dyn Dataset>,
    indices: Vec<usize>,
    shape: Vec<usize>,
    norm: Norm,
    /// Maps a target before the model sees it (e.g. salt masks 0/255 → 0/1).
    map: Option<fn(Target) -> Result<Target>>,
}

impl Split {
    pub fn new(
        inner: Arc<dyn Dataset>,
        indices: Vec<usize>,
        shape: Vec<usize>,
        norm: Norm,
    ) -> Result<Self> {
        let want: usize = shape.iter().product();
        let have: usize = inner.input_shape().iter().product();
        if want != have {
            bail!(
                "samples of shape {:?} cannot be read as {shape:?}",
                inner.input_shape()
            );
        }
        if let Some(&i) = indices.iter().find(|&&i| i >= inner.len()) {
            bail!("index {i} of a split is beyond the {} samples", inner.len());
        }
        Ok(Split {
            inner,
            indices,
            shape,
            norm,
            map: None,
        })
    }
    pub fn with_map(mut self, f: fn(Target) -> Result<Target>) -> Self {
        self.map = Some(f);
        self
    }
}

impl Dataset for Split {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn input_shape(&self) -> Vec<usize> {
        self.shape.clone()
    }
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<Target> {
        let Some(&i) = self.indices.get(index) else {
            bail!("sample {index} of a split of {}", self.indices.len());
        };
        let t = self.inner.get_into(i, input)?;
        if let Some(v) = input.iter().find(|v| !v.is_finite()) {
            bail!("sample {i} holds a non-finite value ({v})");
        }
        normalise(input, self.norm, self.shape[0]);
        match self.map {
            Some(f) => f(t).with_context(|| format!("sample {i}")),
            None => Ok(t),
        }
    }
}

/// What an image task reads from each synthetic section.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ImageRole {
    Mae,
    Facies,
    Salt,
    Denoise,
    Interpolation,
    Inversion,
    Classify,
}

impl ImageRole {
    pub fn of_task(task: &str) -> Result<Self> {
        Ok(match task {
            "mae" => ImageRole::Mae,
            "facies" => ImageRole::Facies,
            "salt" => ImageRole::Salt,
            "denoise" => ImageRole::Denoise,
            "interpolation" => ImageRole::Interpolation,
            "inversion" => ImageRole::Inversion,
            "classify" => ImageRole::Classify,
            t => bail!("{t} is not an image task"),
        })
    }
    /// The arrays of a folder: input, target.
    fn files(self) -> (&'static str, Option<&'static str>) {
        match self {
            ImageRole::Mae => ("noisy", None),
            ImageRole::Facies => ("noisy", Some("facies")),
            ImageRole::Salt => ("noisy", Some("salt")),
            ImageRole::Denoise => ("noisy", Some("clean")),
            ImageRole::Interpolation => ("decimated", Some("noisy")),
            ImageRole::Inversion => ("clean", Some("reflectivity")),
            ImageRole::Classify => ("noisy", Some("labels")),
        }
    }
    fn norm(self) -> Norm {
        match self {
            // regression: inputs and targets share the writer's scale (max |x| = 1)
            ImageRole::Denoise | ImageRole::Interpolation | ImageRole::Inversion => Norm::None,
            _ => Norm::PerSample,
        }
    }
}

/// A synthetic dataset drawn on demand from a generator's config `C` and a seed (index i is
/// always the same sample), `n` samples, read for a task as `role` says.
pub struct Synth<C, R> {
    cfg: C,
    seed: u64,
    n: usize,
    role: R,
}

/// Synthetic sections drawn on demand.
pub type SynthImages = Synth<images::ImageConfig, ImageRole>;

impl Dataset for SynthImages {
    fn len(&self) -> usize {
        self.n
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![1, self.cfg.height, self.cfg.width]
    }
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<Target> {
        let s = images::generate(&self.cfg, self.seed, index as u64);
        let dense = |v: &[f32]| Target::Dense {
            values: v.to_vec(),
            shape: vec![1, s.height, s.width],
        };
        let (x, t) = match self.role {
            ImageRole::Mae => (&s.noisy, Target::None),
            ImageRole::Facies => (&s.noisy, Target::ClassMap(s.facies.clone())),
            ImageRole::Salt => (
                &s.noisy,
                Target::ClassMap(s.salt.iter().map(|&v| v as i32).collect()),
            ),
            ImageRole::Denoise => (&s.noisy, dense(&s.clean)),
            ImageRole::Interpolation => (&s.decimated, dense(&s.noisy)),
            ImageRole::Inversion => (&s.clean, dense(&s.reflectivity)),
            ImageRole::Classify => (&s.noisy, Target::Class(s.has_salt as i32)),
        };
        input.copy_from_slice(x);
        Ok(t)
    }
}

/// What a waveform task reads from each trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WaveRole {
    Pretrain,
    Pick,
    Event,
    Sequence,
}

/// Synthetic 3-component traces drawn on demand.
pub type SynthWaves = Synth<waveforms::WaveformConfig, WaveRole>;

impl Dataset for SynthWaves {
    fn len(&self) -> usize {
        self.n
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![3, self.cfg.samples]
    }
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<Target> {
        let s = waveforms::generate(&self.cfg, self.seed, index as u64);
        input.copy_from_slice(&s.data);
        Ok(match self.role {
            WaveRole::Pretrain => Target::None,
            WaveRole::Pick => Target::Picks {
                p: s.p_sample.map(|v| v as f32),
                s: s.s_sample.map(|v| v as f32),
            },
            WaveRole::Event => Target::Class(s.is_event as i32),
            WaveRole::Sequence => Target::Class(s.sequence_class.map(|c| c as i32).unwrap_or(-100)),
        })
    }
}

/// Paired sections and waveforms drawn on demand, flattened into one input (the section's
/// H·W values, then the waveform's 3·T), labelled by the presence of a low-velocity layer.
pub struct SynthPaired {
    cfg: paired::PairedConfig,
    seed: u64,
    n: usize,
}

impl SynthPaired {
    /// `hard`: noisier sections and weaker waveforms, so that neither modality alone decides.
    pub fn new(side: usize, samples: usize, seed: u64, n: usize, hard: bool) -> Self {
        let mut cfg = paired::PairedConfig::new(side, side, samples);
        if hard {
            cfg.image_noise = (0.6, 1.2);
            cfg.snr_db = (-3.0, 6.0);
        }
        SynthPaired { cfg, seed, n }
    }
}

impl Dataset for SynthPaired {
    fn len(&self) -> usize {
        self.n
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![self.cfg.height * self.cfg.width + 3 * self.cfg.samples]
    }
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<Target> {
        let s = paired::generate(&self.cfg, self.seed, index as u64);
        let k = s.image.len();
        input[..k].copy_from_slice(&s.image);
        input[k..].copy_from_slice(&s.waveform);
        Ok(Target::Class(s.label))
    }
}

/// The three splits of a task's data and what the model needs to know about them.
pub struct TaskData {
    pub train: Split,
    pub dev: Split,
    pub test: Split,
    /// Classes of class and class-map targets (0 for other targets).
    pub classes: usize,
    /// Where the data came from, for the log.
    pub source: String,
}

impl TaskData {
    pub fn split(&self, name: &str) -> Result<&Split> {
        Ok(match name {
            "train" => &self.train,
            "dev" => &self.dev,
            "test" => &self.test,
            s => bail!("unknown split {s:?}: train, dev or test"),
        })
    }
}

/// The image side of the task's model.
pub fn image_side(cfg: &TrainConfig) -> Result<usize> {
    if cfg.image_size > 0 {
        return Ok(cfg.image_size);
    }
    if super::config::is_fusion_task(&cfg.task) {
        return Ok(32);
    }
    Ok(crate::models::sfm::VitConfig::preset(&cfg.preset)?.img_h)
}

/// Waveform samples per trace.
pub fn wave_samples(cfg: &TrainConfig) -> usize {
    if cfg.samples > 0 {
        cfg.samples
    } else {
        3001
    }
}

/// The normalisation of the task's inputs.
pub fn input_norm(cfg: &TrainConfig) -> Result<Norm> {
    Ok(if super::config::is_fusion_task(&cfg.task) {
        Norm::None
    } else if cfg.is_waveform_task() {
        Norm::PerChannel
    } else {
        ImageRole::of_task(&cfg.task)?.norm()
    })
}

/// The shape of one input of the task's model.
pub fn input_shape(cfg: &TrainConfig) -> Result<Vec<usize>> {
    Ok(if super::config::is_fusion_task(&cfg.task) {
        let s = image_side(cfg)?;
        vec![s * s + 3 * wave_samples(cfg)]
    } else if cfg.is_waveform_task() {
        vec![3, wave_samples(cfg)]
    } else {
        let s = image_side(cfg)?;
        vec![1, s, s]
    })
}

/// Unlabelled inputs from a `.npy` file `[N, ...]` for `predict`, shaped and normalised as the
/// task's model expects.
pub fn inputs_file(cfg: &TrainConfig, path: &Path) -> Result<Split> {
    if super::config::is_fusion_task(&cfg.task) && path.is_dir() {
        // A paired folder (labels.npy optional): sections and waveforms side by side.
        let ds = PairedFolder::open(path, false)?;
        let n = ds.len();
        let shape = ds.input_shape();
        if shape != input_shape(cfg)? {
            bail!(
                "{}: pairs of {}×{} sections and {} samples do not fit this model's inputs {:?}",
                path.display(),
                ds.height,
                ds.width,
                ds.samples,
                input_shape(cfg)?
            );
        }
        return Split::new(Arc::new(ds), (0..n).collect(), shape, Norm::None);
    }
    let ds = NpyDataset::open(path)?;
    let shape = input_shape(cfg)?;
    let have: usize = ds.input_shape().iter().product();
    if have != shape.iter().product::<usize>() {
        bail!(
            "{}: samples of shape {:?} do not fit this model's inputs {shape:?}",
            path.display(),
            ds.input_shape()
        );
    }
    let n = ds.len();
    Split::new(Arc::new(ds), (0..n).collect(), shape, input_norm(cfg)?)
}

fn wave_role(cfg: &TrainConfig) -> WaveRole {
    match (cfg.task.as_str(), cfg.labels.as_str()) {
        ("pick", _) => WaveRole::Pick,
        ("event-class", "sequence") => WaveRole::Sequence,
        ("event-class", _) => WaveRole::Event,
        _ => WaveRole::Pretrain,
    }
}

fn contiguous(n: usize) -> [Vec<usize>; 3] {
    let mut out: [Vec<usize>; 3] = Default::default();
    for i in 0..n {
        let k = match split_of(i, n) {
            "train" => 0,
            "dev" => 1,
            _ => 2,
        };
        out[k].push(i);
    }
    out
}

fn three(
    inner: Arc<dyn Dataset>,
    parts: [Vec<usize>; 3],
    shape: Vec<usize>,
    norm: Norm,
    map: Option<fn(Target) -> Result<Target>>,
    classes: usize,
    source: String,
) -> Result<TaskData> {
    let mk = |idx: Vec<usize>| -> Result<Split> {
        let s = Split::new(inner.clone(), idx, shape.clone(), norm)?;
        Ok(match map {
            Some(f) => s.with_map(f),
            None => s,
        })
    };
    let [a, b, c] = parts;
    Ok(TaskData {
        train: mk(a)?,
        dev: mk(b)?,
        test: mk(c)?,
        classes,
        source,
    })
}

fn binary_map(t: Target) -> Result<Target> {
    match t {
        Target::ClassMap(v) => Ok(Target::ClassMap(
            v.into_iter().map(|x| (x != 0) as i32).collect(),
        )),
        other => Ok(other),
    }
}

/// Builds the task's data from `cfg.data`.
pub fn load(cfg: &TrainConfig) -> Result<TaskData> {
    let total = cfg
        .train_size
        .checked_add(cfg.dev_size)
        .and_then(|n| n.checked_add(cfg.test_size))
        .filter(|&n| n <= 1 << 30)
        .context("train_size + dev_size + test_size is beyond reason")?;
    let parts = [
        (0..cfg.train_size).collect(),
        (cfg.train_size..cfg.train_size + cfg.dev_size).collect(),
        (cfg.train_size + cfg.dev_size..total).collect(),
    ];
    let seed = cfg.seed;
    if super::config::is_fusion_task(&cfg.task) {
        if cfg.data != "synth:paired" {
            return load_paired_folder(cfg, Path::new(&cfg.data));
        }
        let side = image_side(cfg)?;
        let samples = wave_samples(cfg);
        let inner = Arc::new(SynthPaired::new(
            side,
            samples,
            seed,
            total,
            cfg.difficulty == "hard",
        ));
        let shape = inner.input_shape();
        return three(
            inner,
            parts,
            shape,
            Norm::None,
            None,
            2,
            format!(
                "synthetic pairs {side}×{side} + 3×{samples}, {} difficulty, seed {seed}",
                cfg.difficulty
            ),
        );
    }
    match cfg.data.as_str() {
        "synth:images" | "synth:paired" if !cfg.is_waveform_task() => {
            let side = image_side(cfg)?;
            let role = ImageRole::of_task(&cfg.task)?;
            let inner = Arc::new(SynthImages {
                cfg: images::ImageConfig::new(side, side),
                seed,
                n: total,
                role,
            });
            let classes = match role {
                ImageRole::Facies => images::N_FACIES,
                ImageRole::Salt | ImageRole::Classify => 2,
                _ => 0,
            };
            three(
                inner,
                parts,
                vec![1, side, side],
                role.norm(),
                None,
                classes,
                format!("synthetic sections {side}×{side}, seed {seed}"),
            )
        }
        "synth:waveforms" | "synth:paired" if cfg.is_waveform_task() => {
            let mut wc = waveforms::WaveformConfig::new(wave_samples(cfg));
            let role = wave_role(cfg);
            if role == WaveRole::Sequence {
                wc.sequence_classes = cfg.sequence_classes.max(2);
                wc.event_probability = 1.0;
            }
            let classes = match role {
                WaveRole::Event => 2,
                WaveRole::Sequence => wc.sequence_classes,
                _ => 0,
            };
            let shape = vec![3, wc.samples];
            let inner = Arc::new(SynthWaves {
                cfg: wc,
                seed,
                n: total,
                role,
            });
            three(
                inner,
                parts,
                shape,
                Norm::PerChannel,
                None,
                classes,
                format!("synthetic waveforms, seed {seed}"),
            )
        }
        d if d.starts_with("synth:") => bail!(
            "data {d} does not fit task {}: image tasks take synth:images, waveform tasks synth:waveforms",
            cfg.task
        ),
        path => load_folder(cfg, Path::new(path)),
    }
}

fn load_folder(cfg: &TrainConfig, dir: &Path) -> Result<TaskData> {
    if !dir.is_dir() {
        bail!(
            "--data {}: not a folder (nor synth:images / synth:waveforms)",
            dir.display()
        );
    }
    let source = dir.display().to_string();
    if cfg.is_waveform_task() {
        if dir.join("metadata.csv").exists() && !dir.join("waveforms.npy").exists() {
            return load_seisbench(cfg, dir);
        }
        let f = dir.join("waveforms.npy");
        let mut ds = NpyDataset::open(&f)?;
        let role = wave_role(cfg);
        let mut classes = 0;
        ds = match role {
            WaveRole::Pretrain => ds,
            WaveRole::Pick => ds.with_picks(need(dir, "picks.npy")?)?,
            WaveRole::Event => {
                classes = 2;
                ds.with_classes(need(dir, "labels.npy")?)?
            }
            WaveRole::Sequence => {
                classes = cfg.sequence_classes.max(2);
                ds.with_classes(need(dir, "sequence_class.npy")?)?
            }
        };
        let shape = ds.input_shape();
        if shape.len() != 2 || shape[0] != 3 {
            bail!(
                "{}: traces must be [N, 3, samples], found [N, {shape:?}]",
                f.display()
            );
        }
        let n = ds.len();
        return three(
            Arc::new(ds),
            contiguous(n),
            shape,
            Norm::PerChannel,
            None,
            classes,
            source,
        );
    }
    let role = ImageRole::of_task(&cfg.task)?;
    let (input, target) = role.files();
    let ds = NpyDataset::open(need(dir, &format!("{input}.npy"))?)?;
    let (ds, classes, map): (NpyDataset, usize, Option<TargetMap>) = match (role, target) {
        (_, None) => (ds, 0, None),
        (ImageRole::Facies, Some(t)) => {
            let p = need(dir, &format!("{t}.npy"))?;
            let k = max_class(&p)? + 1;
            (ds.with_class_maps(p)?, k, None)
        }
        (ImageRole::Salt, Some(t)) => (
            ds.with_class_maps(need(dir, &format!("{t}.npy"))?)?,
            2,
            Some(binary_map as TargetMap),
        ),
        (ImageRole::Classify, Some(t)) => {
            let p = need(dir, &format!("{t}.npy"))?;
            let k = max_class(&p)? + 1;
            (ds.with_classes(p)?, k, None)
        }
        (_, Some(t)) => (ds.with_dense(need(dir, &format!("{t}.npy"))?)?, 0, None),
    };
    let s = ds.input_shape();
    let (h, w) = match s[..] {
        [h, w] | [1, h, w] => (h, w),
        _ => bail!(
            "{}: sections must be [N, H, W] or [N, 1, H, W], found [N, {s:?}]",
            dir.join(format!("{input}.npy")).display()
        ),
    };
    let side = image_side(cfg)?;
    if (h, w) != (side, side) {
        bail!(
            "{}: sections are {h}×{w} but the model takes {side}×{side}; set image_size = {h} (square sections)",
            dir.display()
        );
    }
    let n = ds.len();
    three(
        Arc::new(ds),
        contiguous(n),
        vec![1, h, w],
        role.norm(),
        map,
        classes,
        source,
    )
}

/// A user's paired set: `images.npy` [N, H, W], `waveforms.npy` [N, 3, T] and `labels.npy` [N]
/// (the layout `seisfuse synth paired` writes), split as the other folders are.
fn load_paired_folder(cfg: &TrainConfig, dir: &Path) -> Result<TaskData> {
    if !dir.is_dir() {
        bail!(
            "--data {}: the fusion tasks train on paired data: synth:paired or a folder with \
             images.npy, waveforms.npy and labels.npy (as `seisfuse synth paired` writes)",
            dir.display()
        );
    }
    let ds = PairedFolder::open(dir, true)?;
    let side = image_side(cfg)?;
    let samples = wave_samples(cfg);
    if (ds.height, ds.width) != (side, side) {
        bail!(
            "{}: sections are {}×{} but the model takes {side}×{side}; set image_size = {} \
             (square sections)",
            dir.display(),
            ds.height,
            ds.width,
            ds.height
        );
    }
    if ds.samples != samples {
        bail!(
            "{}: waveforms have {} samples but the model takes {samples}; set samples = {}",
            dir.display(),
            ds.samples,
            ds.samples
        );
    }
    let n = ds.len();
    let shape = ds.input_shape();
    three(
        Arc::new(ds),
        contiguous(n),
        shape,
        Norm::None,
        None,
        2,
        format!("paired folder {}", dir.display()),
    )
}

/// Sections and waveforms of one folder, flattened into one input like [`SynthPaired`].
struct PairedFolder {
    images: NpyDataset,
    waves: NpyDataset,
    height: usize,
    width: usize,
    samples: usize,
}

impl PairedFolder {
    /// `labelled`: labels.npy is required (training); else it is read when present.
    fn open(dir: &Path, labelled: bool) -> Result<Self> {
        let images = NpyDataset::open(need(dir, "images.npy")?)?;
        let mut waves = NpyDataset::open(need(dir, "waveforms.npy")?)?;
        if labelled || dir.join("labels.npy").exists() {
            waves = waves.with_classes(need(dir, "labels.npy")?)?;
        }
        let (height, width) = match images.input_shape()[..] {
            [h, w] | [1, h, w] => (h, w),
            ref s => bail!(
                "{}: sections must be [N, H, W], found [N, {s:?}]",
                dir.join("images.npy").display()
            ),
        };
        let samples = match waves.input_shape()[..] {
            [3, t] => t,
            ref s => bail!(
                "{}: waveforms must be [N, 3, samples], found [N, {s:?}]",
                dir.join("waveforms.npy").display()
            ),
        };
        if images.len() != waves.len() {
            bail!(
                "{}: {} sections but {} waveforms; the files must pair one to one",
                dir.display(),
                images.len(),
                waves.len()
            );
        }
        Ok(PairedFolder {
            images,
            waves,
            height,
            width,
            samples,
        })
    }
}

impl Dataset for PairedFolder {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![self.height * self.width + 3 * self.samples]
    }
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<Target> {
        let (img, wav) = input.split_at_mut(self.height * self.width);
        self.images.get_into(index, img)?;
        let t = self.waves.get_into(index, wav)?;
        match t {
            Target::Class(c) if c == 0 || c == 1 => Ok(t),
            Target::Class(c) => {
                bail!("labels.npy: sample {index} has label {c}; paired labels are 0 or 1")
            }
            o => Ok(o),
        }
    }
}

fn need(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    if !p.exists() {
        bail!("{}: missing {name} for this task", dir.display());
    }
    Ok(p)
}

/// The largest class in an integer label file (to size the head).
fn max_class(path: &Path) -> Result<usize> {
    let t = crate::data::npy::read_f32_tensor(path)?;
    let v = t.to_vec_f32()?;
    let m = v.iter().fold(0f32, |a, &b| a.max(b));
    if v.iter().any(|&x| x < 0.0 || x.fract() != 0.0) || m > 1000.0 {
        bail!(
            "{}: labels must be integers in 0..1000, found a value out of that",
            path.display()
        );
    }
    Ok(m as usize)
}

fn load_seisbench(cfg: &TrainConfig, dir: &Path) -> Result<TaskData> {
    use crate::data::seisbench::SeisBenchDataset;
    let samples = wave_samples(cfg);
    let role = wave_role(cfg);
    if role == WaveRole::Sequence {
        bail!("SeisBench folders carry no sequence labels; use labels = \"event\"");
    }
    let mk = |split: &str| -> Result<Split> {
        let ds = SeisBenchDataset::open(dir, Some(split), samples)?;
        let n = ds.len();
        let s = Split::new(
            Arc::new(ds),
            (0..n).collect(),
            vec![3, samples],
            Norm::PerChannel,
        )?;
        Ok(match role {
            WaveRole::Event => s.with_map(|t| match t {
                Target::Picks { p, .. } => Ok(Target::Class(p.is_some() as i32)),
                o => Ok(o),
            }),
            WaveRole::Pretrain => s.with_map(|_| Ok(Target::None)),
            _ => s,
        })
    };
    Ok(TaskData {
        train: mk("train")?,
        dev: mk("dev")?,
        test: mk("test")?,
        classes: if role == WaveRole::Event { 2 } else { 0 },
        source: format!("SeisBench {}", dir.display()),
    })
}
