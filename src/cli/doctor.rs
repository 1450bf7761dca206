//! `seisfuse doctor`: what this machine offers seisfuse, and whether every kernel compiles.

use crate::backend::cuda::{self, discover, nvrtc::Nvrtc, CudaBackend, KERNEL_SOURCES};
use crate::backend::DeviceRequest;
use crate::outln;
use anyhow::{bail, Result};
use cudarc::driver::sys::CUfunction_attribute_enum as Attr;
use cudarc::driver::CudaContext;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// Also compile every kernel for these architectures with NVRTC (no GPU needed), e.g. 80,90.
    /// Any kernel that fails to compile makes the command fail.
    #[arg(long, value_delimiter = ',')]
    pub compile_for: Vec<u32>,
    /// With --compile-for: compile afresh with `--ptxas-options=-v` and print ptxas's report
    /// (registers, shared memory, spills per kernel), which needs no GPU.
    #[arg(long)]
    pub ptxas_info: bool,
    /// With --compile-for: disassemble each kernel file's CUBIN with nvdisasm (PyPI
    /// nvidia-cuda-nvdisasm) and print per kernel the tensor-core (HMMA, HGMMA), LDSM and
    /// LDGSTS instruction counts, registers and spill bytes.
    #[arg(long)]
    pub sass_stats: bool,
    /// Check the distributed setup instead: read this rank from the environment (RANK /
    /// WORLD_SIZE, or Slurm), join the rendezvous and all-reduce known values. Run it as
    /// training will run: `seisfuse launch --nproc-per-node 8 -- doctor --dist`, or
    /// `srun seisfuse doctor --dist`.
    #[arg(long)]
    pub dist: bool,
    /// With --dist: auto (NCCL when it and this rank's GPU are present), tcp or nccl.
    #[arg(long, default_value = "auto")]
    pub dist_backend: crate::dist::CommBackend,
    /// With --dist: seconds to wait for every rank at the rendezvous.
    #[arg(long, default_value_t = 60.0)]
    pub dist_timeout: f64,
    /// With --dist: this rank fails at once (to test launchers).
    #[arg(long, hide = true)]
    pub dist_fail_rank: Option<usize>,
}

/// Compute capabilities (`sm_XY` as XY) that CUDA has had; `--compile-for` takes these.
pub const KNOWN_ARCHS: &[u32] = &[
    50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 88, 89, 90, 100, 101, 103, 110, 120, 121,
];

