//! NVTX ranges and marks for Nsight Systems / Nsight Compute, without NVIDIA's C header or a
//! library to link.
//!
//! NVTX v3 is header-only C (`nvtx3/nvToolsExt.h`; CUDA 13 no longer ships
//! `libnvToolsExt.so`). What the header compiles into a program, and what this module does in
//! Rust, is the client side of a small protocol (`nvtxDetail/nvtxInit.h`,
//! `nvtxInitializeInjectionLibrary`):
//!
//! 1. On the first NVTX call, read `NVTX_INJECTION64_PATH` (nsys and ncu set it to their
//!    injection library). Unset: every call stays a no-op.
//! 2. Open that library and look up `InitializeInjectionNvtx2`.
//! 3. Call it with the address of the client's `GetExportTable`. The tool asks that function
//!    for the export tables (the callbacks table, whose `GetModuleFunctionTable` hands out a
//!    module's table of pointers to function-pointer slots, and the version info) and writes
//!    its own functions into the slots it implements (core module: `MarkA`, `RangePushA`,
//!    `RangePop`, …).
//! 4. A zero return (or a load failure) means no tool: the header unloads the library and
//!    leaves every call a no-op. Here the failure is also reported once on stderr.
//!
//! Every slot of every module the header defines exists here, so a tool that fills the CUDA or
//! sync modules too finds the tables it expects; only `MarkA`, `RangePushA` and `RangePop` are
//! ever called. The layouts, IDs and slot indices below mirror the header of the
//! `nvidia-nvtx` 13.0 wheel (NVTX_VERSION 3); `tests/nvtx.rs` checks them against that header
//! with a tool written in C (`tools/nvtx_fake_tool.c`).
//!
//! Cost: with no tool attached, [`range`], [`mark`] and [`enabled`] are one atomic load (the
//! `OnceLock`'s state) and allocate nothing. Callers that format a name check [`enabled`]
//! first, or use [`range_with`].

use std::ffi::{c_char, c_int, c_uint, c_void, OsStr};
use std::marker::PhantomData;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

/// `nvToolsExt.h`: `#define NVTX_VERSION 3`, reported to the tool in the version-info table.
const NVTX_VERSION: u32 = 3;

/// `nvtxInit.h`: the variable read in a 64-bit process (`NVTX_INJECTION32_PATH` in a 32-bit
/// one, which seisfuse never is).
pub const INJECTION_VAR: &str = "NVTX_INJECTION64_PATH";

/// `nvtxInit.h`: `initFuncName`, the entry point looked up in the injection library.
const INIT_SYMBOL: &[u8] = b"InitializeInjectionNvtx2\0";

/// `nvtxTypes.h`: `enum NvtxExportTableID`.
const NVTX_ETID_CALLBACKS: u32 = 1;
const NVTX_ETID_VERSIONINFO: u32 = 3;

/// `nvtxTypes.h`: `enum NvtxCallbackModule` (`NVTX_CB_MODULE_CORE` = 1 … `_SYNC` = 6).
const NVTX_CB_MODULE_CORE: u32 = 1;

/// `nvtxTypes.h`: `enum NvtxCallbackIdCore`, the core module's slot indices.
const NVTX_CBID_CORE_MARK_A: usize = 2;
const NVTX_CBID_CORE_RANGE_PUSH_A: usize = 9;
const NVTX_CBID_CORE_RANGE_POP: usize = 11;

/// `nvtxTypes.h`: the `NVTX_CBID_<MODULE>_SIZE` of each module, in `NvtxCallbackModule`
/// order: CORE 16, CUDA 9, OPENCL 15, CUDART 7, CORE2 16, SYNC 7. Slot 0 (`*_INVALID`) of
/// each module is unused.
const MODULE_SIZES: [u32; 6] = [16, 9, 15, 7, 16, 7];

/// The largest `NVTX_CBID_*_SIZE`.
const MAX_SLOTS: usize = 16;

