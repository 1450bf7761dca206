//! Finding the CUDA driver library and NVRTC at run time, without a toolkit at build time.
//!
//! cudarc opens its libraries by soname and panics when none is found, so we look first.
//! NVRTC is opened by us (see `nvrtc.rs`) from a full path, which lets seisfuse use NVRTC
//! from a toolkit, from `$CUDA_HOME`, or from NVIDIA's PyPI wheels (`nvidia/cu13/lib`).
//! NCCL is opened the same way (by full path, `src/dist/nccl_lib.rs`): cudarc 0.19's NCCL
//! loader tries `libnccl.so` and `libnccl.so.<CUDA major>` but never NCCL's own soname
//! `libnccl.so.2`, the only name a runtime install or the `nvidia-nccl-cu12` wheel provides.

use std::path::{Path, PathBuf};

/// Sonames tried on the loader path, newest first.
pub const NVRTC_SONAMES: &[&str] = &[
    "libnvrtc.so",
    "libnvrtc.so.13",
    "libnvrtc.so.12",
    "libnvrtc.so.11.2",
    "libnvrtc.so.11.1",
    "libnvrtc.so.11.0",
];

/// Variables that may name a CUDA installation.
const CUDA_ROOTS: &[&str] = &["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"];

/// For each variable of `vars` that is set, in order: its folder joined with each of `subs`
/// ("" is the folder itself).
fn env_dirs(vars: &[&str], subs: &[&str]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for var in vars {
        if let Some(root) = std::env::var_os(var) {
            let root = PathBuf::from(root);
            dirs.extend(subs.iter().map(|s| {
                if s.is_empty() {
                    root.clone()
                } else {
                    root.join(s)
                }
            }));
        }
    }
    dirs
}

/// Directories searched (in order) when NVRTC is not on the loader path.
pub fn nvrtc_search_dirs() -> Vec<PathBuf> {
    let mut dirs = env_dirs(CUDA_ROOTS, &["targets/x86_64-linux/lib", "lib64", "lib"]);
    dirs.push("/usr/local/cuda/targets/x86_64-linux/lib".into());
    dirs.push("/usr/local/cuda/lib64".into());
    for sp in python_site_packages() {
        for sub in [
            "nvidia/cu13/lib",
            "nvidia/cu12/lib",
            "nvidia/cuda_nvrtc/lib",
        ] {
            dirs.push(sp.join(sub));
        }
    }
    dirs
}

/// Python's site-packages folders: the active virtual environment's, then the ones the
/// `python3` on PATH reports. Empty when there is no Python. Asked once per process (NVRTC
/// and NCCL discovery both search there).
pub fn python_site_packages() -> Vec<PathBuf> {
    static DIRS: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    DIRS.get_or_init(|| {
        let mut out = Vec::new();
        if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
            if let Ok(rd) = std::fs::read_dir(Path::new(&venv).join("lib")) {
                for e in rd.flatten() {
                    out.push(e.path().join("site-packages"));
                }
            }
        }
        let script = "import site,sys\nfor p in site.getsitepackages()+[site.getusersitepackages()]: print(p)";
        for py in ["python3", "python"] {
            if let Ok(o) = std::process::Command::new(py).args(["-c", script]).output() {
                if o.status.success() {
                    for line in String::from_utf8_lossy(&o.stdout).lines() {
                        out.push(PathBuf::from(line.trim()));
                    }
                    break;
                }
            }
        }
        out
    })
    .clone()
}

/// Where NVRTC could be opened from: an explicit file, or a name for the loader to resolve.
#[derive(Clone, Debug, PartialEq)]
pub enum LibLocation {
    File(PathBuf),
    Soname(String),
}

impl LibLocation {
    pub fn as_os_str(&self) -> &std::ffi::OsStr {
        match self {
            LibLocation::File(p) => p.as_os_str(),
            LibLocation::Soname(s) => std::ffi::OsStr::new(s),
        }
    }
}

/// Lists NVRTC candidates in the order they are tried: `$SEISFUSE_NVRTC` (a file), the
/// loader path, then the folders of [`nvrtc_search_dirs`].
pub fn nvrtc_candidates() -> Vec<LibLocation> {
    lib_candidates("SEISFUSE_NVRTC", NVRTC_SONAMES, nvrtc_search_dirs(), |n| {
        n.starts_with("libnvrtc.so") && !n.contains("builtins") && !n.contains(".alt.")
    })
}

/// A library's candidates in the order they are tried: the file named by `$env_file`, the
/// `sonames` for the loader to resolve, then the files of `dirs` whose names `accept` (sorted
/// within each folder; folders that cannot be read are passed over).
fn lib_candidates(
    env_file: &str,
    sonames: &[&str],
    dirs: Vec<PathBuf>,
    accept: impl Fn(&str) -> bool,
) -> Vec<LibLocation> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(env_file) {
        out.push(LibLocation::File(PathBuf::from(p)));
    }
    out.extend(
        sonames
            .iter()
            .map(|s| LibLocation::Soname((*s).to_string())),
    );
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&accept))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(LibLocation::File));
    }
    out
}

/// NCCL sonames tried on the loader path: NCCL's own soname first (runtime packages and the
/// PyPI wheels ship only that one), then the development symlink.
pub const NCCL_SONAMES: &[&str] = &["libnccl.so.2", "libnccl.so"];

/// Directories searched (in order) for NCCL when it is not on the loader path:
/// `$NCCL_HOME`/`$NCCL_ROOT` (`lib`, `lib64`), the distribution's library folder
/// (`/usr/lib/x86_64-linux-gnu`), the CUDA folders (`$CUDA_HOME`, `/usr/local/cuda`), and
/// Python's `site-packages/nvidia/nccl/lib` (wheels `nvidia-nccl-cu13` / `nvidia-nccl-cu12`).
pub fn nccl_search_dirs() -> Vec<PathBuf> {
    let mut dirs = env_dirs(
        &["NCCL_HOME", "NCCL_ROOT", "NCCL_DIR"],
        &["lib", "lib64", ""],
    );
    dirs.push(format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH).into());
    dirs.push("/usr/lib64".into());
    let targets = format!("targets/{}-linux/lib", std::env::consts::ARCH);
    dirs.extend(env_dirs(CUDA_ROOTS, &["lib64", "lib", &targets]));
    dirs.push("/usr/local/cuda/lib64".into());
    dirs.push(
        format!(
            "/usr/local/cuda/targets/{}-linux/lib",
            std::env::consts::ARCH
        )
        .into(),
    );
    for sp in python_site_packages() {
        for sub in ["nvidia/nccl/lib", "nvidia/cu13/lib", "nvidia/cu12/lib"] {
            dirs.push(sp.join(sub));
        }
    }
    dirs
}

/// Lists NCCL candidates in the order they are tried: `$SEISFUSE_NCCL` (a file), the loader
/// path ([`NCCL_SONAMES`]), then the `libnccl.so*` files of [`nccl_search_dirs`].
pub fn nccl_candidates() -> Vec<LibLocation> {
    lib_candidates("SEISFUSE_NCCL", NCCL_SONAMES, nccl_search_dirs(), |n| {
        n.starts_with("libnccl.so")
    })
}

/// The file a loaded shared library came from, read from `/proc/self/maps`.
pub fn loaded_path_of(fragment: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(fragment))
        })
        .map(PathBuf::from)
}

/// True when the CUDA driver library can be opened (cudarc would panic otherwise).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the candidate names; no symbol is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}
