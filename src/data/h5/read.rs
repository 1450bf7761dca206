//! Reading HDF5 files through `hdf5-reader`, with sizes checked against the memory budget
//! before anything is read and errors that name the file and the object.

use crate::limits;
use anyhow::{bail, Result};
use hdf5_reader::{Dataset, Datatype, Hdf5File, OpenOptions, SliceInfo, SliceInfoElem};
use std::path::{Path, PathBuf};

/// The element types we convert to f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H5Type {
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl H5Type {
    pub fn size(self) -> usize {
        match self {
            H5Type::I8 | H5Type::U8 => 1,
            H5Type::I16 | H5Type::U16 => 2,
            H5Type::F32 | H5Type::I32 | H5Type::U32 => 4,
            H5Type::F64 | H5Type::I64 | H5Type::U64 => 8,
        }
    }

    fn of(d: &Datatype) -> Option<Self> {
        Some(match d {
            Datatype::FloatingPoint { size: 4, .. } => H5Type::F32,
            Datatype::FloatingPoint { size: 8, .. } => H5Type::F64,
            Datatype::FixedPoint { size, signed, .. } => match (size, signed) {
                (1, true) => H5Type::I8,
                (2, true) => H5Type::I16,
                (4, true) => H5Type::I32,
                (8, true) => H5Type::I64,
                (1, false) => H5Type::U8,
                (2, false) => H5Type::U16,
                (4, false) => H5Type::U32,
                (8, false) => H5Type::U64,
                _ => return None,
            },
            _ => return None,
        })
    }
}

/// An open HDF5 file.
pub struct H5File {
    path: PathBuf,
    file: Hdf5File,
}

/// A numeric dataset: its path in the file, shape and element type.
pub struct H5Dataset {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: H5Type,
    ds: Dataset,
}

/// hdf5-reader's error chain in one line.
fn msg(e: hdf5_reader::error::Error) -> String {
    e.to_string()
}

fn is_not_found(e: &hdf5_reader::error::Error) -> bool {
    match e {
        hdf5_reader::error::Error::DatasetNotFound(_)
        | hdf5_reader::error::Error::GroupNotFound(_) => true,
        hdf5_reader::error::Error::Context { source, .. } => is_not_found(source),
        _ => false,
    }
}

/// Reads bounded by the memory budget: a whole read, and any one decoded chunk (at most
/// hdf5-reader's default of 256 MiB).
fn options() -> OpenOptions {
    let (budget, _) = limits::max_memory();
    let budget = usize::try_from(budget).unwrap_or(usize::MAX);
    OpenOptions::default()
        .with_max_read_bytes(budget)
        .with_max_chunk_bytes(budget.min(hdf5_reader::DEFAULT_MAX_CHUNK_BYTES))
}

