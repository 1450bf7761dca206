//! A minimal `.npy` reader and writer for little-endian float arrays, C order.
//!
//! STOPGAP: the data layer (`src/data/npy.rs`, another branch) owns the real reader (memmap,
//! more dtypes). This one exists only so that the mel CLI and the dsp tests work before it is
//! merged; replace its uses with the data layer's and delete this file then.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

/// Parses a `.npy` byte buffer holding `<f4` (or `<f8`, narrowed) data: (shape, values).
pub fn parse_f32(bytes: &[u8], what: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{what}: not a .npy file (no \\x93NUMPY magic)");
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!("{what}: truncated .npy header");
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => bail!("{what}: unsupported .npy version {v}"),
    };
    let header = bytes
        .get(start..start + hlen)
        .with_context(|| format!("{what}: truncated .npy header"))?;
    let header = std::str::from_utf8(header).with_context(|| format!("{what}: header not text"))?;
    let field = |key: &str| -> Result<&str> {
        let i = header
            .find(&format!("'{key}'"))
            .with_context(|| format!("{what}: .npy header lacks '{key}'"))?;
        Ok(header[i + key.len() + 2..]
            .trim_start()
            .trim_start_matches(':')
            .trim_start())
    };
    let descr = field("descr")?;
    let elem = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        bail!(
            "{what}: dtype {} is not supported; store the array as float32 (<f4)",
            descr.split(',').next().unwrap_or("")
        );
    };
    if field("fortran_order")?.starts_with("True") {
        bail!("{what}: Fortran-order arrays are not supported; save with np.ascontiguousarray");
    }
    let sh = field("shape")?;
    let inner = sh
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .with_context(|| format!("{what}: cannot read the shape in the .npy header"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("{what}: bad shape ({inner}) in the .npy header"))?;
    let n: usize = shape.iter().product();
    let data = &bytes[start + hlen..];
    if data.len() < n * elem {
        bail!(
            "{what}: shape {shape:?} needs {} bytes of data, the file holds {} (truncated?)",
            n * elem,
            data.len()
        );
    }
    let values = if elem == 4 {
        data[..n * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        data[..n * 8]
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect()
    };
    Ok((shape, values))
}

pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_f32(&bytes, &path.display().to_string())
}

/// The bytes of a version-1.0 `.npy` file holding `<f4` values of `shape`.
pub fn encode_f32(shape: &[usize], values: &[f32]) -> Result<Vec<u8>> {
    let n: usize = shape.iter().product();
    if n != values.len() {
        bail!("shape {shape:?} needs {n} values, found {}", values.len());
    }
    let dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
    let dims = if shape.len() == 1 {
        dims.trim_end().to_string()
    } else {
        dims.trim_end_matches(", ").to_string()
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * n);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes through a temporary file renamed into place (no half-written output on a crash).
pub fn write_f32(path: &Path, shape: &[usize], values: &[f32]) -> Result<()> {
    let bytes = encode_f32(shape, values)?;
    let tmp = path.with_extension("npy.tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&bytes)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all().ok();
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
