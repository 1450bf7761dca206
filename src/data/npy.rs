//! NumPy `.npy` files: memory-mapped reading (format versions 1–3) and writing (version 1).
//!
//! Supported element types: little-endian `f32`, `f64`, `i16`, `i32`, `i64` and `u8`, C order.
//! Fortran order, big-endian data, structured dtypes, truncated files and files longer than
//! their header says are errors that name the file and say how to convert it.
//! An `f32` file on a little-endian machine is read without a copy (`as_f32`).

use crate::atomic::OutputFile;
use crate::tensor::Tensor;
use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Element types a `.npy` file may hold here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDType {
    F32,
    F64,
    I16,
    I32,
    I64,
    U8,
}

impl NpyDType {
    pub fn size(self) -> usize {
        match self {
            NpyDType::U8 => 1,
            NpyDType::I16 => 2,
            NpyDType::F32 | NpyDType::I32 => 4,
            NpyDType::F64 | NpyDType::I64 => 8,
        }
    }
    /// The `descr` string numpy writes for this type.
    pub fn descr(self) -> &'static str {
        match self {
            NpyDType::F32 => "<f4",
            NpyDType::F64 => "<f8",
            NpyDType::I16 => "<i2",
            NpyDType::I32 => "<i4",
            NpyDType::I64 => "<i8",
            NpyDType::U8 => "|u1",
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, NpyDType::F32 | NpyDType::F64)
    }
    fn from_descr(d: &str) -> std::result::Result<Self, String> {
        let (order, kind) = match d.chars().next() {
            Some(c @ ('<' | '>' | '|' | '=')) => (c, &d[1..]),
            _ => ('=', d),
        };
        let t = match kind {
            "f4" => NpyDType::F32,
            "f8" => NpyDType::F64,
            "i2" => NpyDType::I16,
            "i4" => NpyDType::I32,
            "i8" => NpyDType::I64,
            "u1" => NpyDType::U8,
            _ => {
                return Err(format!(
                "element type '{d}' is not supported (supported: <f4, <f8, <i2, <i4, <i8, |u1); \
                     convert with arr.astype('<f4')"
            ))
            }
        };
        if order == '>' && t.size() > 1 {
            return Err(format!(
                "data are big-endian ('{d}'); convert with arr.astype('<{kind}') and save again"
            ));
        }
        if order == '=' && cfg!(target_endian = "big") && t.size() > 1 {
            return Err(format!(
                "native-order '{d}' on a big-endian machine is not supported"
            ));
        }
        Ok(t)
    }
}

/// Element types that can be written to and viewed in a `.npy` file.
pub trait NpyElem: bytemuck::Pod {
    const DTYPE: NpyDType;
}
macro_rules! npy_elem {
    ($($t:ty => $dtype:ident),+ $(,)?) => {
        $(impl NpyElem for $t {
            const DTYPE: NpyDType = NpyDType::$dtype;
        })+
    };
}
npy_elem!(f32 => F32, f64 => F64, i16 => I16, i32 => I32, i64 => I64, u8 => U8);

/// The parsed header of a `.npy` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    pub version: (u8, u8),
    pub dtype: NpyDType,
    pub shape: Vec<usize>,
    /// Byte offset of the first element.
    pub data_offset: usize,
}

impl NpyHeader {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn data_bytes(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(self.dtype.size(), |a, &d| a.checked_mul(d))
    }
}

/// Parses the header at the start of `bytes` (the whole file or at least its header).
/// `name` is used in error messages.
pub fn parse_header(bytes: &[u8], name: &str) -> Result<NpyHeader> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!(
            "{name}: not a .npy file (it must start with the bytes \\x93NUMPY; found {:?})",
            String::from_utf8_lossy(&bytes[..bytes.len().min(6)])
        );
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!(
                    "{name}: truncated .npy header (file is {} bytes)",
                    bytes.len()
                );
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => bail!(
            "{name}: .npy format version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)"
        ),
    };
    let end = start + hlen;
    if bytes.len() < end {
        bail!(
            "{name}: truncated .npy header: it says {hlen} header bytes but the file has {} bytes",
            bytes.len()
        );
    }
    let text = std::str::from_utf8(&bytes[start..end])
        .with_context(|| format!("{name}: .npy header is not valid text"))?;
    if major < 3 && !text.is_ascii() {
        bail!("{name}: .npy version {major} header must be ASCII (version 3 allows UTF-8)");
    }
    let dict = HeaderDict::parse(text).map_err(|e| {
        anyhow::anyhow!(
            "{name}: cannot parse the .npy header {:?}: {e}",
            text.trim_end()
        )
    })?;
    let descr = dict
        .descr
        .ok_or_else(|| anyhow::anyhow!("{name}: .npy header has no 'descr' key"))?;
    let dtype = NpyDType::from_descr(&descr).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    if dict.fortran_order.unwrap_or(false) {
        bail!(
            "{name}: array is stored in Fortran (column-major) order; only C order is read. \
             Convert with np.save(path, np.ascontiguousarray(arr))"
        );
    }
    let shape = dict
        .shape
        .ok_or_else(|| anyhow::anyhow!("{name}: .npy header has no 'shape' key"))?;
    Ok(NpyHeader {
        version: (major, minor),
        dtype,
        shape,
        data_offset: end,
    })
}

