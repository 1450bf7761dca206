//! Weights: safetensors load/save, and name maps for the published SFM and SeisLM checkpoints.
//!
//! - [`SafetensorsFile`] opens a file memory-mapped and hands out tensors by name.
//! - [`load_into`] fills every [`Param`] of a model by its checkpoint name, converting the
//!   stored dtype (f32, bf16, f16, f64) to the fp32 master weights, and reports missing,
//!   unexpected and mis-shaped tensors by name. Optionally it strips a name prefix (SeisLM's
//!   Lightning checkpoints prefix `model.wav2vec2.`) and it matches the two spellings of weight
//!   norm (`weight_g`/`weight_v` and `parametrizations.weight.original0`/`original1`).
//! - [`save_from`] writes a model's parameters.
//! - [`names`] recognises which preset a file holds.
//!
//! Published `.pth`/`.ckpt` checkpoints are converted to safetensors by
//! `tools/convert_checkpoint.py` (see `weights/README.md`).

pub mod names;
pub mod safetensors_io;

pub use names::{detect, Detection, Family};
pub use safetensors_io::{dtype_name, save_tensors, SafetensorsFile, SaveOptions, TensorInfo};

use crate::nn::Parameters;
use crate::tensor::Tensor;
use anyhow::{bail, Context, Result};
use safetensors::tensor::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// How [`load_into_with`] matches file tensors to parameters.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Any missing, unexpected or mis-shaped tensor is an error (otherwise a warning in the
    /// report, and mismatched parameters keep their values).
    pub strict: bool,
    /// A prefix to strip from file names, e.g. `model.wav2vec2.`. File tensors that do not
    /// start with it are not candidates; they are listed in [`LoadReport::outside_prefix`] and
    /// are never an error (a pretraining checkpoint also holds the quantizer and projections).
    pub strip_prefix: Option<String>,
    /// File tensors (after prefix stripping) whose names start with any of these are skipped
    /// without being called unexpected, e.g. [`names::MAE_DECODER_PREFIXES`] to load an SFM
    /// pretraining checkpoint into the encoder strictly. They are listed in
    /// [`LoadReport::ignored`].
    pub ignore: Vec<String>,
    /// Like `ignore`, for names that end with any of these, e.g. `.num_batches_tracked` (a
    /// BatchNorm counter this crate does not keep).
    pub ignore_suffixes: Vec<String>,
}

/// A tensor whose shape in the file differs from the parameter's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub name: String,
    pub expected: Vec<usize>,
    pub found: Vec<usize>,
}

/// What [`load_into`] did, by parameter name.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Parameters filled from the file.
    pub loaded: Vec<String>,
    /// Parameters with no tensor in the file (they keep their values).
    pub missing: Vec<String>,
    /// File tensors (after prefix stripping) that no parameter asked for.
    pub unexpected: Vec<String>,
    /// Parameters whose file tensor has another shape (they keep their values).
    pub shape_mismatches: Vec<ShapeMismatch>,
    /// File tensors whose dtype cannot become f32 (e.g. bool); the parameters keep their values.
    pub bad_dtypes: Vec<(String, String)>,
    /// Parameters converted from a stored dtype other than f32, with that dtype (e.g. "bf16").
    pub converted: Vec<(String, String)>,
    /// File tensors skipped because they lack the prefix to strip.
    pub outside_prefix: Vec<String>,
    /// File tensors skipped because they match `LoadOptions::ignore` or `ignore_suffixes` and no
    /// parameter.
    pub ignored: Vec<String>,
    /// Position tables resampled from the file's grid to the model's
    /// ([`load_from_file_interpolating`]); they are also in `loaded`.
    pub interpolated: Vec<Interpolated>,
}

/// A position-embedding table of a model, [1, extra + gh·gw, dim], that a checkpoint may hold
/// for another grid (another image size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PosTable {
    /// The parameter name, e.g. `pos_embed` or `decoder_pos_embed`.
    pub name: String,
    /// Rows before the grid (1: the cls token's).
    pub extra: usize,
    /// The model's grid (rows, columns).
    pub grid: (usize, usize),
}

/// A position table loaded from another grid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interpolated {
    pub name: String,
    pub from: (usize, usize),
    pub to: (usize, usize),
}

impl std::fmt::Display for Interpolated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the checkpoint's {}×{} grid interpolated to {}×{} (bicubic, as SFM's interpolate_pos_embed)",
            self.name, self.from.0, self.from.1, self.to.0, self.to.1
        )
    }
}

impl LoadReport {
    /// True when every parameter was loaded and the file had nothing else.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shape_mismatches.is_empty()
            && self.bad_dtypes.is_empty()
    }

    /// One line per problem, each naming the tensor.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in &self.missing {
            out.push(format!("missing: {n} (no tensor of that name in the file)"));
        }
        for m in &self.shape_mismatches {
            out.push(format!(
                "shape mismatch: {} expects {:?}, file has {:?}",
                m.name, m.expected, m.found
            ));
        }
        for (n, d) in &self.bad_dtypes {
            out.push(format!(
                "bad dtype: {n} is stored as {d}, which is not a float type"
            ));
        }
        for n in &self.unexpected {
            out.push(format!("unexpected: {n} (no parameter of that name)"));
        }
        out
    }
}

