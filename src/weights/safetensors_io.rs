//! Reading and writing safetensors files.
//!
//! Reading maps the file into memory (memmap2) and validates it once with the `safetensors`
//! crate; tensors are then copied out one at a time, so opening a 1 GB checkpoint to list its
//! names reads only its header. Writing goes to a temporary file beside the target, which is
//! renamed into place only when complete, so a crash never leaves a half-written file.

use crate::tensor::{CpuStorage, Tensor};
use anyhow::{anyhow, bail, Context, Result};
use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name, element type and shape of one tensor stored in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The lower-case name of a safetensors dtype, as printed by `weights inspect` ("F32" → "f32").
pub fn dtype_name(d: Dtype) -> String {
    format!("{d:?}").to_lowercase()
}

/// An open, validated safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    /// Byte offset of the first tensor's data (8 + header length).
    data_start: usize,
    /// (dtype, shape, start, end) by name; offsets relative to `data_start`.
    entries: BTreeMap<String, (Dtype, Vec<usize>, usize, usize)>,
    metadata: HashMap<String, String>,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

impl SafetensorsFile {
    /// Opens and validates `path`. Errors name the file and what is wrong with it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display();
        let file = crate::data::open_file(&path)?;
        let len = file
            .metadata()
            .with_context(|| format!("cannot read the size of {shown}"))?
            .len();
        if len < 8 {
            bail!(
                "{shown} is not a safetensors file: it has {len} bytes, fewer than the 8-byte \
                 header length that every safetensors file starts with"
            );
        }
        // SAFETY: the map is read-only; a file changed by another process while we read it
        // could give wrong values but not undefined behaviour in safe code that copies bytes out.
        let mmap = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {shown}"))?;
        let header_len = u64::from_le_bytes(mmap[..8].try_into().expect("8 bytes")) as usize;
        if header_len as u64 > len - 8 {
            bail!(
                "{shown} is truncated or not a safetensors file: its header claims {header_len} \
                 bytes but the file has only {} after the length field",
                len - 8
            );
        }
        // Full validation: header JSON, offsets contiguous and within the file.
        let st = SafeTensors::deserialize(&mmap).map_err(|e| {
            match explain_invalid(&mmap[8..8 + header_len], mmap.len() - 8 - header_len) {
                Some(why) => anyhow!("{shown} is not a valid safetensors file: {why}"),
                None => {
                    anyhow!("{shown} is not a valid safetensors file (truncated or corrupt?): {e}")
                }
            }
        })?;
        let (n, meta) = SafeTensors::read_metadata(&mmap)
            .map_err(|e| anyhow!("cannot read the header of {shown}: {e}"))?;
        let data_start = 8 + n;
        let mut entries = BTreeMap::new();
        for (name, view) in st.iter() {
            let info = meta
                .info(name)
                .ok_or_else(|| anyhow!("{shown}: tensor {name} listed but has no header entry"))?;
            let (s, e) = info.data_offsets;
            if data_start + e > mmap.len() {
                bail!("{shown} is truncated: tensor {name} ends past the end of the file");
            }
            entries.insert(
                name.to_string(),
                (view.dtype(), view.shape().to_vec(), s, e),
            );
        }
        let metadata = meta.metadata().clone().unwrap_or_default();
        drop(st);
        Ok(SafetensorsFile {
            path,
            mmap,
            data_start,
            entries,
            metadata,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The free-form string metadata of the header (`__metadata__`).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Every tensor, sorted by name.
    pub fn infos(&self) -> Vec<TensorInfo> {
        self.entries
            .iter()
            .map(|(n, (d, s, _, _))| TensorInfo {
                name: n.clone(),
                dtype: *d,
                shape: s.clone(),
            })
            .collect()
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(|s| s.as_str()).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn info(&self, name: &str) -> Option<TensorInfo> {
        self.entries.get(name).map(|(d, s, _, _)| TensorInfo {
            name: name.to_string(),
            dtype: *d,
            shape: s.clone(),
        })
    }

    fn raw(&self, name: &str) -> Result<(Dtype, &[usize], &[u8])> {
        let (d, s, a, b) = self
            .entries
            .get(name)
            .ok_or_else(|| anyhow!("{}: no tensor named {name}", self.path.display()))?;
        Ok((*d, s, &self.mmap[self.data_start + a..self.data_start + b]))
    }

    /// The tensor's values widened or narrowed to f32 (from F32, F64, BF16, F16, I32, I64).
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let (d, _, bytes) = self.raw(name)?;
        Ok(match d {
            Dtype::F32 => le::<4>(bytes).map(f32::from_le_bytes).collect(),
            Dtype::F64 => le::<8>(bytes)
                .map(|b| f64::from_le_bytes(b) as f32)
                .collect(),
            Dtype::BF16 => le::<2>(bytes)
                .map(|b| bf16::from_bits(u16::from_le_bytes(b)).to_f32())
                .collect(),
            Dtype::F16 => le::<2>(bytes)
                .map(|b| f16::from_bits(u16::from_le_bytes(b)).to_f32())
                .collect(),
            Dtype::I32 => le::<4>(bytes)
                .map(|b| i32::from_le_bytes(b) as f32)
                .collect(),
            Dtype::I64 => le::<8>(bytes)
                .map(|b| i64::from_le_bytes(b) as f32)
                .collect(),
            other => bail!(
                "{}: tensor {name} has dtype {}, which cannot be read as floating point \
                 (supported: f32, f64, bf16, f16, i32, i64)",
                self.path.display(),
                dtype_name(other)
            ),
        })
    }

    /// The tensor as an engine `Tensor` on the CPU: F32 and BF16 keep their type, F16 and F64
    /// become F32, I32 stays I32 and I64 becomes I32 (an error if a value does not fit).
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let (d, shape, bytes) = self.raw(name)?;
        let storage = match d {
            Dtype::F32 | Dtype::F16 | Dtype::F64 => CpuStorage::F32(self.read_f32(name)?),
            Dtype::BF16 => CpuStorage::BF16(
                le::<2>(bytes)
                    .map(|b| bf16::from_bits(u16::from_le_bytes(b)))
                    .collect(),
            ),
            Dtype::I32 => CpuStorage::I32(le::<4>(bytes).map(i32::from_le_bytes).collect()),
            Dtype::I64 => {
                let mut v = Vec::with_capacity(bytes.len() / 8);
                for b in le::<8>(bytes) {
                    let x = i64::from_le_bytes(b);
                    v.push(i32::try_from(x).map_err(|_| {
                        anyhow!(
                            "{}: tensor {name} holds the i64 value {x}, which does not fit in i32",
                            self.path.display()
                        )
                    })?);
                }
                CpuStorage::I32(v)
            }
            other => bail!(
                "{}: tensor {name} has dtype {}, which seisfuse does not load \
                 (supported: f32, f64, bf16, f16, i32, i64)",
                self.path.display(),
                dtype_name(other)
            ),
        };
        Tensor::from_cpu(shape, storage)
            .with_context(|| format!("{}: tensor {name}", self.path.display()))
    }

    /// Every tensor, by name.
    pub fn load_all(&self) -> Result<BTreeMap<String, Tensor>> {
        self.entries
            .keys()
            .map(|n| Ok((n.clone(), self.tensor(n)?)))
            .collect()
    }
}

/// Which tensor of a header makes it invalid, and why: the `safetensors` crate's errors do
/// not name it. `data_len` is the number of bytes after the header. None when every entry
/// looks right (the crate's own message is used then).
pub fn explain_invalid(header: &[u8], data_len: usize) -> Option<String> {
    let text = match std::str::from_utf8(header) {
        Ok(t) => t,
        Err(e) => return Some(format!("the header is not UTF-8 text ({e})")),
    };
    let v: serde_json::Value = match serde_json::from_str(text.trim_end()) {
        Ok(v) => v,
        Err(e) => return Some(format!("the header is not valid JSON ({e})")),
    };
    let Some(map) = v.as_object() else {
        return Some("the header is not a JSON object of tensors".into());
    };
    let mut spans: Vec<(u64, u64, &str)> = Vec::new();
    for (name, entry) in map {
        if name == "__metadata__" {
            if !entry
                .as_object()
                .is_some_and(|m| m.values().all(|x| x.is_string()))
            {
                return Some("__metadata__ must map names to strings".into());
            }
            continue;
        }
        let dtype = entry.get("dtype").and_then(|d| d.as_str());
        let size = match dtype {
            Some("BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3") => 1u64,
            Some("I16" | "U16" | "F16" | "BF16") => 2,
            Some("I32" | "U32" | "F32") => 4,
            Some("I64" | "U64" | "F64") => 8,
            Some(other) => return Some(format!("tensor {name}: unknown dtype {other:?}")),
            None => return Some(format!("tensor {name}: no \"dtype\" string")),
        };
        let shape: Option<Vec<u64>> = entry
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect());
        let Some(shape) = shape else {
            return Some(format!(
                "tensor {name}: \"shape\" must be a list of non-negative integers"
            ));
        };
        let offs: Option<Vec<u64>> = entry
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect());
        let Some([begin, end]) = offs.as_deref().and_then(|o| <[u64; 2]>::try_from(o).ok()) else {
            return Some(format!(
                "tensor {name}: \"data_offsets\" must be [begin, end]"
            ));
        };
        let need = shape
            .iter()
            .try_fold(size, |a, &d| a.checked_mul(d))
            .map(|b| b.to_string())
            .unwrap_or_else(|| "more than 2^64".into());
        if end < begin {
            return Some(format!(
                "tensor {name}: data_offsets [{begin}, {end}] end before they begin"
            ));
        }
        if need != (end - begin).to_string() {
            return Some(format!(
                "tensor {name}: shape {shape:?} of {} needs {need} bytes but its data_offsets \
                 [{begin}, {end}] span {}",
                dtype.unwrap_or("?").to_lowercase(),
                end - begin
            ));
        }
        if end > data_len as u64 {
            return Some(format!(
                "tensor {name}: data_offsets [{begin}, {end}] reach past the {data_len} data bytes \
                 of the file (truncated?)"
            ));
        }
        spans.push((begin, end, name));
    }
    spans.sort();
    let mut pos = 0u64;
    for (b, e, name) in &spans {
        if *b != pos {
            return Some(format!(
                "tensor {name}: data_offsets start at {b}, but the previous tensor ends at {pos} \
                 (tensors must be contiguous, without overlaps or holes)"
            ));
        }
        pos = *e;
    }
    if pos != data_len as u64 {
        return Some(format!(
            "the tensors' data end at byte {pos} of {data_len} data bytes (trailing bytes or truncated)"
        ));
    }
    None
}

