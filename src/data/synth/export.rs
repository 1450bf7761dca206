//! Writes synthetic datasets to a folder: one `.npy` per array (first axis = sample),
//! `metadata.csv` (one row per sample, with its split) and `dataset.json` (arrays, shapes,
//! types, label meanings, splits). Samples are generated in parallel and written in order,
//! so the files depend only on (config, n, seed).

use super::images::{self, ImageConfig, N_FACIES};
use super::paired::{self, PairedConfig};
use super::split_of;
use super::waveforms::{self, WaveformConfig};
use crate::data::npy::{NpyElem, NpyWriter};
use crate::plot::{Panel, Pick, Sections, Waveforms};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Samples generated per parallel chunk.
const CHUNK: usize = 64;

/// What to write besides the arrays.
#[derive(Default)]
pub struct ExportOptions {
    /// Write PNG figures of the first `png` samples into `out/png/`.
    pub png: usize,
    /// Allow writing into a folder that already holds files.
    pub force: bool,
    /// Called with the number of samples done so far.
    pub progress: Option<Box<dyn Fn(usize) + Send + Sync>>,
}

/// The files `synth` writes into a dataset folder (`png/` and `seisbench/` are folders).
pub const DATASET_FILES: &[&str] = &[
    "clean.npy",
    "noisy.npy",
    "reflectivity.npy",
    "decimated.npy",
    "facies.npy",
    "salt.npy",
    "trace_mask.npy",
    "waveforms.npy",
    "picks.npy",
    "event.npy",
    "sequence_class.npy",
    "images.npy",
    "labels.npy",
    "metadata.csv",
    "dataset.json",
    "png",
    "seisbench",
];

/// Whether `name` in a dataset folder is ours: a dataset file (of `synth continuous` too:
/// `catalog.csv`, `*.mseed`), or a temporary file or staging
/// folder left by an interrupted run (`.NAME.tmpPID`, `.synth-stage-PID`).
fn is_ours(name: &str) -> bool {
    DATASET_FILES.contains(&name)
        || name == "catalog.csv"
        || name.ends_with(".mseed")
        || (name.starts_with('.') && name.contains(".tmp"))
        || name.starts_with(".synth-stage-")
}