/// Canonical spelling for matching: weight-norm parametrizations become `weight_g`/`weight_v`.
pub fn canonical_name(name: &str) -> String {
    if let Some(stem) = name.strip_suffix(".parametrizations.weight.original0") {
        format!("{stem}.weight_g")
    } else if let Some(stem) = name.strip_suffix(".parametrizations.weight.original1") {
        format!("{stem}.weight_v")
    } else {
        name.to_string()
    }
}

/// Loads `path` into `model` with no prefix stripping. See [`load_into_with`].
pub fn load_into(
    model: &mut dyn Parameters,
    path: impl AsRef<Path>,
    strict: bool,
) -> Result<LoadReport> {
    load_into_with(
        model,
        path,
        &LoadOptions {
            strict,
            ..Default::default()
        },
    )
}

/// Fills every parameter of `model` from the safetensors file at `path`, by name.
///
/// With `opts.strict`, any missing, unexpected, mis-shaped or non-float tensor makes this an
/// error that lists them all, and no parameter is changed. Without it they are reported and
/// everything that matches is loaded.
pub fn load_into_with(
    model: &mut dyn Parameters,
    path: impl AsRef<Path>,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let file = SafetensorsFile::open(path.as_ref())?;
    load_from_file(model, &file, opts)
}

/// [`load_into_with`] for an already opened file.
pub fn load_from_file(
    model: &mut dyn Parameters,
    file: &SafetensorsFile,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let mut report = LoadReport::default();
    // canonical name → file name
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for n in file.names() {
        let stripped = match &opts.strip_prefix {
            Some(p) if !p.is_empty() => match n.strip_prefix(p.as_str()) {
                Some(s) => s,
                None => {
                    report.outside_prefix.push(n.to_string());
                    continue;
                }
            },
            _ => n,
        };
        let key = canonical_name(stripped);
        if let Some(prev) = by_name.insert(key.clone(), n.to_string()) {
            bail!(
                "{}: tensors {prev} and {n} both map to the parameter name {key}",
                file.path().display()
            );
        }
    }

    // First pass: match names and shapes without touching the model.
    let mut plan: HashMap<String, String> = HashMap::new(); // param name → file name
    let mut used = std::collections::HashSet::new();
    model.visit("", &mut |name, p| {
        let key = canonical_name(name);
        match by_name.get(&key) {
            None => report.missing.push(name.to_string()),
            Some(fname) => {
                used.insert(key);
                let info = file.info(fname).expect("listed name");
                if info.shape != p.value.shape {
                    report.shape_mismatches.push(ShapeMismatch {
                        name: name.to_string(),
                        expected: p.value.shape.clone(),
                        found: info.shape.clone(),
                    });
                } else if !matches!(
                    info.dtype,
                    Dtype::F32 | Dtype::F64 | Dtype::BF16 | Dtype::F16
                ) {
                    report
                        .bad_dtypes
                        .push((name.to_string(), dtype_name(info.dtype)));
                } else {
                    if info.dtype != Dtype::F32 {
                        report
                            .converted
                            .push((name.to_string(), dtype_name(info.dtype)));
                    }
                    plan.insert(name.to_string(), fname.clone());
                }
            }
        }
        Ok(())
    })?;
    for (key, fname) in &by_name {
        if !used.contains(key) {
            // BatchNorm's step counter (`*.num_batches_tracked`, int64 in PyTorch state dicts)
            // is bookkeeping, not a weight: it only matters with momentum=None.
            if key.ends_with(".num_batches_tracked")
                || opts.ignore.iter().any(|p| key.starts_with(p.as_str()))
                || opts
                    .ignore_suffixes
                    .iter()
                    .any(|p| key.ends_with(p.as_str()))
            {
                report.ignored.push(fname.clone());
            } else {
                report.unexpected.push(fname.clone());
            }
        }
    }

    if opts.strict && !report.is_exact() {
        let problems = report.problems();
        bail!(
            "{} does not match the model ({} problem{}):\n  {}",
            file.path().display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        );
    }

    // Second pass: read and check every value before changing the model (a NaN or an
    // infinity in a checkpoint makes every output of the model NaN).
    let mut values: HashMap<String, Vec<f32>> = HashMap::new();
    for (name, fname) in &plan {
        let v = file.read_f32(fname)?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            bail!(
                "{}: tensor {fname} holds {} at element {i} ({} non-finite values in all); \
                 the checkpoint is damaged or was saved from a diverged run",
                file.path().display(),
                v[i],
                v.iter().filter(|x| !x.is_finite()).count()
            );
        }
        values.insert(name.clone(), v);
    }
    model.visit("", &mut |name, p| {
        if let Some(values) = values.remove(name) {
            write_param(p, values)?;
            report.loaded.push(name.to_string());
        }
        Ok(())
    })?;
    Ok(report)
}

