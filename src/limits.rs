//! The memory budget: one place that says how much a size taken from a file header, a flag or
//! a time span may cost before anything is allocated for it.
//!
//! Every command checks what it is about to allocate with [`check`] (or [`check_elems`]),
//! naming the file or flag the size came from; the error says the size asked, the limit and
//! how to change it. The limit is `--max-memory` when given ([`set_max_memory`]), else half of
//! the smallest of the machine's memory (`MemTotal` of /proc/meminfo), the cgroup's memory
//! limit and the process's address-space limit (`ulimit -v`); [`FALLBACK`] when none of them
//! can be read.
//!
//! Shape products go through [`numel`] / [`bytes_of`], which fail instead of wrapping.

use anyhow::{bail, Result};
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};

/// The budget when the machine's memory cannot be read: 8 GiB.
pub const FALLBACK: u64 = 8 << 30;

/// 0: not set (use the default).
static MAX_MEMORY: AtomicU64 = AtomicU64::new(0);

/// Sets the budget (`--max-memory`) for the rest of the process.
pub fn set_max_memory(bytes: u64) {
    MAX_MEMORY.store(bytes.max(1), Ordering::Relaxed);
}

/// The budget in bytes and where it comes from (for messages).
pub fn max_memory() -> (u64, &'static str) {
    match MAX_MEMORY.load(Ordering::Relaxed) {
        0 => default_max_memory(),
        b => (b, "--max-memory"),
    }
}

/// Half of the smallest of physical memory, the cgroup limit and the address-space limit.
pub fn default_max_memory() -> (u64, &'static str) {
    let mut best: Option<(u64, &'static str)> = None;
    let mut take = |v: Option<u64>, what: &'static str| {
        if let Some(v) = v.filter(|&v| v > 0) {
            if best.is_none_or(|(b, _)| v < b) {
                best = Some((v, what));
            }
        }
    };
    take(meminfo_total(), "half of the machine's memory");
    take(cgroup_limit(), "half of the cgroup's memory limit");
    take(address_space_limit(), "half of the address-space limit");
    match best {
        Some((v, what)) => (v / 2, what),
        None => (
            FALLBACK,
            "the fallback limit (the machine's memory is unknown)",
        ),
    }
}

fn meminfo_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

fn cgroup_limit() -> Option<u64> {
    // cgroup v2, then v1; "max" or a huge number means none.
    for p in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Ok(t) = std::fs::read_to_string(p) {
            if let Ok(v) = t.trim().parse::<u64>() {
                if v < (1u64 << 60) {
                    return Some(v);
                }
            }
        }
    }
    None
}

#[cfg(unix)]
fn address_space_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } == 0;
    // rlim_t is not u64 everywhere.
    #[allow(clippy::unnecessary_cast)]
    let cur = r.rlim_cur as u64;
    (ok && r.rlim_cur != libc::RLIM_INFINITY).then_some(cur)
}

#[cfg(not(unix))]
fn address_space_limit() -> Option<u64> {
    None
}

/// Bytes for people: "1.5 GiB", "640 KiB", "12 B".
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else if v >= 1e5 {
        format!("{v:.3e} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Errors when `bytes` exceed the budget. `what` names the source of the size: the file and
/// what in it, or the flag(s), e.g. "x.npy: 3 images of 224×224" or "--height 100000".
pub fn check(what: impl Display, bytes: u128) -> Result<()> {
    let (limit, source) = max_memory();
    if bytes > limit as u128 {
        bail!(
            "{what} needs {} of memory, more than the limit of {} ({source}); \
             give smaller sizes, or raise the limit with --max-memory (e.g. --max-memory {})",
            human(bytes),
            human(limit as u128),
            suggest(bytes)
        );
    }
    Ok(())
}

/// A `--max-memory` value just above `bytes`, for the message.
fn suggest(bytes: u128) -> String {
    let gib = bytes.div_ceil(1 << 30);
    if gib > u64::MAX as u128 / 2 {
        "(more than any machine has)".into()
    } else {
        format!("{gib}G")
    }
}

/// [`check`] for `count` elements of `elem_size` bytes each.
pub fn check_elems(what: impl Display, count: u128, elem_size: usize) -> Result<()> {
    check(what, count.saturating_mul(elem_size as u128))
}

/// The product of `dims`, or `None` when it overflows `usize`.
pub fn numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// The product of `dims`, or an error naming `what` when it overflows.
pub fn numel_of(what: impl Display, dims: &[usize]) -> Result<usize> {
    match numel(dims) {
        Some(n) => Ok(n),
        None => bail!("{what}: shape {dims:?} holds more elements than this machine can address"),
    }
}

/// Bytes of `dims` elements of `elem_size` bytes, in u128 (cannot overflow for realistic
/// ranks: at most 128 bits for two 64-bit factors, saturating beyond).
pub fn bytes_of(dims: &[usize], elem_size: usize) -> u128 {
    dims.iter()
        .fold(elem_size as u128, |a, &d| a.saturating_mul(d as u128))
}

/// Parses a `--max-memory` value: bytes with an optional unit (K, M, G, T, with or without
/// "iB"/"B"; powers of 1024), e.g. "512M", "4G", "1.5GiB", "1000000".
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| {
        format!("'{s}' is not a size; give bytes with an optional unit, e.g. 512M, 4G or 1.5GiB")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{s}'; use K, M, G or T (e.g. 4G)"
            ))
        }
    };
    let bytes = v * mult as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!(
            "'{s}' is not a usable memory limit (at least 1 byte)"
        ));
    }
    Ok(bytes as u64)
}

/// Free bytes for an unprivileged user on the file system holding `dir` (None when unknown).
#[cfg(unix)]
pub fn free_disk_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0;
    ok.then(|| (st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
pub fn free_disk_bytes(_dir: &std::path::Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("4G"), Ok(4 << 30));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("-1G").is_err());
        assert!(parse_bytes("4Q").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("1e400").is_err());
    }

    #[test]
    fn products_do_not_wrap() {
        assert_eq!(numel(&[2, 3, 4]), Some(24));
        assert_eq!(numel(&[]), Some(1));
        assert_eq!(numel(&[usize::MAX, 2]), None);
        assert_eq!(numel(&[usize::MAX, 2, 0]), None);
        assert_eq!(numel(&[0, usize::MAX, 2]), Some(0));
        assert_eq!(bytes_of(&[usize::MAX, usize::MAX, 4], 4), u128::MAX);
        assert!(numel_of("x.npy", &[1 << 40, 1 << 40])
            .unwrap_err()
            .to_string()
            .contains("x.npy"));
    }

    #[test]
    fn default_is_a_fraction_of_something() {
        let (b, why) = default_max_memory();
        assert!(b > 0, "{why}");
        assert!(human(3 << 30).contains("3.0 GiB"));
        assert_eq!(human(12), "12 B");
    }
}