/// `nvtxTypes.h`: `NvtxGetExportTableFunc_t`.
type GetExportTableFn = unsafe extern "C" fn(export_table_id: u32) -> *const c_void;
/// `nvtxTypes.h`: `NvtxInitializeInjectionNvtxFunc_t`.
type InitializeInjectionFn = unsafe extern "C" fn(get_export_table: GetExportTableFn) -> c_int;
/// `nvtxTypes.h`: `nvtxMarkA_impl_fntype`.
type MarkAFn = unsafe extern "C" fn(message: *const c_char);
/// `nvtxTypes.h`: `nvtxRangePushA_impl_fntype`.
type RangePushAFn = unsafe extern "C" fn(message: *const c_char) -> c_int;
/// `nvtxTypes.h`: `nvtxRangePop_impl_fntype`.
type RangePopFn = unsafe extern "C" fn() -> c_int;

/// `nvtxTypes.h`: `NvtxFunctionTable` is `NvtxFunctionPointer**`, an array of pointers to
/// function-pointer slots; the tool receives it through a pointer (`NvtxFunctionTable*`).
type FunctionTable = *const AtomicPtr<AtomicPtr<c_void>>;

/// `nvtxTypes.h`: `struct NvtxExportTableCallbacks`.
#[repr(C)]
struct ExportTableCallbacks {
    struct_size: usize,
    get_module_function_table: unsafe extern "C" fn(
        callback_module: u32,
        out_table: *mut FunctionTable,
        out_size: *mut c_uint,
    ) -> c_int,
}

/// `nvtxTypes.h`: `struct NvtxExportTableVersionInfo`.
#[repr(C)]
struct ExportTableVersionInfo {
    struct_size: usize,
    version: u32,
    reserved0: u32,
    set_injection_nvtx_version: unsafe extern "C" fn(version: u32),
}

/// One module's function-pointer slots (`nvtxImpl.h`: the `nvtx*_impl_fnptr` fields of
/// `nvtxGlobals_t`) and its table (`functionTable_<MODULE>[NVTX_CBID_<MODULE>_SIZE + 1]`):
/// entry 0 null, entry i the address of slot i, entry SIZE null (the header's guard against a
/// tool reading past the end). `AtomicPtr<T>` has the layout of `*mut T`, so the tool reads
/// and writes them as the plain pointers the header declares.
struct Module {
    size: u32,
    slots: [AtomicPtr<c_void>; MAX_SLOTS],
    table: [AtomicPtr<AtomicPtr<c_void>>; MAX_SLOTS + 1],
}

impl Module {
    const fn new(size: u32) -> Self {
        Module {
            size,
            slots: [const { AtomicPtr::new(null_mut()) }; MAX_SLOTS],
            table: [const { AtomicPtr::new(null_mut()) }; MAX_SLOTS + 1],
        }
    }

    /// Points entries 1..size of the table at their slots; the rest stay null.
    fn fill_table(&self) {
        let n = (self.size as usize).min(MAX_SLOTS);
        for i in 1..n {
            let slot = &self.slots[i] as *const AtomicPtr<c_void> as *mut AtomicPtr<c_void>;
            self.table[i].store(slot, Ordering::Relaxed);
        }
    }

    fn slot(&self, i: usize) -> *mut c_void {
        self.slots[i].load(Ordering::Relaxed)
    }
}

static MODULES: [Module; 6] = [
    Module::new(MODULE_SIZES[0]),
    Module::new(MODULE_SIZES[1]),
    Module::new(MODULE_SIZES[2]),
    Module::new(MODULE_SIZES[3]),
    Module::new(MODULE_SIZES[4]),
    Module::new(MODULE_SIZES[5]),
];

fn core() -> &'static Module {
    &MODULES[(NVTX_CB_MODULE_CORE - 1) as usize]
}

