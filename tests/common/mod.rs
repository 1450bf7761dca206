//! Shared helpers for the dsp tests: fixtures (read with the stopgap `dsp::npy_min`) and
//! comparisons.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn fixture(name: &str) -> (Vec<usize>, Vec<f32>) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("mel_{name}.npy"));
    seisfuse::dsp::npy_min::read_f32(&p)
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
