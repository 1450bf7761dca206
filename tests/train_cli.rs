//! `seisfuse train` and `eval` through the command line on synthetic data with tiny presets:
//! tasks learn past a stated trivial baseline, every task trains, checkpoints, evaluates and
//! draws; a resumed run is bit for bit the uninterrupted one; an interrupted checkpoint write
//! leaves the previous checkpoint loadable; bad checkpoints give errors naming file and tensor.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seisfuse-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn seisfuse(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seisfuse"));
    c.args(args).env("SEISFUSE_PROGRESS_SECS", "1000");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn train(task: &str, out: &Path, steps: usize, extra: &[&str]) -> Output {
    let steps = steps.to_string();
    let mut a = vec![
        "train",
        "--task",
        task,
        "--out",
        out.to_str().unwrap(),
        "--steps",
        &steps,
        "--quiet",
        "--device",
        "cpu",
        "--set",
        "log_every=1",
    ];
    a.extend_from_slice(extra);
    seisfuse(&a, &[])
}

fn log(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Mean training loss of the first and last `k` logged steps.
fn loss_ends(run: &Path, k: usize) -> (f64, f64) {
    let l: Vec<f64> = log(run)
        .iter()
        .filter(|v| v["kind"] == "train")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect();
    assert!(l.len() >= 2 * k, "{} loss lines", l.len());
    let m = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    (m(&l[..k]), m(&l[l.len() - k..]))
}

fn last_eval(run: &Path) -> Value {
    log(run)
        .into_iter()
        .rev()
        .find(|v| v["kind"] == "eval")
        .expect("an eval line")["metrics"]
        .clone()
}

fn metric(m: &Value, k: &str) -> f64 {
    m[k].as_f64()
        .unwrap_or_else(|| panic!("metric {k} missing in {m}"))
}

#[test]
fn facies_segmentation_learns_past_the_majority_class() {
    // trained from files, as a user's own data would be: the arrays `synth images` writes
    let data = tmp("facies-data");
    ok(&seisfuse(
        &[
            "synth",
            "images",
            "--n",
            "110",
            "--size",
            "64",
            "--seed",
            "5",
            "--out",
            data.to_str().unwrap(),
        ],
        &[],
    ));
    let run = tmp("facies");
    ok(&train(
        "facies",
        &run,
        30,
        &["--data", data.to_str().unwrap()],
    ));
    let (a, b) = loss_ends(&run, 5);
    let m = last_eval(&run);
    let (miou, base) = (metric(&m, "miou"), metric(&m, "miou_majority"));
    println!("facies: loss {a:.3} → {b:.3}, dev mIoU {miou:.3} (majority class {base:.3})");
    assert!(b < 0.9 * a, "loss {a} → {b}");
    assert!(
        miou > 2.0 * base,
        "dev mIoU {miou} vs majority baseline {base}"
    );
    // figures of dev samples and a complete checkpoint
    assert!(run.join("figures/segmentation-0.png").is_file());
    assert!(run.join("step-30/DONE").is_file());
    // eval on the test split: a table and a JSON file with the papers' metrics
    let out = ok(&seisfuse(
        &[
            "eval",
            "--run",
            run.to_str().unwrap(),
            "--split",
            "test",
            "--device",
            "cpu",
        ],
        &[],
    ));
    assert!(out.contains("miou") && out.contains("confusion"), "{out}");
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval-test.json")).unwrap())
            .unwrap();
    for k in ["pa", "mpa", "miou"] {
        assert!(j["metrics"][k].as_f64().is_some(), "{k} in {j}");
    }
    // predict on new sections: a class map per section, and figures
    let pred = tmp("facies-pred");
    ok(&seisfuse(
        &[
            "predict",
            "--run",
            run.to_str().unwrap(),
            "--input",
            data.join("noisy.npy").to_str().unwrap(),
            "--out",
            pred.to_str().unwrap(),
            "--device",
            "cpu",
        ],
        &[],
    ));
    let classes = seisfuse::data::npy::read_f32_tensor(pred.join("classes.npy")).unwrap();
    assert_eq!(classes.shape, vec![110, 64, 64]);
    let v = classes.to_vec_f32().unwrap();
    assert!(v
        .iter()
        .all(|&c| (0.0..6.0).contains(&c) && c.fract() == 0.0));
    assert!(pred.join("figures/classes-0.png").is_file());
    // The training data moved away: predict needs only the run (the checkpoint knows the
    // head's classes) and gives the same classes; eval, which reads the data, says so.
    let moved = tmp("facies-data-moved");
    std::fs::rename(&data, &moved).unwrap();
    let again = tmp("facies-pred-again");
    ok(&seisfuse(
        &[
            "predict",
            "--run",
            run.to_str().unwrap(),
            "--input",
            moved.join("noisy.npy").to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
            "--device",
            "cpu",
        ],
        &[],
    ));
    let same = seisfuse::data::npy::read_f32_tensor(again.join("classes.npy")).unwrap();
    assert_eq!(same.to_vec_f32().unwrap(), v);
    let o = seisfuse(
        &["eval", "--run", run.to_str().unwrap(), "--device", "cpu"],
        &[],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("facies-data"), "{err}");
    for d in [&run, &moved, &pred, &again] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn picking_beats_a_constant_pick() {
    let run = tmp("pick");
    ok(&train(
        "pick",
        &run,
        40,
        &["--set", "train_size=96", "--set", "dev_size=32"],
    ));
    let (a, b) = loss_ends(&run, 4);
    let m = last_eval(&run);
    let (p, base) = (
        metric(&m, "p_within_0.5s"),
        metric(&m, "p_within_0.5s_baseline"),
    );
    println!("pick: loss {a:.3} → {b:.3}, P within 0.5 s {p:.3} (constant pick {base:.3})");
    assert!(b < a, "loss {a} → {b}");
    assert!(
        p > base + 0.1,
        "P within 0.5 s {p} vs constant-pick baseline {base}"
    );
    assert!(run.join("figures/picks-0.png").is_file());
    // `seisfuse pick --run` picks with the run's weights: with one window per trace, nothing
    // blinded and nothing stacked, its probabilities are `predict`'s.
    let data = tmp("pick-traces");
    ok(&seisfuse(
        &[
            "synth",
            "waveforms",
            "--out",
            data.to_str().unwrap(),
            "--n",
            "4",
            "--samples",
            "601",
            "--seed",
            "9",
        ],
        &[],
    ));
    let traces = data.join("waveforms.npy");
    let pred = data.join("pred");
    ok(&seisfuse(
        &[
            "predict",
            "--run",
            run.to_str().unwrap(),
            "--input",
            traces.to_str().unwrap(),
            "--out",
            pred.to_str().unwrap(),
            "--png",
            "0",
            "--device",
            "cpu",
        ],
        &[],
    ));
    let probs = data.join("probs.npy");
    let o = seisfuse(
        &[
            "pick",
            "--run",
            run.to_str().unwrap(),
            "--input",
            traces.to_str().unwrap(),
            "--window",
            "601",
            "--overlap",
            "0",
            "--blinding",
            "0,0",
            "--probs",
            probs.to_str().unwrap(),
            "--out",
            data.join("picks.csv").to_str().unwrap(),
            "--device",
            "cpu",
        ],
        &[],
    );
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("seislm-tiny"));
    let (ps, pv) = read_npy(&probs);
    let (qs, qv) = read_npy(&pred.join("probabilities.npy"));
    assert_eq!(ps, qs, "pick --probs vs predict shapes");
    let worst = pv
        .iter()
        .zip(&qv)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "pick --run and predict differ by {worst}");
    // another task's run is refused by name
    let o = seisfuse(
        &[
            "pick",
            "--run",
            data.to_str().unwrap(),
            "--input",
            traces.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!o.status.success());
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(&data);
}

/// Shape and values of an f32 .npy file.
fn read_npy(p: &Path) -> (Vec<usize>, Vec<f32>) {
    let t = seisfuse::data::npy::read_f32_tensor(p).unwrap();
    (t.shape.clone(), t.to_vec_f32().unwrap())
}

/// Every other task trains a few steps end to end: a finite falling-or-flat loss, a dev
/// evaluation with its baseline metric, a checkpoint, figures.
#[test]
fn every_task_trains_evaluates_and_checkpoints() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("salt", &[], "miou"),
        ("denoise", &["--set", "image_size=32"], "mse_identity"),
        ("interpolation", &["--set", "image_size=32"], "mse_identity"),
        ("inversion", &["--set", "image_size=32"], "mse_zero"),
        ("classify", &[], "majority_baseline"),
        ("mae", &[], "loss_predict_zero"),
        (
            "event-class",
            &["--set", "samples=401"],
            "majority_baseline",
        ),
        (
            "seislm-pretrain",
            &["--set", "samples=401"],
            "contrastive_chance",
        ),
    ];
    for (task, extra, key) in cases {
        let run = tmp(task);
        let mut args = vec![
            "--set",
            "train_size=16",
            "--set",
            "dev_size=8",
            "--batch",
            "4",
        ];
        args.extend_from_slice(extra);
        let o = train(task, &run, 4, &args);
        ok(&o);
        let m = last_eval(&run);
        assert!(metric(&m, "loss").is_finite(), "{task}: {m}");
        assert!(metric(&m, key).is_finite(), "{task}: {m}");
        assert!(run.join("step-4/DONE").is_file(), "{task}");
        let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(cfg.contains(&format!("task = \"{task}\"")), "{cfg}");
        let _ = std::fs::remove_dir_all(&run);
    }
}