/// The three keys of a `.npy` header dictionary.
#[derive(Default)]
struct HeaderDict {
    descr: Option<String>,
    fortran_order: Option<bool>,
    shape: Option<Vec<usize>>,
}

impl HeaderDict {
    /// Parses the Python literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
    fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut p = Lexer {
            s: text.as_bytes(),
            i: 0,
        };
        let mut d = HeaderDict::default();
        p.expect(b'{')?;
        loop {
            p.ws();
            if p.eat(b'}') {
                break;
            }
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            match key.as_str() {
                "descr" => {
                    if p.peek() == Some(b'[') {
                        return Err(
                            "structured dtypes (a list in 'descr') are not supported".into()
                        );
                    }
                    d.descr = Some(p.string()?)
                }
                "fortran_order" => d.fortran_order = Some(p.boolean()?),
                "shape" => d.shape = Some(p.tuple()?),
                other => return Err(format!("unexpected key '{other}'")),
            }
            p.ws();
            if !p.eat(b',') {
                p.ws();
                p.expect(b'}')?;
                break;
            }
        }
        Ok(d)
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        self.ws();
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let s = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(s);
            }
            self.i += 1;
        }
        Err("unterminated string".into())
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        if self.s[self.i..].starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if self.s[self.i..].starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(format!("expected True or False at byte {}", self.i))
        }
    }
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            // numpy on Windows used to write "3L".
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let v: usize = digits
                .parse()
                .map_err(|_| format!("expected a non-negative dimension at byte {start}"))?;
            dims.push(v);
            self.eat(b'L');
            self.ws();
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

/// A memory-mapped `.npy` file.
pub struct NpyFile {
    path: PathBuf,
    mmap: Mmap,
    header: NpyHeader,
}

impl std::fmt::Debug for NpyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpyFile")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish()
    }
}