static CALLBACKS: ExportTableCallbacks = ExportTableCallbacks {
    struct_size: std::mem::size_of::<ExportTableCallbacks>(),
    get_module_function_table,
};

static VERSION_INFO: ExportTableVersionInfo = ExportTableVersionInfo {
    struct_size: std::mem::size_of::<ExportTableVersionInfo>(),
    version: NVTX_VERSION,
    reserved0: 0,
    set_injection_nvtx_version,
};

/// `nvtxImpl.h`: `nvtxEtiGetModuleFunctionTable`. Returns 1 and the module's table and its
/// size (`NVTX_CBID_<MODULE>_SIZE`) for a known module, else 0. Called by the tool from C:
/// nothing in it can panic.
unsafe extern "C" fn get_module_function_table(
    callback_module: u32,
    out_table: *mut FunctionTable,
    out_size: *mut c_uint,
) -> c_int {
    let Some(m) = (callback_module as usize)
        .checked_sub(1)
        .and_then(|i| MODULES.get(i))
    else {
        return 0;
    };
    m.fill_table();
    if !out_size.is_null() {
        // SAFETY: the tool passed a pointer to a `unsigned int` (or null, checked).
        unsafe { *out_size = m.size };
    }
    if !out_table.is_null() {
        // SAFETY: the tool passed a pointer to an `NvtxFunctionTable` (or null, checked).
        unsafe { *out_table = m.table.as_ptr() };
    }
    1
}

/// `nvtxImpl.h`: `nvtxEtiSetInjectionNvtxVersion`, reserved; the header ignores it too.
unsafe extern "C" fn set_injection_nvtx_version(_version: u32) {}

/// `nvtxImpl.h`: `nvtxGetExportTable`, handed to the tool's `InitializeInjectionNvtx2`.
unsafe extern "C" fn get_export_table(export_table_id: u32) -> *const c_void {
    match export_table_id {
        NVTX_ETID_CALLBACKS => &CALLBACKS as *const ExportTableCallbacks as *const c_void,
        NVTX_ETID_VERSIONINFO => &VERSION_INFO as *const ExportTableVersionInfo as *const c_void,
        _ => std::ptr::null(),
    }
}

/// An attached tool: its library stays loaded for the life of the process (its functions sit
/// in the slots).
struct Tool {
    _lib: libloading::Library,
}

static TOOL: OnceLock<Option<Tool>> = OnceLock::new();

/// Whether an NVTX tool (nsys, ncu) is attached. The first call loads it; every later call is
/// one atomic load.
#[inline]
pub fn enabled() -> bool {
    TOOL.get_or_init(attach).is_some()
}

/// Reads the variable and attaches the tool it names; a failure is one line on stderr.
fn attach() -> Option<Tool> {
    let path = std::env::var_os(INJECTION_VAR)?;
    if path.is_empty() {
        return None;
    }
    match load(&path) {
        Ok(tool) => Some(tool),
        Err(why) => {
            use std::io::Write;
            // Debug formatting quotes the path and escapes control characters: one line.
            let _ = writeln!(
                std::io::stderr(),
                "seisfuse: NVTX is off: {INJECTION_VAR}={:?} {}",
                std::path::Path::new(&path),
                one_line(&why)
            );
            None
        }
    }
}

/// Loads `path` and runs its `InitializeInjectionNvtx2` (`nvtxInit.h`,
/// `nvtxInitializeInjectionLibrary`). Errors say what went wrong, to follow the path.
fn load(path: &OsStr) -> Result<Tool, String> {
    // SAFETY: loading runs the library's initialisers. The user (or nsys) named it as an NVTX
    // tool, which is what the C header trusts as well.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("could not be loaded ({e})"))?;
    // SAFETY: the symbol's type is the header's `NvtxInitializeInjectionNvtxFunc_t`.
    let init: InitializeInjectionFn = match unsafe { lib.get::<InitializeInjectionFn>(INIT_SYMBOL) }
    {
        Ok(f) => *f,
        Err(e) => return Err(format!("has no InitializeInjectionNvtx2 ({e})")),
    };
    // SAFETY: the protocol's entry point, called once, with our export-table function.
    if unsafe { init(get_export_table) } == 0 {
        // As the header does: a tool that declines is unloaded and NVTX stays off.
        drop(lib);
        return Err("was loaded, but its InitializeInjectionNvtx2 returned 0".into());
    }
    Ok(Tool { _lib: lib })
}

