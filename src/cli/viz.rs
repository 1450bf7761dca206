//! `seisfuse viz section|waveform`: PNG figures of samples stored in `.npy` files.

use super::output::Outputs;
use crate::data::dat::DatFile;
use crate::data::npy::NpyFile;
use crate::limits;
use crate::outln;
use crate::plot::{Panel, Pick, Sections, Waveforms};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// A section from a [N, H, W] or [H, W] array, optionally with a class map or a mask.
    Section {
        /// The .npy file of sections (or an SFM raw float32 .dat file, see --shape).
        file: PathBuf,
        /// Shape of a .dat file, e.g. 100,224,224 (-1 for one inferred dimension); without
        /// it the shape is read from a sidecar FILE.json.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        shape: Option<Vec<i64>>,
        /// Which sample (first axis).
        #[arg(long, default_value_t = 0)]
        index: usize,
        /// A .npy of class labels of the same shape, drawn as coloured overlay.
        #[arg(long)]
        classes: Option<PathBuf>,
        /// A .npy of 0/1 masks of the same shape, drawn with an outline.
        #[arg(long)]
        mask: Option<PathBuf>,
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite --out if it exists.
        #[arg(long)]
        force: bool,
    },
    /// A waveform from a [N, C, S] or [C, S] array, optionally with picks.
    Waveform {
        /// The .npy file of waveforms (or a raw float32 .dat file, see --shape).
        file: PathBuf,
        /// Shape of a .dat file, e.g. 10,3,3001.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        shape: Option<Vec<i64>>,
        #[arg(long, default_value_t = 0)]
        index: usize,
        /// A .npy of [N, 2] (P, S) pick samples, -1 for none (as `synth` writes).
        #[arg(long)]
        picks: Option<PathBuf>,
        /// Samples per second, for a time axis in seconds; by default the
        /// `sampling_rate_hz` of a `dataset.json` beside the file (as `synth` writes),
        /// otherwise the axis counts samples.
        #[arg(long, allow_negative_numbers = true)]
        sampling_rate: Option<f64>,
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite --out if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// Sample `index` of a file whose items have `item_rank` dimensions (the file may hold one
/// item without the leading axis). Returns the item's values and its shape.
fn item(
    path: &Path,
    index: usize,
    item_rank: usize,
    dat_shape: Option<&[i64]>,
) -> Result<(Vec<f32>, Vec<usize>)> {
    enum Source {
        Npy(NpyFile),
        Dat(DatFile),
    }
    let is_dat = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dat"));
    let f = if is_dat {
        Source::Dat(DatFile::open(path, dat_shape)?)
    } else {
        Source::Npy(NpyFile::open(path)?)
    };
    let shape = match &f {
        Source::Npy(f) => f.shape().to_vec(),
        Source::Dat(f) => f.shape().to_vec(),
    };
    let (count, item_shape) = if shape.len() == item_rank {
        (1, shape.clone())
    } else if shape.len() == item_rank + 1 {
        (shape[0], shape[1..].to_vec())
    } else {
        bail!(
            "{}: shape {shape:?} is neither one item of {item_rank} dimensions nor a stack of them",
            path.display()
        );
    };
    if index >= count {
        bail!(
            "{}: --index {index} but the file holds {count} items",
            path.display()
        );
    }
    let len = limits::numel_of(path.display(), &item_shape)?;
    if len == 0 {
        bail!(
            "{}: items of shape {item_shape:?} are empty; there is nothing to draw",
            path.display()
        );
    }
    // The values, and a class map or mask converted from them (the figure's size is bounded
    // by its layout, not by the item).
    limits::check_elems(
        format_args!("{}: item {index} of shape {item_shape:?}", path.display()),
        len as u128,
        4 + 3,
    )?;
    let mut v = vec![0f32; len];
    match &f {
        Source::Npy(f) => f.read_f32_into(index * len, &mut v)?,
        Source::Dat(f) => f.read_f32_into(index * len, &mut v)?,
    }
    Ok((v, item_shape))
}

pub fn run(args: Args) -> Result<()> {
    // The output is checked before anything is read: not an input, its folder writable, no
    // existing file replaced without --force.
    let (out, force) = match &args.what {
        What::Section { out, force, .. } | What::Waveform { out, force, .. } => {
            (out.clone(), *force)
        }
    };
    let mut outs = Outputs::new(force);
    match &args.what {
        What::Section {
            file,
            classes,
            mask,
            ..
        } => {
            outs.input(file);
            for p in [classes, mask].into_iter().flatten() {
                outs.input(p);
            }
            for p in crate::data::dat::sidecar_paths(file) {
                outs.input(&p);
            }
            for p in [Some(file), classes.as_ref()].into_iter().flatten() {
                outs.input(&crate::atomic::parent_of(p).join("dataset.json"));
            }
        }
        What::Waveform {
            file,
            picks,
            sampling_rate,
            ..
        } => {
            if let Some(r) = sampling_rate {
                if !(r.is_finite() && *r > 0.0) {
                    bail!("--sampling-rate {r}: must be a positive number of samples per second");
                }
            }
            outs.input(file);
            if let Some(p) = picks {
                outs.input(p);
            }
            for p in crate::data::dat::sidecar_paths(file) {
                outs.input(&p);
            }
            outs.input(&crate::atomic::parent_of(file).join("dataset.json"));
        }
    }
    outs.file("--out", &out)?;
    match args.what {
        What::Section {
            file,
            shape,
            index,
            classes,
            mask,
            ..
        } => {
            let (v, s) = item(&file, index, 2, shape.as_deref())?;
            let (h, w) = (s[0], s[1]);
            let mut cl: Vec<i32> = Vec::new();
            let mut mk: Vec<u8> = Vec::new();
            let mut class_names = Vec::new();
            let mut mask_label = "mask".to_string();
            if let Some(c) = &classes {
                let (cv, cs) = item(c, index, 2, None)?;
                if cs != s {
                    bail!(
                        "{}: item shape {cs:?} differs from the section's {s:?}",
                        c.display()
                    );
                }
                cl = cv.iter().map(|&x| x as i32).collect();
                class_names = label_names(c);
            }
            if let Some(m) = &mask {
                let (mv, ms) = item(m, index, 2, None)?;
                if ms != s {
                    bail!(
                        "{}: item shape {ms:?} differs from the section's {s:?}",
                        m.display()
                    );
                }
                mk = mv.iter().map(|&x| (x != 0.0) as u8).collect();
                mask_label = stem(m);
            }
            let mut panel = Panel::amplitude(format!("{}, item {index}", name(&file)), &v);
            if classes.is_some() {
                panel = panel.with_classes(&cl);
            }
            if mask.is_some() {
                panel = panel.with_mask(&mk);
            }
            Sections {
                height: h,
                width: w,
                panels: vec![panel],
                class_names,
                mask_label,
                panel_height: 480,
                ..Default::default()
            }
            .write(&out)
            .with_context(|| format!("{}: the figure {}", file.display(), out.display()))?;
        }
        What::Waveform {
            file,
            shape,
            index,
            picks,
            sampling_rate,
            ..
        } => {
            let (v, s) = item(&file, index, 2, shape.as_deref())?;
            if s[0] > 64 {
                bail!(
                    "{}: items of shape {s:?} have {} components; a waveform figure draws one \
                     band per component (at most 64): is this a [N, C, S] array?",
                    file.display(),
                    s[0]
                );
            }
            let mut marks = Vec::new();
            if let Some(p) = picks {
                let (pv, ps) = item(&p, index, 1, None)?;
                if ps != [2] {
                    bail!(
                        "{}: expected [N, 2] (P, S) picks, found items of {ps:?}",
                        p.display()
                    );
                }
                for (k, phase) in [(0, "P"), (1, "S")] {
                    if pv[k] >= 0.0 {
                        marks.push(Pick::truth(phase, pv[k] as f64));
                    }
                }
            }
            let rate = sampling_rate.or_else(|| dataset_rate(&file));
            Waveforms {
                title: format!("{}, item {index}", name(&file)),
                data: &v,
                channels: s[0],
                samples: s[1],
                sampling_rate: rate,
                picks: marks,
                ..Default::default()
            }
            .write(&out)
            .with_context(|| format!("{}: the figure {}", file.display(), out.display()))?;
        }
    }
    outln!("wrote {}", out.display())?;
    Ok(())
}

/// The file name of `path`, for a figure's title.
fn name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The file name of `path` without its extension ("salt" for salt.npy).
fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mask".into())
}

/// The `dataset.json` that `synth` writes beside its arrays, if there is one that parses.
fn dataset_json(file: &Path) -> Option<serde_json::Value> {
    let p = crate::atomic::parent_of(file).join("dataset.json");
    // A metadata file, small; anything large or odd is ignored.
    let meta = std::fs::metadata(&p).ok()?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return None;
    }
    serde_json::from_slice(&std::fs::read(&p).ok()?).ok()
}

/// Class names of a label array from `dataset.json` (`labels.<stem>.names`), or none.
fn label_names(file: &Path) -> Vec<String> {
    let Some(j) = dataset_json(file) else {
        return Vec::new();
    };
    j["labels"][stem(file)]["names"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The sampling rate from `dataset.json` (`sampling_rate_hz`), if positive.
fn dataset_rate(file: &Path) -> Option<f64> {
    dataset_json(file)?["sampling_rate_hz"]
        .as_f64()
        .filter(|r| r.is_finite() && *r > 0.0)
}