pub fn run(req: DeviceRequest, args: Args) -> Result<()> {
    if args.dist {
        if !(args.dist_timeout.is_finite() && args.dist_timeout > 0.0) {
            anyhow::bail!("--dist-timeout must be a positive number of seconds");
        }
        let opts = crate::dist::selftest::SelftestOptions {
            backend: args.dist_backend,
            timeout: std::time::Duration::from_secs_f64(args.dist_timeout),
            fail_rank: args.dist_fail_rank,
            ..Default::default()
        };
        return crate::dist::selftest::run(req, &opts);
    }
    for &arch in &args.compile_for {
        if !KNOWN_ARCHS.contains(&arch) {
            bail!(
                "--compile-for {arch}: not a GPU architecture; give compute capabilities as two \
                 or three digits, e.g. 80 (A100), 90 (H100/H200), 89 (L4), 120 (RTX 50xx); known: {}",
                KNOWN_ARCHS
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if args.sass_stats && args.compile_for.is_empty() {
        bail!("--sass-stats reports on the kernels that --compile-for compiles; give --compile-for too (e.g. --compile-for 80,90)");
    }
    if args.ptxas_info && args.compile_for.is_empty() {
        bail!("--ptxas-info reports on the kernels that --compile-for compiles; give --compile-for too (e.g. --compile-for 80,90)");
    }
    outln!("seisfuse {}", env!("CARGO_PKG_VERSION"))?;
    outln!("cpu threads: {} (rayon)", rayon::current_num_threads())?;
    let driver = discover::driver_present();
    outln!(
        "libcuda: {}",
        if driver {
            // Opening it through cudarc puts it in /proc/self/maps.
            let _ = CudaContext::device_count();
            discover::loaded_path_of("libcuda.so")
                .map(|p| format!("found at {}", p.display()))
                .unwrap_or_else(|| "found".into())
        } else {
            "not found".into()
        }
    )?;
    let nvrtc = Nvrtc::global();
    match &nvrtc {
        Ok(n) => outln!(
            "libnvrtc: NVRTC {}.{} at {}",
            n.version.0,
            n.version.1,
            n.path.display()
        )?,
        Err(e) => outln!("libnvrtc: not found ({e:#})")?,
    }
    outln!("{}", crate::dist::nccl_lib::status_line())?;
    outln!("kernel cache: {}", cuda::cache::cache_dir().display())?;
    outln!(
        "kernel files: {}",
        KERNEL_SOURCES
            .iter()
            .map(|k| k.file)
            .collect::<Vec<_>>()
            .join(", ")
    )?;

    let mut failed: Vec<String> = Vec::new();
    if let (Err(e), false) = (&nvrtc, args.compile_for.is_empty()) {
        bail!("--compile-for needs NVRTC, which was not found ({e:#}); pip install \"nvidia-cuda-nvrtc==13.0.*\" or set SEISFUSE_NVRTC");
    }
    if let (Ok(n), true) = (&nvrtc, args.sass_stats) {
        let Some(nvdisasm) = cuda::sass::find_nvdisasm() else {
            bail!("--sass-stats needs nvdisasm, which was not found; pip install \"nvidia-cuda-nvdisasm==13.2.51\" or set SEISFUSE_NVDISASM");
        };
        outln!("nvdisasm: {}", nvdisasm.display())?;
        for &arch in &args.compile_for {
            outln!(
                "  sm_{arch} {:<28} {:>5} {:>5} {:>5} {:>6} {:>5} {:>7} {:>7}",
                "kernel",
                "HMMA",
                "HGMMA",
                "LDSM",
                "LDGSTS",
                "regs",
                "spill-st",
                "spill-ld"
            )?;
            for k in KERNEL_SOURCES {
                match cuda::sass::sass_stats(n, &nvdisasm, k, arch) {
                    Ok(stats) => {
                        for s in stats {
                            outln!(
                                "  sm_{arch} {:<28} {:>5} {:>5} {:>5} {:>6} {:>5} {:>7} {:>7}",
                                s.name,
                                s.hmma,
                                s.hgmma,
                                s.ldsm,
                                s.ldgsts,
                                s.registers.map_or("?".into(), |r| r.to_string()),
                                s.spill_stores,
                                s.spill_loads
                            )?;
                        }
                    }
                    Err(e) => {
                        failed.push(format!("{} for sm_{arch}", k.file));
                        outln!("  FAILED {} for sm_{arch}: {e:#}", k.file)?
                    }
                }
            }
        }
    }
    if nvrtc.is_ok() && !args.sass_stats {
        for &arch in &args.compile_for {
            for k in KERNEL_SOURCES {
                if args.ptxas_info {
                    if let Ok(n) = &nvrtc {
                        match n.compile(k.source, k.file, arch, &["--ptxas-options=-v"]) {
                            Ok(c) => outln!("  {} sm_{arch}:\n{}", k.file, ptxas_summary(&c.log))?,
                            Err(e) => {
                                failed.push(format!("{} for sm_{arch}", k.file));
                                outln!("  FAILED {} for sm_{arch}: {e:#}", k.file)?
                            }
                        }
                    }
                    continue;
                }
                let t = std::time::Instant::now();
                match cuda::cache::compiled_cubin(k, arch) {
                    Ok(c) => outln!(
                        "  compiled {} for sm_{arch}: {} bytes in {:.2?}",
                        k.file,
                        c.len(),
                        t.elapsed()
                    )?,
                    Err(e) => {
                        failed.push(format!("{} for sm_{arch}", k.file));
                        outln!("  FAILED {} for sm_{arch}: {e:#}", k.file)?
                    }
                }
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} kernel compile(s) failed: {}",
            failed.len(),
            failed.join(", ")
        );
    }

    let gpus = if driver {
        CudaContext::device_count().unwrap_or(0)
    } else {
        0
    };
    if gpus == 0 || matches!(req, DeviceRequest::Cpu) {
        outln!(
            "no GPU{}",
            if driver {
                " (the driver reports none)"
            } else {
                ""
            }
        )?;
        if let Some(why) = cuda::unavailable_reason() {
            outln!("CUDA unavailable: {why}")?;
        }
        outln!("device: cpu")?;
        return Ok(());
    }
    let mut ver = 0i32;
    // SAFETY: plain query into an int.
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut ver) };
    outln!("driver: CUDA {}.{}", ver / 1000, (ver % 1000) / 10)?;
    for i in 0..gpus as usize {
        let b = match CudaBackend::get(i) {
            Ok(b) => b,
            Err(e) => {
                outln!("cuda:{i}: {e:#}")?;
                continue;
            }
        };
        let sms = b
            .ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .unwrap_or(0);
        let mem = b.ctx.total_mem().unwrap_or(0) as f64 / (1u64 << 30) as f64;
        outln!(
            "cuda:{i}: {} | sm_{} | {sms} SMs | {mem:.1} GiB",
            b.name,
            b.arch()
        )?;
        outln!(
            "  {:<34} {:>5} {:>9} {:>9}",
            "kernel",
            "regs",
            "smem(B)",
            "local(B)"
        )?;
        for k in KERNEL_SOURCES {
            let module = match b.module(k.name) {
                Ok(m) => m,
                Err(e) => {
                    outln!("  {}: {e:#}", k.file)?;
                    continue;
                }
            };
            for name in kernel_names(k.source) {
                match module.load_function(&name) {
                    Ok(f) => {
                        let g = |a| f.get_attribute(a).unwrap_or(-1);
                        outln!(
                            "  {:<34} {:>5} {:>9} {:>9}",
                            name,
                            g(Attr::CU_FUNC_ATTRIBUTE_NUM_REGS),
                            g(Attr::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES),
                            g(Attr::CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES)
                        )?;
                    }
                    Err(e) => outln!("  {name}: {e:?}")?,
                }
            }
        }
    }
    Ok(())
}

/// Names of the `extern "C" __global__` kernels of a source: plain definitions (after an
/// optional `__launch_bounds__(..)`), `INSTANTIATE(_suffix, ..)` expansions of `NAME##SUF`, and
/// kernels defined by a macro `#define M(NAME, ..)` and named by its first argument at each
/// `M(name, ..)` line.
pub fn kernel_names(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut suffixes = Vec::new();
    // Kernel-defining macros: `#define M(...)` whose continued body holds `__global__`.
    let mut macros = Vec::new();
    let mut in_define: Option<String> = None;
    for line in src.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("INSTANTIATE(") {
            if let Some(suf) = rest.split(',').next() {
                suffixes.push(suf.trim().to_string());
            }
        }
        if let Some(rest) = l.strip_prefix("#define ") {
            in_define = rest.split('(').next().map(|m| m.trim().to_string());
        }
        if let Some(m) = &in_define {
            if l.contains("__global__") {
                macros.push(m.clone());
            }
            if !l.ends_with('\\') {
                in_define = None;
            }
        }
    }
    let mut in_define = false;
    for line in src.lines() {
        let l = line.trim();
        let defining = in_define || l.starts_with("#define ");
        in_define = defining && l.ends_with('\\');
        if !defining {
            for m in &macros {
                if let Some(rest) = l.strip_prefix(&format!("{m}(")) {
                    if let Some(name) = rest.split(',').next() {
                        out.push(name.trim().to_string());
                    }
                }
            }
        }
        let Some(i) = line.find("__global__ void ") else {
            continue;
        };
        let mut rest = line[i + "__global__ void ".len()..].trim_start();
        if let Some(after) = rest.strip_prefix("__launch_bounds__(") {
            rest = after.split_once(')').map_or("", |(_, r)| r).trim_start();
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '#')
            .collect();
        if let Some(base) = name.strip_suffix("##SUF") {
            for s in &suffixes {
                out.push(format!("{base}{s}"));
            }
        } else if !name.is_empty() && !defining {
            out.push(name);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// ptxas's verbose report, one line per kernel: "name: N registers, S bytes smem, spills".
fn ptxas_summary(log: &str) -> String {
    let mut out = String::new();
    let mut current = String::new();
    for line in log.lines() {
        if let Some(i) = line.find("Compiling entry function '") {
            let rest = &line[i + "Compiling entry function '".len()..];
            current = rest.split('\'').next().unwrap_or("").to_string();
        } else if line.contains("spill stores") || line.contains("Used ") {
            let info = line.split("info    :").last().unwrap_or(line).trim();
            out.push_str(&format!("    {current:<34} {info}\n"));
        }
    }
    out
}

#[cfg(test)]
mod kernel_name_tests {
    use super::kernel_names;

    #[test]
    fn macro_defined_and_launch_bounded_kernels_are_named() {
        let src = "#define K(NAME, T)                          \\\n\
                   extern \"C\" __global__ void __launch_bounds__(256) \\\n\
                   NAME(T* x) { x[0] = 0; }\n\
                   K(k_f32, float)\n\
                   K(k_bf16, bf16_t)\n\
                   extern \"C\" __global__ void __launch_bounds__(128) plain(float* x) {}\n\
                   extern \"C\" __global__ void other(float* x) {}\n";
        assert_eq!(
            kernel_names(src),
            ["k_bf16", "k_f32", "other", "plain"].map(String::from)
        );
    }

    #[test]
    fn every_kernel_file_names_its_kernels_without_macro_words() {
        for k in crate::backend::cuda::KERNEL_SOURCES {
            for n in kernel_names(k.source) {
                assert!(
                    !n.starts_with("__") && n != "NAME",
                    "{}: {n} is not a kernel name",
                    k.name
                );
            }
        }
    }
}
