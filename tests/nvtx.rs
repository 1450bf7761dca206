//! NVTX ranges (src/nvtx.rs) as a profiler receives them, without a GPU or Nsight: a fake NVTX
//! tool written in C against NVIDIA's header (`tools/nvtx_fake_tool.c`, compiled here with the
//! system C compiler) is injected the way nsys injects its own (`NVTX_INJECTION64_PATH`) and
//! records every push, pop and mark. The same tool is first attached to NVIDIA's own
//! header-only client (`tools/nvtx_reference_client.c`), so the record is known to be right.
//! A path that is no library, and a tool that declines, leave NVTX off with one stderr line.
//!
//! Needs the header (`pip install "nvidia-nvtx==13.0.*"`, found in Python's site-packages
//! under `nvidia/cu13/include`) and a C compiler (`$CC`, else `cc`); without them the tool's
//! cases are skipped, a failure under SEISFUSE_REQUIRE_REFS (CI).

mod common;

use common::{skip, Need};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The folder holding `nvtx3/nvToolsExt.h`: the `nvidia-nvtx` wheel's
/// `site-packages/nvidia/cu13/include` (or `cu12`), else `$CUDA_HOME/include`,
/// `/usr/local/cuda/include`.
fn nvtx_include_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for sp in seisfuse::backend::cuda::discover::python_site_packages() {
        dirs.push(sp.join("nvidia/cu13/include"));
        dirs.push(sp.join("nvidia/cu12/include"));
        dirs.push(sp.join("nvidia/nvtx/include"));
    }
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        dirs.push(Path::new(&home).join("include"));
    }
    dirs.push("/usr/local/cuda/include".into());
    dirs.into_iter()
        .find(|d| d.join("nvtx3/nvToolsExt.h").is_file())
}

/// Compiles `tools/<source>` with the header into `<tmp>/<out>` (`-shared -fPIC` for the
/// tool). `Err` says what is missing (a skip); a compiler error with both present panics.
fn compile(source: &str, out: &str, shared: bool) -> Result<PathBuf, String> {
    let Some(include) = nvtx_include_dir() else {
        return Err(
            "NVIDIA's NVTX header (nvtx3/nvToolsExt.h) is not installed \
             (pip install \"nvidia-nvtx==13.0.*\")"
                .into(),
        );
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if !Command::new(&cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err(format!("no C compiler `{cc}` (set CC or install cc)"));
    }
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nvtx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(out);
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools")
        .join(source);
    let mut c = Command::new(&cc);
    c.args(["-std=c99", "-Wall", "-Wextra", "-O1", "-I"])
        .arg(&include)
        .arg(&src)
        .arg("-o")
        .arg(&path);
    if shared {
        c.args(["-shared", "-fPIC"]);
    } else {
        c.arg("-ldl");
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{cc} could not compile {} with {}:\n{}",
        src.display(),
        include.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(path)
}

/// `compile`'s result, or a [`skip`] saying what is missing.
fn or_skip(test: &str, built: &Result<PathBuf, String>) -> Option<PathBuf> {
    match built {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            skip(test, Need::Refs, why);
            None
        }
    }
}

/// The fake tool, compiled once per test binary (the tests run in parallel and share it).
fn fake_tool(test: &str) -> Option<PathBuf> {
    static TOOL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    or_skip(
        test,
        TOOL.get_or_init(|| compile("nvtx_fake_tool.c", "nvtx_fake_tool.so", true)),
    )
}

/// Runs `program args` with the tool injected; returns its output and the tool's record.
fn run_with_tool(
    program: &Path,
    args: &[&str],
    tool: &Path,
    record: &Path,
    extra_env: &[(&str, &str)],
) -> (Output, Vec<String>) {
    let _ = std::fs::remove_file(record);
    let mut c = Command::new(program);
    c.args(args)
        .env("NVTX_INJECTION64_PATH", tool)
        .env("SEISFUSE_NVTX_FAKE_LOG", record)
        .env("SEISFUSE_PROGRESS_SECS", "1000");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let lines = std::fs::read_to_string(record)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    (o, lines)
}

fn seisfuse() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_seisfuse"))
}

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The stderr lines that mention NVTX.
fn nvtx_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains("NVTX"))
        .map(str::to_string)
        .collect()
}