fn le<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes
        .chunks_exact(N)
        .map(|c| c.try_into().expect("chunk of N bytes"))
}

/// A tensor's bytes ready for the serializer.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_bytes(name: &str, t: &Tensor) -> Result<Bytes> {
    let c = t.to_cpu_storage()?;
    let (dtype, data) = match &c {
        CpuStorage::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        CpuStorage::BF16(v) => (
            Dtype::BF16,
            v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        ),
        CpuStorage::I32(v) => (Dtype::I32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    if t.dtype != c.dtype() {
        bail!(
            "tensor {name}: dtype field {} disagrees with its storage",
            t.dtype
        );
    }
    Ok(Bytes {
        dtype,
        shape: t.shape.clone(),
        data,
    })
}

/// Options for [`save_tensors`].
#[derive(Clone, Debug, Default)]
pub struct SaveOptions {
    /// Replace an existing file (otherwise an existing file is an error).
    pub overwrite: bool,
    /// Free-form string metadata stored in the header.
    pub metadata: HashMap<String, String>,
}

/// Writes named tensors to `path` as safetensors: to a temporary file in the same folder first,
/// renamed into place when complete. Refuses to replace an existing file unless
/// `opts.overwrite`.
pub fn save_tensors<'a, I>(path: impl AsRef<Path>, tensors: I, opts: &SaveOptions) -> Result<()>
where
    I: IntoIterator<Item = (&'a str, &'a Tensor)>,
{
    let path = path.as_ref();
    if path.exists() && !opts.overwrite {
        bail!(
            "{} exists; refusing to overwrite it (ask for overwrite to replace it)",
            path.display()
        );
    }
    let mut items: Vec<(String, Bytes)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, t) in tensors {
        if !seen.insert(name.to_string()) {
            bail!("tensor name {name} given twice");
        }
        items.push((name.to_string(), to_bytes(name, t)?));
    }
    let metadata = if opts.metadata.is_empty() {
        None
    } else {
        Some(opts.metadata.clone())
    };
    let mut buffer =
        safetensors::serialize(items.iter().map(|(n, b)| (n.as_str(), b)), metadata)
            .map_err(|e| anyhow!("cannot serialize tensors for {}: {e}", path.display()))?;
    sort_header(&mut buffer);
    write_atomic(path, &buffer)
}

/// Rewrites the JSON header with its keys in sorted order (the metadata map's order is
/// otherwise random per process), so that the same tensors always give the same bytes. The
/// header keeps its length: same content, padded with spaces as the format allows.
fn sort_header(buffer: &mut [u8]) {
    let Some(n) = buffer
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    else {
        return;
    };
    let Some(h) = buffer.get(8..8 + n) else {
        return;
    };
    // serde_json's map is ordered by key: parsing and printing sorts every object.
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(h) else {
        return;
    };
    let Ok(text) = serde_json::to_string(&v) else {
        return;
    };
    if text.len() <= n {
        let dst = &mut buffer[8..8 + n];
        dst[..text.len()].copy_from_slice(text.as_bytes());
        dst[text.len()..].fill(b' ');
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it to `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = File::create(&tmp)
            .with_context(|| format!("cannot create temporary file {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
