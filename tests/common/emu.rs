//! Replays the CUDA wrappers' planned launches ([`Planned`]) under the CPU emulation of CUDA
//! (tools/cuda_emu/emu.h), over CPU tensors.
//!
//! For a kernel file it takes the very source NVRTC compiles (`kernel_source`, common.cuh
//! included), rewrites shared-memory declarations as tools/cuda_emu/run.sh does (dynamic shared
//! memory becomes `emu_dyn_smem()`, each static `__shared__` array per-block storage poisoned
//! with NaN), generates a dispatcher from the file's Rust declarations (`SIGNATURES`: one entry
//! per instantiated kernel, arguments cast from 64-bit slots in the declared order), builds it
//! as a shared library with the system C++ compiler and loads it. [`run`] then replays one
//! plan: the wrapper's grid, block, dynamic shared memory and arguments, unchanged. A missing
//! C++ compiler is a skip (a failure under SEISFUSE_REQUIRE_EMU); a library that does not build
//! is a failure.
#![allow(dead_code)]

use super::cxx_or_skip;
use seisfuse::backend::cuda::launch::{ArgKind, Elem, KernelSig, Planned};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// `emu_run(kernel name, grid x y z, block x y z, dynamic shared memory, argument slots,
/// slot count)`: 0, -1 for an unknown kernel or argument count, -2 when the emulator reported
/// errors.
pub type EmuRun =
    unsafe extern "C" fn(*const i8, u32, u32, u32, u32, u32, u32, u32, *const u64, i32) -> i32;

/// A loaded emulation library and its entry point.
pub struct Lib {
    _lib: libloading::Library,
    pub run: EmuRun,
}

/// Compiles `source` (emu.h, kernels and an `emu_run` entry point, as one C++ translation
/// unit) into a shared library under the test target folder, named by `tag` and this
/// process, and loads it; the files are removed once loaded.
pub fn load(source: &str, tag: &str) -> Result<Lib, String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("emu_libs");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let tag = format!("{tag}_{}", std::process::id());
    let cpp = dir.join(format!("{tag}.cpp"));
    let so = dir.join(format!("lib{tag}.so"));
    std::fs::write(&cpp, source).map_err(|e| e.to_string())?;
    let out = Command::new(&cxx)
        .args([
            "-std=c++20",
            "-O1",
            "-shared",
            "-fPIC",
            "-pthread",
            "-w",
            "-o",
        ])
        .arg(&so)
        .arg(&cpp)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{} did not build with {cxx}:\n{}",
            cpp.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let _ = std::fs::remove_file(&cpp);
    // SAFETY: the library was built above from a source that defines emu_run with this
    // signature.
    unsafe {
        let lib = libloading::Library::new(&so).map_err(|e| e.to_string())?;
        let run: EmuRun = *lib.get(b"emu_run\0").map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&so);
        Ok(Lib { _lib: lib, run })
    }
}

