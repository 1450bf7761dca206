//! `seisfuse pick` end to end: a seislm-tiny picker's weights saved with `weights::save_from`,
//! traces from `.npy`, picks CSV and probabilities out; refusals and bad input give errors
//! that say what was wrong.

use seisfuse::data::transforms::zscore_in_place;
use seisfuse::models::seislm_heads::SeislmPicker;
use seisfuse::Tensor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seisfuse"))
}

fn tmpdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seisfuse-pick-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pick(args: &[&str], w: Option<&Path>, input: &Path) -> Output {
    let mut c = exe();
    c.args(["--device", "cpu", "pick", "--model", "seislm-tiny"]);
    if let Some(w) = w {
        c.arg("--weights").arg(w);
    }
    c.arg("--input").arg(input).args(args).output().unwrap()
}

fn traces(n: usize, t: usize, seed: u64) -> Vec<f32> {
    let mut s = seisfuse::backend::cpu::philox::PhiloxStream::new(seed, 0, 0);
    (0..n * 3 * t).map(|_| s.next_f32() * 4.0 - 1.0).collect()
}

#[test]
fn pick_writes_csv_and_probabilities_of_the_saved_model() {
    let dir = tmpdir("ok");
    let mut model = SeislmPicker::new("seislm-tiny", 8, 3).unwrap();
    let w = dir.join("picker.safetensors");
    seisfuse::weights::save_from(&mut model, &w, false).unwrap();
    let (n, t) = (2usize, 400usize);
    let raw = traces(n, t, 9);
    let input = dir.join("traces.npy");
    seisfuse::data::npy::write(&input, &[n, 3, t], &raw).unwrap();
    let (csv, probs) = (dir.join("picks.csv"), dir.join("probs.npy"));
    let o = pick(
        &[
            "--threshold",
            "0.2",
            "--out",
            csv.to_str().unwrap(),
            "--probs",
            probs.to_str().unwrap(),
        ],
        Some(&w),
        &input,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Probabilities: [N, 3, T], equal to the model's in process.
    let got = seisfuse::data::npy::read_f32_tensor(&probs).unwrap();
    assert_eq!(got.shape, vec![n, 3, t]);
    let mut norm = raw.clone();
    for ch in norm.chunks_mut(t) {
        zscore_in_place(ch, 1e-6);
    }
    let want = model
        .probabilities(&Tensor::from_f32(&[n, 3, t], norm).unwrap())
        .unwrap()
        .to_vec_f32()
        .unwrap(); // [N, T, 3]
    let g = got.to_vec_f32().unwrap();
    for i in 0..n {
        for s in 0..t {
            let sum: f32 = (0..3).map(|c| g[(i * 3 + c) * t + s]).sum();
            assert!((sum - 1.0).abs() < 1e-4);
            for c in 0..3 {
                let (a, b) = (g[(i * 3 + c) * t + s], want[(i * t + s) * 3 + c]);
                assert!(
                    (a - b).abs() < 1e-5,
                    "trace {i} sample {s} class {c}: {a} vs {b}"
                );
            }
        }
    }

    // bf16: the same probabilities within bf16 accuracy.
    let probs16 = dir.join("probs16.npy");
    let o = pick(
        &[
            "--precision",
            "bf16",
            "--probs",
            probs16.to_str().unwrap(),
            "--out",
            dir.join("picks16.csv").to_str().unwrap(),
        ],
        Some(&w),
        &input,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g16 = seisfuse::data::npy::read_f32_tensor(&probs16)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let worst = g16
        .iter()
        .zip(&g)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst < 2e-2, "bf16 probabilities differ by up to {worst}");

    // CSV: header, 5 columns, picks at local maxima above the threshold, ≥ 1 s apart.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("trace,phase,sample,time_s,probability"));
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert!(!rows.is_empty(), "no picks at threshold 0.2:\n{text}");
    for r in &rows {
        assert_eq!(r.len(), 5, "{r:?}");
        let tr: usize = r[0].parse().unwrap();
        let c = match r[1].as_str() {
            "P" => 0,
            "S" => 1,
            other => panic!("phase {other}"),
        };
        let s: usize = r[2].parse().unwrap();
        let time: f64 = r[3].parse().unwrap();
        let p: f32 = r[4].parse().unwrap();
        assert!(tr < n && s < t);
        assert!((time - s as f64 / 100.0).abs() < 1e-3);
        let v = g[(tr * 3 + c) * t + s];
        assert!((v - p).abs() < 1e-3 && p >= 0.2, "{r:?} vs {v}");
        if s > 0 {
            assert!(
                v > g[(tr * 3 + c) * t + s - 1],
                "{r:?} is not a local maximum"
            );
        }
    }
    for a in &rows {
        for b in &rows {
            if a != b && a[0] == b[0] && a[1] == b[1] {
                let (x, y): (usize, usize) = (a[2].parse().unwrap(), b[2].parse().unwrap());
                assert!(x.abs_diff(y) >= 100, "{a:?} and {b:?} are closer than 1 s");
            }
        }
    }

    // Refuses to overwrite without --force; overwrites with it.
    let o = pick(&["--out", csv.to_str().unwrap()], Some(&w), &input);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("exists") && e.contains("--force"),
        "{e}"
    );
    let o = pick(
        &["--out", csv.to_str().unwrap(), "--force"],
        Some(&w),
        &input,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pick_reports_bad_input_clearly() {
    let dir = tmpdir("bad");
    let mut model = SeislmPicker::new("seislm-tiny", 8, 3).unwrap();
    let w = dir.join("picker.safetensors");
    seisfuse::weights::save_from(&mut model, &w, false).unwrap();
    // 4 components instead of 3
    let bad = dir.join("four.npy");
    seisfuse::data::npy::write(&bad, &[2, 4, 300], &traces(2, 400, 1)[..2400]).unwrap();
    let o = pick(&[], Some(&w), &bad);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("N×3×T") && e.contains("[2, 4, 300]"),
        "{e}"
    );
    // too short for the feature extractor
    let short = dir.join("short.npy");
    seisfuse::data::npy::write(&short, &[1, 3, 4], &[0.5f32; 12]).unwrap();
    let e = String::from_utf8_lossy(&pick(&[], Some(&w), &short).stderr).to_string();
    assert!(e.contains("too short"), "{e}");
    // an encoder-only file has no picking head
    let good = dir.join("good.npy");
    seisfuse::data::npy::write(&good, &[1, 3, 300], &traces(1, 300, 2)).unwrap();
    let enc_only = dir.join("encoder.safetensors");
    seisfuse::weights::save_from(&mut model.encoder, &enc_only, false).unwrap();
    let e = String::from_utf8_lossy(&pick(&[], Some(&enc_only), &good).stderr).to_string();
    assert!(e.contains("double_conv.double_conv.0.weight"), "{e}");
    // weights of another preset: the mismatch is named
    let mut base = SeislmPicker::new("seislm-tiny", 4, 3).unwrap();
    let other = dir.join("other.safetensors");
    seisfuse::weights::save_from(&mut base, &other, false).unwrap();
    let o = exe()
        .args([
            "--device",
            "cpu",
            "pick",
            "--model",
            "seislm-base",
            "--weights",
        ])
        .arg(&other)
        .arg("--input")
        .arg(&good)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("shape mismatch"), "{e}");
    // a bad threshold, no weights, an unknown file type
    let e =
        String::from_utf8_lossy(&pick(&["--threshold", "1.5"], Some(&w), &good).stderr).to_string();
    assert!(e.contains("--threshold"), "{e}");
    let e = String::from_utf8_lossy(&pick(&[], None, &good).stderr).to_string();
    assert!(e.contains("--random-init"), "{e}");
    let txt = dir.join("traces.txt");
    std::fs::write(&txt, "1 2 3").unwrap();
    let e = String::from_utf8_lossy(&pick(&[], Some(&w), &txt).stderr).to_string();
    assert!(e.contains(".npy") && e.contains("miniSEED"), "{e}");
    // --random-init prints the CSV to standard output
    let o = pick(&["--random-init", "--head-channels", "4"], None, &good);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("trace,phase,sample,time_s,probability"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pick_reads_three_component_miniseed() {
    let dir = tmpdir("mseed");
    let mut model = SeislmPicker::new("seislm-tiny", 8, 3).unwrap();
    let w = dir.join("picker.safetensors");
    seisfuse::weights::save_from(&mut model, &w, false).unwrap();
    let ms = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mseed/steim1_zne.mseed");
    let tc = seisfuse::data::mseed::MseedFile::open(&ms)
        .unwrap()
        .three_components()
        .unwrap();
    let probs = dir.join("probs.npy");
    let o = pick(
        &["--window", "0", "--probs", probs.to_str().unwrap()],
        Some(&w),
        &ms,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("trace,phase,sample,time_s,probability"));
    let got = seisfuse::data::npy::read_f32_tensor(&probs).unwrap();
    assert_eq!(got.shape, vec![1, 3, tc.samples]);
    let t = tc.samples;
    let mut norm = tc.data.clone();
    for ch in norm.chunks_mut(t) {
        zscore_in_place(ch, 1e-6);
    }
    let want = model
        .probabilities(&Tensor::from_f32(&[1, 3, t], norm).unwrap())
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let g = got.to_vec_f32().unwrap();
    for s in (0..t).step_by(37) {
        for c in 0..3 {
            assert!((g[c * t + s] - want[s * 3 + c]).abs() < 1e-5);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn long_traces_are_cut_into_overlapping_windows() {
    let dir = tmpdir("windows");
    let mut model = SeislmPicker::new("seislm-tiny", 8, 3).unwrap();
    let w = dir.join("picker.safetensors");
    seisfuse::weights::save_from(&mut model, &w, false).unwrap();
    let (n, t, len) = (2usize, 400usize, 200usize);
    let raw = traces(n, t, 4);
    let input = dir.join("traces.npy");
    seisfuse::data::npy::write(&input, &[n, 3, t], &raw).unwrap();
    let probs = dir.join("probs.npy");
    let o = pick(
        &[
            "--window",
            "200",
            "--overlap",
            "0.5",
            "--batch",
            "4",
            "--probs",
            probs.to_str().unwrap(),
        ],
        Some(&w),
        &input,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("3 windows of 200 samples"));
    let g = seisfuse::data::npy::read_f32_tensor(&probs)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    // windows [0, 200), [100, 300), [200, 400), each normalised alone; maximum per sample
    let mut want = vec![f32::NEG_INFINITY; n * 3 * t];
    for i in 0..n {
        for s in [0usize, 100, 200] {
            let mut x = Vec::new();
            for c in 0..3 {
                let off = (i * 3 + c) * t + s;
                let mut ch = raw[off..off + len].to_vec();
                zscore_in_place(&mut ch, 1e-6);
                x.extend(ch);
            }
            let p = model
                .probabilities(&Tensor::from_f32(&[1, 3, len], x).unwrap())
                .unwrap()
                .to_vec_f32()
                .unwrap();
            for k in 0..len {
                for c in 0..3 {
                    let d = &mut want[(i * 3 + c) * t + s + k];
                    *d = d.max(p[k * 3 + c]);
                }
            }
        }
    }
    for (a, b) in g.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    let e =
        String::from_utf8_lossy(&pick(&["--overlap", "1"], Some(&w), &input).stderr).to_string();
    assert!(e.contains("--overlap"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