#[test]
fn a_resumed_run_is_bit_for_bit_the_uninterrupted_one() {
    for (task, extra) in [
        ("classify", vec!["--accum", "2"]),
        ("event-class", vec!["--set", "samples=401"]),
    ] {
        let (a, b) = (tmp(&format!("{task}-a")), tmp(&format!("{task}-b")));
        let mut args = vec![
            "--set",
            "train_size=24",
            "--set",
            "dev_size=8",
            "--batch",
            "4",
            "--set",
            "checkpoint_every=3",
            "--set",
            "eval_every=3",
        ];
        args.extend(extra.iter().copied());
        ok(&train(task, &a, 8, &args));
        // the same run, stopped after step 3, then resumed
        let steps = "8".to_string();
        let mut first = vec![
            "train",
            "--task",
            task,
            "--out",
            b.to_str().unwrap(),
            "--steps",
            &steps,
            "--quiet",
            "--device",
            "cpu",
            "--set",
            "log_every=1",
        ];
        first.extend(args.iter().copied());
        let o = seisfuse(&first, &[("SEISFUSE_STOP_AFTER_STEP", "3")]);
        assert!(!o.status.success());
        assert!(b.join("step-3/DONE").is_file());
        ok(&seisfuse(
            &[
                "train",
                "--resume",
                b.to_str().unwrap(),
                "--quiet",
                "--device",
                "cpu",
            ],
            &[],
        ));
        for f in ["model.safetensors", "optimizer.safetensors"] {
            let (x, y) = (
                std::fs::read(a.join("step-8").join(f)).unwrap(),
                std::fs::read(b.join("step-8").join(f)).unwrap(),
            );
            assert!(
                x == y,
                "{task}: {f} differs between the resumed and the uninterrupted run"
            );
        }
        // the logs agree too (throughput aside)
        let strip = |p: &Path| -> Vec<String> {
            log(p)
                .into_iter()
                .map(|mut v| {
                    v.as_object_mut().unwrap().remove("samples_per_s");
                    v.to_string()
                })
                .collect()
        };
        assert_eq!(strip(&a), strip(&b), "{task}");
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
    }
}

