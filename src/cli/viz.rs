//! `seisfuse viz section|waveform`: PNG figures of samples stored in `.npy` files.

use super::output::Outputs;
use crate::data::dat::DatFile;
use crate::data::npy::NpyFile;
use crate::limits;
use crate::outln;
use crate::viz::section::{amplitude_panel, figure_factor, overlay_classes, overlay_mask};
use crate::viz::waveform::{waveform_figure, PickMark, P_COLOR, S_COLOR};
use anyhow::{bail, Result};
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
    // The values, and the figure (3 bytes per pixel, before any enlargement).
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
        }
        What::Waveform { file, picks, .. } => {
            outs.input(file);
            if let Some(p) = picks {
                outs.input(p);
            }
            for p in crate::data::dat::sidecar_paths(file) {
                outs.input(&p);
            }
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
            let mut img = amplitude_panel(&v, h, w)?;
            if let Some(c) = classes {
                let (cv, cs) = item(&c, index, 2, None)?;
                if cs != s {
                    bail!(
                        "{}: item shape {cs:?} differs from the section's {s:?}",
                        c.display()
                    );
                }
                let cl: Vec<i32> = cv.iter().map(|&x| x as i32).collect();
                overlay_classes(&mut img, &cl, 0.45)?;
            }
            if let Some(m) = mask {
                let (mv, ms) = item(&m, index, 2, None)?;
                if ms != s {
                    bail!(
                        "{}: item shape {ms:?} differs from the section's {s:?}",
                        m.display()
                    );
                }
                let mk: Vec<u8> = mv.iter().map(|&x| (x != 0.0) as u8).collect();
                overlay_mask(&mut img, &mk, [20, 20, 20], 0.35)?;
            }
            let f = figure_factor(h, w, 256);
            limits::check_elems(
                format_args!(
                    "{}: a figure of {}×{} pixels (the {h}×{w} section enlarged {f}×)",
                    file.display(),
                    h * f,
                    w * f
                ),
                (h * f) as u128 * (w * f) as u128,
                6,
            )?;
            img.upscale(f).write_png(&out)?;
        }
        What::Waveform {
            file,
            shape,
            index,
            picks,
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
                for (k, color) in [(0, P_COLOR), (1, S_COLOR)] {
                    if pv[k] >= 0.0 {
                        marks.push(PickMark {
                            sample: pv[k] as usize,
                            color,
                        });
                    }
                }
            }
            waveform_figure(&v, s[0], s[1], &marks, 1000, 90)?.write_png(&out)?;
        }
    }
    outln!("wrote {}", out.display())?;
    Ok(())
}
