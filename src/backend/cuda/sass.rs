//! What the machine code of a kernel file holds, without a GPU: the file is compiled by NVRTC to
//! a CUBIN for a real architecture with `--ptxas-options=-v`, disassembled by NVIDIA's
//! `nvdisasm` (PyPI `nvidia-cuda-nvdisasm`, found in Python's site-packages like NVRTC, or named
//! by `SEISFUSE_NVDISASM`), and per kernel the tensor-core instructions (HMMA, HGMMA), shared
//! to register matrix loads (LDSM), asynchronous global to shared copies (LDGSTS) are counted,
//! next to ptxas's registers and spill bytes. Used by `seisfuse doctor --sass-stats` and
//! tests/tc_sass.rs.

use super::nvrtc::Nvrtc;
use super::KernelSource;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One kernel's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelSass {
    pub name: String,
    pub hmma: usize,
    pub hgmma: usize,
    pub ldsm: usize,
    pub ldgsts: usize,
    pub instructions: usize,
    /// From ptxas's report (None when it printed nothing for this kernel).
    pub registers: Option<u32>,
    pub spill_stores: u64,
    pub spill_loads: u64,
}

/// `nvdisasm`: `$SEISFUSE_NVDISASM` when set (None if that is no file), else site-packages'
/// `nvidia/cu13/bin` (or `cu12`, `cuda_nvdisasm/bin`), else `$CUDA_HOME/bin`,
/// `/usr/local/cuda/bin`, then PATH.
pub fn find_nvdisasm() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SEISFUSE_NVDISASM") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for sp in super::discover::python_site_packages() {
        for sub in [
            "nvidia/cu13/bin",
            "nvidia/cu12/bin",
            "nvidia/cuda_nvdisasm/bin",
        ] {
            dirs.push(sp.join(sub));
        }
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(r) = std::env::var_os(var) {
            dirs.push(Path::new(&r).join("bin"));
        }
    }
    dirs.push("/usr/local/cuda/bin".into());
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join("nvdisasm"))
        .find(|p| p.is_file())
}

/// Counts per kernel in nvdisasm's output (`.section .text.NAME` opens a kernel's code).
pub fn count_sass(listing: &str) -> BTreeMap<String, KernelSass> {
    let mut out: BTreeMap<String, KernelSass> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in listing.lines() {
        let t = line.trim();
        // `.section NAME,...` (not `.sectionflags` / `.sectioninfo`, which follow it).
        if let Some(rest) = t
            .strip_prefix(".section")
            .filter(|r| r.starts_with(char::is_whitespace))
        {
            let sec = rest.trim().split(',').next().unwrap_or("").trim();
            current = sec.strip_prefix(".text.").map(str::to_string);
            if let Some(name) = &current {
                out.entry(name.clone()).or_insert_with(|| KernelSass {
                    name: name.clone(),
                    ..Default::default()
                });
            }
            continue;
        }
        let Some(name) = &current else { continue };
        // Instructions look like `/*0120*/  @!P0 HMMA.16816.F32.BF16 R4, R8, R12, R4 ;`.
        let Some(i) = t.find("*/") else { continue };
        if !t.starts_with("/*") {
            continue;
        }
        let mut words = t[i + 2..].split_whitespace();
        let mut op = words.next().unwrap_or("");
        if op.starts_with('@') {
            op = words.next().unwrap_or("");
        }
        if op.is_empty() || op.starts_with('{') && op.len() == 1 {
            continue;
        }
        let op = op.trim_start_matches('{');
        let base = op.split('.').next().unwrap_or("");
        if base.is_empty()
            || !base
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            continue;
        }
        let k = out.get_mut(name).expect("entry made at its section");
        k.instructions += 1;
        match base {
            "HMMA" => k.hmma += 1,
            "HGMMA" => k.hgmma += 1,
            "LDSM" => k.ldsm += 1,
            "LDGSTS" => k.ldgsts += 1,
            _ => {}
        }
    }
    out
}

/// Registers and spill bytes per kernel from ptxas's `-v` report.
pub fn parse_ptxas(log: &str, into: &mut BTreeMap<String, KernelSass>) {
    let mut current = String::new();
    let num_before = |s: &str, unit: &str| -> Option<u64> {
        let i = s.find(unit)?;
        s[..i].split_whitespace().last()?.parse().ok()
    };
    for line in log.lines() {
        if let Some(i) = line.find("Compiling entry function '") {
            current = line[i + 26..].split('\'').next().unwrap_or("").to_string();
        } else if let Some(i) = line.find("Function properties for ") {
            current = line[i + 24..].trim().to_string();
        } else if line.contains("spill stores") {
            let k = into.entry(current.clone()).or_default();
            k.name = current.clone();
            k.spill_stores = num_before(line, "bytes spill stores").unwrap_or(0);
            k.spill_loads = num_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used ") && line.contains("registers") {
            let k = into.entry(current.clone()).or_default();
            k.name = current.clone();
            k.registers = num_before(line, "registers").map(|r| r as u32);
        }
    }
}

/// Compiles `src` for `sm_{arch}`, disassembles it and returns the counts per kernel.
pub fn sass_stats(
    nvrtc: &Nvrtc,
    nvdisasm: &Path,
    src: &KernelSource,
    arch: u32,
) -> Result<Vec<KernelSass>> {
    let c = nvrtc.compile(src.source, src.file, arch, &["--ptxas-options=-v"])?;
    let dir = std::env::temp_dir().join(format!("seisfuse-sass-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let cubin = dir.join(format!("{}_sm{arch}.cubin", src.name));
    std::fs::write(&cubin, &c.cubin).with_context(|| format!("write {}", cubin.display()))?;
    let out = std::process::Command::new(nvdisasm)
        .arg(&cubin)
        .output()
        .with_context(|| format!("run {}", nvdisasm.display()))?;
    let _ = std::fs::remove_file(&cubin);
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            nvdisasm.display(),
            cubin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut stats = count_sass(&String::from_utf8_lossy(&out.stdout));
    parse_ptxas(&c.log, &mut stats);
    stats.retain(|name, _| !name.is_empty());
    Ok(stats.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_instructions_per_kernel_and_reads_ptxas() {
        let listing = "\t.section\t.text.k1,\"ax\",@progbits\n\
            \t.sectioninfo\t@\"SHI_REGISTERS=168\"\n\
            /*0000*/ LDGSTS.E.BYPASS.LTC128B.128 [R1], desc[UR4][R2.64] ;\n\
            /*0010*/ @!P0 HMMA.16816.F32.BF16 R4, R8, R12, R4 ;\n\
            /*0020*/ LDSM.16.M88.4 R8, [R3] ;\n\
            \t.section\t.text.k2,\"ax\",@progbits\n\
            /*0000*/ FFMA R1, R2, R3, R4 ;\n";
        let mut s = count_sass(listing);
        assert_eq!((s["k1"].hmma, s["k1"].ldsm, s["k1"].ldgsts), (1, 1, 1));
        assert_eq!((s["k2"].hmma, s["k2"].instructions), (0, 1));
        let log = "ptxas info    : Compiling entry function 'k1' for 'sm_90'\n\
            ptxas info    : Function properties for k1\n\
                8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
            ptxas info    : Used 168 registers, used 1 barriers\n";
        parse_ptxas(log, &mut s);
        assert_eq!(s["k1"].registers, Some(168));
        assert_eq!((s["k1"].spill_stores, s["k1"].spill_loads), (4, 12));
    }
}