#[test]
fn an_interrupted_checkpoint_leaves_the_previous_one_loadable() {
    let run = tmp("kill");
    let args = [
        "--set",
        "train_size=16",
        "--set",
        "dev_size=8",
        "--batch",
        "4",
    ];
    ok(&train("classify", &run, 2, &args));
    // continue to step 4, but the final rename fails
    let o = seisfuse(
        &[
            "train",
            "--resume",
            run.to_str().unwrap(),
            "--steps",
            "4",
            "--quiet",
            "--device",
            "cpu",
        ],
        &[("SEISFUSE_FAIL_CHECKPOINT_RENAME", "1")],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rename failed"), "{err}");
    assert!(!run.join("step-4").exists());
    assert!(run.join("step-2/DONE").is_file());
    // the old checkpoint still evaluates, and resume picks it
    ok(&seisfuse(
        &[
            "eval",
            "--run",
            run.to_str().unwrap(),
            "--split",
            "dev",
            "--device",
            "cpu",
        ],
        &[],
    ));
    ok(&seisfuse(
        &[
            "train",
            "--resume",
            run.to_str().unwrap(),
            "--steps",
            "4",
            "--quiet",
            "--device",
            "cpu",
        ],
        &[],
    ));
    assert!(run.join("step-4/DONE").is_file());
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn bad_checkpoints_and_runs_are_clear_errors() {
    let run = tmp("bad");
    let args = [
        "--set",
        "train_size=16",
        "--set",
        "dev_size=8",
        "--batch",
        "4",
    ];
    ok(&train("classify", &run, 2, &args));
    // an existing run is not overwritten without --force
    let o = train("classify", &run, 2, &args);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    // a truncated model file: the error names the file
    let m = run.join("step-2/model.safetensors");
    let bytes = std::fs::read(&m).unwrap();
    std::fs::write(&m, &bytes[..bytes.len() / 2]).unwrap();
    let o = seisfuse(
        &["eval", "--run", run.to_str().unwrap(), "--device", "cpu"],
        &[],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("model.safetensors"), "{err}");
    // weights of another task: the error names a tensor
    let pick = tmp("bad-other");
    ok(&train("salt", &pick, 1, &args));
    let o = seisfuse(
        &[
            "eval",
            "--run",
            run.to_str().unwrap(),
            "--checkpoint",
            pick.join("step-1").to_str().unwrap(),
            "--device",
            "cpu",
        ],
        &[],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("decoder.") || err.contains("head."), "{err}");
    // unknown config keys and tasks
    let o = seisfuse(
        &[
            "train",
            "--task",
            "segment",
            "--out",
            "/nonexistent/x",
            "--quiet",
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown task"));
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(&pick);
}

/// The main job end to end on a small budget: every variant trains and is evaluated, and the
/// report holds the table, the figures it names and the commands.
#[test]
fn demo_writes_its_report() {
    let out = tmp("demo");
    let o = seisfuse(
        &[
            "demo",
            "--out",
            out.to_str().unwrap(),
            "--seeds",
            "2",
            "--steps",
            "3",
            "--train-size",
            "32",
            "--dev-size",
            "8",
            "--test-size",
            "16",
            "--device",
            "cpu",
        ],
        &[],
    );
    let stdout = ok(&o);
    for v in [
        "image-only",
        "wave-only",
        "fuse-early",
        "fuse-mid",
        "fuse-late",
        "bind",
    ] {
        assert!(stdout.contains(v), "{v} missing from\n{stdout}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| variant | test accuracy"), "{md}");
    assert!(md.contains("seisfuse train --task fuse-late"), "{md}");
    for line in md.lines().filter(|l| l.starts_with("![")) {
        let f = &line[line.find('(').unwrap() + 1..line.len() - 1];
        assert!(out.join(f).is_file(), "{f} named by the report is missing");
    }
    // a second run refuses to replace the report without --force
    let o = seisfuse(
        &["demo", "--out", out.to_str().unwrap(), "--seeds", "1"],
        &[],
    );
    assert!(!o.status.success());
    let _ = std::fs::remove_dir_all(&out);
}

/// Real formats end to end: continuous miniSEED and a pick catalog → `dataset build` (a
/// SeisBench folder, metadata.csv + waveforms.hdf5) → `train --task pick` and `event-class`
/// on it → `eval` on its test split.
#[test]
fn picking_and_event_tasks_train_from_a_seisbench_folder_built_from_miniseed() {
    let root = tmp("seisbench");
    std::fs::create_dir_all(&root).unwrap();
    let cont = root.join("cont");
    let ds = root.join("ds");
    ok(&seisfuse(
        &[
            "synth",
            "continuous",
            "--out",
            cont.to_str().unwrap(),
            "--stations",
            "2",
            "--seconds",
            "600",
            "--events",
            "10",
            "--seed",
            "3",
        ],
        &[],
    ));
    ok(&seisfuse(
        &[
            "dataset",
            "build",
            "--waveforms",
            cont.to_str().unwrap(),
            "--picks",
            cont.join("catalog.csv").to_str().unwrap(),
            "--out",
            ds.to_str().unwrap(),
            "--window",
            "8",
            "--p-offset",
            "2:5",
            "--noise-per-event",
            "1",
        ],
        &[],
    ));
    assert!(ds.join("waveforms.hdf5").is_file() && ds.join("metadata.csv").is_file());
    for (task, key) in [
        ("pick", "p_within_0.5s"),
        ("event-class", "majority_baseline"),
    ] {
        let run = root.join(task);
        let out = ok(&train(
            task,
            &run,
            3,
            &[
                "--data",
                ds.to_str().unwrap(),
                "--batch",
                "4",
                "--set",
                "samples=801",
            ],
        ));
        assert!(out.contains("trained"), "{out}");
        let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
        assert!(log.contains(&format!("\"{key}\"")), "{task}: {log}");
        ok(&seisfuse(
            &[
                "eval",
                "--run",
                run.to_str().unwrap(),
                "--split",
                "test",
                "--device",
                "cpu",
            ],
            &[],
        ));
        let e = std::fs::read_to_string(run.join("eval-test.json")).unwrap();
        let v: Value = serde_json::from_str(&e).unwrap_or_else(|_| panic!("{e}"));
        assert!(v["metrics"][key].is_number(), "{task}: {v}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// A user's paired set (the layout `synth paired` writes) trains a fusion task and feeds the
/// demo through `--data`; a folder whose sizes do not fit the model is refused before work.
#[test]
fn fusion_and_the_demo_read_a_paired_folder() {
    let root = tmp("paired");
    std::fs::create_dir_all(&root).unwrap();
    let data = root.join("pairs");
    ok(&seisfuse(
        &[
            "synth",
            "paired",
            "--out",
            data.to_str().unwrap(),
            "--n",
            "40",
            "--size",
            "32",
            "--samples",
            "401",
        ],
        &[],
    ));
    let run = root.join("late");
    let out = ok(&train(
        "fuse-late",
        &run,
        2,
        &["--data", data.to_str().unwrap(), "--batch", "4"],
    ));
    assert!(out.contains("trained fuse-late"), "{out}");
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    assert!(log.contains("\"accuracy\""), "{log}");
    // predict reads the same folder (labels not needed): one row per pair
    let pred = root.join("pred");
    let out = ok(&seisfuse(
        &[
            "predict",
            "--run",
            run.to_str().unwrap(),
            "--input",
            data.to_str().unwrap(),
            "--out",
            pred.to_str().unwrap(),
            "--device",
            "cpu",
        ],
        &[],
    ));
    assert!(out.contains("40 samples"), "{out}");
    let written: Vec<_> = std::fs::read_dir(&pred)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    assert!(!written.is_empty(), "{out}");
    for p in &written {
        assert_eq!(read_npy(p).0[0], 40, "{}", p.display());
    }
    let demo = root.join("demo");
    let out = ok(&seisfuse(
        &[
            "demo",
            "--data",
            data.to_str().unwrap(),
            "--only",
            "image-only,fuse-late",
            "--seeds",
            "1",
            "--steps",
            "2",
            "--batch",
            "4",
            "--out",
            demo.to_str().unwrap(),
            "--device",
            "cpu",
        ],
        &[],
    ));
    assert!(out.contains("fuse-late"), "{out}");
    let md = std::fs::read_to_string(demo.join("report.md")).unwrap();
    // 40 pairs split 70/15/15 in file order
    assert!(md.contains("28 train / 6 dev / 6 test pairs"), "{md}");
    assert!(md.contains(&format!("--data {}", data.display())), "{md}");
    // sections of another size than the model's: refused, naming the key to set
    let o = train(
        "fuse-late",
        &root.join("wrong"),
        2,
        &["--data", data.to_str().unwrap(), "--set", "image_size=64"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("set image_size = 32"), "{err}");
    assert!(!root.join("wrong").join("step-2").exists());
    let _ = std::fs::remove_dir_all(&root);
}

/// `bench train` and `bench fusion` time the trainer's loop phase by phase.
#[test]
fn bench_train_reports_where_the_step_goes() {
    let out = ok(&seisfuse(
        &[
            "bench",
            "train",
            "--task",
            "classify",
            "--timed-steps",
            "2",
            "--warmup",
            "1",
            "--batch",
            "2",
            "--device",
            "cpu",
        ],
        &[],
    ));
    let row = out
        .lines()
        .find(|l| l.starts_with("classify"))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<f64> = row
        .split_whitespace()
        .skip(1)
        .map(|c| c.trim_end_matches('%').parse().unwrap())
        .collect();
    // batch, samples/s, step, data, model, optimizer, other, overhead
    assert_eq!(cols.len(), 8, "{row}");
    assert_eq!(cols[0], 2.0);
    let phases = cols[3] + cols[4] + cols[5] + cols[6];
    assert!((phases - cols[2]).abs() < 0.05 + 1e-3 * cols[2], "{row}");
    assert!(cols[4] > 0.0 && cols[1] > 0.0, "{row}");
    let out = ok(&seisfuse(
        &[
            "bench",
            "fusion",
            "--timed-steps",
            "1",
            "--warmup",
            "0",
            "--batch",
            "2",
            "--device",
            "cpu",
        ],
        &[],
    ));
    for v in [
        "image-only",
        "wave-only",
        "fuse-early",
        "fuse-mid",
        "fuse-late",
        "bind",
    ] {
        assert!(out.lines().any(|l| l.starts_with(v)), "{v}: {out}");
    }
    let o = seisfuse(
        &["bench", "train", "--task", "nope", "--device", "cpu"],
        &[],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown task"));
}
