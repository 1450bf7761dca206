//! Embeds every `kernels/*.cu` (with `kernels/common.cuh` prepended) into the binary, with a
//! content hash per file that keys the on-disk cache of compiled kernels.

use std::fmt::Write as _;
use std::path::Path;

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Replaces each line `#include "NAME.cuh"` by kernels/NAME.cuh (NVRTC compiles without
/// headers), with `#line` directives so that errors name the right file and line.
fn expand_includes(body: &str, stem: &str) -> String {
    let mut out = String::with_capacity(body.len());
    for (i, line) in body.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t
            .strip_prefix("#include \"")
            .and_then(|r| r.strip_suffix('"'))
            .filter(|n| n.ends_with(".cuh"))
        {
            let path = format!("kernels/{name}");
            println!("cargo:rerun-if-changed={path}");
            let header = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("kernels/{stem}.cu includes {path}: {e}"));
            writeln!(
                out,
                "#line 1 \"{path}\"\n{header}\n#line {} \"kernels/{stem}.cu\"",
                i + 2
            )
            .unwrap();
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out_dir).join("kernels");
    std::fs::create_dir_all(&out).expect("create OUT_DIR/kernels");
    let common =
        std::fs::read_to_string("kernels/common.cuh").expect("kernels/common.cuh must exist");
    let mut files: Vec<_> = std::fs::read_dir("kernels")
        .expect("kernels/ must exist")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    files.sort();
    let mut table = String::from("pub static KERNEL_SOURCES: &[KernelSource] = &[\n");
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let body = expand_includes(&std::fs::read_to_string(&path).expect("read kernel"), &stem);
        let full = format!(
            "#line 1 \"kernels/common.cuh\"\n{common}\n#line 1 \"kernels/{stem}.cu\"\n{body}"
        );
        let hash = fnv1a64(full.as_bytes());
        std::fs::write(out.join(format!("{stem}.cu")), &full).expect("write kernel");
        writeln!(
            table,
            "    KernelSource {{ name: \"{stem}\", file: \"kernels/{stem}.cu\", source: include_str!(concat!(env!(\"OUT_DIR\"), \"/kernels/{stem}.cu\")), hash: 0x{hash:016x} }},"
        )
        .unwrap();
    }
    table.push_str("];\n");
    std::fs::write(Path::new(&out_dir).join("kernel_sources.rs"), table).expect("write table");
}
