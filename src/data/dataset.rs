//! Datasets: random access to samples (an input array and a target), over memory-mapped
//! `.npy` files or memory.

use super::npy::NpyFile;
use anyhow::{bail, Result};
use std::path::Path;

/// What a sample is trained to predict.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    None,
    /// One class for the whole sample.
    Class(i32),
    /// One class per input element (segmentation), same spatial shape as the input.
    ClassMap(Vec<i32>),
    /// A dense float target (regression, or pick probabilities after `GaussianPicks`).
    Dense {
        values: Vec<f32>,
        shape: Vec<usize>,
    },
    /// P and S onset samples (fractional allowed), `None` when absent.
    Picks {
        p: Option<f32>,
        s: Option<f32>,
    },
}

/// One sample: an input of `shape` and its target.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub index: usize,
    pub input: Vec<f32>,
    pub shape: Vec<usize>,
    pub target: Target,
}

/// Random access to a fixed number of samples of one input shape.
pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Shape of one input (without the batch axis).
    fn input_shape(&self) -> Vec<usize>;
    /// Writes the input of sample `index` into `input` (of the input shape's size) and returns
    /// its target. Loaders call this with reused buffers.
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<Target>;
    /// Sample `index` in a fresh buffer.
    fn get(&self, index: usize) -> Result<Sample> {
        let shape = self.input_shape();
        let mut input = vec![0f32; shape.iter().product()];
        let target = self.get_into(index, &mut input)?;
        Ok(Sample {
            index,
            input,
            shape,
            target,
        })
    }
}

/// Where the targets of an `NpyDataset` come from.
pub enum TargetSource {
    None,
    /// `[N]` integer classes.
    Class(Vec<i64>),
    /// `[N, ...]` integer class maps (e.g. facies, salt masks).
    ClassMap(NpyFile),
    /// `[N, ...]` float targets (e.g. clean sections, reflectivity).
    Dense(NpyFile),
    /// `[N, 2]` P and S samples, negative for none.
    Picks(Vec<i64>),
}

/// Samples along the first axis of a memory-mapped `.npy` file (`[N, ...]`), with targets
/// from a second file. Inputs are read without a copy of the file; NaN/Inf are errors.
pub struct NpyDataset {
    inputs: NpyFile,
    targets: TargetSource,
    item: Vec<usize>,
}

impl NpyDataset {
    /// Opens `[N, ...]` inputs (any numeric type; converted to f32 on read).
    pub fn open(inputs: impl AsRef<Path>) -> Result<Self> {
        let f = NpyFile::open(inputs.as_ref())?;
        if f.shape().len() < 2 {
            bail!(
                "{}: shape {:?} has no sample axis; expected [N, ...] with at least 2 dimensions",
                f.path().display(),
                f.shape()
            );
        }
        let item = f.shape()[1..].to_vec();
        Ok(NpyDataset {
            inputs: f,
            targets: TargetSource::None,
            item,
        })
    }

    fn n(&self) -> usize {
        self.inputs.shape()[0]
    }

    fn check_first_axis(&self, f: &NpyFile) -> Result<()> {
        if f.shape().first() != Some(&self.n()) {
            bail!(
                "{}: shape {:?} does not have the {} samples of {}",
                f.path().display(),
                f.shape(),
                self.n(),
                self.inputs.path().display()
            );
        }
        Ok(())
    }

    /// A file of one target per sample: `path` opened, its first axis checked against the
    /// inputs', and its shape by `ok` (else the error "{path}: {expected}, found {shape}").
    fn per_sample(
        &self,
        path: &Path,
        ok: impl Fn(&[usize]) -> bool,
        expected: &str,
    ) -> Result<NpyFile> {
        let f = NpyFile::open(path)?;
        self.check_first_axis(&f)?;
        if !ok(f.shape()) {
            bail!("{}: {expected}, found {:?}", f.path().display(), f.shape());
        }
        Ok(f)
    }

    /// One integer class per sample, from a `[N]` file.
    pub fn with_classes(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let f = self.per_sample(path.as_ref(), |s| s.len() == 1, "class labels must be [N]")?;
        self.targets = TargetSource::Class(f.to_i64_vec()?);
        Ok(self)
    }

