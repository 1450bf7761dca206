//! A small binding to NCCL, opened by full path at run time (no NCCL at build time).
//!
//! Why not cudarc's `nccl` feature: it builds without NCCL (with `dynamic-loading`), but its
//! loader only tries `libnccl.so` and `libnccl.so.<CUDA major>` (`.so.12` with our
//! `cuda-12000`), never NCCL's soname `libnccl.so.2`, and it panics when none opens. A runtime
//! install (`libnccl2`) and the `nvidia-nccl-cu12` / `-cu13` wheels provide only
//! `libnccl.so.2`, so cudarc would panic where NCCL is present. As for NVRTC (`nvrtc.rs`), we
//! bind the few functions we call and open the library from the path discovery found
//! (`backend::cuda::discover::nccl_candidates`): nothing touches NCCL unless a communicator
//! or `doctor` asks for it, and a missing NCCL is an error, never a panic.

use crate::backend::cuda::discover::{self, LibLocation};
use anyhow::{anyhow, bail, Context, Result};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::PathBuf;
use std::sync::OnceLock;

/// `ncclComm_t`.
pub type RawComm = *mut c_void;
/// `cudaStream_t` (the same object as a driver-API `CUstream`).
pub type RawStream = *mut c_void;

/// `ncclUniqueId`: 128 opaque bytes that rank 0 makes and every rank passes to init.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UniqueId {
    pub internal: [u8; 128],
}

/// `ncclDataType_t` values used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum DataType {
    U8 = 1,
    F32 = 7,
    F64 = 8,
    /// NCCL 2.10 and newer.
    Bf16 = 9,
}

/// `ncclSum`.
const NCCL_SUM: c_int = 0;

type FnGetVersion = unsafe extern "C" fn(*mut c_int) -> c_int;
type FnGetUniqueId = unsafe extern "C" fn(*mut UniqueId) -> c_int;
type FnCommInitRank = unsafe extern "C" fn(*mut RawComm, c_int, UniqueId, c_int) -> c_int;
/// `ncclAllReduce` and `ncclBroadcast`, which share one C signature: (send buffer, receive
/// buffer, count, data type, reduction op or root rank, communicator, stream).
type FnCollective = unsafe extern "C" fn(
    *const c_void,
    *mut c_void,
    usize,
    c_int,
    c_int,
    RawComm,
    RawStream,
) -> c_int;
type FnComm = unsafe extern "C" fn(RawComm) -> c_int;
type FnAsyncError = unsafe extern "C" fn(RawComm, *mut c_int) -> c_int;
type FnErrStr = unsafe extern "C" fn(c_int) -> *const c_char;

/// An opened NCCL library.
pub struct NcclLib {
    _lib: libloading::Library,
    /// Where it was opened from (the resolved file when the loader found it by name).
    pub path: PathBuf,
    /// (major, minor, patch).
    pub version: (i32, i32, i32),
    get_unique_id: FnGetUniqueId,
    comm_init_rank: FnCommInitRank,
    all_reduce: FnCollective,
    broadcast: FnCollective,
    comm_abort: FnComm,
    async_error: FnAsyncError,
    err_str: FnErrStr,
}

// SAFETY: the struct holds the library handle and function pointers; NCCL's functions are
// callable from any thread (a communicator is used from one thread at a time, see nccl.rs).
unsafe impl Send for NcclLib {}
unsafe impl Sync for NcclLib {}

impl std::fmt::Debug for NcclLib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NCCL {} at {}",
            self.version_string(),
            self.path.display()
        )
    }
}

/// NCCL's version code: major·10000 + minor·100 + patch since 2.9, major·1000 + ... before.
pub fn decode_version(code: i32) -> (i32, i32, i32) {
    if code >= 10000 {
        (code / 10000, (code % 10000) / 100, code % 100)
    } else {
        (code / 1000, (code % 1000) / 100, code % 100)
    }
}

/// Looks up one function of the library.
///
/// # Safety
/// `T` must be the function's C signature.
unsafe fn sym<T: Copy>(
    lib: &libloading::Library,
    name: &[u8],
    from: &std::ffi::OsStr,
) -> Result<T> {
    lib.get::<T>(name).map(|s| *s).map_err(|e| {
        anyhow!(
            "{from:?} has no {}: {e}",
            String::from_utf8_lossy(&name[..name.len() - 1])
        )
    })
}