/// Checks the record starts with `init`, holds no error, and that pushes and pops balance;
/// returns each pushed range with the range it was pushed inside ("" at the top level), in
/// order.
fn ranges(record: &[String]) -> Vec<(String, String)> {
    assert_eq!(
        record.first().map(String::as_str),
        Some("init"),
        "the tool did not attach: {record:?}"
    );
    let mut stack: Vec<String> = Vec::new();
    let mut pushed = Vec::new();
    for line in &record[1..] {
        if let Some(name) = line.strip_prefix("push ") {
            pushed.push((name.to_string(), stack.last().cloned().unwrap_or_default()));
            stack.push(name.to_string());
        } else if line == "pop" {
            assert!(stack.pop().is_some(), "a pop without a push: {record:?}");
        } else {
            assert!(line.starts_with("mark "), "unexpected record line {line:?}");
        }
    }
    assert!(stack.is_empty(), "ranges left open: {stack:?}");
    pushed
}

#[test]
fn the_fake_tool_records_nvidias_own_client() {
    let test = "the_fake_tool_records_nvidias_own_client";
    let Some(tool) = fake_tool(test) else { return };
    let built = compile("nvtx_reference_client.c", "nvtx_reference_client", false);
    let Some(client) = or_skip(test, &built) else {
        return;
    };
    let record = tool.with_file_name("reference.log");
    let (o, lines) = run_with_tool(&client, &[], &tool, &record, &[]);
    assert_ok(&o, "the reference client");
    assert_eq!(
        lines,
        [
            "init",
            "push outer",
            "push inner",
            "mark here",
            "pop",
            "pop"
        ]
    );
}

/// Whether a range `name` was pushed directly inside `parent` ("" at the top).
fn has_range(pushed: &[(String, String)], name: &str, parent: &str) -> bool {
    pushed.iter().any(|(n, p)| n == name && p == parent)
}

/// `MODEL/UNIT i forward|backward` inside `MODEL/forward|backward` for i in 0..count, and no
/// unit `count`.
fn assert_one_range_per_index(pushed: &[(String, String)], model: &str, unit: &str, count: usize) {
    for i in 0..count {
        for pass in ["forward", "backward"] {
            let (name, parent) = (
                format!("{model}/{unit} {i} {pass}"),
                format!("{model}/{pass}"),
            );
            assert!(
                has_range(pushed, &name, &parent),
                "{name} in {parent}: {pushed:?}"
            );
        }
    }
    let past = format!("{model}/{unit} {count} forward");
    assert!(
        !pushed.iter().any(|(n, _)| *n == past),
        "{past}: {pushed:?}"
    );
}

#[test]
fn bench_sfm_ranges_reach_the_tool() {
    let test = "bench_sfm_ranges_reach_the_tool";
    let Some(tool) = fake_tool(test) else { return };
    let record = tool.with_file_name("bench-sfm.log");
    let args = [
        "--device",
        "cpu",
        "bench",
        "sfm",
        "--preset",
        "sfm-tiny",
        "--batch",
        "2",
        "--infer-batch",
        "2",
        "--iters",
        "1",
    ];
    let (o, lines) = run_with_tool(seisfuse(), &args, &tool, &record, &[]);
    assert_ok(&o, "bench sfm");
    assert!(nvtx_lines(&o).is_empty(), "{:?}", nvtx_lines(&o));
    let pushed = ranges(&lines);
    let has = |name: &str, parent: &str| has_range(&pushed, name, parent);
    let depth = seisfuse::models::sfm::VitConfig::preset("sfm-tiny")
        .unwrap()
        .depth;
    assert_one_range_per_index(&pushed, "sfm", "block", depth);
    assert!(has("sfm/forward", ""), "{pushed:?}");
    assert!(has("sfm/backward", ""), "{pushed:?}");
    assert!(has("optimizer step", ""), "{pushed:?}");
}