    /// A class map per sample (integer file of the same shape as the inputs).
    pub fn with_class_maps(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let f = NpyFile::open(path.as_ref())?;
        if f.shape() != self.inputs.shape() {
            bail!(
                "{}: class maps of shape {:?} do not match the inputs' {:?}",
                f.path().display(),
                f.shape(),
                self.inputs.shape()
            );
        }
        if f.dtype().is_float() {
            bail!(
                "{}: class maps must be integers, found {}",
                f.path().display(),
                f.dtype().descr()
            );
        }
        self.targets = TargetSource::ClassMap(f);
        Ok(self)
    }

    /// A dense float target per sample, `[N, ...]`.
    pub fn with_dense(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let f = self.per_sample(path.as_ref(), |_| true, "")?;
        self.targets = TargetSource::Dense(f);
        Ok(self)
    }

    /// P/S picks per sample from an `[N, 2]` integer file (negative = none), as `synth` writes.
    pub fn with_picks(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let n = self.n();
        let f = self.per_sample(
            path.as_ref(),
            |s| s == [n, 2],
            "picks must be [N, 2] (P, S)",
        )?;
        self.targets = TargetSource::Picks(f.to_i64_vec()?);
        Ok(self)
    }

    pub fn inputs(&self) -> &NpyFile {
        &self.inputs
    }
}

impl Dataset for NpyDataset {
    fn len(&self) -> usize {
        self.n()
    }
    fn input_shape(&self) -> Vec<usize> {
        self.item.clone()
    }
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<Target> {
        let n = self.n();
        if index >= n {
            bail!(
                "{}: sample {index} asked for but the file holds {n}",
                self.inputs.path().display()
            );
        }
        let len: usize = self.item.iter().product();
        if input.len() != len {
            bail!("buffer of {} elements for samples of {len}", input.len());
        }
        self.inputs.read_f32_into(index * len, input)?;
        Ok(match &self.targets {
            TargetSource::None => Target::None,
            TargetSource::Class(c) => Target::Class(c[index] as i32),
            TargetSource::ClassMap(f) => {
                let mut v = vec![0f32; len];
                f.read_f32_into(index * len, &mut v)?;
                Target::ClassMap(v.into_iter().map(|x| x as i32).collect())
            }
            TargetSource::Dense(f) => {
                let shape = f.shape()[1..].to_vec();
                let m: usize = shape.iter().product();
                let mut values = vec![0f32; m];
                f.read_f32_into(index * m, &mut values)?;
                Target::Dense { values, shape }
            }
            TargetSource::Picks(p) => {
                let pick = |v: i64| (v >= 0).then_some(v as f32);
                Target::Picks {
                    p: pick(p[2 * index]),
                    s: pick(p[2 * index + 1]),
                }
            }
        })
    }
}

/// Samples held in memory (tests, generated data).
pub struct VecDataset {
    pub shape: Vec<usize>,
    pub inputs: Vec<Vec<f32>>,
    pub targets: Vec<Target>,
}

impl VecDataset {
    pub fn new(shape: Vec<usize>, inputs: Vec<Vec<f32>>, targets: Vec<Target>) -> Result<Self> {
        let len: usize = shape.iter().product();
        if inputs.len() != targets.len() {
            bail!("{} inputs but {} targets", inputs.len(), targets.len());
        }
        if let Some((i, v)) = inputs.iter().enumerate().find(|(_, v)| v.len() != len) {
            bail!(
                "input {i} has {} values; shape {shape:?} needs {len}",
                v.len()
            );
        }
        Ok(VecDataset {
            shape,
            inputs,
            targets,
        })
    }
}

impl Dataset for VecDataset {
    fn len(&self) -> usize {
        self.inputs.len()
    }
    fn input_shape(&self) -> Vec<usize> {
        self.shape.clone()
    }
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<Target> {
        let Some(v) = self.inputs.get(index) else {
            bail!(
                "sample {index} asked for but the dataset holds {}",
                self.inputs.len()
            );
        };
        if input.len() != v.len() {
            bail!(
                "buffer of {} elements for samples of {}",
                input.len(),
                v.len()
            );
        }
        input.copy_from_slice(v);
        Ok(self.targets[index].clone())
    }
}