/// `s` with line breaks and other control characters as spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Calls `f` with `name` as a NUL-terminated C string, cut at its first NUL byte. Names up to
/// 255 bytes are copied to the stack; only longer ones allocate.
fn with_c_name<R>(name: &str, f: impl FnOnce(*const c_char) -> R) -> R {
    let bytes = name.as_bytes();
    let bytes = match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    };
    let mut stack = [0u8; 256];
    if bytes.len() < stack.len() {
        stack[..bytes.len()].copy_from_slice(bytes);
        f(stack.as_ptr() as *const c_char)
    } else {
        let mut heap = Vec::with_capacity(bytes.len() + 1);
        heap.extend_from_slice(bytes);
        heap.push(0);
        f(heap.as_ptr() as *const c_char)
    }
}

/// An NVTX push/pop range on this thread, from [`range`] to the guard's drop. Not `Send`:
/// NVTX ranges nest per thread, so the pop must happen on the thread of the push.
#[must_use = "the range ends when this guard is dropped; bind it with `let _r = …`"]
pub struct Range {
    pushed: bool,
    _per_thread: PhantomData<*const ()>,
}

impl Range {
    const OFF: Range = Range {
        pushed: false,
        _per_thread: PhantomData,
    };
}

/// Opens a range named `name` (cut at an interior NUL); it closes when the guard drops.
#[inline]
pub fn range(name: &str) -> Range {
    if !enabled() {
        return Range::OFF;
    }
    push(name)
}

/// [`range`] with a name built only when a tool is attached: `range_with(|| format!(…))`.
#[inline]
pub fn range_with(name: impl FnOnce() -> String) -> Range {
    if !enabled() {
        return Range::OFF;
    }
    push(&name())
}

#[cold]
fn push(name: &str) -> Range {
    let p = core().slot(NVTX_CBID_CORE_RANGE_PUSH_A);
    if p.is_null() {
        return Range::OFF;
    }
    // SAFETY: the tool wrote a `nvtxRangePushA_impl_fntype` into this slot.
    let push: RangePushAFn = unsafe { std::mem::transmute::<*mut c_void, RangePushAFn>(p) };
    // SAFETY: a NUL-terminated string that lives through the call.
    with_c_name(name, |s| unsafe { push(s) });
    Range {
        pushed: true,
        _per_thread: PhantomData,
    }
}

impl Drop for Range {
    fn drop(&mut self) {
        if !self.pushed {
            return;
        }
        let p = core().slot(NVTX_CBID_CORE_RANGE_POP);
        if !p.is_null() {
            // SAFETY: the tool wrote a `nvtxRangePop_impl_fntype` into this slot.
            let pop: RangePopFn = unsafe { std::mem::transmute::<*mut c_void, RangePopFn>(p) };
            // SAFETY: no arguments; pops the range this guard pushed on this thread.
            unsafe { pop() };
        }
    }
}

