//! `seisfuse synth continuous` → `seisfuse dataset build` → `SeisBenchDataset`: the P pick sits
//! where the metadata says (the synthetic onsets are exact), no event is in two splits, noise
//! windows hold no pick, h5py reads the result, and bad input gives clear errors.

mod common;

use seisfuse::data::build::catalog::parse_catalog;
use seisfuse::data::seisbench::{parse_csv, SeisBenchDataset};
use seisfuse::data::synth::continuous::{self, ContinuousConfig};
use seisfuse::data::time::parse_iso;
use seisfuse::data::{Dataset, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn tmp(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("build-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn seisfuse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seisfuse"))
        .args(args)
        .env("SEISFUSE_PROGRESS_SECS", "0")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected an error: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Continuous data of 3 stations, 20 minutes, 12 events, 3 gaps (made once).
fn continuous_data() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = tmp("continuous");
        let out = ok(&seisfuse(&[
            "synth",
            "continuous",
            "--out",
            d.join("cont").to_str().unwrap(),
            "--stations",
            "3",
            "--seconds",
            "1200",
            "--events",
            "12",
            "--gaps",
            "3",
            "--seed",
            "5",
        ]));
        assert!(out.contains("12 events"), "{out}");
        d.join("cont")
    })
}

/// A station's recording and the same noise without events.
type Recording = std::rc::Rc<(Vec<f32>, Vec<f32>)>;

/// The metadata rows as maps column → value.
fn rows(dir: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("metadata.csv")).unwrap();
    let t = parse_csv(&text, "metadata.csv").unwrap();
    let (h, body) = t.split_first().unwrap();
    body.iter()
        .filter(|r| r.len() == h.len())
        .map(|r| h.iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}

