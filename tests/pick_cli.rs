//! `seisfuse pick` end to end: a seislm-tiny picker's weights saved with `weights::save_from`,
//! traces from `.npy` and continuous miniSEED (several stations, Z12 and lower-case codes, a
//! missing component, gaps, 50 Hz data, a short stretch), picks CSV and probabilities (.npy and
//! miniSEED) out; refusals and bad input give errors that say what was wrong. The pipeline
//! alone (a fake model) runs a day of data in thousands of pieces.

use seisfuse::data::transforms::zscore_in_place;
use seisfuse::models::seislm_heads::SeislmPicker;
use seisfuse::pick::picks::CSV_HEADER;
use seisfuse::pick::time::iso;
use seisfuse::pick::trigger::triggers;
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

/// Shape and values of a probabilities .npy (NaN where there is no prediction, which the
/// checked readers refuse).
fn probs_of(p: &Path) -> (Vec<usize>, Vec<f32>) {
    let f = seisfuse::data::npy::NpyFile::open(p).unwrap();
    (f.shape().to_vec(), f.as_f32().unwrap().into_owned())
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
            "--window",
            "0",
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
            "--window",
            "0",
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
    let g16 = probs_of(&probs16).1;
    let worst = g16
        .iter()
        .zip(&g)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst < 2e-2, "bf16 probabilities differ by up to {worst}");

    // CSV: SeisBench's columns; the picks are the triggers (on 0.2, off 0.1) of the
    // probabilities, one per triggered interval at its peak.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut want = Vec::new();
    for i in 0..n {
        for (c, phase) in [(0, "P"), (1, "S")] {
            let row = &g[(i * 3 + c) * t..(i * 3 + c + 1) * t];
            for tr in triggers(row, 0.2, 0.1) {
                let at = |k: usize| iso(k as f64 / 100.0);
                want.push((
                    tr.peak,
                    format!(
                        "XX.{i}.,{},{},{},{:.6},{phase}",
                        at(tr.peak),
                        at(tr.start),
                        at(tr.end),
                        tr.value
                    ),
                ));
            }
        }
    }
    want.sort_by_key(|w| w.0);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("station,time,start_time,end_time,probability,phase")
    );
    let mut got: Vec<&str> = lines.collect();
    let mut wl: Vec<&str> = want.iter().map(|w| w.1.as_str()).collect();
    assert!(!got.is_empty(), "no picks at threshold 0.2:\n{text}");
    got.sort();
    wl.sort();
    assert_eq!(got, wl);

    // Refuses to overwrite without --force; overwrites with it.
    let o = pick(
        &["--window", "0", "--out", csv.to_str().unwrap()],
        Some(&w),
        &input,
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("exists") && e.contains("--force"),
        "{e}"
    );
    let o = pick(
        &["--window", "0", "--out", csv.to_str().unwrap(), "--force"],
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
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(CSV_HEADER));
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
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(CSV_HEADER));
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
            "--stacking",
            "max",
            "--blinding",
            "0,0",
            "--probs",
            probs.to_str().unwrap(),
        ],
        Some(&w),
        &input,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("6 windows of 200 samples"));
    let g = probs_of(&probs).1;
    // windows [0, 200), [100, 300), [200, 400), each normalised alone
    let mut per_window = Vec::new(); // (trace, start, [len, 3])
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
            per_window.push((i, s, p));
        }
    }
    // --stacking max, no blinding: the maximum per sample.
    let mut want = vec![f32::NEG_INFINITY; n * 3 * t];
    for (i, s, p) in &per_window {
        for k in 0..len {
            for c in 0..3 {
                let d = &mut want[(i * 3 + c) * t + s + k];
                *d = d.max(p[k * 3 + c]);
            }
        }
    }
    for (a, b) in g.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // --stacking avg --blinding 20,30: each window keeps its samples 20..170, averaged where
    // they overlap; the first 20 and last 30 samples of a trace have no prediction (NaN).
    let o = pick(
        &[
            "--window",
            "200",
            "--overlap",
            "100",
            "--blinding",
            "20,30",
            "--probs",
            probs.to_str().unwrap(),
            "--force",
        ],
        Some(&w),
        &input,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g = probs_of(&probs).1;
    let (mut sum, mut cnt) = (vec![0f32; n * 3 * t], vec![0f32; n * 3 * t]);
    for (i, s, p) in &per_window {
        for k in 20..len - 30 {
            for c in 0..3 {
                sum[(i * 3 + c) * t + s + k] += p[k * 3 + c];
                cnt[(i * 3 + c) * t + s + k] += 1.0;
            }
        }
    }
    for (k, a) in g.iter().enumerate() {
        let sample = k % t;
        if !(20..t - 30).contains(&sample) {
            assert!(a.is_nan(), "sample {sample}: {a}");
        } else {
            assert!(
                (a - sum[k] / cnt[k]).abs() < 1e-5,
                "{a} vs {}",
                sum[k] / cnt[k]
            );
        }
    }
    let e =
        String::from_utf8_lossy(&pick(&["--overlap", "3001"], Some(&w), &input).stderr).to_string();
    assert!(e.contains("--overlap"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 2024-01-01T00:00:00Z.
const T0: f64 = 1_704_067_200.0;

/// Noise with a decaying burst every 20 s, at `rate`.
fn wave(n: usize, rate: f64, seed: u64) -> Vec<f32> {
    let noise = traces(1, n, seed);
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            let ph = t % 20.0;
            let burst = if ph > 10.0 {
                (-(ph - 10.0) * 2.0).exp() * (2.0 * std::f64::consts::PI * 4.0 * ph).sin() * 30.0
            } else {
                0.0
            };
            noise[i] * 0.3 + burst as f32
        })
        .collect()
}

/// Appends the records of one channel stretch to `out`.
fn channel(out: &mut Vec<u8>, sta: &str, loc: &str, cha: &str, start: f64, rate: f64, n: usize) {
    let data = wave(
        n,
        rate,
        (start as u64) ^ cha.len() as u64 ^ cha.as_bytes()[2] as u64,
    );
    let t = seisfuse::pick::mseed_write::TraceOut {
        network: "XX",
        station: sta,
        location: loc,
        channel: cha,
        start,
        rate,
        data: &data,
    };
    let mut seq = 1;
    seisfuse::pick::mseed_write::write_trace(out, &t, &mut seq).unwrap();
}

/// A folder of continuous miniSEED: XX.STA1. (HH, channels HHZ/HH1/HH2 at 100 Hz: 0–50 s, a
/// gap, 80–95 s) in two files, and XX.STA2.00 (lower-case hhz/hhn at 50 Hz, no E, 0–40 s) in
/// a file without an extension; plus a text file that is not read.
fn continuous(dir: &Path) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    let mut z = Vec::new();
    channel(&mut z, "STA1", "", "HHZ", T0, 100.0, 5000);
    channel(&mut z, "STA1", "", "HHZ", T0 + 80.0, 100.0, 1500);
    std::fs::write(input.join("sta1_z.mseed"), &z).unwrap();
    let mut h = Vec::new();
    for cha in ["HH1", "HH2"] {
        channel(&mut h, "STA1", "", cha, T0, 100.0, 5000);
        channel(&mut h, "STA1", "", cha, T0 + 80.0, 100.0, 1500);
    }
    std::fs::write(input.join("sub/sta1_12.ms"), &h).unwrap();
    let mut s2 = Vec::new();
    for cha in ["hhz", "hhn"] {
        channel(&mut s2, "STA2", "00", cha, T0, 50.0, 2000);
    }
    std::fs::write(input.join("XX.STA2.00.D.2024.001"), &s2).unwrap();
    std::fs::write(input.join("README.txt"), "not data").unwrap();
    input
}