/// An instant event named `name` (cut at an interior NUL) on the timeline.
#[inline]
pub fn mark(name: &str) {
    if !enabled() {
        return;
    }
    let p = core().slot(NVTX_CBID_CORE_MARK_A);
    if p.is_null() {
        return;
    }
    // SAFETY: the tool wrote a `nvtxMarkA_impl_fntype` into this slot.
    let mark: MarkAFn = unsafe { std::mem::transmute::<*mut c_void, MarkAFn>(p) };
    // SAFETY: a NUL-terminated string that lives through the call.
    with_c_name(name, |s| unsafe { mark(s) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn nvtx_export_tables_match_the_header() {
        // SAFETY: our own functions, called as a tool would.
        unsafe {
            assert!(get_export_table(0).is_null());
            assert!(get_export_table(2).is_null()); // NVTX_ETID_RESERVED0
            assert!(get_export_table(4).is_null());
            let cb = &*(get_export_table(NVTX_ETID_CALLBACKS) as *const ExportTableCallbacks);
            assert_eq!(cb.struct_size, 16);
            let vi = &*(get_export_table(NVTX_ETID_VERSIONINFO) as *const ExportTableVersionInfo);
            assert_eq!((vi.struct_size, vi.version, vi.reserved0), (24, 3, 0));
            (vi.set_injection_nvtx_version)(3);

            for (module, size) in (1u32..).zip(MODULE_SIZES) {
                let mut table: FunctionTable = std::ptr::null();
                let mut n = 0;
                assert_eq!(
                    (cb.get_module_function_table)(module, &mut table, &mut n),
                    1
                );
                assert_eq!(n, size);
                let entry = |i: usize| (*table.add(i)).load(Ordering::Relaxed);
                assert!(entry(0).is_null(), "module {module}: entry 0");
                assert!(
                    entry(n as usize).is_null(),
                    "module {module}: the guard entry"
                );
                for i in 1..n as usize {
                    let want = &MODULES[module as usize - 1].slots[i] as *const _ as *mut _;
                    assert_eq!(entry(i), want, "module {module}, entry {i}");
                }
                // Null out-pointers are allowed, as in the header.
                let no = std::ptr::null_mut();
                assert_eq!((cb.get_module_function_table)(module, no, no.cast()), 1);
            }
            let mut n = 99;
            let no = std::ptr::null_mut();
            assert_eq!((cb.get_module_function_table)(0, no, &mut n), 0);
            assert_eq!((cb.get_module_function_table)(7, no, &mut n), 0);
            assert_eq!((cb.get_module_function_table)(u32::MAX, no, &mut n), 0);
            assert_eq!(n, 99);
        }
    }

    #[test]
    fn nvtx_names_are_cut_at_nul_and_terminated() {
        let c = |s: &str| with_c_name(s, |p| unsafe { CStr::from_ptr(p) }.to_bytes().to_vec());
        assert_eq!(c("sfm/block 3 forward"), b"sfm/block 3 forward");
        assert_eq!(c("a\0b"), b"a");
        assert_eq!(c(""), b"");
        let long = "x".repeat(1000) + "\0tail";
        assert_eq!(c(&long), "x".repeat(1000).as_bytes());
        let edge = "y".repeat(255);
        assert_eq!(c(&edge), edge.as_bytes());
    }

    #[test]
    fn nvtx_load_failures_say_why() {
        let dir = std::env::temp_dir().join(format!("seisfuse-nvtx-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("not-a-library.so");
        std::fs::write(&text, "not an ELF file\n").unwrap();
        let e = load(text.as_os_str())
            .err()
            .expect("a text file is no library");
        assert!(e.starts_with("could not be loaded"), "{e}");
        let missing = dir.join("missing.so");
        let e = load(missing.as_os_str()).err().expect("a missing file");
        assert!(e.starts_with("could not be loaded"), "{e}");
        assert_eq!(one_line("a\nb\r\tc"), "a b  c");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nvtx_without_a_tool_is_off() {
        if std::env::var_os(INJECTION_VAR).is_some() {
            eprintln!("{INJECTION_VAR} is set (a profiler?): the no-tool case is not checked");
            return;
        }
        assert!(!enabled());
        let r = range("no tool");
        assert!(!r.pushed);
        let r2 = range_with(|| unreachable!("formatted without a tool"));
        drop((r, r2));
        mark("no tool");
    }
}
