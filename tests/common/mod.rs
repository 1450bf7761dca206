//! Shared test helpers: random tensors, error norms, finite differences, and the device list
//! (one test body runs on every available device, as in candle), and the dsp tests' fixture
//! reader and comparisons.
#![allow(dead_code)]

pub mod emu;

use seisfuse::backend::cpu::philox::PhiloxStream;
use seisfuse::backend::{cuda, Device};
use seisfuse::{DType, Tensor};
use std::path::PathBuf;

/// Uniform values in [lo, hi) from a seed.
pub fn rand_vec(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = PhiloxStream::new(seed, 0, 77);
    (0..n).map(|_| lo + (hi - lo) * s.next_f32()).collect()
}

pub fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_f32(shape, rand_vec(n, seed, -1.0, 1.0)).unwrap()
}

/// ‖a − b‖ / ‖b‖ (‖a − b‖ when b is zero).
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum::<f64>().sqrt();
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

/// ‖got − want‖ / ‖want‖ against a double-precision reference (the emulated kernels' checks);
/// every value of `got` must be finite.
pub fn rel_err_f64(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    assert!(got.iter().all(|v| v.is_finite()), "non-finite output");
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).powi(2))
        .sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    (num / den.max(1e-300)).sqrt()
}

/// What a test needs that a machine may lack. Each has an environment variable that turns a
/// missing requirement into a failure instead of a skip (`.ci/run` sets all but the GPU one).
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// A reference tool (python3 with numpy, segyio, h5py) or a download (ObsPy's test files).
    Refs,
    /// NVRTC, to compile the kernels.
    Nvrtc,
    /// A C++20 compiler, for the CPU emulation of the kernels (tools/cuda_emu).
    Emu,
}

impl Need {
    pub fn var(self) -> &'static str {
        match self {
            Need::Refs => "SEISFUSE_REQUIRE_REFS",
            Need::Nvrtc => "SEISFUSE_REQUIRE_NVRTC",
            Need::Emu => "SEISFUSE_REQUIRE_EMU",
        }
    }
}

/// Where skips are recorded for `tests/zz_skip_summary.rs`: `$SEISFUSE_SKIP_LOG`, else
/// `skips.log` in cargo's temporary folder of the target directory.
pub fn skip_log() -> PathBuf {
    match std::env::var_os("SEISFUSE_SKIP_LOG") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skips.log"),
    }
}

/// Writes a line to the process's stderr directly. libtest captures only the `print!` family
/// (and panic messages) of a passing test, so this line shows in a CI log even when the test
/// passes.
pub fn uncaptured(line: &str) {
    use std::io::Write;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
    let _ = e.flush();
}

/// The one way a test skips part of its work: panics when `need`'s environment variable is set
/// (the requirement is then a failure), else prints `SKIPPED: <test>: <why>` past the test
/// harness's capture and appends it to [`skip_log`], which the last test binary
/// (`zz_skip_summary`) lists. The caller returns after this.
pub fn skip(test: &str, need: Need, why: impl std::fmt::Display) {
    let var = need.var();
    if std::env::var_os(var).is_some() {
        panic!("{test}: {var} is set, but {why}");
    }
    let line = format!("SKIPPED: {test}: {why} (set {var}=1 to make this a failure)");
    uncaptured(&line);
    let log = skip_log();
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
    {
        use std::io::Write;
        let _ = writeln!(f, "{line}");
    }
}

/// The CUDA device for a test marked `#[ignore = "needs a CUDA GPU"]`: such a test runs only
/// when asked for (`-- --include-ignored`), and then a CUDA start failure fails it.
pub fn cuda(test: &str) -> Device {
    if let Some(why) = cuda::unavailable_reason() {
        panic!("{test} needs a CUDA GPU: {why}");
    }
    match cuda::CudaBackend::get(0) {
        Ok(b) => Device::Cuda(b),
        Err(e) => panic!("{test} needs a CUDA GPU: {e:#}"),
    }
}