#[test]
fn build_from_synthetic_continuous_data() {
    let cont = continuous_data();
    let names: Vec<String> = std::fs::read_dir(cont)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"catalog.csv".to_string()) && names.contains(&"XS.S0001.mseed".to_string()),
        "{names:?}"
    );
    let out = tmp("ds").join("ds");
    let stdout = ok(&seisfuse(&[
        "dataset",
        "build",
        "--waveforms",
        cont.to_str().unwrap(),
        "--picks",
        cont.join("catalog.csv").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--window",
        "20",
        "--p-offset",
        "2:8",
        "--noise-per-event",
        "2",
        "--seed",
        "1",
    ]));
    assert!(
        stdout.contains("train:") && stdout.contains("skipped:"),
        "{stdout}"
    );
    let meta = rows(&out);
    let cat_text = std::fs::read_to_string(cont.join("catalog.csv")).unwrap();
    let cat = parse_catalog(&cat_text, "catalog.csv").unwrap();
    let d = SeisBenchDataset::open(&out, None, 2000).unwrap();
    assert_eq!(d.len(), meta.len());
    assert!(meta.len() > 20, "{} windows\n{stdout}", meta.len());
    let mut splits: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut quakes, mut noise, mut exact) = (0, 0, 0);
    let cfg = ContinuousConfig::new(3, 1200.0, 12);
    let cache: std::cell::RefCell<BTreeMap<usize, Recording>> = Default::default();
    let recordings = |k: usize| {
        cache
            .borrow_mut()
            .entry(k)
            .or_insert_with(|| {
                let mut quiet = cfg.clone();
                quiet.events = 0;
                std::rc::Rc::new((
                    continuous::recording(&cfg, 5, k),
                    continuous::recording(&quiet, 5, k),
                ))
            })
            .clone()
    };
    for (i, m) in meta.iter().enumerate() {
        let start = parse_iso(&m["trace_start_time"]).unwrap();
        assert_eq!(m["trace_sampling_rate_hz"], "100");
        assert_eq!(m["trace_npts"], "2000");
        assert_eq!(m["trace_component_order"], "ZNE");
        let station = format!(
            "{}.{}.{}",
            m["station_network_code"], m["station_code"], m["station_location_code"]
        );
        let s = d.get(i).unwrap();
        assert_eq!(d.category(i), Some(m["trace_category"].as_str()));
        if m["trace_category"] == "earthquake" {
            quakes += 1;
            let ev = &m["source_id"];
            splits
                .entry(ev.clone())
                .or_default()
                .insert(m["split"].clone());
            let a = cat
                .arrivals
                .iter()
                .find(|a| &a.event == ev && a.station.to_string() == station)
                .unwrap();
            let p: f64 = m["trace_P_arrival_sample"].parse().unwrap();
            assert!((p - (a.p.unwrap() - start) * 100.0).abs() < 1e-3, "{m:?}");
            assert!((200.0..=800.0).contains(&p), "P offset 2–8 s: {p}");
            let Target::Picks { p: tp, s: ts } = s.target else {
                panic!()
            };
            assert_eq!(tp, Some(p as f32));
            if let Some(sv) = ts {
                assert!((sv as f64 - (a.s.unwrap() - start) * 100.0).abs() < 1e-3);
            }
            // The window is the recording, sample for sample, and the synthetic signal (the
            // recording less the same noise without events) starts at the P pick.
            let k: usize = m["station_code"][1..].parse::<usize>().unwrap() - 1;
            let first = ((start - cfg.start) * 100.0).round() as usize;
            let n = cfg.samples();
            let rb = recordings(k);
            let (rec, bg) = (&rb.0, &rb.1);
            for c in 0..3 {
                assert_eq!(
                    &s.input[c * 2000..(c + 1) * 2000],
                    &rec[c * n + first..c * n + first + 2000]
                );
            }
            let other_event_near = cat.arrivals.iter().any(|o| {
                &o.event != ev
                    && o.station.to_string() == station
                    && o.p.is_some_and(|t| t > start - 150.0 && t < start + 20.0)
            });
            if !other_event_near {
                let onset = p.ceil() as usize;
                for c in 0..3 {
                    for w in 0..onset {
                        assert_eq!(
                            s.input[c * 2000 + w],
                            bg[c * n + first + w],
                            "signal before P: trace {i} comp {c} sample {w}"
                        );
                    }
                    let after =
                        (onset..onset + 10).any(|w| s.input[c * 2000 + w] != bg[c * n + first + w]);
                    assert!(after, "no signal after P: trace {i}");
                }
                exact += 1;
            }
        } else {
            noise += 1;
            assert_eq!(m["source_id"], "");
            assert_eq!(s.target, Target::Picks { p: None, s: None });
            let end = start + 20.0;
            for a in cat
                .arrivals
                .iter()
                .filter(|a| a.station.to_string() == station)
            {
                for t in [a.p, a.s].into_iter().flatten() {
                    assert!(
                        t < start - 60.0 || t > end + 60.0,
                        "noise window {i} holds a pick"
                    );
                }
            }
        }
    }
    assert!(
        quakes > 15 && noise > 5,
        "{quakes} earthquake, {noise} noise windows"
    );
    assert!(
        exact >= 5,
        "only {exact} windows without another event nearby"
    );
    for (ev, s) in &splits {
        assert_eq!(s.len(), 1, "event {ev} in {s:?}");
    }
    let used: BTreeSet<&str> = splits
        .values()
        .flat_map(|s| s.iter().map(|x| x.as_str()))
        .collect();
    assert!(used.contains("train") && used.contains("test"), "{used:?}");
    // Deterministic: the same seed gives the same files.
    let out2 = tmp("ds2").join("ds");
    ok(&seisfuse(&[
        "dataset",
        "build",
        "--waveforms",
        cont.to_str().unwrap(),
        "--picks",
        cont.join("catalog.csv").to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--window",
        "20",
        "--p-offset",
        "2:8",
        "--noise-per-event",
        "2",
        "--seed",
        "1",
    ]));
    for f in ["metadata.csv", "waveforms.hdf5"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(out2.join(f)).unwrap(),
            "{f}"
        );
    }
    // An existing dataset is not overwritten without --force.
    let e = err(&seisfuse(&[
        "dataset",
        "build",
        "--waveforms",
        cont.to_str().unwrap(),
        "--picks",
        cont.join("catalog.csv").to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
    ]));
    assert!(e.contains("--force"), "{e}");
    // Gaps are skipped and counted: with 3 gaps of 5–20 s some windows must hit one.
    if stdout.contains("gap in the data") {
        assert!(
            stdout.contains("skipped: ") && stdout.contains("gap"),
            "{stdout}"
        );
    }
    h5py_reads(&out, &d);
}

