//! `seisfuse launch --nproc-per-node 2 -- train …` on the CPU: two ranks with batch b each
//! take the same steps as one process with batch 2b (the gradients are averaged over the
//! ranks through the TCP communicator, the data order is global), rank 0 alone writes the run,
//! a two-rank run resumes bit for bit, and a checkpoint keeps its place in the data, so that a
//! run resumes on another number of ranks or with another batch.

use seisfuse::weights::SafetensorsFile;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seisfuse-dist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn seisfuse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seisfuse"))
        .args(args)
        .env("SEISFUSE_PROGRESS_SECS", "1000")
        .output()
        .unwrap()
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

/// `train` arguments of a classify run of `steps` steps with `batch` per rank into `out`.
fn train_args(out: &Path, batch: usize, steps: usize) -> Vec<String> {
    task_args("classify", out, batch, steps)
}

fn task_args(task: &str, out: &Path, batch: usize, steps: usize) -> Vec<String> {
    [
        "train",
        "--task",
        task,
        "--device",
        "cpu",
        "--quiet",
        "--steps",
        &steps.to_string(),
        "--batch",
        &batch.to_string(),
        "--set",
        "train_size=16",
        "--set",
        "dev_size=4",
        "--set",
        "test_size=4",
        "--set",
        "log_every=1",
        "--set",
        "checkpoint_every=2",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn launch(ranks: usize, train: &[String]) -> Output {
    let n = ranks.to_string();
    let mut a: Vec<&str> = vec!["launch", "--nproc-per-node", &n, "--"];
    a.extend(train.iter().map(|s| s.as_str()));
    seisfuse(&a)
}

/// Largest difference between the tensors of two checkpoints, relative to each tensor's
/// largest value; and, apart, the largest absolute difference of the key biases.
///
/// The key third of `attn.qkv.bias` has a zero gradient in exact arithmetic (adding one
/// constant to every score of a softmax row changes nothing), so what it receives is rounding
/// noise, which differs with the order of the sums, and AdamW divides it by its own size:
/// those entries take steps of ±lr either way. They are held to the learning-rate budget
/// instead of the tight tolerance.
fn max_rel_diff(a: &Path, b: &Path) -> (f64, f64) {
    let (fa, fb) = (
        SafetensorsFile::open(a).unwrap(),
        SafetensorsFile::open(b).unwrap(),
    );
    let (mut worst, mut keys) = (0f64, 0f64);
    let mut n = 0;
    for info in fa.infos() {
        if info.name.contains("running_") {
            // BatchNorm's running statistics: a process accumulating micro-batches updates
            // them once per micro-batch, the ranks once per step and then average them.
            continue;
        }
        let x = fa.read_f32(&info.name).unwrap();
        let y = fb.read_f32(&info.name).unwrap();
        assert_eq!(x.len(), y.len(), "{}", info.name);
        let scale = x.iter().fold(1e-3f32, |m, v| m.max(v.abs())) as f64;
        let third = x.len() / 3;
        for (i, (p, q)) in x.iter().zip(&y).enumerate() {
            let d = (p - q).abs() as f64;
            if info.name.ends_with("attn.qkv.bias") && (third..2 * third).contains(&i) {
                keys = keys.max(d);
            } else {
                if d / scale > worst && std::env::var_os("SHOW_WORST").is_some() {
                    println!("worst so far: {} [{i}] {p} vs {q}", info.name);
                }
                worst = worst.max(d / scale);
            }
        }
        n += 1;
    }
    assert!(n > 10, "{} holds only {n} tensors", a.display());
    (worst, keys)
}

/// Largest absolute difference between the trained parameters of two checkpoints.
fn max_abs_diff(a: &Path, b: &Path) -> f64 {
    let (fa, fb) = (
        SafetensorsFile::open(a).unwrap(),
        SafetensorsFile::open(b).unwrap(),
    );
    let mut worst = 0f64;
    for info in fa.infos() {
        if info.name.contains("running_") {
            continue;
        }
        let (x, y) = (
            fa.read_f32(&info.name).unwrap(),
            fb.read_f32(&info.name).unwrap(),
        );
        for (p, q) in x.iter().zip(&y) {
            worst = worst.max((p - q).abs() as f64);
        }
    }
    worst
}

/// (epoch, position, global batch, ranks) of a checkpoint's data position.
fn position(ck: &Path) -> (u64, u64, u64, u64) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("state.json")).unwrap()).unwrap();
    let d = &v["data"];
    let n = |k: &str| {
        d[k].as_u64()
            .unwrap_or_else(|| panic!("state.json data.{k}: {v}"))
    };
    (
        n("epoch"),
        n("position"),
        n("global_batch"),
        n("world_size"),
    )
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn two_ranks_take_the_steps_of_one_process_with_their_batches_together() {
    let (one, two) = (tmp("one"), tmp("two"));
    ok(&seisfuse(
        &train_args(&one, 4, 4)
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
    ));
    let out = ok(&launch(2, &train_args(&two, 2, 4)));
    // Rank 0 reports; rank 1 writes nothing and prints nothing of its own.
    assert!(
        out.contains("[rank 0]") && out.contains("trained classify"),
        "{out}"
    );
    assert!(!out.contains("[rank 1] trained"), "{out}");
    let ck = |r: &Path, s: usize| r.join(format!("step-{s}/model.safetensors"));
    let (d, keys) = max_rel_diff(&ck(&one, 4), &ck(&two, 4));
    println!("1 rank × batch 4 vs 2 ranks × batch 2 after 4 steps: max relative difference {d:.2e} (key biases {keys:.2e})");
    // measured: 7e-6, key biases 9e-5 (4 warm-up steps: lr 1e-4..4e-4, Σ 1e-3)
    assert!(d < 1e-4, "parameters differ by {d:.2e}");
    assert!(
        keys < 1e-3,
        "key biases differ by {keys:.2e}, beyond the steps' Σ lr"
    );
    // The logged loss is the mean over the ranks: the single process's loss.
    let (a, b) = (losses(&one), losses(&two));
    assert_eq!(a.len(), 4);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4 * x.abs().max(1.0), "loss {x} vs {y}");
    }
    // Resumed from its step-2 checkpoint on two ranks, it ends where it ended.
    let three = tmp("resumed");
    std::fs::create_dir_all(&three).unwrap();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
            }
        }
    };
    copy(&two, &three);
    copy(&two.join("step-2"), &three.join("step-2"));
    let o = launch(
        2,
        &[
            "train".to_string(),
            "--resume".into(),
            three.to_str().unwrap().into(),
            "--quiet".into(),
        ],
    );
    ok(&o);
    let (d, keys) = max_rel_diff(&ck(&two, 4), &ck(&three, 4));
    assert!(
        d == 0.0 && keys == 0.0,
        "resumed on 2 ranks: differs by {d:.2e} ({keys:.2e})"
    );
    // The checkpoint keeps its place in the data: after 4 steps of 2 ranks × 2, sample 16 of
    // epoch 0's order (16 training samples: epoch 1 starts).
    assert_eq!(
        position(&two.join("step-2")),
        (0, 8, 4, 2),
        "epoch, position, global batch, ranks"
    );
    assert_eq!(position(&two.join("step-4")), (1, 0, 4, 2));
    // Resumed on ONE process with the batch of both ranks (--batch 4), from that place, it
    // takes the same steps: it ends where the two ranks ended.
    let four = tmp("one-rank-resume");
    copy(&two, &four);
    copy(&two.join("step-2"), &four.join("step-2"));
    let out = ok(&seisfuse(&[
        "train",
        "--resume",
        four.to_str().unwrap(),
        "--batch",
        "4",
        "--quiet",
    ]));
    assert!(out.contains("trained classify"), "{out}");
    let (d, keys) = max_rel_diff(&ck(&two, 4), &ck(&four, 4));
    println!("2 ranks resumed on 1 process × batch 4: max relative difference {d:.2e} (key biases {keys:.2e})");
    assert!(d < 1e-4 && keys < 1e-3, "{d:.2e} {keys:.2e}");
    assert_eq!(position(&four.join("step-4")), (1, 0, 4, 1));
    // Resumed on one process keeping batch 2 (a global batch of 2 instead of 4): it goes on
    // from sample 8 two at a time, so 2 more steps end at sample 12 of epoch 0.
    let five = tmp("smaller-batch-resume");
    copy(&two, &five);
    copy(&two.join("step-2"), &five.join("step-2"));
    let o = seisfuse(&["train", "--resume", five.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(&o);
    assert!(
        err.contains("(epoch 0, sample 8 of its order); it was written by 2 rank(s) taking 4 samples per step, this run takes 2"),
        "{err}"
    );
    assert_eq!(position(&five.join("step-4")), (0, 12, 2, 1));
    for r in [&four, &five] {
        let _ = std::fs::remove_dir_all(r);
    }
    for r in [&one, &two, &three] {
        let _ = std::fs::remove_dir_all(r);
    }
}

/// SeisLM's layers declare their gradients final too (the all-reduce overlaps its backward
/// pass): two ranks of an event-classification run take the steps of one process that
/// accumulates their two batches (dropout is drawn per micro-batch of the global batch: the
/// ranks draw different masks, as that process does for its two micro-batches). The head's
/// BatchNorm running statistics are averaged over the ranks after each step: without that the
/// ranks' dev metrics differ, which the trainer checks at every evaluation. With
/// `grad_comm = "bf16"` the parameters stay close.
#[test]
fn a_seislm_task_on_two_ranks_and_bf16_gradients() {
    let (one, two, half) = (tmp("ev-one"), tmp("ev-two"), tmp("ev-bf16"));
    let args = |out: &Path, batch| {
        let mut a = task_args("event-class", out, batch, 2);
        a.extend(["--set".to_string(), "samples=600".to_string()]);
        a
    };
    let mut single = args(&one, 2);
    single.extend(["--accum".to_string(), "2".to_string()]);
    ok(&seisfuse(
        &single.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    ));
    ok(&launch(2, &args(&two, 2)));
    let mut bf = args(&half, 2);
    bf.extend(["--set".to_string(), "grad_comm=bf16".to_string()]);
    ok(&launch(2, &bf));
    let ck = |r: &Path| r.join("step-2/model.safetensors");
    let (d, keys) = max_rel_diff(&ck(&one), &ck(&two));
    println!("event-class, 1 × 2 × accum 2 vs 2 × 2: {d:.2e} ({keys:.2e})");
    assert!(
        d < 1e-4 && keys < 1e-3,
        "fp32 gradients: {d:.2e} {keys:.2e}"
    );
    // bf16 gradients round each rank's gradient to 8 bits. AdamW's first steps move each
    // parameter by about ±lr whatever its gradient's size, so where rounding flips the sign of
    // a tiny gradient the parameters part by up to 2 lr per step, and no further.
    let lr_sum: f64 = std::fs::read_to_string(half.join("log.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["lr"].as_f64().unwrap())
        .sum();
    let abs = max_abs_diff(&ck(&one), &ck(&half));
    println!(
        "bf16 gradients: largest parameter difference {abs:.2e}, 2 Σ lr = {:.2e}",
        2.0 * lr_sum
    );
    assert!(
        lr_sum > 0.0 && abs <= 2.0 * lr_sum * 1.01,
        "bf16 gradients: {abs:.2e}"
    );
    for r in [&one, &two, &half] {
        let _ = std::fs::remove_dir_all(r);
    }
}