/// Makes `dir` (refusing a non-empty one unless `force`). With `force`, `dir` may only hold a
/// dataset that `synth` wrote (see [`DATASET_FILES`]); anything else is refused, so that
/// `--force` never deletes files that are not ours.
pub fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("{} exists and is not a folder", dir.display());
        }
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        if !names.is_empty() && !force {
            bail!(
                "{} already holds files; choose another --out or pass --force to overwrite",
                dir.display()
            );
        }
        let foreign: Vec<&String> = names.iter().filter(|n| !is_ours(n)).collect();
        if !foreign.is_empty() {
            bail!(
                "{} holds files that synth did not write ({}{}); --force replaces only a synth \
                 dataset: choose another --out, or move those files away",
                dir.display(),
                foreign
                    .iter()
                    .take(5)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if foreign.len() > 5 { ", …" } else { "" }
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// A dataset being written into a staging folder inside its destination; [`Stage::commit`]
/// removes the previous set's files and moves the new ones in. Dropped uncommitted (an error),
/// it removes the staging folder, and the folders this run created, so an error leaves
/// neither a partial set nor a mix of old and new files.
pub struct Stage {
    dir: PathBuf,
    stage: PathBuf,
    /// Folders this run created (`dir` and missing parents), innermost first.
    created: Vec<PathBuf>,
    done: bool,
}

impl Stage {
    pub fn begin(dir: &Path, force: bool) -> Result<Self> {
        let created = crate::atomic::missing_dirs(dir);
        prepare_dir(dir, force)?;
        let stage = dir.join(format!(".synth-stage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&stage);
        std::fs::create_dir(&stage).with_context(|| format!("creating {}", stage.display()))?;
        Ok(Stage {
            dir: dir.to_path_buf(),
            stage,
            created,
            done: false,
        })
    }

    /// Where the files are written until `commit`.
    pub fn path(&self) -> &Path {
        &self.stage
    }

    pub fn commit(mut self) -> Result<()> {
        for e in std::fs::read_dir(&self.dir)
            .with_context(|| format!("reading {}", self.dir.display()))?
        {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            if p == self.stage || !is_ours(&name) {
                continue;
            }
            let r = if e.file_type()?.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.with_context(|| format!("removing {} of the previous dataset", p.display()))?;
        }
        for e in std::fs::read_dir(&self.stage)
            .with_context(|| format!("reading {}", self.stage.display()))?
        {
            let e = e?;
            let to = self.dir.join(e.file_name());
            std::fs::rename(e.path(), &to)
                .with_context(|| format!("moving {} into place", to.display()))?;
        }
        std::fs::remove_dir(&self.stage)
            .with_context(|| format!("removing {}", self.stage.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.stage);
            crate::atomic::remove_created(&self.created);
        }
    }
}

/// One array of the dataset being written.
struct Array<T: NpyElem> {
    name: &'static str,
    shape: Vec<usize>,
    writer: NpyWriter<T>,
}

impl<T: NpyElem> Array<T> {
    fn new(dir: &Path, name: &'static str, shape: Vec<usize>) -> Result<Self> {
        let writer = NpyWriter::create(dir.join(format!("{name}.npy")), &shape)?;
        Ok(Array {
            name,
            shape,
            writer,
        })
    }
    fn json(&self) -> String {
        format!(
            "\"{}\": {{\"file\": \"{}.npy\", \"dtype\": \"{}\", \"shape\": {:?}}}",
            self.name,
            self.name,
            T::DTYPE.descr(),
            self.shape
        )
    }
}

fn splits_json(n: usize) -> String {
    let mut parts = Vec::new();
    for name in ["train", "dev", "test"] {
        let idx: Vec<usize> = (0..n).filter(|&i| split_of(i, n) == name).collect();
        let (s, e) = (
            idx.first().copied().unwrap_or(0),
            idx.last().map(|l| l + 1).unwrap_or(0),
        );
        parts.push(format!(
            "\"{name}\": {{\"start\": {s}, \"end\": {e}, \"count\": {}}}",
            idx.len()
        ));
    }
    format!("{{{}}}", parts.join(", "))
}

fn write_text(path: PathBuf, text: &str) -> Result<()> {
    crate::atomic::write_atomic(&path, text.as_bytes())
}

fn opt(v: Option<usize>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The `metadata.csv` columns after the trace name that the waveform dataset and its SeisBench
/// layout share; [`trace_columns`] writes a trace's values.
const TRACE_COLUMNS: &str = "split,trace_category,trace_sampling_rate_hz,trace_npts,trace_P_arrival_sample,trace_S_arrival_sample,trace_snr_db,source_distance_km,path_back_azimuth_deg";

/// The [`TRACE_COLUMNS`] of trace `i` of `n`.
fn trace_columns(
    s: &waveforms::WaveformSample,
    i: usize,
    n: usize,
    cfg: &WaveformConfig,
) -> String {
    format!(
        "{},{},{},{},{},{},{},{:.2},{:.1}",
        split_of(i, n),
        if s.is_event { "earthquake" } else { "noise" },
        cfg.sampling_rate,
        cfg.samples,
        opt(s.p_sample),
        opt(s.s_sample),
        if s.is_event {
            format!("{:.2}", s.snr_db)
        } else {
            String::new()
        },
        s.distance_km,
        s.back_azimuth_deg
    )
}

/// The true picks of a trace, for its figure.
fn picks_of(p: Option<usize>, s: Option<usize>) -> Vec<Pick> {
    let mut m = Vec::new();
    if let Some(p) = p {
        m.push(Pick::truth("P", p as f64));
    }
    if let Some(s) = s {
        m.push(Pick::truth("S", s as f64));
    }
    m
}

/// A row of `picks.npy`: [P sample, S sample], −1 where there is none.
fn pick_row(p: Option<usize>, s: Option<usize>) -> [i32; 2] {
    [p, s].map(|v| v.map_or(-1, |v| v as i32))
}

/// Generates samples 0..n (`generate(i)`) in chunks of [`CHUNK`], each chunk in parallel, and
/// hands them to `write(i, sample, png_dir)` in order, reporting progress after each chunk.
/// Creates `dir/png` first when figures are asked for.
fn for_each_sample<S: Send>(
    dir: &Path,
    n: usize,
    opts: &ExportOptions,
    generate: impl Fn(u64) -> S + Sync,
    mut write: impl FnMut(usize, &S, &Path) -> Result<()>,
) -> Result<()> {
    let png_dir = dir.join("png");
    if opts.png > 0 {
        std::fs::create_dir_all(&png_dir)
            .with_context(|| format!("creating {}", png_dir.display()))?;
    }
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let batch: Vec<S> = (start..end)
            .into_par_iter()
            .map(|i| generate(i as u64))
            .collect();
        for (k, s) in batch.iter().enumerate() {
            write(start + k, s, &png_dir)?;
        }
        if let Some(p) = &opts.progress {
            p(end);
        }
    }
    Ok(())
}

/// Names of the facies classes, by id (the `labels.facies.names` of `dataset.json`).
pub use super::images::FACIES_NAMES;

/// [`FACIES_NAMES`] as a JSON array (checked against it in the tests).
const FACIES_NAMES_JSON: &str =
    "[\"shale\", \"silty shale\", \"sand\", \"carbonate\", \"tight sand\", \"salt\"]";

/// The name of a figure: its file name without `.png`.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A 3-component synthetic trace `data` [3, samples] as a figure: Z, N, E in seconds with the
/// true picks.
fn waveform_png(
    path: &Path,
    data: &[f32],
    sampling_rate: f64,
    picks: Vec<Pick>,
    what: &str,
) -> Result<()> {
    Waveforms {
        title: format!("{} ({what})", stem(path)),
        data,
        channels: 3,
        samples: data.len() / 3,
        sampling_rate: Some(sampling_rate),
        picks,
        ..Default::default()
    }
    .write(path)
}

/// A kind of synthetic dataset that [`write`] exports: its generator's config.
pub trait Export {
    /// Refuses sizes too small to generate.
    fn check(&self) -> Result<()>;
    /// Writes `n` samples (arrays, metadata.csv, dataset.json, figures) into the folder `dir`.
    fn write_into(&self, dir: &Path, n: usize, seed: u64, opts: &ExportOptions) -> Result<()>;
}

/// Writes `n` synthetic samples of the kind `cfg` configures into `dir`, through a staging
/// folder that takes the place of `dir` only once it is complete.
pub fn write(
    dir: &Path,
    cfg: &impl Export,
    n: usize,
    seed: u64,
    opts: &ExportOptions,
) -> Result<()> {
    cfg.check()?;
    let stage = Stage::begin(dir, opts.force)?;
    cfg.write_into(stage.path(), n, seed, opts)?;
    stage.commit()
}

/// Synthetic sections with their labels.
impl Export for ImageConfig {
    fn check(&self) -> Result<()> {
        if self.height < 8 || self.width < 8 {
            bail!(
                "image size {}×{} is too small (at least 8×8)",
                self.height,
                self.width
            );
        }
        Ok(())
    }
    fn write_into(&self, dir: &Path, n: usize, seed: u64, opts: &ExportOptions) -> Result<()> {
        let cfg = self;
        let (h, w) = (cfg.height, cfg.width);
        let shape = vec![n, h, w];
        let mut f32s: Vec<Array<f32>> = ["clean", "noisy", "reflectivity", "decimated"]
            .into_iter()
            .map(|name| Array::new(dir, name, shape.clone()))
            .collect::<Result<_>>()?;
        let mut u8s: Vec<Array<u8>> = ["facies", "salt", "trace_mask"]
            .into_iter()
            .map(|name| Array::new(dir, name, shape.clone()))
            .collect::<Result<_>>()?;
        let mut csv = String::from("index,split,has_salt,n_faults,noise_ratio,salt_fraction\n");
        let generate = |i| images::generate(cfg, seed, i);
        for_each_sample(dir, n, opts, generate, |i, s, png_dir| {
            f32s[0].writer.append(&s.clean)?;
            f32s[1].writer.append(&s.noisy)?;
            f32s[2].writer.append(&s.reflectivity)?;
            f32s[3].writer.append(&s.decimated)?;
            let facies: Vec<u8> = s.facies.iter().map(|&f| f as u8).collect();
            u8s[0].writer.append(&facies)?;
            u8s[1].writer.append(&s.salt)?;
            u8s[2].writer.append(&s.trace_mask)?;
            let salt_frac =
                s.salt.iter().map(|&v| v as usize).sum::<usize>() as f64 / (h * w) as f64;
            writeln!(
                csv,
                "{i},{},{},{},{:.4},{:.4}",
                split_of(i, n),
                s.has_salt as u8,
                s.n_faults,
                s.noise_ratio,
                salt_frac
            )?;
            if i < opts.png {
                image_png(&png_dir.join(format!("image_{i:05}.png")), s)?;
            }
            Ok(())
        })?;
        let mut arrays: Vec<String> = f32s.iter().map(|a| a.json()).collect();
        arrays.extend(u8s.iter().map(|a| a.json()));
        for a in f32s {
            a.writer.finish()?;
        }
        for a in u8s {
            a.writer.finish()?;
        }
        write_text(dir.join("metadata.csv"), &csv)?;
        let json = format!(
            "{{\n  \"kind\": \"images\",\n  \"generator\": \"seisfuse synth images\",\n  \"n\": {n},\n  \"seed\": {seed},\n  \"height\": {h},\n  \"width\": {w},\n  \"layout\": \"[sample, time, trace], row-major\",\n  \"arrays\": {{{}}},\n  \"labels\": {{\"facies\": {{\"classes\": {N_FACIES}, \"names\": {facies_names}}}, \"salt\": \"1 inside salt\", \"trace_mask\": \"1 where the trace was kept in decimated\"}},\n  \"splits\": {}\n}}\n",
            arrays.join(", "),
            splits_json(n),
            facies_names = FACIES_NAMES_JSON,
        );
        write_text(dir.join("dataset.json"), &json)
    }
}

/// Figure of one section: noisy | clean with facies | clean with the salt outline | decimated,
/// on one amplitude scale, with the facies names and the salt in a legend.
pub fn image_png(path: &Path, s: &images::ImageSample) -> Result<()> {
    Sections {
        title: stem(path),
        height: s.height,
        width: s.width,
        panels: vec![
            Panel::amplitude("noisy", &s.noisy),
            Panel::amplitude("clean + facies", &s.clean).with_classes(&s.facies),
            Panel::amplitude("clean + salt", &s.clean).with_mask(&s.salt),
            Panel::amplitude("decimated", &s.decimated),
        ],
        class_names: FACIES_NAMES.map(String::from).to_vec(),
        mask_label: "salt".into(),
        panel_height: 240,
        ..Default::default()
    }
    .write(path)
}

/// Synthetic 3-component traces. The metadata uses SeisBench's column names (`trace_name`,
/// `split`, `trace_P_arrival_sample`, …).
impl Export for WaveformConfig {
    fn check(&self) -> Result<()> {
        if self.samples < 16 {
            bail!(
                "{} samples per trace is too few (at least 16)",
                self.samples
            );
        }
        Ok(())
    }
    fn write_into(&self, dir: &Path, n: usize, seed: u64, opts: &ExportOptions) -> Result<()> {
        let cfg = self;
        let ns = cfg.samples;
        let mut wave = Array::<f32>::new(dir, "waveforms", vec![n, 3, ns])?;
        let mut picks = Array::<i32>::new(dir, "picks", vec![n, 2])?;
        let mut event = Array::<u8>::new(dir, "event", vec![n])?;
        let seq = cfg.sequence_classes > 0;
        let mut sequence = if seq {
            Some(Array::<i32>::new(dir, "sequence_class", vec![n])?)
        } else {
            None
        };
        let mut csv = format!("index,trace_name,{TRACE_COLUMNS}");
        csv.push_str(if seq { ",sequence_class\n" } else { "\n" });
        let generate = |i| waveforms::generate(cfg, seed, i);
        for_each_sample(dir, n, opts, generate, |i, s, png_dir| {
            wave.writer.append(&s.data)?;
            picks.writer.append(&pick_row(s.p_sample, s.s_sample))?;
            event.writer.append(&[s.is_event as u8])?;
            let class = s.sequence_class.map(|k| k as i32).unwrap_or(-1);
            if let Some(a) = &mut sequence {
                a.writer.append(&[class])?;
            }
            write!(csv, "{i},synth_{i:07},{}", trace_columns(s, i, n, cfg))?;
            if seq {
                write!(csv, ",{}", opt(s.sequence_class))?;
            }
            csv.push('\n');
            if i < opts.png {
                waveform_png(
                    &png_dir.join(format!("waveform_{i:05}.png")),
                    &s.data,
                    cfg.sampling_rate,
                    picks_of(s.p_sample, s.s_sample),
                    if s.is_event { "earthquake" } else { "noise" },
                )?;
            }
            Ok(())
        })?;
        let mut arrays = vec![wave.json(), picks.json(), event.json()];
        wave.writer.finish()?;
        picks.writer.finish()?;
        event.writer.finish()?;
        let mut seq_label = String::new();
        if let Some(a) = sequence {
            arrays.push(a.json());
            a.writer.finish()?;
            seq_label = format!(
                ", \"sequence_class\": \"period of the earthquake sequence of {} (0 foreshocks, 1.. aftershock periods), -1 for noise\"",
                cfg.sequence_classes
            );
        }
        let arrays = arrays.join(", ");
        write_text(dir.join("metadata.csv"), &csv)?;
        let json = format!(
            "{{\n  \"kind\": \"waveforms\",\n  \"generator\": \"seisfuse synth waveforms\",\n  \"n\": {n},\n  \"seed\": {seed},\n  \"samples\": {ns},\n  \"sampling_rate_hz\": {},\n  \"component_order\": \"ZNE\",\n  \"dimension_order\": \"NCW\",\n  \"arrays\": {{{arrays}}},\n  \"labels\": {{\"picks\": \"[P sample, S sample], -1 where there is none\", \"event\": \"1 earthquake, 0 noise\"{seq_label}}},\n  \"splits\": {}\n}}\n",
            cfg.sampling_rate,
            splits_json(n)
        );
        write_text(dir.join("dataset.json"), &json)
    }
}

/// Image+waveform pairs.
impl Export for PairedConfig {
    fn check(&self) -> Result<()> {
        if self.height < 8 || self.width < 8 || self.samples < 16 {
            bail!(
                "paired sizes {}×{} and {} samples are too small (at least 8×8 and 16)",
                self.height,
                self.width,
                self.samples
            );
        }
        Ok(())
    }
    fn write_into(&self, dir: &Path, n: usize, seed: u64, opts: &ExportOptions) -> Result<()> {
        let cfg = self;
        let (h, w, ns) = (cfg.height, cfg.width, cfg.samples);
        let mut img = Array::<f32>::new(dir, "images", vec![n, h, w])?;
        let mut refl = Array::<f32>::new(dir, "reflectivity", vec![n, h, w])?;
        let mut wave = Array::<f32>::new(dir, "waveforms", vec![n, 3, ns])?;
        let mut labels = Array::<i32>::new(dir, "labels", vec![n])?;
        let mut picks = Array::<i32>::new(dir, "picks", vec![n, 2])?;
        let mut csv = String::from(
            "index,split,label,lvl_index,n_layers,mean_vp_km_s,trace_P_arrival_sample,trace_S_arrival_sample,vp_km_s\n",
        );
        let generate = |i| paired::generate(cfg, seed, i);
        for_each_sample(dir, n, opts, generate, |i, s, png_dir| {
            img.writer.append(&s.image)?;
            refl.writer.append(&s.reflectivity)?;
            wave.writer.append(&s.waveform)?;
            labels.writer.append(&[s.label])?;
            picks.writer.append(&pick_row(s.p_sample, s.s_sample))?;
            let vps: Vec<String> = s.layers.iter().map(|l| format!("{:.3}", l.vp)).collect();
            writeln!(
                csv,
                "{i},{},{},{},{},{:.4},{},{},{}",
                split_of(i, n),
                s.label,
                opt(s.lvl_index),
                s.layers.len(),
                s.mean_vp,
                opt(s.p_sample),
                opt(s.s_sample),
                vps.join(";")
            )?;
            if i < opts.png {
                let lvl = if s.label == 1 {
                    "low-velocity layer"
                } else {
                    "no low-velocity layer"
                };
                Sections {
                    title: format!("pair_{i:05} ({lvl})"),
                    height: h,
                    width: w,
                    panels: vec![
                        Panel::amplitude("image", &s.image),
                        Panel::amplitude("reflectivity", &s.reflectivity),
                    ],
                    shared_scale: false,
                    panel_height: 260,
                    ..Default::default()
                }
                .write(&png_dir.join(format!("pair_{i:05}_image.png")))?;
                waveform_png(
                    &png_dir.join(format!("pair_{i:05}_waveform.png")),
                    &s.waveform,
                    cfg.sampling_rate,
                    picks_of(s.p_sample, s.s_sample),
                    lvl,
                )?;
            }
            Ok(())
        })?;
        let arrays = [
            img.json(),
            refl.json(),
            wave.json(),
            labels.json(),
            picks.json(),
        ]
        .join(", ");
        img.writer.finish()?;
        refl.writer.finish()?;
        wave.writer.finish()?;
        labels.writer.finish()?;
        picks.writer.finish()?;
        write_text(dir.join("metadata.csv"), &csv)?;
        let json = format!(
            "{{\n  \"kind\": \"paired\",\n  \"generator\": \"seisfuse synth paired\",\n  \"n\": {n},\n  \"seed\": {seed},\n  \"height\": {h},\n  \"width\": {w},\n  \"samples\": {ns},\n  \"sampling_rate_hz\": {},\n  \"image_seconds\": {},\n  \"component_order\": \"ZNE\",\n  \"arrays\": {{{arrays}}},\n  \"labels\": {{\"labels\": {{\"classes\": 2, \"names\": [\"no low-velocity layer\", \"low-velocity layer\"]}}, \"picks\": \"[P sample, S sample], -1 where there is none\"}},\n  \"splits\": {}\n}}\n",
            cfg.sampling_rate,
            cfg.image_seconds,
            splits_json(n)
        );
        write_text(dir.join("dataset.json"), &json)
    }
}

/// Writes the waveform dataset in SeisBench's layout into `dir` (`metadata.csv` +
/// `waveforms.hdf5`, one bucket per chunk of traces, components ZNE, dimension order CW), so
/// `seisbench.data.WaveformDataset(dir)` can read it. The traces are those `write`
/// writes for the same config and seed. Both files are renamed into place together at the end.
pub fn write_waveforms_seisbench(
    dir: &Path,
    cfg: &WaveformConfig,
    n: usize,
    seed: u64,
    force: bool,
) -> Result<()> {
    use crate::data::h5::H5Writer;
    prepare_dir(dir, force)?;
    let ns = cfg.samples;
    let mut h5 = H5Writer::create(&dir.join("waveforms.hdf5"))?;
    h5.string("data_format/component_order", "ZNE")?;
    h5.string("data_format/dimension_order", "CW")?;
    h5.scalar_f64("data_format/sampling_rate", cfg.sampling_rate)?;
    let mut csv = format!("trace_name,{TRACE_COLUMNS}\n");
    for (bucket, start) in (0..n).step_by(CHUNK).enumerate() {
        let end = (start + CHUNK).min(n);
        let batch: Vec<_> = (start..end)
            .into_par_iter()
            .map(|i| waveforms::generate(cfg, seed, i as u64))
            .collect();
        let flat: Vec<f32> = batch.iter().flat_map(|s| s.data.iter().copied()).collect();
        let name = format!("bucket{bucket}");
        h5.dataset(&format!("data/{name}"), &[end - start, 3, ns], &flat)?;
        for (j, s) in batch.iter().enumerate() {
            let i = start + j;
            let columns = trace_columns(s, i, n, cfg);
            writeln!(csv, "\"{name}${j},:3,:{ns}\",{columns}")?;
        }
    }
    let mut staged = crate::atomic::Staged::new();
    staged.add(h5.finish()?);
    let mut meta = crate::atomic::OutputFile::create(&dir.join("metadata.csv"))?;
    std::io::Write::write_all(&mut meta, csv.as_bytes())
        .with_context(|| format!("writing {}", dir.join("metadata.csv").display()))?;
    staged.add(meta);
    staged.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn facies_names_json_matches_the_names() {
        assert_eq!(FACIES_NAMES_JSON, format!("{FACIES_NAMES:?}"));
    }
}