/// Whether python3 can import every module of `modules` (space separated).
pub fn python_has(modules: &str) -> bool {
    let code = modules
        .split_whitespace()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    std::process::Command::new("python3")
        .args(["-c", &code])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `python_has(modules)`, or a [`skip`] (a failure under SEISFUSE_REQUIRE_REFS) saying which
/// package to install.
pub fn python_or_skip(test: &str, modules: &str) -> bool {
    if python_has(modules) {
        return true;
    }
    skip(
        test,
        Need::Refs,
        format!("python3 cannot import {modules} (pip install {modules})"),
    );
    false
}

/// The C++ compiler for tools/cuda_emu (`$CXX`, else g++), or a [`skip`] (a failure under
/// SEISFUSE_REQUIRE_EMU).
pub fn cxx_or_skip(test: &str) -> Option<String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    match std::process::Command::new(&cxx).arg("--version").output() {
        Ok(o) if o.status.success() => Some(cxx),
        _ => {
            skip(
                test,
                Need::Emu,
                format!("no C++ compiler `{cxx}` (set CXX or install g++)"),
            );
            None
        }
    }
}

/// Checks `analytic` (the gradient of L(x) = Σ w ⊙ f(x) at x) against central differences,
/// element by element. `f` maps the flat input to the flat output.
pub fn check_grad(
    name: &str,
    x: &[f32],
    w: &[f32],
    analytic: &[f32],
    h: f32,
    tol: f64,
    f: impl Fn(&[f32]) -> Vec<f32>,
) {
    assert_eq!(x.len(), analytic.len(), "{name}: gradient length");
    let loss = |v: &[f32]| -> f64 {
        let y = f(v);
        assert_eq!(y.len(), w.len(), "{name}: output length");
        y.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let scale = analytic.iter().fold(1e-3f64, |m, &g| m.max(g.abs() as f64));
    let mut worst = 0.0f64;
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        let orig = xp[i];
        xp[i] = orig + h;
        let lp = loss(&xp);
        xp[i] = orig - h;
        let lm = loss(&xp);
        xp[i] = orig;
        let num = (lp - lm) / (2.0 * h as f64);
        let err = (num - analytic[i] as f64).abs() / scale;
        worst = worst.max(err);
        assert!(err < tol, "{name}: d/dx[{i}] analytic {} vs numeric {num} (error {err:.2e} of max |g| {scale:.3e})", analytic[i]);
    }
    println!(
        "{name}: gradient check ok over {} elements, worst error {worst:.2e}",
        x.len()
    );
}

pub fn to_bf16(t: &Tensor) -> Tensor {
    t.to_dtype(DType::BF16).unwrap()
}

/// A mel fixture (`tests/fixtures/mel_{name}.npy`) as (shape, values).
pub fn fixture(name: &str) -> (Vec<usize>, Vec<f32>) {
    let p = fixtures_dir().join(format!("mel_{name}.npy"));
    seisfuse::data::npy::read_f32_tensor(&p)
        .map(|t| (t.shape.clone(), t.to_vec_f32().unwrap()))
        .unwrap_or_else(|e| panic!("{e:#} (regenerate with tools/make_mel_fixtures.py)"))
}

/// ‖a − b‖ / ‖b‖ and max |a − b|.
pub fn errors(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let (mut num, mut den, mut mx) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let d = x as f64 - y as f64;
        num += d * d;
        den += (y as f64) * (y as f64);
        mx = mx.max(d.abs());
    }
    ((num / den.max(1e-300)).sqrt(), mx)
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32], rel_l2: f64, max_abs: f64) {
    let (r, m) = errors(got, want);
    eprintln!("{what}: rel L2 {r:.2e}, max abs {m:.2e}");
    assert!(
        r <= rel_l2 && m <= max_abs,
        "{what}: rel L2 {r:.3e} (limit {rel_l2:.0e}), max abs {m:.3e} (limit {max_abs:.0e})"
    );
}

/// tests/fixtures of the source tree, or of the current folder when the tests run from a copy
/// of the repository on another machine (scripts/gpu-run.sh runs them from the repository root).
pub fn fixtures_dir() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("tests/fixtures")
    }
}

/// Parity tolerances (‖gpu − cpu‖/‖cpu‖) per dtype, as docs/architecture.md sets them.
pub fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::BF16 => 1e-2,
        _ => 1e-5,
    }
}