/// Overwrites a parameter's value in place (it may be a view of a parameter store, on any
/// device) and its compute copy, if it keeps one.
fn write_param(p: &mut crate::nn::Param, values: Vec<f32>) -> Result<()> {
    let dev = p.value.device();
    let src = Tensor::from_f32(&p.value.shape, values)?.to_device(&dev)?;
    dev.backend().copy(&mut p.value, &src)?;
    if let Some(c) = &mut p.compute {
        dev.run().cast(c, &p.value)?;
    }
    Ok(())
}

/// A model seen without some of its parameters.
struct Without<'a> {
    inner: &'a mut dyn Parameters,
    skip: &'a [String],
}

impl Parameters for Without<'_> {
    fn visit(&mut self, prefix: &str, f: &mut crate::nn::ParamVisitor) -> Result<()> {
        let skip = self.skip;
        self.inner.visit(prefix, &mut |n, p| {
            if skip.iter().any(|s| s == n) {
                Ok(())
            } else {
                f(n, p)
            }
        })
    }
}

/// [`load_from_file`], and each table of `tables` that the file holds for another grid is
/// resampled to the model's grid as SFM-Finetune does it (MAE's `interpolate_pos_embed`: cls
/// rows kept, grid rows bicubic, `align_corners=False`; see
/// [`crate::models::pos_embed::interpolate_pos_embed`]) and listed in
/// [`LoadReport::interpolated`]. The file's grid is square when its row count is a perfect
/// square, else the factorisation with the model's aspect ratio. A table of another width or
/// rank is left to the loader (a shape mismatch). With `opts.strict`, an error changes nothing.
pub fn load_from_file_interpolating(
    model: &mut dyn Parameters,
    file: &SafetensorsFile,
    opts: &LoadOptions,
    tables: &[PosTable],
) -> Result<LoadReport> {
    let prefix = opts.strip_prefix.clone().unwrap_or_default();
    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    model.visit("", &mut |n, p| {
        if tables.iter().any(|t| t.name == n) {
            shapes.insert(n.to_string(), p.value.shape.clone());
        }
        Ok(())
    })?;
    let mut resampled: Vec<(Interpolated, Vec<f32>)> = Vec::new();
    for t in tables {
        let Some(shape) = shapes.get(&t.name) else {
            bail!("the model has no position table named {}", t.name);
        };
        let fname = format!("{prefix}{}", t.name);
        let Some(info) = file.info(&fname) else {
            continue; // missing: the loader reports it
        };
        let dim = shape[shape.len() - 1];
        let same_layout = shape.len() == 3
            && info.shape.len() == 3
            && info.shape[0] == 1
            && info.shape[2] == dim
            && info.shape[1] > t.extra;
        if info.shape == *shape || !same_layout {
            continue;
        }
        let rows = info.shape[1] - t.extra;
        let Some(from) = crate::models::pos_embed::infer_grid(rows, t.grid) else {
            bail!(
                "{}: {fname} {:?} holds {rows} grid positions, which is neither a square grid nor one of the model's {}×{} aspect; cannot interpolate it",
                file.path().display(),
                info.shape,
                t.grid.0,
                t.grid.1
            );
        };
        let values = file.read_f32(&fname)?;
        if values.iter().any(|x| !x.is_finite()) {
            bail!(
                "{}: tensor {fname} holds non-finite values; the checkpoint is damaged",
                file.path().display()
            );
        }
        let new =
            crate::models::pos_embed::interpolate_pos_embed(&values, dim, t.extra, from, t.grid)
                .with_context(|| format!("{}: interpolating {fname}", file.path().display()))?;
        resampled.push((
            Interpolated {
                name: t.name.clone(),
                from,
                to: t.grid,
            },
            new,
        ));
    }
    let skip: Vec<String> = resampled.iter().map(|(i, _)| i.name.clone()).collect();
    let mut opts = opts.clone();
    // The resampled tables' file tensors are used, not unexpected.
    opts.ignore.extend(skip.iter().cloned());
    let mut report = load_from_file(
        &mut Without {
            inner: &mut *model,
            skip: &skip,
        },
        file,
        &opts,
    )?;
    report
        .ignored
        .retain(|n| !skip.iter().any(|s| *n == format!("{prefix}{s}")));
    model.visit("", &mut |n, p| {
        if let Some((i, v)) = resampled.iter().find(|(i, _)| i.name == n) {
            write_param(p, v.clone())?;
            report.loaded.push(n.to_string());
            report.interpolated.push(i.clone());
        }
        Ok(())
    })?;
    Ok(report)
}

/// Writes every parameter of `model` (fp32 values, under their checkpoint names) to `path`.
/// Refuses to replace an existing file unless `overwrite`.
pub fn save_from(
    model: &mut dyn Parameters,
    path: impl AsRef<Path>,
    overwrite: bool,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    model.visit("", &mut |name, p| {
        tensors.push((name.to_string(), p.value.to_device(&crate::Device::Cpu)?));
        Ok(())
    })?;
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    metadata.insert(
        "producer".to_string(),
        format!("seisfuse {}", env!("CARGO_PKG_VERSION")),
    );
    save_tensors(
        path,
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &SaveOptions {
            overwrite,
            metadata,
        },
    )
}
