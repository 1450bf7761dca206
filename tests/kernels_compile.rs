//! Every kernel file compiles with NVRTC for sm_80 and sm_90 (no GPU needed). Reported as
//! skipped where no NVRTC is found, a failure under SEISFUSE_REQUIRE_NVRTC (CI installs NVRTC
//! from PyPI and sets it, so there they always run).

mod common;
use seisfuse::backend::cuda::{nvrtc::Nvrtc, KERNEL_SOURCES};

/// NVRTC, or a skip (a failure under SEISFUSE_REQUIRE_NVRTC).
fn nvrtc_or_skip(test: &str) -> Option<&'static Nvrtc> {
    match Nvrtc::global() {
        Ok(n) => Some(n),
        Err(e) => {
            common::skip(test, common::Need::Nvrtc, format!("no NVRTC: {e:#}"));
            None
        }
    }
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    let Some(nvrtc) = nvrtc_or_skip("every_kernel_compiles_for_sm80_and_sm90") else {
        return;
    };
    println!(
        "NVRTC {}.{} at {}",
        nvrtc.version.0,
        nvrtc.version.1,
        nvrtc.path.display()
    );
    assert!(
        KERNEL_SOURCES.len() >= 8,
        "kernels/ should hold every op family"
    );
    let mut failures = Vec::new();
    for arch in [80u32, 90] {
        for k in KERNEL_SOURCES {
            let t0 = std::time::Instant::now();
            match nvrtc.compile(
                k.source,
                k.file,
                arch,
                seisfuse::backend::cuda::cache::NVRTC_OPTIONS,
            ) {
                Ok(c) => {
                    assert!(c.cubin.len() > 1000, "{} produced an empty CUBIN", k.file);
                    println!(
                        "compiled {} for sm_{arch}: {} bytes in {:.1} s",
                        k.file,
                        c.cubin.len(),
                        t0.elapsed().as_secs_f64()
                    );
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "kernels failed to compile:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_broken_kernel_reports_its_file_and_the_log() {
    let Some(nvrtc) = nvrtc_or_skip("a_broken_kernel_reports_its_file_and_the_log") else {
        return;
    };
    let err = nvrtc
        .compile(
            "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
            "kernels/broken.cu",
            80,
            &[],
        )
        .expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("kernels/broken.cu"), "{msg}");
    assert!(
        msg.contains("undefined_name"),
        "the NVRTC log is shown: {msg}"
    );
}

#[test]
fn the_disk_cache_serves_a_second_start() {
    use seisfuse::backend::cuda::cache;
    let Some(nvrtc) = nvrtc_or_skip("the_disk_cache_serves_a_second_start") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("seisfuse-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // SAFETY: no other test of this binary reads SEISFUSE_CACHE_DIR.
    std::env::set_var("SEISFUSE_CACHE_DIR", &dir);
    let k = KERNEL_SOURCES.iter().find(|k| k.name == "softmax").unwrap();
    let path = cache::cache_path(k, 80, nvrtc.version);
    assert!(path.starts_with(&dir));
    let first = cache::compiled_cubin(k, 80).unwrap();
    assert!(path.exists(), "the first compile stores {}", path.display());
    // Replace the cached file: a second start must read it instead of compiling.
    std::fs::write(&path, b"from-the-cache").unwrap();
    assert_eq!(cache::compiled_cubin(k, 80).unwrap(), b"from-the-cache");
    // Another arch or source hash is another entry.
    assert_ne!(cache::cache_path(k, 90, nvrtc.version), path);
    assert!(first.len() > 1000);
    std::env::remove_var("SEISFUSE_CACHE_DIR");
    let _ = std::fs::remove_dir_all(&dir);
}