/// (id, start, samples) of every segment of a miniSEED file, in order.
fn segments(p: &Path) -> Vec<seisfuse::data::mseed::Segment> {
    seisfuse::data::mseed::MseedFile::open(p)
        .unwrap()
        .segments()
}

#[test]
fn continuous_miniseed_of_several_stations() {
    let dir = tmpdir("continuous");
    let mut model = SeislmPicker::new("seislm-tiny", 8, 3).unwrap();
    let w = dir.join("picker.safetensors");
    seisfuse::weights::save_from(&mut model, &w, false).unwrap();
    let input = continuous(&dir);
    let (csv, pm, pn) = (dir.join("p.csv"), dir.join("pm"), dir.join("p.npy"));
    let o = pick(
        &[
            "--out",
            csv.to_str().unwrap(),
            "--probs-mseed",
            pm.to_str().unwrap(),
            "--probs",
            pn.to_str().unwrap(),
        ],
        Some(&w),
        &input,
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    // What was read and assumed is said.
    assert!(err.contains("3 miniSEED files: 2 stations"), "{err}");
    assert!(
        err.contains("warning: XX.STA2.00 (hh): no E/2 component; it is filled with zeros"),
        "{err}"
    );
    assert!(
        !err.contains("XX.STA1. (HH): no"),
        "Z12 is read as ZNE: {err}"
    );
    assert!(
        err.contains("XX.STA1. (HH): 2 stretches of data separated by gaps"),
        "{err}"
    );
    assert!(
        err.contains("XX.STA1. (HH): 1 stretch of data shorter than a window of 3001 samples (30.01 s): 15.00 s; padded"),
        "{err}"
    );
    // 3 windows over 50 s, 1 padded over 15 s, 2 over 40 s (50 Hz → 4000 samples).
    assert!(
        err.contains("6 windows of 3001 samples (overlap 1500, blinding 250,250, avg stacking)"),
        "{err}"
    );

    // miniSEED probabilities: one file per station, HXP/HXS/HXN, blinded edges trimmed,
    // at 100 Hz on the data's time grid.
    let f1 = pm.join("XX.STA1..seislm-tiny.mseed");
    let f2 = pm.join("XX.STA2.00.seislm-tiny.mseed");
    let mut names: Vec<String> = std::fs::read_dir(&pm)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["XX.STA1..seislm-tiny.mseed", "XX.STA2.00.seislm-tiny.mseed"]
    );
    let s1 = segments(&f1);
    let ids: Vec<&str> = s1.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "XX.STA1..HXN",
            "XX.STA1..HXN",
            "XX.STA1..HXP",
            "XX.STA1..HXP",
            "XX.STA1..HXS",
            "XX.STA1..HXS"
        ]
    );
    let by = |cha: &str| -> Vec<&seisfuse::data::mseed::Segment> {
        s1.iter().filter(|s| s.id.ends_with(cha)).collect()
    };
    for cha in ["HXP", "HXS", "HXN"] {
        let segs = by(cha);
        assert_eq!(segs.len(), 2, "{cha}");
        assert_eq!(segs[0].sampling_rate, 100.0);
        assert!(
            (segs[0].start - (T0 + 2.5)).abs() < 1e-6,
            "{}",
            segs[0].start
        );
        assert_eq!(segs[0].samples.len(), 4500);
        // The padded stretch: blinded at its start only (its end is inside the padding).
        assert!((segs[1].start - (T0 + 82.5)).abs() < 1e-6);
        assert_eq!(segs[1].samples.len(), 1250);
    }
    let s2 = segments(&f2);
    assert_eq!(s2.len(), 3);
    assert!((s2[0].start - (T0 + 2.5)).abs() < 1e-6);
    assert_eq!(s2[0].samples.len(), 4000 - 500);
    // P + S + noise = 1 (averages of softmaxes).
    for (i, _) in by("HXP")[0].samples.iter().enumerate().step_by(97) {
        let sum: f64 = ["HXP", "HXS", "HXN"]
            .iter()
            .map(|c| by(c)[0].samples[i])
            .sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    }

    // The CSV: SeisBench's columns, sorted by time, and exactly the triggers (on 0.3, off
    // 0.15) of the written probability traces.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    let rows: Vec<&str> = lines.collect();
    let times: Vec<&str> = rows.iter().map(|r| r.split(',').nth(1).unwrap()).collect();
    assert!(times.windows(2).all(|p| p[0] <= p[1]), "not sorted by time");
    let mut want = Vec::new();
    for (file, station) in [(&f1, "XX.STA1."), (&f2, "XX.STA2.00")] {
        for seg in segments(file) {
            let phase = match &seg.id[seg.id.len() - 1..] {
                "P" => "P",
                "S" => "S",
                _ => continue,
            };
            let cf: Vec<f32> = seg.samples.iter().map(|v| *v as f32).collect();
            for tr in triggers(&cf, 0.3, 0.15) {
                let at = |k: usize| iso(seg.start + k as f64 / 100.0);
                want.push(format!(
                    "{station},{},{},{},{:.6},{phase}",
                    at(tr.peak),
                    at(tr.start),
                    at(tr.end),
                    tr.value
                ));
            }
        }
    }
    let mut got: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    got.sort();
    want.sort();
    assert!(!got.is_empty());
    assert_eq!(got, want);

    // .npy probabilities: [stations, 3, T] over 0–95 s, NaN in the gap and after STA2 ends.
    let (shape, v) = probs_of(&pn);
    assert_eq!(shape, vec![2, 3, 9500]);
    assert!(v[6000].is_nan() && v[300].is_finite() && v[8300].is_finite());
    assert!(v[3 * 9500 + 300].is_finite() && v[3 * 9500 + 5000].is_nan());

    // Existing outputs are kept unless --force.
    let o = pick(&["--probs-mseed", pm.to_str().unwrap()], Some(&w), &input);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("--probs-mseed") && e.contains("--force"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stations_gaps_and_short_stretches_are_chosen_by_flags() {
    let dir = tmpdir("flags");
    let mut model = SeislmPicker::new("seislm-tiny", 8, 3).unwrap();
    let w = dir.join("picker.safetensors");
    seisfuse::weights::save_from(&mut model, &w, false).unwrap();
    let input = continuous(&dir);
    // --station, case-insensitive: only STA2 (2 windows).
    let o = pick(&["--station", "xx.sta2"], Some(&w), &input);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("1 station") && err.contains("2 windows"),
        "{err}"
    );
    assert!(
        out.lines().skip(1).all(|l| l.starts_with("XX.STA2.00,")),
        "{out}"
    );
    // An unknown station lists the ones there are.
    let o = pick(&["--station", "XX.NOPE"], Some(&w), &input);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && e.contains("XX.NOPE")
            && e.contains("XX.STA1..HH")
            && e.contains("XX.STA2.00.hh"),
        "{e}"
    );
    // --gaps zero: one stretch over 0–95 s, the gap filled (probabilities there).
    let pn = dir.join("z.npy");
    let o = pick(
        &[
            "--station",
            "XX.STA1",
            "--gaps",
            "zero",
            "--probs",
            pn.to_str().unwrap(),
        ],
        Some(&w),
        &input,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("1 stretch:") && !err.contains("separated by gaps"),
        "{err}"
    );
    let v = probs_of(&pn).1;
    assert_eq!(v.len(), 3 * 9500);
    assert!(v[6000].is_finite() && v[100].is_nan() && v[9400].is_nan());
    // --short skip: the 15 s stretch is left out, with a note.
    let pn = dir.join("s.npy");
    let o = pick(
        &[
            "--station",
            "XX.STA1",
            "--short",
            "skip",
            "--probs",
            pn.to_str().unwrap(),
        ],
        Some(&w),
        &input,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("shorter than a window") && err.contains("left out"),
        "{err}"
    );
    let v = probs_of(&pn).1;
    assert!(v[8500].is_nan() && v[2000].is_finite());
    // Bad flags name themselves.
    for (args, flag) in [
        (vec!["--blinding", "2000,1001"], "--blinding"),
        (vec!["--blinding", "x"], "--blinding"),
        (vec!["--p-threshold", "0.2,0.4"], "--p-threshold"),
        (vec!["--s-threshold", "2"], "--s-threshold"),
        (vec!["--overlap", "2.5"], "--overlap"),
        (vec!["--start-time", "2024-01-01"], "--start-time"),
        (vec!["--window", "5"], "too short"),
    ] {
        let o = pick(&args, Some(&w), &input);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(flag), "{args:?}: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model that answers instantly: P is high where Z is above 2 (after normalisation).
struct Instant3;
impl seisfuse::pick::annotate::WindowModel for Instant3 {
    fn predict(&mut self, x: Vec<f32>, n: usize, len: usize) -> anyhow::Result<Vec<f32>> {
        let mut out = Vec::with_capacity(n * len * 3);
        for w in 0..n {
            for t in 0..len {
                let p = if x[w * 3 * len + t] > 2.0 { 0.9 } else { 0.05 };
                out.extend([p, 0.05, 0.95 - p]);
            }
        }
        Ok(out)
    }
}

#[test]
fn a_day_in_thousands_of_pieces_runs() {
    use seisfuse::pick::annotate::{Config, Short};
    use seisfuse::pick::stack::{Blinding, Stacking};
    use seisfuse::pick::stream::{layout, GapMode, Piece, Resamplers, StationData};
    // A day at 100 Hz in 3000 pieces of 28.5 s per component, 0.3 s apart, with a duplicate
    // record now and then; an impulse in every piece.
    let (pieces, len) = (3000usize, 2850usize);
    let mut st = StationData {
        id: "XX.DAY.".into(),
        instrument: "HH".into(),
        channel_codes: ["HHZ".into(), "HHN".into(), "HHE".into()],
        ..Default::default()
    };
    for c in 0..3 {
        for k in 0..pieces {
            let start = T0 + k as f64 * 28.8;
            let mut data: Vec<f32> = (0..len).map(|i| ((i * 7 + c) % 13) as f32 * 0.01).collect();
            data[1000] = 50.0;
            st.channels[c].push(Piece {
                start,
                rate: 100.0,
                data: data.clone(),
            });
            if k % 500 == 0 {
                st.channels[c].push(Piece {
                    start,
                    rate: 100.0,
                    data,
                });
            }
        }
        let (merged, stats) =
            seisfuse::pick::stream::merge_pieces(std::mem::take(&mut st.channels[c]));
        assert_eq!(stats.duplicates, 6 * len);
        st.channels[c] = merged;
    }
    let mut rs = Resamplers::default();
    let l = layout(&st, 100.0, GapMode::Split, &mut rs).unwrap();
    assert_eq!(l.groups.len(), pieces);
    let cfg = Config {
        window: 3001,
        overlap: 1500,
        blinding: Blinding {
            start: 250,
            end: 250,
        },
        stacking: Stacking::Avg,
        short: Short::Pad,
        batch: 64,
        min_len: 400,
    };
    let mut model = Instant3;
    let mut picks = 0;
    let mut batches = 0;
    let report = seisfuse::pick::pipeline::run(
        vec![st],
        std::slice::from_ref(&l),
        cfg,
        &mut model,
        |_| batches += 1,
        |ann, stats| {
            assert_eq!(ann.groups.len(), pieces);
            assert_eq!(stats.zero_filled, 0);
            let th = seisfuse::pick::picks::Thresholds { on: 0.3, off: 0.15 };
            let p = seisfuse::pick::picks::picks_of(&ann, th, th, 0.0);
            picks = p.iter().filter(|p| p.phase == "P").count();
            // Every pick at the impulse of its piece.
            for pk in &p {
                let k = ((pk.time - T0) / 28.8).floor();
                assert!(
                    (pk.time - (T0 + k * 28.8 + 10.0)).abs() < 1e-6,
                    "{}",
                    iso(pk.time)
                );
            }
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(report.windows, pieces);
    assert_eq!(batches, pieces.div_ceil(64));
    assert_eq!(picks, pieces);
}
