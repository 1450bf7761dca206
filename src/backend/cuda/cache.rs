//! The on-disk cache of compiled kernels, keyed by (source hash, arch, NVRTC version, options),
//! so a second start compiles nothing.

use super::nvrtc::Nvrtc;
use super::KernelSource;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Extra NVRTC options used for every kernel (part of the cache key).
pub const NVRTC_OPTIONS: &[&str] = &[];

/// `$SEISFUSE_CACHE_DIR`, else `$XDG_CACHE_HOME/seisfuse/kernels`, else `~/.cache/seisfuse/kernels`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SEISFUSE_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("seisfuse").join("kernels")
}

fn options_hash() -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in NVRTC_OPTIONS.join(" ").bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

pub fn cache_path(src: &KernelSource, arch: u32, nvrtc_version: (i32, i32)) -> PathBuf {
    cache_dir().join(format!(
        "{}-{:016x}-sm{}-nvrtc{}.{}-o{:08x}.cubin",
        src.name,
        src.hash,
        arch,
        nvrtc_version.0,
        nvrtc_version.1,
        options_hash()
    ))
}

/// The CUBIN of `src` for `sm_{arch}`: from the cache when present, else compiled and stored
/// (written to a temporary file and renamed, so concurrent processes never read half a file).
pub fn compiled_cubin(src: &KernelSource, arch: u32) -> Result<Vec<u8>> {
    let nvrtc = Nvrtc::global()?;
    let path = cache_path(src, arch, nvrtc.version);
    if let Ok(bytes) = std::fs::read(&path) {
        if !bytes.is_empty() {
            return Ok(bytes);
        }
    }
    let compiled = nvrtc.compile(src.source, src.file, arch, NVRTC_OPTIONS)?;
    if let Some(dir) = path.parent() {
        if std::fs::create_dir_all(dir).is_ok() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &compiled.cubin).is_ok() {
                std::fs::rename(&tmp, &path)
                    .with_context(|| format!("storing {} in the kernel cache", path.display()))?;
            }
        }
    }
    Ok(compiled.cubin)
}