impl NcclLib {
    /// Opens NCCL from one location and checks that it has every function we call.
    pub fn open(loc: &LibLocation) -> Result<Self> {
        // SAFETY: opening NCCL runs its initialisers only; the symbols are checked below and
        // called with the C signatures of nccl.h (stable since NCCL 2.0).
        let lib = unsafe { libloading::Library::new(loc.as_os_str()) }
            .with_context(|| format!("cannot open {:?}", loc.as_os_str()))?;
        let os = loc.as_os_str();
        unsafe {
            let get_version: FnGetVersion = sym(&lib, b"ncclGetVersion\0", os)?;
            let mut code = 0;
            let rc = get_version(&mut code);
            if rc != 0 {
                bail!("ncclGetVersion failed with code {rc}");
            }
            let path = match loc {
                LibLocation::File(p) => p.clone(),
                LibLocation::Soname(s) => {
                    discover::loaded_path_of("libnccl.so").unwrap_or_else(|| PathBuf::from(s))
                }
            };
            Ok(NcclLib {
                get_unique_id: sym(&lib, b"ncclGetUniqueId\0", os)?,
                comm_init_rank: sym(&lib, b"ncclCommInitRank\0", os)?,
                all_reduce: sym(&lib, b"ncclAllReduce\0", os)?,
                broadcast: sym(&lib, b"ncclBroadcast\0", os)?,
                comm_abort: sym(&lib, b"ncclCommAbort\0", os)?,
                async_error: sym(&lib, b"ncclCommGetAsyncError\0", os)?,
                err_str: sym(&lib, b"ncclGetErrorString\0", os)?,
                version: decode_version(code),
                path,
                _lib: lib,
            })
        }
    }

