//! Running the binary as a careless or hostile user would: under an address-space limit (an
//! unchecked allocation aborts instead of swapping the machine), with a time limit, and
//! recording every file of the case's folder and of the input corpus before and after.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Address space of every run: far below what the unchecked allocations of the findings asked
/// for (tens of GB to TB), far above what a tiny model needs.
pub const ADDRESS_SPACE: u64 = 3 << 30;
/// Largest file a run may write (RLIMIT_FSIZE).
pub const FILE_SIZE: u64 = 256 << 20;
/// Wall-clock limit of one run.
pub const TIME_LIMIT: Duration = Duration::from_secs(90);

/// The binary under test: `SEISFUSE_HOSTILE_BIN` (to run the suite against another build, e.g.
/// the one before a fix) or the one cargo built.
pub fn binary() -> PathBuf {
    std::env::var_os("SEISFUSE_HOSTILE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_seisfuse")))
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code, or None when a signal ended it.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Outcome {
    /// A panic (101), an abort or any other signal (an allocation failure is SIGABRT), a
    /// timeout, or the messages of one.
    pub fn crash(&self) -> Option<String> {
        if self.timed_out {
            return Some(format!("timed out after {:?}", self.elapsed));
        }
        if let Some(s) = self.signal {
            return Some(format!("killed by signal {s}"));
        }
        if self.code == Some(101) {
            return Some("panicked (exit 101)".into());
        }
        for bad in [
            "panicked at",
            "memory allocation of",
            "RUST_BACKTRACE",
            "stack backtrace",
        ] {
            if self.stderr.contains(bad) {
                return Some(format!("stderr says \"{bad}\""));
            }
        }
        None
    }
}

/// Runs `program args` in `cwd` under the limits. `shell`: run `bash -c args[0]` instead.
pub fn run(args: &[OsString], cwd: &Path, env: &[(&str, &str)], shell: bool) -> Outcome {
    run_with(args, cwd, env, shell, false)
}

/// [`run`] with standard output a pipe whose reading end is closed before the program writes:
/// its first write fails with EPIPE, as under `seisfuse … | head -1` once head has exited.
pub fn run_closed_stdout(args: &[OsString], cwd: &Path, env: &[(&str, &str)]) -> Outcome {
    run_with(args, cwd, env, false, true)
}

fn run_with(
    args: &[OsString],
    cwd: &Path,
    env: &[(&str, &str)],
    shell: bool,
    close_stdout: bool,
) -> Outcome {
    let mut cmd = if shell {
        let mut c = Command::new("bash");
        c.arg("-c").args(args);
        c.env("SEISFUSE", binary());
        c
    } else {
        let mut c = Command::new(binary());
        c.args(args);
        c
    };
    cmd.current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "0")
        .env("SEISFUSE_CACHE_DIR", cwd.join(".kernel-cache"))
        .env_remove("SEISFUSE_PROGRESS_SECS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE as libc::rlim_t,
                rlim_max: ADDRESS_SPACE as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Runaway output ends with SIGXFSZ instead of filling the disk.
            let fsize = libc::rlimit {
                rlim_cur: FILE_SIZE as libc::rlim_t,
                rlim_max: FILE_SIZE as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &fsize) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn the binary");
    // Drain both pipes in threads so that a chatty run cannot block on a full pipe.
    let out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let to = if close_stdout {
        drop(out);
        std::thread::spawn(Vec::new)
    } else {
        let mut out = out;
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        })
    };
    let te = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > TIME_LIMIT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&to.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&te.join().unwrap_or_default()).into_owned();
    Outcome {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        timed_out,
        elapsed: start.elapsed(),
    }
}

/// Every file under `dir` (relative path → size, modification time and a hash of the bytes),
/// folders as entries of their own. Files larger than 64 MiB are hashed by size only.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
        if rel.starts_with(".kernel-cache") {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            out.insert(rel, "dir".into());
            walk(root, &p, out);
        } else {
            let h = if m.len() <= 64 << 20 {
                std::fs::read(&p).map(|b| fnv(&b)).unwrap_or(0)
            } else {
                0
            };
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            out.insert(
                rel,
                format!("{} bytes, mtime {mtime}, fnv {h:016x}", m.len()),
            );
        }
    }
}

/// FNV-1a, enough to notice a changed file.
pub fn fnv(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// What differs between two snapshots, one line each.
pub fn diff(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (p, v) in before {
        match after.get(p) {
            None => d.push(format!("removed {}", p.display())),
            Some(w) if w != v => d.push(format!("changed {} ({v} → {w})", p.display())),
            _ => {}
        }
    }
    for p in after.keys() {
        if !before.contains_key(p) {
            d.push(format!("created {}", p.display()));
        }
    }
    d
}