/// Runs `f` on the CPU and on CUDA with inputs of each of `dtypes` and compares every output.
/// A test calling it needs a GPU: mark it `#[ignore = "needs a CUDA GPU"]` (without one it fails).
pub fn parity_with(
    name: &str,
    dtypes: &[DType],
    tol: impl Fn(DType) -> f64,
    f: impl Fn(&Device, DType) -> Vec<Tensor>,
) {
    let gpu = cuda(name);
    for &dtype in dtypes {
        let want = f(&Device::Cpu, dtype);
        let got = f(&gpu, dtype);
        assert_eq!(want.len(), got.len());
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.shape, g.shape, "{name} output {i} shape");
            assert!(!g.is_cpu(), "{name} output {i} should live on the GPU");
            let e = rel_err(&g.to_vec_f32().unwrap(), &w.to_vec_f32().unwrap());
            assert!(
                e < tol(dtype),
                "{name} {dtype} output {i}: relative error {e:.3e} ≥ {:.0e}",
                tol(dtype)
            );
            println!("{name} {dtype} output {i}: relative error {e:.2e}");
        }
    }
}

pub fn parity(name: &str, f: impl Fn(&Device, DType) -> Vec<Tensor>) {
    parity_with(name, &[DType::F32, DType::BF16], tol, f)
}

pub fn input(shape: &[usize], seed: u64, d: &Device, dtype: DType) -> Tensor {
    rand_tensor(shape, seed)
        .to_dtype(dtype)
        .unwrap()
        .to_device(d)
        .unwrap()
}

/// Packs a model into a parameter store on `d` (its parameters become views of the store).
pub fn pack<M: seisfuse::nn::Parameters>(m: &mut M, d: &Device) -> seisfuse::nn::ParamStore {
    seisfuse::nn::ParamStore::pack(m, d).unwrap()
}

/// Every trainable parameter's gradient, by name.
pub fn grads_of(s: &seisfuse::nn::ParamStore) -> std::collections::BTreeMap<String, Vec<f32>> {
    s.entries()
        .iter()
        .filter(|e| e.trainable)
        .map(|e| {
            (
                e.name.clone(),
                s.grad(&e.name).unwrap().to_vec_f32().unwrap(),
            )
        })
        .collect()
}

/// Sets element `i` of parameter `name` to `v` (in place: in a packed model, in the store);
/// returns the old value.
pub fn poke<M: seisfuse::nn::Parameters>(m: &mut M, name: &str, i: usize, v: f32) -> f32 {
    let mut old = f32::NAN;
    m.visit("", &mut |n, p| {
        if n == name {
            let mut d = p.value.f32s_mut()?;
            old = d[i];
            d[i] = v;
        }
        Ok(())
    })
    .unwrap();
    assert!(!old.is_nan(), "no parameter {name}");
    old
}

/// The gradient of parameter `name` in a store.
pub fn grad_of(s: &seisfuse::nn::ParamStore, name: &str) -> Vec<f32> {
    s.grad(name)
        .unwrap_or_else(|e| panic!("{e:#}"))
        .to_vec_f32()
        .unwrap()
}

/// A batch of `n` pairs from the paired synthetic generator (src/data/synth/paired.rs):
/// sections [n, 1, size, size] normalised per image as SFM does, waveforms [n, 3, samples]
/// standardised per pair, and the labels (1 = a low-velocity layer) as i32 [n].
pub fn paired_batch(n: usize, size: usize, samples: usize, seed: u64) -> (Tensor, Tensor, Tensor) {
    use seisfuse::data::synth::paired::{generate, PairedConfig};
    let cfg = PairedConfig::new(size, size, samples);
    let (mut img, mut wav, mut lab) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let s = generate(&cfg, seed, i as u64);
        img.extend_from_slice(&s.image);
        let m = s.waveform.iter().sum::<f32>() / s.waveform.len() as f32;
        let sd = (s.waveform.iter().map(|v| (v - m) * (v - m)).sum::<f32>()
            / s.waveform.len() as f32)
            .sqrt()
            + 1e-6;
        wav.extend(s.waveform.iter().map(|v| (v - m) / sd));
        lab.push(s.label);
    }
    seisfuse::models::sfm::normalize_images(&mut img, size * size);
    (
        Tensor::from_f32(&[n, 1, size, size], img).unwrap(),
        Tensor::from_f32(&[n, 3, samples], wav).unwrap(),
        Tensor::from_i32(&[n], lab).unwrap(),
    )
}