impl NpyFile {
    /// Maps the file and checks its header against its size.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        let mmap = super::map_file(&path, &name)?;
        let header = parse_header(&mmap, &name)?;
        let need = header
            .data_bytes()
            .ok_or_else(|| anyhow::anyhow!("{name}: shape {:?} is too large", header.shape))?;
        let have = mmap.len() - header.data_offset;
        if have < need {
            bail!(
                "{name}: truncated: shape {:?} of {} needs {need} data bytes but the file holds {have}",
                header.shape,
                header.dtype.descr()
            );
        }
        if have > need {
            bail!(
                "{name}: file holds {have} data bytes but shape {:?} of {} needs {need}: \
                 the header does not match the data",
                header.shape,
                header.dtype.descr()
            );
        }
        Ok(NpyFile { path, mmap, header })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }
    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }
    pub fn dtype(&self) -> NpyDType {
        self.header.dtype
    }
    pub fn numel(&self) -> usize {
        self.header.numel()
    }
    /// The raw little-endian data bytes.
    pub fn data_bytes(&self) -> &[u8] {
        &self.mmap[self.header.data_offset..]
    }

    /// The elements as `T`, without a copy when the map is suitably aligned.
    pub fn as_slice<T: NpyElem>(&self) -> Result<Cow<'_, [T]>> {
        if T::DTYPE != self.header.dtype {
            bail!(
                "{}: holds {} but {} was asked for",
                self.path.display(),
                self.header.dtype.descr(),
                T::DTYPE.descr()
            );
        }
        let bytes = self.data_bytes();
        Ok(match bytemuck::try_cast_slice::<u8, T>(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => {
                let mut v = vec![T::zeroed(); bytes.len() / std::mem::size_of::<T>()];
                bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(bytes);
                Cow::Owned(v)
            }
        })
    }

    /// Zero-copy view of an `f32` file.
    pub fn as_f32(&self) -> Result<Cow<'_, [f32]>> {
        self.as_slice::<f32>()
    }

    /// Converts elements `[start, start + out.len())` to f32 into `out`.
    /// Floating data are checked: NaN or ±Inf is an error naming the file and the element.
    pub fn read_f32_into(&self, start: usize, out: &mut [f32]) -> Result<()> {
        let n = out.len();
        let end = start.checked_add(n).filter(|&e| e <= self.numel());
        if end.is_none() {
            bail!(
                "{}: elements {start}..{} asked for but the file holds {}",
                self.path.display(),
                start + n,
                self.numel()
            );
        }
        let sz = self.header.dtype.size();
        let b = &self.data_bytes()[start * sz..(start + n) * sz];
        macro_rules! conv {
            ($t:ty) => {{
                for (o, c) in out
                    .iter_mut()
                    .zip(b.chunks_exact(std::mem::size_of::<$t>()))
                {
                    *o = <$t>::from_le_bytes(c.try_into().expect("chunk size")) as f32;
                }
            }};
        }
        match self.header.dtype {
            NpyDType::F32 => match bytemuck::try_cast_slice::<u8, f32>(b) {
                // The common case: copy and check in one pass over the mapped data.
                Ok(s) => return copy_checked(s, out, &self.path, start),
                Err(_) => conv!(f32),
            },
            NpyDType::F64 => conv!(f64),
            NpyDType::I16 => conv!(i16),
            NpyDType::I32 => conv!(i32),
            NpyDType::I64 => conv!(i64),
            NpyDType::U8 => {
                for (o, &c) in out.iter_mut().zip(b) {
                    *o = c as f32;
                }
            }
        }
        if self.header.dtype.is_float() {
            check_finite(out, &self.path, start)?;
        }
        Ok(())
    }

    /// Checks that all elements read as `ty` (`bytes` each) fit the memory budget.
    fn check_read(&self, ty: &str, bytes: usize) -> Result<()> {
        crate::limits::check_elems(
            format_args!(
                "{}: reading {} values (shape {:?}) as {ty}",
                self.path.display(),
                self.numel(),
                self.shape()
            ),
            self.numel() as u128,
            bytes,
        )
    }

    /// All elements converted to f32 (checked for NaN/Inf), within the memory budget.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        self.check_read("f32", 4)?;
        let mut v = vec![0f32; self.numel()];
        self.read_f32_into(0, &mut v)?;
        Ok(v)
    }

    /// All elements as i64 (integer files only).
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        self.check_read("i64", 8)?;
        let b = self.data_bytes();
        Ok(match self.header.dtype {
            NpyDType::U8 => b.iter().map(|&x| x as i64).collect(),
            NpyDType::I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            NpyDType::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
                .collect(),
            NpyDType::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            d => bail!(
                "{}: holds floating-point {} where integers were expected",
                self.path.display(),
                d.descr()
            ),
        })
    }

    /// An f32 tensor of the file's shape (any supported type is converted).
    pub fn to_tensor(&self) -> Result<Tensor> {
        Tensor::from_f32(&self.header.shape, self.to_f32_vec()?)
    }
}

/// Copies `src` into `out` and checks for NaN/±Inf in the same pass (see `check_finite`).
pub fn copy_checked(src: &[f32], out: &mut [f32], path: &Path, offset: usize) -> Result<()> {
    out.copy_from_slice(src);
    check_finite(out, path, offset)
}

/// True when every value is finite. A float is NaN or ±Inf exactly when its exponent bits are
/// all ones; adding one to the exponent field then carries into the sign bit. Integer
/// and/add/or over 16 lanes vectorises on any x86-64.
pub fn all_finite(v: &[f32]) -> bool {
    let mut acc = [0u32; 16];
    let mut it = v.chunks_exact(16);
    for c in &mut it {
        let c: &[f32; 16] = c.try_into().expect("16 values");
        for k in 0..16 {
            acc[k] |= ((c[k].to_bits() & 0x7f80_0000) + 0x0080_0000) & 0x8000_0000;
        }
    }
    let tail = it.remainder().iter().all(|x| x.is_finite());
    tail && acc.iter().all(|&a| a == 0)
}

/// Errors on the first NaN or ±Inf in `v`, naming `path` and the element index (`offset` + i).
pub fn check_finite(v: &[f32], path: &Path, offset: usize) -> Result<()> {
    if all_finite(v) {
        return Ok(());
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        bail!(
            "{}: element {} is {} (non-finite samples are not accepted)",
            path.display(),
            offset + i,
            v[i]
        );
    }
    Ok(())
}

/// Reads a whole `.npy` file as an f32 tensor (any supported element type is converted;
/// NaN/Inf are errors).
pub fn read_f32_tensor(path: impl AsRef<Path>) -> Result<Tensor> {
    NpyFile::open(path)?.to_tensor()
}

/// Builds the version-1.0 header for `dtype` and `shape`, padded so the data start on a
/// 64-byte boundary, as numpy does.
pub fn header_bytes(dtype: NpyDType, shape: &[usize]) -> Vec<u8> {
    let shape_s = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        dtype.descr(),
        shape_s
    );
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    dict.extend(std::iter::repeat_n(' ', pad));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes `data` with `shape` as a version-1.0 `.npy` file (C order, little-endian).
/// The file is written under a temporary name and renamed, so a reader never sees half of it,
/// and an error leaves nothing behind.
pub fn write<T: NpyElem>(path: impl AsRef<Path>, shape: &[usize], data: &[T]) -> Result<()> {
    create(path.as_ref(), shape, data)?.commit()
}

