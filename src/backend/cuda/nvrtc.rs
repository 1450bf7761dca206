//! A small binding to NVRTC, opened by full path.
//!
//! cudarc's own NVRTC binding opens the library only by the sonames of the CUDA version it was
//! built for (cuda-12000 here: `libnvrtc.so.12`, never `libnvrtc.so.13`), so it cannot use the
//! NVRTC of NVIDIA's PyPI wheels. We need seven functions; binding them ourselves lets us open
//! any NVRTC 11.2+ from any folder. Modules are still loaded and launched through cudarc.

use super::discover::{self, LibLocation};
use anyhow::{anyhow, bail, Context, Result};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

type Program = *mut c_void;
type FnVersion = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
type FnCreate = unsafe extern "C" fn(
    *mut Program,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> c_int;
type FnCompile = unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int;
type FnSize = unsafe extern "C" fn(Program, *mut usize) -> c_int;
type FnGet = unsafe extern "C" fn(Program, *mut c_char) -> c_int;
type FnDestroy = unsafe extern "C" fn(*mut Program) -> c_int;
type FnErrStr = unsafe extern "C" fn(c_int) -> *const c_char;

/// An opened NVRTC library.
pub struct Nvrtc {
    _lib: libloading::Library,
    /// NVRTC's builtins library, opened from NVRTC's own folder (see [`preload_builtins`]).
    _builtins: Vec<libloading::Library>,
    /// Where it was opened from (the resolved file when the loader found it by name).
    pub path: PathBuf,
    pub version: (i32, i32),
    create: FnCreate,
    compile: FnCompile,
    log_size: FnSize,
    log: FnGet,
    cubin_size: FnSize,
    cubin: FnGet,
    destroy: FnDestroy,
    err_str: FnErrStr,
}

// SAFETY: NVRTC's API is thread-safe for distinct programs (NVIDIA documents this); the
// struct only holds function pointers and the library handle.
unsafe impl Send for Nvrtc {}
unsafe impl Sync for Nvrtc {}

/// The result of compiling one source: the CUBIN image and NVRTC's log.
pub struct Compiled {
    pub cubin: Vec<u8>,
    pub log: String,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Compiled {{ cubin: {} bytes, log: {:?} }}",
            self.cubin.len(),
            self.log
        )
    }
}

impl Nvrtc {
    /// Opens NVRTC from one location.
    pub fn open(loc: &LibLocation) -> Result<Self> {
        let builtins = match loc {
            LibLocation::File(p) => preload_builtins(p),
            LibLocation::Soname(_) => Vec::new(),
        };
        // SAFETY: opening NVRTC runs its initialisers only; symbols are checked below.
        let lib = unsafe { libloading::Library::new(loc.as_os_str()) }
            .with_context(|| format!("cannot open {:?}", loc.as_os_str()))?;
        unsafe {
            let version: FnVersion = *lib.get(b"nvrtcVersion\0")?;
            let create: FnCreate = *lib.get(b"nvrtcCreateProgram\0")?;
            let compile: FnCompile = *lib.get(b"nvrtcCompileProgram\0")?;
            let log_size: FnSize = *lib.get(b"nvrtcGetProgramLogSize\0")?;
            let log: FnGet = *lib.get(b"nvrtcGetProgramLog\0")?;
            let cubin_size: FnSize = *lib.get(b"nvrtcGetCUBINSize\0").map_err(|_| {
                anyhow!("this NVRTC has no nvrtcGetCUBINSize: NVRTC 11.2 or newer is needed")
            })?;
            let cubin: FnGet = *lib.get(b"nvrtcGetCUBIN\0")?;
            let destroy: FnDestroy = *lib.get(b"nvrtcDestroyProgram\0")?;
            let err_str: FnErrStr = *lib.get(b"nvrtcGetErrorString\0")?;
            let (mut maj, mut min) = (0, 0);
            let rc = version(&mut maj, &mut min);
            if rc != 0 {
                bail!("nvrtcVersion failed with code {rc}");
            }
            let path = match loc {
                LibLocation::File(p) => p.clone(),
                LibLocation::Soname(s) => {
                    discover::loaded_path_of("libnvrtc.so").unwrap_or_else(|| PathBuf::from(s))
                }
            };
            Ok(Nvrtc {
                _lib: lib,
                _builtins: builtins,
                path,
                version: (maj, min),
                create,
                compile,
                log_size,
                log,
                cubin_size,
                cubin,
                destroy,
                err_str,
            })
        }
    }