/// `extern __shared__ float smem[];` and `__shared__ T name[..]..;` rewritten for the
/// emulation (see tools/cuda_emu/run.sh); anything else with `__shared__` is an error.
pub fn translate_shared(src: &str) -> Result<String, String> {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        if t.starts_with('#') {
            // preprocessor lines (tc.cuh's GPU-only TC_DYNAMIC_SMEM) stay as they are
            out.push_str(line);
            out.push('\n');
        } else if t.starts_with("extern __shared__ float smem[];") {
            out.push_str(&format!("{indent}float* smem = emu_dyn_smem();\n"));
        } else if let Some(rest) = t.strip_prefix("__shared__ ") {
            // `float name[8][64];` (an optional __align__ is not translated)
            let (ty, rest) = rest
                .split_once(' ')
                .ok_or_else(|| format!("cannot translate `{t}`"))?;
            let end = rest
                .find(';')
                .ok_or_else(|| format!("cannot translate `{t}`"))?;
            let decl = &rest[..end];
            let open = decl
                .find('[')
                .ok_or_else(|| format!("cannot translate `{t}`"))?;
            let (name, dims) = (&decl[..open], &decl[open..]);
            if !matches!(ty, "float" | "int") || !dims.ends_with(']') {
                return Err(format!("cannot translate `{t}`"));
            }
            out.push_str(&format!(
                "{indent}auto& {name} = emu::shared_array<{ty}{dims}, __COUNTER__>();{}\n",
                &rest[end + 1..]
            ));
        } else if t.contains("__shared__") {
            return Err(format!("cannot translate `{t}`"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

fn c_type(elem: Elem, t: Option<seisfuse::DType>) -> &'static str {
    match (elem, t) {
        (Elem::T, Some(seisfuse::DType::BF16)) | (Elem::bf16, _) => "bf16_t",
        (Elem::i32, _) => "int",
        _ => "float",
    }
}

/// The C++ entry point `emu_run` for the kernels declared in `sigs`.
fn dispatcher(sigs: &[&KernelSig]) -> String {
    let mut s = String::from(
        "static float emu_f32(uint64_t v) { uint32_t u = (uint32_t)v; float f; \
         std::memcpy(&f, &u, 4); return f; }\n\
         extern \"C\" int emu_run(const char* name, unsigned gx, unsigned gy, unsigned gz, \
         unsigned bx, unsigned by, unsigned bz, unsigned smem, const uint64_t* a, int n) {\n\
         static std::mutex one_at_a_time;\n\
         std::lock_guard<std::mutex> lock(one_at_a_time);\n\
         const std::string k(name);\n\
         const emu_dim3 g{gx, gy, gz}, b{bx, by, bz};\n\
         emu::set_max_dynamic_smem(smem > 48 * 1024 ? smem : 48 * 1024);\n",
    );
    for sig in sigs {
        for (inst, dt) in sig.instances() {
            let args: Vec<String> = sig
                .args
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| match kind {
                    ArgKind::Ptr { elem, write, .. } => format!(
                        "({}{}*)(uintptr_t)a[{i}]",
                        if *write { "" } else { "const " },
                        c_type(*elem, dt)
                    ),
                    ArgKind::i32 => format!("(int)(uint32_t)a[{i}]"),
                    ArgKind::i64 => format!("(long long)a[{i}]"),
                    ArgKind::u32 => format!("(unsigned)a[{i}]"),
                    ArgKind::u64 => format!("(unsigned long long)a[{i}]"),
                    ArgKind::f32 => format!("emu_f32(a[{i}])"),
                })
                .collect();
            s.push_str(&format!(
                "if (k == \"{inst}\" && n == {}) return emu_launch(g, b, smem, [&] {{ {inst}({}); }}) ? -2 : 0;\n",
                sig.args.len(),
                args.join(", ")
            ));
        }
    }
    s.push_str("return -1;\n}\n");
    s
}

fn build(file: &str) -> Result<Lib, String> {
    let src = seisfuse::backend::cuda::kernel_source(file)
        .map_err(|e| e.to_string())?
        .source;
    let src = translate_shared(src).map_err(|e| format!("kernels/{file}.cu: {e}"))?;
    let sigs: Vec<&KernelSig> = seisfuse::backend::cuda::all_signatures()
        .into_iter()
        .filter(|s| s.file == file)
        .collect();
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/cuda_emu");
    let emu_h = std::fs::read_to_string(here.join("emu.h")).map_err(|e| e.to_string())?;
    let all = format!(
        "{emu_h}\n#include <mutex>\n#include <string>\n#line 1 \"kernels/{file}.cu\"\n{src}\n\
         #line 1 \"generated dispatcher\"\n{}",
        dispatcher(&sigs)
    );
    load(&all, file)
}

/// Whether the emulation can run here (a skip otherwise; see the module documentation).
pub fn available(test: &str) -> bool {
    cxx_or_skip(test).is_some()
}

/// Replays one planned launch under the emulation; panics with the emulator's complaint.
pub fn run(p: &Planned) {
    static LIBS: OnceLock<Mutex<HashMap<&'static str, &'static Lib>>> = OnceLock::new();
    let file = p.sig.file;
    let lib = {
        let mut libs = LIBS
            .get_or_init(|| Mutex::new(HashMap::new()))
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *libs.entry(file).or_insert_with(|| {
            let lib = build(file).unwrap_or_else(|e| panic!("{e}"));
            Box::leak(Box::new(lib))
        })
    };
    let (name, slots) = p
        .host_args()
        .unwrap_or_else(|e| panic!("{}: {e:#}", p.sig.name));
    let c = &p.cfg;
    // The libraries share emu.h's globals (inline variables are merged across shared
    // objects), so launches run one at a time in this process, whichever file they are in.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cname = std::ffi::CString::new(name).unwrap();
    // SAFETY: the slots are the host addresses of live CPU tensors and scalars in the
    // kernel's declared order, as the dispatcher expects.
    let rc = unsafe {
        (lib.run)(
            cname.as_ptr(),
            c.grid_dim.0,
            c.grid_dim.1,
            c.grid_dim.2,
            c.block_dim.0,
            c.block_dim.1,
            c.block_dim.2,
            c.shared_mem_bytes,
            slots.as_ptr(),
            slots.len() as i32,
        )
    };
    match rc {
        0 => {}
        -1 => panic!("{name}: not in the emulated kernels/{file}.cu"),
        _ => panic!("{name}: the emulator reported errors (above) for {c:?}"),
    }
}