/// The complete `.npy` file under its temporary name, for callers that rename several outputs
/// together ([`crate::atomic::Staged`]).
pub fn create<T: NpyElem>(path: &Path, shape: &[usize], data: &[T]) -> Result<OutputFile> {
    super::check_write_len(path, shape, data.len(), "elements")?;
    if cfg!(target_endian = "big") {
        bail!("writing .npy on a big-endian machine is not supported");
    }
    let mut f = OutputFile::create(path)?;
    f.write_all(&header_bytes(T::DTYPE, shape))
        .and_then(|_| f.write_all(bytemuck::cast_slice(data)))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(f)
}

/// Writes a `.npy` file in pieces, for datasets larger than memory: the header carries the
/// final shape, the rows are appended, and `finish` checks the count and renames the file
/// into place. Dropped unfinished (an error), it removes its temporary file.
pub struct NpyWriter<T: NpyElem> {
    path: PathBuf,
    w: OutputFile,
    expected: usize,
    written: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: NpyElem> NpyWriter<T> {
    pub fn create(path: impl AsRef<Path>, shape: &[usize]) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let expected = crate::limits::numel_of(format!("writing {}", path.display()), shape)?;
        let mut w = OutputFile::create(&path)?;
        w.write_all(&header_bytes(T::DTYPE, shape))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(NpyWriter {
            path,
            w,
            expected,
            written: 0,
            _t: std::marker::PhantomData,
        })
    }
    pub fn append(&mut self, data: &[T]) -> Result<()> {
        if self.written + data.len() > self.expected {
            bail!(
                "writing {}: {} elements would exceed the {} the shape allows",
                self.path.display(),
                self.written + data.len(),
                self.expected
            );
        }
        self.w
            .write_all(bytemuck::cast_slice(data))
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.written += data.len();
        Ok(())
    }
    pub fn finish(self) -> Result<()> {
        if self.written != self.expected {
            bail!(
                "writing {}: {} elements written but the shape needs {}",
                self.path.display(),
                self.written,
                self.expected
            );
        }
        self.w.commit()
    }
}

/// Writes an f32 CPU tensor.
pub fn write_tensor(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    match (t.is_cpu(), t.dtype) {
        (true, crate::tensor::DType::F32) => write(path, &t.shape, &t.f32s()?),
        (true, crate::tensor::DType::I32) => write(path, &t.shape, &t.i32s()?),
        _ => bail!(
            "writing {}: only f32 and i32 CPU tensors can be saved as .npy (found {} on {})",
            path.as_ref().display(),
            t.dtype,
            if t.is_cpu() { "cpu" } else { "cuda" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_alignment() {
        for shape in [vec![], vec![5], vec![2, 3, 4]] {
            let h = header_bytes(NpyDType::F32, &shape);
            assert_eq!(h.len() % 64, 0);
            let p = parse_header(&h, "t").unwrap();
            assert_eq!(p.shape, shape);
            assert_eq!(p.dtype, NpyDType::F32);
            assert_eq!(p.data_offset, h.len());
        }
    }

    #[test]
    fn finite_check_by_exponent_bits() {
        let ok = [
            0.0f32,
            -0.0,
            1.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
            -3.5,
        ];
        for n in [1usize, 15, 16, 17, 40] {
            let mut v: Vec<f32> = (0..n).map(|i| ok[i % ok.len()]).collect();
            assert!(all_finite(&v), "{v:?}");
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
                for pos in [0, n / 2, n - 1] {
                    let keep = v[pos];
                    v[pos] = bad;
                    assert!(!all_finite(&v), "{bad} at {pos} of {n}");
                    let e = check_finite(&v, Path::new("f.npy"), 10)
                        .unwrap_err()
                        .to_string();
                    assert!(e.contains(&format!("element {}", 10 + pos)), "{e}");
                    v[pos] = keep;
                }
            }
        }
    }

    #[test]
    fn parses_numpy_variants() {
        let txt = "{'descr': '<i8', 'fortran_order': False, 'shape': (3L, 4L), }";
        let d = HeaderDict::parse(txt).unwrap();
        assert_eq!(d.shape, Some(vec![3, 4]));
        assert_eq!(NpyDType::from_descr("|u1"), Ok(NpyDType::U8));
        assert!(NpyDType::from_descr(">f4")
            .unwrap_err()
            .contains("big-endian"));
        assert!(NpyDType::from_descr("<c8").is_err());
    }
}
