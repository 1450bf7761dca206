//! SFM's raw `.dat` files: little-endian float32 with no header, read like
//! `np.fromfile(path, dtype=np.float32).reshape(shape)`. The shape comes from the caller (the
//! command line) or from a sidecar JSON file beside the data (`x.dat.json` or `x.json`):
//! `{"shape": [N, 224, 224]}` (an optional `"dtype": "float32"` is checked). One dimension
//! may be -1, inferred from the file size, as in numpy's reshape.

use super::dataset::{Dataset, Target};
use super::npy::check_finite;
use crate::atomic::OutputFile;
use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A memory-mapped raw float32 file with a known shape.
pub struct DatFile {
    path: PathBuf,
    mmap: Mmap,
    shape: Vec<usize>,
}

/// The sidecar paths looked for beside `path`, in order.
pub fn sidecar_paths(path: &Path) -> Vec<PathBuf> {
    let mut a = path.as_os_str().to_owned();
    a.push(".json");
    vec![PathBuf::from(a), path.with_extension("json")]
}

/// Reads `"shape": [..]` (and checks `"dtype"` when present) from a sidecar's JSON text.
pub fn parse_sidecar(text: &str, name: &str) -> Result<Vec<i64>> {
    let key = text.find("\"shape\"").ok_or_else(|| {
        anyhow::anyhow!("{name}: no \"shape\" key; expected {{\"shape\": [N, H, W]}}")
    })?;
    let rest = &text[key + 7..];
    let open = rest
        .find('[')
        .ok_or_else(|| anyhow::anyhow!("{name}: \"shape\" must be a list such as [N, 224, 224]"))?;
    let close = rest[open..]
        .find(']')
        .ok_or_else(|| anyhow::anyhow!("{name}: unterminated \"shape\" list"))?;
    let dims = rest[open + 1..open + close]
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim().parse::<i64>().map_err(|_| {
                anyhow::anyhow!("{name}: shape entry {:?} is not an integer", s.trim())
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(k) = text.find("\"dtype\"") {
        let v = &text[k + 7..];
        let ok = ["float32", "<f4", "f4", "float"].iter().any(|d| {
            v.trim_start_matches([' ', ':'])
                .starts_with(&format!("\"{d}\""))
        });
        if !ok {
            bail!("{name}: only \"dtype\": \"float32\" raw files are supported");
        }
    }
    Ok(dims)
}

/// Resolves a shape with at most one -1 against `count` values.
pub fn resolve_shape(dims: &[i64], count: usize, name: &str) -> Result<Vec<usize>> {
    if dims.is_empty() {
        bail!("{name}: empty shape");
    }
    let unknown = dims.iter().filter(|&&d| d == -1).count();
    if unknown > 1 || dims.iter().any(|&d| d < -1) {
        bail!("{name}: shape {dims:?} may hold at most one -1 and no other negative value");
    }
    let mut shape: Vec<usize> = dims.iter().map(|&d| d.max(0) as usize).collect();
    let known_dims: Vec<usize> = dims
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as usize)
        .collect();
    let Some(known) = crate::limits::numel(&known_dims) else {
        bail!(
            "{name}: shape {dims:?} has more elements than this machine can address; \
             the file holds {count} float32 values"
        );
    };
    if unknown == 1 {
        if known == 0 || !count.is_multiple_of(known) {
            bail!(
                "{name}: {count} float32 values cannot be reshaped to {dims:?} \
                 ({count} is not a multiple of {known})"
            );
        }
        let i = dims.iter().position(|&d| d == -1).unwrap_or(0);
        shape[i] = count / known;
    } else if known != count {
        let hint = if dims.len() > 1 {
            let tail = crate::limits::numel(&shape[1..]).unwrap_or(0);
            if tail > 0 && count.is_multiple_of(tail) {
                format!(
                    "; with this file's size the first dimension would be {}",
                    count / tail
                )
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        bail!("{name}: holds {count} float32 values but shape {dims:?} needs {known}{hint}");
    }
    Ok(shape)
}

impl DatFile {
    /// Opens `path` with `shape` (a -1 entry is inferred), or the sidecar's shape when `None`.
    pub fn open(path: impl AsRef<Path>, shape: Option<&[i64]>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        let dims = match shape {
            Some(s) => s.to_vec(),
            None => {
                let side = sidecar_paths(&path).into_iter().find(|p| p.exists()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{name}: a raw .dat file has no header; give its shape (e.g. --shape 100,224,224) \
                         or write a sidecar {} holding {{\"shape\": [N, H, W]}}",
                        sidecar_paths(&path)[0].display()
                    )
                })?;
                let text = std::fs::read_to_string(&side)
                    .with_context(|| format!("reading {}", side.display()))?;
                parse_sidecar(&text, &side.display().to_string())?
            }
        };
        let mmap = super::map_file(&path, &name)?;
        if mmap.len() % 4 != 0 {
            bail!(
                "{name}: {} bytes is not a whole number of float32 values (truncated or not float32)",
                mmap.len()
            );
        }
        let shape = resolve_shape(&dims, mmap.len() / 4, &name)?;
        Ok(DatFile { path, mmap, shape })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn numel(&self) -> usize {
        self.mmap.len() / 4
    }

    /// Elements `[start, start + out.len())`, checked for NaN/Inf.
    pub fn read_f32_into(&self, start: usize, out: &mut [f32]) -> Result<()> {
        let end = start.checked_add(out.len()).filter(|&e| e <= self.numel());
        let Some(end) = end else {
            bail!(
                "{}: elements {start}..{} asked for but the file holds {}",
                self.path.display(),
                start + out.len(),
                self.numel()
            );
        };
        let b = &self.mmap[start * 4..end * 4];
        match bytemuck::try_cast_slice::<u8, f32>(b) {
            Ok(s) if cfg!(target_endian = "little") => out.copy_from_slice(s),
            _ => {
                for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
        }
        check_finite(out, &self.path, start)
    }

    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        crate::limits::check_elems(
            format_args!(
                "{}: reading {} float32 values (shape {:?})",
                self.path.display(),
                self.numel(),
                self.shape
            ),
            self.numel() as u128,
            4,
        )?;
        let mut v = vec![0f32; self.numel()];
        self.read_f32_into(0, &mut v)?;
        Ok(v)
    }

    pub fn to_tensor(&self) -> Result<crate::tensor::Tensor> {
        crate::tensor::Tensor::from_f32(&self.shape, self.to_f32_vec()?)
    }
}

/// Writes `data` as raw little-endian float32 (like `arr.astype('<f4').tofile(path)`) and,
/// when `sidecar`, the shape beside it as `path.json`.
pub fn write(path: impl AsRef<Path>, shape: &[usize], data: &[f32], sidecar: bool) -> Result<()> {
    let path = path.as_ref();
    super::check_write_len(path, shape, data.len(), "values")?;
    let mut f = OutputFile::create(path)?;
    for v in data {
        f.write_all(&v.to_le_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut staged = crate::atomic::Staged::new();
    staged.add(f);
    if sidecar {
        let side = &sidecar_paths(path)[0];
        let mut s = OutputFile::create(side)?;
        s.write_all(format!("{{\"shape\": {shape:?}, \"dtype\": \"float32\"}}\n").as_bytes())
            .with_context(|| format!("writing {}", side.display()))?;
        staged.add(s);
    }
    staged.commit()
}

/// Samples along the first axis of a `.dat` file (`[N, ...]`), without targets.
pub struct DatDataset {
    file: DatFile,
}

impl DatDataset {
    pub fn new(file: DatFile) -> Result<Self> {
        if file.shape().len() < 2 {
            bail!(
                "{}: shape {:?} has no sample axis; expected [N, H, W]",
                file.path().display(),
                file.shape()
            );
        }
        Ok(DatDataset { file })
    }
}

impl Dataset for DatDataset {
    fn len(&self) -> usize {
        self.file.shape()[0]
    }
    fn input_shape(&self) -> Vec<usize> {
        self.file.shape()[1..].to_vec()
    }
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<Target> {
        if index >= self.len() {
            bail!(
                "{}: sample {index} asked for but the file holds {}",
                self.file.path().display(),
                self.len()
            );
        }
        self.file.read_f32_into(index * input.len(), input)?;
        Ok(Target::None)
    }
}