    /// The process-wide NCCL: the first candidate of [`discover::nccl_candidates`] that opens.
    pub fn global() -> Result<&'static NcclLib> {
        static NCCL: OnceLock<std::result::Result<NcclLib, String>> = OnceLock::new();
        NCCL.get_or_init(|| {
            let explicit = std::env::var_os("SEISFUSE_NCCL").map(PathBuf::from);
            let mut tried = 0usize;
            let mut failures = Vec::new();
            for c in discover::nccl_candidates() {
                tried += 1;
                match NcclLib::open(&c) {
                    Ok(n) => return Ok(n),
                    Err(e) => {
                        // A file that exists (or was named by SEISFUSE_NCCL) but does not
                        // open is worth naming.
                        if let LibLocation::File(p) = &c {
                            if p.exists() || Some(p) == explicit.as_ref() {
                                failures.push(format!("{e:#}"));
                            }
                        }
                    }
                }
            }
            Err(format!(
                "NCCL (libnccl.so.2) not found: tried {tried} names and files ($SEISFUSE_NCCL, the loader \
                 path, $NCCL_HOME, /usr/lib/{}-linux-gnu, $CUDA_HOME, /usr/local/cuda, Python's \
                 nvidia/nccl/lib). Install it with `pip install nvidia-nccl-cu12` (or -cu13 for a \
                 CUDA 13 driver), or your distribution's libnccl2, or set \
                 SEISFUSE_NCCL=/path/to/libnccl.so.2{}",
                std::env::consts::ARCH,
                if failures.is_empty() {
                    String::new()
                } else {
                    format!(" (failed: {})", failures.join("; "))
                }
            ))
        })
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
    }

    pub fn version_string(&self) -> String {
        format!("{}.{}.{}", self.version.0, self.version.1, self.version.2)
    }

    /// True when this NCCL reduces bf16 (2.10 and newer).
    pub fn has_bf16(&self) -> bool {
        self.version >= (2, 10, 0)
    }

    /// NCCL's message for a result code, with a hint where one helps.
    pub fn error(&self, rc: c_int, what: &str) -> anyhow::Error {
        // SAFETY: ncclGetErrorString returns a static string for any code.
        let msg = unsafe {
            let p = (self.err_str)(rc);
            if p.is_null() {
                format!("NCCL error {rc}")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let hint = match rc {
            2 | 3 | 6 => {
                " (run with NCCL_DEBUG=INFO to see NCCL's own log; for a network \
                          problem check NCCL_SOCKET_IFNAME / NCCL_IB_HCA, see docs/cluster.md)"
            }
            1 => " (a CUDA error inside NCCL: is each rank on its own GPU, cuda:LOCAL_RANK?)",
            _ => "",
        };
        anyhow!(
            "{what}: NCCL {} returned {rc}: {msg}{hint}",
            self.version_string()
        )
    }

    fn check(&self, rc: c_int, what: &str) -> Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(self.error(rc, what))
        }
    }

    /// `ncclGetUniqueId`: made on rank 0, sent to every rank.
    pub fn unique_id(&self) -> Result<[u8; 128]> {
        let mut id = UniqueId { internal: [0; 128] };
        // SAFETY: writes 128 bytes into `id`.
        let rc = unsafe { (self.get_unique_id)(&mut id) };
        self.check(rc, "ncclGetUniqueId")?;
        Ok(id.internal)
    }

    /// `ncclCommInitRank`: blocks until every rank has called it with the same id.
    ///
    /// # Safety
    /// The CUDA device of this rank must be current on the calling thread.
    pub unsafe fn comm_init_rank(
        &self,
        world: usize,
        id: &[u8; 128],
        rank: usize,
    ) -> Result<RawComm> {
        let mut comm: RawComm = std::ptr::null_mut();
        let rc = (self.comm_init_rank)(
            &mut comm,
            world as c_int,
            UniqueId { internal: *id },
            rank as c_int,
        );
        self.check(rc, &format!("ncclCommInitRank (rank {rank} of {world})"))?;
        Ok(comm)
    }

    /// In-place sum of `count` elements at device address `ptr`, enqueued on `stream`.
    ///
    /// # Safety
    /// `ptr` must be a device allocation of at least `count` elements of `dtype` on the
    /// communicator's device, valid until the stream has run the operation.
    pub unsafe fn all_reduce_sum(
        &self,
        comm: RawComm,
        ptr: u64,
        count: usize,
        dtype: DataType,
        stream: RawStream,
    ) -> Result<()> {
        let p = ptr as *mut c_void;
        let rc = (self.all_reduce)(p, p, count, dtype as c_int, NCCL_SUM, comm, stream);
        self.check(rc, "ncclAllReduce")
    }

    /// In-place broadcast of `count` elements from `root`, enqueued on `stream`.
    ///
    /// # Safety
    /// As [`NcclLib::all_reduce_sum`].
    pub unsafe fn broadcast(
        &self,
        comm: RawComm,
        ptr: u64,
        count: usize,
        dtype: DataType,
        root: usize,
        stream: RawStream,
    ) -> Result<()> {
        let p = ptr as *mut c_void;
        let rc = (self.broadcast)(p, p, count, dtype as c_int, root as c_int, comm, stream);
        self.check(rc, "ncclBroadcast")
    }

    /// The communicator's asynchronous error (a peer that died, a network failure).
    ///
    /// # Safety
    /// `comm` must be a live communicator.
    pub unsafe fn async_error(&self, comm: RawComm) -> Result<()> {
        let mut state: c_int = 0;
        let rc = (self.async_error)(comm, &mut state);
        self.check(rc, "ncclCommGetAsyncError")?;
        // ncclInProgress (7) is not an error.
        if state != 0 && state != 7 {
            return Err(self.error(state, "NCCL communicator"));
        }
        Ok(())
    }

    /// `ncclCommAbort`: frees the communicator without waiting for pending operations.
    ///
    /// # Safety
    /// `comm` must be a live communicator, not used afterwards.
    pub unsafe fn abort(&self, comm: RawComm) {
        let _ = (self.comm_abort)(comm);
    }
}

/// One line for `seisfuse doctor`: where NCCL was found and its version, or why not.
pub fn status_line() -> String {
    match NcclLib::global() {
        Ok(n) => format!(
            "libnccl: NCCL {} at {} (multi-GPU training)",
            n.version_string(),
            n.path.display()
        ),
        Err(e) => format!("libnccl: not found — needed only to train on several GPUs ({e:#})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_codes() {
        assert_eq!(decode_version(22703), (2, 27, 3));
        assert_eq!(decode_version(2804), (2, 8, 4));
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_panic() {
        let e = NcclLib::open(&LibLocation::File("/nonexistent/libnccl.so.2".into())).unwrap_err();
        assert!(format!("{e:#}").contains("cannot open"), "{e:#}");
        // The loader's own libc is not NCCL: it opens, but lacks the symbols.
        let e = NcclLib::open(&LibLocation::Soname("libc.so.6".into())).unwrap_err();
        assert!(format!("{e:#}").contains("has no ncclGetVersion"), "{e:#}");
    }

    #[test]
    fn status_line_never_panics() {
        let s = status_line();
        assert!(s.starts_with("libnccl: "), "{s}");
    }
}