impl H5File {
    /// Opens `path` and reads its superblock. Every later read is bounded by the memory
    /// budget (decoded chunks and whole reads alike).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let name = path.display();
        // Refuses folders and special files with a clear message first.
        drop(crate::data::open_file(&path)?);
        let opts = options().with_chunk_cache_bytes(16 << 20);
        let file = match Hdf5File::open_with_options(&path, opts) {
            Ok(f) => f,
            Err(e) => bail!("{name}: not a readable HDF5 file: {}", msg(e)),
        };
        Ok(H5File { path, file })
    }

    /// Reads a file image held in memory (tests and fuzzing); `name` stands for its path in
    /// messages.
    pub fn from_bytes(name: impl AsRef<Path>, bytes: &[u8]) -> Result<Self> {
        let path = name.as_ref().to_path_buf();
        match Hdf5File::from_bytes_with_options(bytes, options()) {
            Ok(file) => Ok(H5File { path, file }),
            Err(e) => bail!("{}: not a readable HDF5 file: {}", path.display(), msg(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The scalar string at `object` (fixed or variable length, ASCII or UTF-8), `None` when
    /// there is no such object.
    pub fn string(&self, object: &str) -> Result<Option<String>> {
        let ds = match self.file.dataset(object) {
            Ok(d) => d,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => bail!("{}: {object}: {}", self.path.display(), msg(e)),
        };
        if ds.shape().len() > 1 || ds.shape().iter().any(|&d| d > 1) {
            bail!(
                "{}: {object} should be one string, found shape {:?}",
                self.path.display(),
                ds.shape()
            );
        }
        match ds.read_string() {
            Ok(s) => Ok(Some(s.trim_end_matches('\0').to_string())),
            Err(e) => bail!(
                "{}: {object} should be a string: {}",
                self.path.display(),
                msg(e)
            ),
        }
    }

    /// The numeric dataset at `object` (shape and type from its header; nothing read yet).
    pub fn dataset(&self, object: &str) -> Result<H5Dataset> {
        let name = self.path.display();
        let ds = match self.file.dataset(object) {
            Ok(d) => d,
            Err(e) if is_not_found(&e) => bail!("{name}: no dataset {object}"),
            Err(e) => bail!("{name}: {object}: {}", msg(e)),
        };
        let Some(dtype) = H5Type::of(ds.dtype()) else {
            bail!(
                "{name}: {object} holds {:?}, not numbers (float or integer)",
                ds.dtype()
            );
        };
        let shape = ds
            .shape()
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<usize>, _>>()
            .map_err(|_| anyhow::anyhow!("{name}: {object}: shape {:?} too large", ds.shape()))?;
        limits::numel_of(format_args!("{name}: {object}"), &shape)?;
        Ok(H5Dataset {
            name: object.to_string(),
            shape,
            dtype,
            ds,
        })
    }

    /// Reads all of `d` (`row: None`) or row `row` of its first axis, as f32, with the
    /// shape read. The size is checked against the memory budget first.
    pub fn read_f32(&self, d: &H5Dataset, row: Option<usize>) -> Result<(Vec<f32>, Vec<usize>)> {
        let name = self.path.display();
        let shape: Vec<usize> = match row {
            None => d.shape.clone(),
            Some(r) => {
                if d.shape.is_empty() || r >= d.shape[0] {
                    bail!(
                        "{name}: row {r} of {} of shape {:?} does not exist",
                        d.name,
                        d.shape
                    );
                }
                d.shape[1..].to_vec()
            }
        };
        // The element type as stored plus the f32 copy.
        limits::check(
            format_args!("{name}: {} (shape {:?}, {:?})", d.name, shape, d.dtype),
            limits::bytes_of(&shape, d.dtype.size() + 4),
        )?;
        let sel = match row {
            None => SliceInfo::all(d.shape.len()),
            Some(r) => {
                let mut s = SliceInfo::all(d.shape.len());
                s.selections[0] = SliceInfoElem::Index(r as u64);
                s
            }
        };
        macro_rules! read_as {
            ($t:ty) => {
                match d.ds.read_slice::<$t>(&sel) {
                    Ok(a) => a.iter().map(|&v| v as f32).collect::<Vec<f32>>(),
                    Err(e) => bail!("{name}: reading {}: {}", d.name, msg(e)),
                }
            };
        }
        let v: Vec<f32> = match d.dtype {
            H5Type::F32 => read_as!(f32),
            H5Type::F64 => read_as!(f64),
            H5Type::I8 => read_as!(i8),
            H5Type::I16 => read_as!(i16),
            H5Type::I32 => read_as!(i32),
            H5Type::I64 => read_as!(i64),
            H5Type::U8 => read_as!(u8),
            H5Type::U16 => read_as!(u16),
            H5Type::U32 => read_as!(u32),
            H5Type::U64 => read_as!(u64),
        };
        if Some(v.len()) != limits::numel(&shape) {
            bail!(
                "{name}: {} gave {} values for shape {shape:?}",
                d.name,
                v.len()
            );
        }
        Ok((v, shape))
    }

    /// Names of the members of the group at `group` (sorted), `None` when there is none.
    pub fn members(&self, group: &str) -> Result<Option<Vec<String>>> {
        let g = match self.file.group(group) {
            Ok(g) => g,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => bail!("{}: {group}: {}", self.path.display(), msg(e)),
        };
        match g.member_names() {
            Ok((mut groups, datasets)) => {
                groups.extend(datasets);
                groups.sort();
                Ok(Some(groups))
            }
            Err(e) => bail!("{}: {group}: {}", self.path.display(), msg(e)),
        }
    }
}