    /// The process-wide NVRTC: the first candidate of [`discover::nvrtc_candidates`] that opens.
    pub fn global() -> Result<&'static Nvrtc> {
        static NVRTC: OnceLock<std::result::Result<Nvrtc, String>> = OnceLock::new();
        NVRTC
            .get_or_init(|| {
                let mut tried = Vec::new();
                for c in discover::nvrtc_candidates() {
                    match Nvrtc::open(&c) {
                        Ok(n) => return Ok(n),
                        Err(_) => tried.push(c.as_os_str().to_string_lossy().into_owned()),
                    }
                }
                Err(format!(
                    "NVRTC not found (tried {} places: the loader path, $CUDA_HOME, /usr/local/cuda, Python's nvidia/cu13|cu12 wheels). \
                     Install it with `pip install nvidia-cuda-nvrtc` or set SEISFUSE_NVRTC=/path/to/libnvrtc.so",
                    tried.len()
                ))
            })
            .as_ref()
            .map_err(|e| anyhow!("{e}"))
    }

    fn err(&self, rc: c_int) -> String {
        // SAFETY: nvrtcGetErrorString returns a static string for any code.
        unsafe {
            let p = (self.err_str)(rc);
            if p.is_null() {
                format!("NVRTC error {rc}")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    /// Compiles `src` (named `file` in messages) to a CUBIN for `sm_{arch}`.
    pub fn compile(&self, src: &str, file: &str, arch: u32, extra: &[&str]) -> Result<Compiled> {
        let c_src = CString::new(src).context("kernel source contains a NUL byte")?;
        let c_name = CString::new(file)?;
        let mut opts: Vec<CString> = vec![
            CString::new(format!("--gpu-architecture=sm_{arch}"))?,
            CString::new("--std=c++17")?,
            CString::new("-lineinfo")?,
        ];
        for e in extra {
            opts.push(CString::new(*e)?);
        }
        let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        let mut prog: Program = std::ptr::null_mut();
        // SAFETY: pointers are valid for the duration of the calls; the program is destroyed below.
        unsafe {
            let rc = (self.create)(
                &mut prog,
                c_src.as_ptr(),
                c_name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            );
            if rc != 0 {
                bail!("nvrtcCreateProgram({file}): {}", self.err(rc));
            }
            let rc = (self.compile)(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr());
            let mut n = 0usize;
            (self.log_size)(prog, &mut n);
            let mut buf = vec![0u8; n.max(1)];
            (self.log)(prog, buf.as_mut_ptr() as *mut c_char);
            let log = String::from_utf8_lossy(&buf)
                .trim_end_matches('\0')
                .trim()
                .to_string();
            if rc != 0 {
                (self.destroy)(&mut prog);
                bail!(
                    "kernel file {file} failed to compile for sm_{arch} with NVRTC {}.{}: {}\n{log}",
                    self.version.0,
                    self.version.1,
                    self.err(rc)
                );
            }
            let mut size = 0usize;
            let rc = (self.cubin_size)(prog, &mut size);
            if rc != 0 {
                (self.destroy)(&mut prog);
                bail!("nvrtcGetCUBINSize({file}): {}", self.err(rc));
            }
            let mut cubin = vec![0u8; size];
            let rc = (self.cubin)(prog, cubin.as_mut_ptr() as *mut c_char);
            (self.destroy)(&mut prog);
            if rc != 0 {
                bail!("nvrtcGetCUBIN({file}): {}", self.err(rc));
            }
            Ok(Compiled { cubin, log })
        }
    }
}

/// NVRTC opens `libnvrtc-builtins.so.X.Y` by name at compile time, which fails when NVRTC's
/// folder is not on the loader path (NVIDIA's PyPI wheels). Opening it first by full path makes
/// the later open by name find the loaded library (the loader matches it by soname).
fn preload_builtins(nvrtc: &std::path::Path) -> Vec<libloading::Library> {
    let Some(dir) = nvrtc.parent() else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("libnvrtc-builtins.so") && !name.contains(".alt.") {
            // SAFETY: the builtins library has no initialisers with side effects beyond loading.
            if let Ok(l) = unsafe { libloading::Library::new(e.path()) } {
                out.push(l);
            }
        }
    }
    out
}
