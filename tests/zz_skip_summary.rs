//! The skip summary. Cargo runs the integration test binaries in name order, so this one runs
//! last: it lists every skip that tests/common `skip` recorded during the run (a missing
//! reference tool, download, NVRTC or C++ compiler), past the test harness's output capture so
//! that it shows in a CI log, and empties the record for the next run. A plain `cargo test` on a
//! machine without a GPU shows the GPU tests as `ignored` in cargo's own summary lines, not here.
//!
//! Each skip is a failure instead when its requirement variable is set (`SEISFUSE_REQUIRE_REFS`,
//! `_NVRTC`, `_EMU`; `.ci/run` sets them all), so in CI this list is empty.

mod common;
use common::{skip_log, uncaptured};

#[test]
fn list_of_skipped_checks() {
    let log = skip_log();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        uncaptured("skip summary: no check was skipped");
    } else {
        uncaptured(&format!(
            "skip summary: {} check(s) skipped (recorded in {}):",
            lines.len(),
            log.display()
        ));
        for l in &lines {
            uncaptured(&format!("  {l}"));
        }
    }
    let _ = std::fs::remove_file(&log);
}

/// On a GPU machine (`SEISFUSE_REQUIRE_GPU=1`, as scripts/gpu-run.sh sets it) CUDA must start,
/// even in a run that did not ask for the ignored GPU tests. Elsewhere this checks nothing.
#[test]
fn cuda_starts_where_a_gpu_is_required() {
    if std::env::var_os("SEISFUSE_REQUIRE_GPU").is_some() {
        let d = common::cuda("cuda_starts_where_a_gpu_is_required");
        uncaptured(&format!("SEISFUSE_REQUIRE_GPU: CUDA started: {d:?}"));
    }
}