#[test]
fn train_seislm_ranges_reach_the_tool() {
    let test = "train_seislm_ranges_reach_the_tool";
    let Some(tool) = fake_tool(test) else { return };
    let record = tool.with_file_name("train-pick.log");
    let out = tool.with_file_name("train-pick-run");
    let _ = std::fs::remove_dir_all(&out);
    let args = [
        "train",
        "--task",
        "pick",
        "--steps",
        "2",
        "--quiet",
        "--device",
        "cpu",
        "--set",
        "batch=2",
        "--out",
        out.to_str().unwrap(),
    ];
    let (o, lines) = run_with_tool(seisfuse(), &args, &tool, &record, &[]);
    assert_ok(&o, "train --task pick");
    assert!(nvtx_lines(&o).is_empty(), "{:?}", nvtx_lines(&o));
    let pushed = ranges(&lines);
    let has = |name: &str, parent: &str| has_range(&pushed, name, parent);
    for step in 0..2 {
        let s = format!("train step {step}");
        assert!(has(&s, ""), "{s} in {pushed:?}");
        assert!(
            has("seislm/forward", &s),
            "seislm/forward in {s}: {pushed:?}"
        );
        assert!(
            has("seislm/backward", &s),
            "seislm/backward in {s}: {pushed:?}"
        );
        assert!(
            has("optimizer step", &s),
            "optimizer step in {s}: {pushed:?}"
        );
    }
    assert!(!has("train step 2", ""), "{pushed:?}");
    let layers = seisfuse::models::seislm::SeislmConfig::preset("seislm-tiny")
        .unwrap()
        .layers;
    assert_one_range_per_index(&pushed, "seislm", "layer", layers);
    let _ = std::fs::remove_dir_all(&out);
}

/// The quick command the failure cases run: one SFM training step reaches the first range.
const BENCH_ONE: [&str; 12] = [
    "--device",
    "cpu",
    "bench",
    "sfm",
    "--preset",
    "sfm-tiny",
    "--batch",
    "1",
    "--infer-batch",
    "1",
    "--iters",
    "1",
];

#[test]
fn a_path_that_is_no_library_leaves_nvtx_off_with_one_line() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nvtx-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_lib = dir.join("not a library\nsecond line.so");
    std::fs::write(&not_lib, "this is text, not an ELF file\n").unwrap();
    for bad in [not_lib.clone(), dir.join("missing.so"), dir.clone()] {
        let o = Command::new(seisfuse())
            .args(BENCH_ONE)
            .env("NVTX_INJECTION64_PATH", &bad)
            .env("SEISFUSE_PROGRESS_SECS", "1000")
            .output()
            .unwrap();
        assert_ok(&o, &format!("bench sfm with NVTX_INJECTION64_PATH={bad:?}"));
        let lines = nvtx_lines(&o);
        assert_eq!(lines.len(), 1, "{bad:?}: {lines:?}");
        assert!(lines[0].contains("NVTX_INJECTION64_PATH"), "{}", lines[0]);
        assert!(lines[0].contains("could not be loaded"), "{}", lines[0]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tool_that_declines_leaves_nvtx_off_with_one_line() {
    let test = "a_tool_that_declines_leaves_nvtx_off_with_one_line";
    let Some(tool) = fake_tool(test) else { return };
    let record = tool.with_file_name("declined.log");
    let (o, lines) = run_with_tool(
        seisfuse(),
        &BENCH_ONE,
        &tool,
        &record,
        &[("SEISFUSE_NVTX_FAKE_DECLINE", "1")],
    );
    assert_ok(&o, "bench sfm with a declining tool");
    assert_eq!(lines, ["declined"]);
    let err = nvtx_lines(&o);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].contains("returned 0"), "{}", err[0]);
}