/// h5py reads the dataset we wrote (skips without h5py unless SEISFUSE_REQUIRE_REFS is set).
fn h5py_reads(dir: &Path, d: &SeisBenchDataset) {
    if !common::python_or_skip("h5py reading the built dataset", "h5py") {
        return;
    }
    let o = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import sys, csv, h5py
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/metadata.csv")))
with h5py.File(d + "/waveforms.hdf5", "r") as f:
    assert f["data_format/component_order"][()] in (b"ZNE", "ZNE")
    for i in (0, len(rows) - 1):
        name = rows[i]["trace_name"]
        bucket, rest = name.split("$")
        row = int(rest.split(",")[0])
        x = f["data/" + bucket][row]
        print(i, x.shape[0], x.shape[1], repr(float(x[0, 100])), repr(float(x[2, 1999])))
"#,
        )
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: Vec<&str> = line.split(' ').collect();
        let i: usize = v[0].parse().unwrap();
        assert_eq!((v[1], v[2]), ("3", "2000"));
        let s = d.get(i).unwrap();
        assert_eq!(v[3].parse::<f32>().unwrap(), s.input[100]);
        assert_eq!(v[4].parse::<f32>().unwrap(), s.input[2 * 2000 + 1999]);
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    let cont = continuous_data();
    let d = tmp("bad");
    let cat = cont.join("catalog.csv");
    let run = |picks: &Path, extra: &[&str]| {
        let mut a = vec![
            "dataset",
            "build",
            "--waveforms",
            cont.to_str().unwrap(),
            "--picks",
            picks.to_str().unwrap(),
            "--out",
        ];
        let out = d.join("out");
        let out = out.to_str().unwrap().to_string();
        a.push(&out);
        a.extend_from_slice(extra);
        let o = seisfuse(&a);
        assert!(!d.join("out").exists(), "{a:?} left its output behind");
        o
    };
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // Bad rows: the file and the line are named.
    let p = write("bad_row.csv", "event_id,network,station,location,phase,time\ne1,XS,S0001,00,P,2024-01-01T00:01:00Z\ne1,XS,S0001,00,P\n");
    let e = err(&run(&p, &[]));
    assert!(e.contains("bad_row.csv") && e.contains("line 3"), "{e}");
    let p = write(
        "bad_time.csv",
        "event_id,network,station,location,phase,time\ne1,XS,S0001,00,P,noon\n",
    );
    let e = err(&run(&p, &[]));
    assert!(
        e.contains("bad_time.csv") && e.contains("line 2") && e.contains("ISO-8601"),
        "{e}"
    );
    let p = write("no_cols.csv", "id,when\n1,2\n");
    let e = err(&run(&p, &[]));
    assert!(e.contains("no event_id column"), "{e}");
    // Unknown stations: all of them is an error listing both sides.
    let p = write(
        "unknown.csv",
        "event_id,network,station,location,phase,time\ne1,ZZ,NOPE,00,P,2024-01-01T00:01:00Z\n",
    );
    let e = err(&run(&p, &[]));
    assert!(e.contains("ZZ.NOPE.00") && e.contains("XS.S0001.00"), "{e}");
    // Times outside the recordings.
    let p = write(
        "outside.csv",
        "event_id,network,station,location,phase,time\ne1,XS,S0001,00,P,2030-01-01T00:01:00Z\n",
    );
    let e = err(&run(&p, &[]));
    assert!(
        e.contains("no earthquake window could be cut") && e.contains("outside the recorded time"),
        "{e}"
    );
    // Huge windows and offsets that do not fit.
    let e = err(&run(&cat, &["--window", "1e12", "--p-offset", "1:2"]));
    assert!(e.contains("--window") && e.contains("--max-memory"), "{e}");
    let e = err(&run(&cat, &["--window", "10", "--p-offset", "5:12"]));
    assert!(e.contains("--p-offset"), "{e}");
    let e = err(&run(&cat, &["--split", "0.5,0.2,0.2"]));
    assert!(e.contains("--split"), "{e}");
    let e = err(&run(&cat, &["--sampling-rate", "50"]));
    assert!(
        e.contains("XS.S0001.mseed") && e.contains("--resample"),
        "{e}"
    );
    let e = err(&seisfuse(&[
        "dataset",
        "build",
        "--waveforms",
        d.join("missing").to_str().unwrap(),
        "--picks",
        cat.to_str().unwrap(),
        "--out",
        d.join("out").to_str().unwrap(),
    ]));
    assert!(e.contains("missing") && e.contains("--waveforms"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// Stations at another rate: an error naming the file, or resampled with --resample.
#[test]
fn sampling_rate_mismatch_and_resampling() {
    let d = tmp("rates");
    let mut cfg = ContinuousConfig::new(1, 600.0, 4);
    cfg.sampling_rate = 50.0;
    cfg.network = "XT".into();
    continuous::write(&d.join("slow"), &cfg, 9, 0, false, &|_| {}).unwrap();
    let cont = continuous_data();
    let mut cat = std::fs::read_to_string(cont.join("catalog.csv")).unwrap();
    let slow = std::fs::read_to_string(d.join("slow/catalog.csv")).unwrap();
    cat.push_str(slow.split_once('\n').unwrap().1);
    std::fs::write(d.join("both.csv"), &cat).unwrap();
    let args = |out: &str, extra: &[&str]| {
        let mut v: Vec<String> = ["dataset", "build", "--waveforms"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(cont.to_str().unwrap().into());
        v.push(d.join("slow").to_str().unwrap().into());
        v.extend([
            "--picks".into(),
            d.join("both.csv").to_str().unwrap().into(),
        ]);
        v.extend(["--out".into(), d.join(out).to_str().unwrap().into()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |a: Vec<String>| seisfuse(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let e = err(&run(args("o1", &["--sampling-rate", "100"])));
    assert!(
        e.contains("XT.S0001.mseed") && e.contains("50 Hz") && e.contains("--resample"),
        "{e}"
    );
    let out = ok(&run(args(
        "o2",
        &["--sampling-rate", "100", "--resample", "--window", "20"],
    )));
    assert!(out.contains("at 100 Hz"), "{out}");
    let meta = rows(&d.join("o2"));
    let ds = SeisBenchDataset::open(d.join("o2"), None, 2000).unwrap();
    let mut n_slow = 0;
    let rec = continuous::recording(&cfg, 9, 0);
    let cat_slow = parse_catalog(&slow, "slow.csv").unwrap();
    for (i, m) in meta.iter().enumerate() {
        if m["station_network_code"] == "XT" && m["trace_category"] == "earthquake" {
            n_slow += 1;
            let p: f64 = m["trace_P_arrival_sample"].parse().unwrap();
            let start = parse_iso(&m["trace_start_time"]).unwrap();
            let s = ds.get(i).unwrap();
            // Upsampled 50 → 100 Hz: the linear interpolation of the recording at the
            // window's sample times (exactly P offset × 100 after its start).
            let n = cfg.samples();
            for c in 0..3 {
                for j in (0..2000).step_by(7) {
                    let pos = (start - cfg.start) * 50.0 + j as f64 / 2.0;
                    let k = pos.floor() as usize;
                    let f = (pos - k as f64) as f32;
                    let want = rec[c * n + k] * (1.0 - f) + rec[c * n + k + 1] * f;
                    let got = s.input[c * 2000 + j];
                    assert!(
                        (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                        "trace {i} comp {c} sample {j}: {got} vs {want}"
                    );
                }
            }
            let a = cat_slow
                .arrivals
                .iter()
                .find(|a| a.event == m["source_id"])
                .unwrap();
            assert!((p - (a.p.unwrap() - start) * 100.0).abs() < 1e-3);
        }
    }
    assert!(n_slow >= 2, "{n_slow}");
    let _ = std::fs::remove_dir_all(&d);
}
