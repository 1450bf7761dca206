//! Cases of the training product: `train`, `eval`, `predict`, `demo` and `bench train|fusion`
//! with sizes beyond reason, unknown keys and non-numbers, missing and mismatched data, outputs
//! over the user's files or the inputs, closed pipes and unwritable folders.

use super::cases::{case, err, os, AsRefOs, Case, Class, Expect};
use super::corpus::Corpus;
use std::ffi::OsString;

/// `train --task facies` on the CPU into `run`, then `rest`.
fn train(rest: &[&dyn AsRefOs]) -> Vec<OsString> {
    let mut v = os(&[
        &"--device",
        &"cpu",
        &"train",
        &"--task",
        &"facies",
        &"--quiet",
        &"--out",
        &"run",
    ]);
    v.extend(os(rest));
    v
}

/// `predict` on the CPU with the weights of `run`, then `rest`.
fn predict(run: &std::path::Path, rest: &[&dyn AsRefOs]) -> Vec<OsString> {
    let mut v = os(&[
        &"--device",
        &"cpu",
        &"predict",
        &"--run",
        &run.to_path_buf(),
    ]);
    v.extend(os(rest));
    v
}

pub fn table(c: &Corpus) -> Vec<Case> {
    use Class::*;
    let p = |n: &str| c.path(n);
    let run = p("run_facies");
    let pairs = p("pairs");
    let images = p("good_images.npy");
    let waves = p("good_waves.npy");
    let mut v = Vec::new();

    // ---- Sizes from flags are bounded before anything is allocated or written.
    for (name, args, says) in [
        (
            "train_batch_beyond_reason",
            train(&[&"--batch", &"4000000000"]),
            "batch",
        ),
        (
            "train_image_size_beyond_reason",
            train(&[&"--set", &"image_size=1000000"]),
            "image_size",
        ),
        (
            "train_sizes_beyond_reason",
            train(&[&"--set", &"train_size=9000000000000000000"]),
            "train_size",
        ),
        (
            "train_samples_beyond_reason",
            os(&[
                &"train",
                &"--task",
                &"pick",
                &"--out",
                &"run",
                &"--set",
                &"samples=4000000000",
            ]),
            "samples",
        ),
        (
            "demo_train_size_beyond_reason",
            os(&[
                &"demo",
                &"--device",
                &"cpu",
                &"--train-size",
                &"900000000000",
                &"--out",
                &"d",
            ]),
            "beyond reason",
        ),
        (
            "bench_train_batch_beyond_reason",
            os(&[
                &"bench",
                &"train",
                &"--task",
                &"facies",
                &"--device",
                &"cpu",
                &"--batch",
                &"4000000000",
            ]),
            "batch",
        ),
        (
            "bench_train_timed_steps_zero",
            os(&[
                &"bench",
                &"train",
                &"--task",
                &"facies",
                &"--device",
                &"cpu",
                &"--timed-steps",
                &"0",
            ]),
            "--timed-steps",
        ),
    ] {
        v.push(case(name, Allocation, args, err(&[says])));
    }

    // ---- Values that cannot work name the key.
    for (name, args, says) in [
        (
            "train_unknown_key",
            train(&[&"--set", &"colour=3"]),
            "colour",
        ),
        ("train_lr_nan", train(&[&"--set", &"lr=nan"]), "lr"),
        (
            "train_grad_comm_unknown",
            train(&[&"--set", &"grad_comm=fp8"]),
            "grad_comm",
        ),
        ("train_lr_text", train(&[&"--set", &"lr=\"fast\""]), "lr"),
        (
            "train_set_without_value",
            train(&[&"--set", &"steps"]),
            "KEY=VALUE",
        ),
        (
            "train_unknown_task",
            os(&[&"train", &"--task", &"nope", &"--out", &"run"]),
            "unknown task",
        ),
        (
            "train_missing_data_folder",
            train(&[&"--data", &"missing-folder"]),
            "missing-folder",
        ),
        (
            "train_fusion_on_a_waveform_file",
            os(&[
                &"train",
                &"--task",
                &"fuse-late",
                &"--out",
                &"run",
                &"--data",
                &waves,
            ]),
            "paired",
        ),
        (
            "eval_not_a_run",
            os(&[&"eval", &"--run", &images, &"--json", &"e.json"]),
            "good_images.npy",
        ),
        (
            "predict_wrong_shape",
            predict(&run, &[&"--input", &waves, &"--out", &"p"]),
            "good_waves.npy",
        ),
        (
            "demo_unknown_variant",
            os(&[&"demo", &"--only", &"fuse-everything", &"--out", &"d"]),
            "fuse-everything",
        ),
        (
            "demo_missing_data",
            os(&[
                &"demo",
                &"--device",
                &"cpu",
                &"--data",
                &"missing-pairs",
                &"--out",
                &"d",
            ]),
            "missing-pairs",
        ),
    ] {
        v.push(case(name, Message, args, err(&[says])));
    }
    // A paired folder missing its labels, and one of 64×64 sections for a 32×32 model.
    let labels = {
        let mut b =
            super::corpus::npy_header("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }");
        b.extend([0i32, 1].iter().flat_map(|x| x.to_le_bytes()));
        b
    };
    for (name, with_labels, says) in [
        ("demo_pairs_without_labels", false, "labels.npy"),
        ("demo_pairs_of_another_size", true, "image_size = 64"),
    ] {
        let mut k = case(
            name,
            Message,
            os(&[
                &"demo",
                &"--device",
                &"cpu",
                &"--data",
                &"mine",
                &"--out",
                &"d",
            ]),
            err(&[says]),
        );
        k.seed = vec![
            ("mine/images.npy".into(), std::fs::read(&images).unwrap()),
            ("mine/waveforms.npy".into(), std::fs::read(&waves).unwrap()),
        ];
        if with_labels {
            k.seed.push(("mine/labels.npy".into(), labels.clone()));
        }
        v.push(k);
    }
    // A good paired folder trains end to end, writing only under --out.
    v.push(case(
        "demo_on_a_paired_folder",
        Nonsense,
        os(&[
            &"demo",
            &"--device",
            &"cpu",
            &"--data",
            &pairs,
            &"--only",
            &"fuse-late",
            &"--seeds",
            &"1",
            &"--steps",
            &"1",
            &"--batch",
            &"2",
            &"--out",
            &"d",
        ]),
        Expect::Success {
            outputs: vec![("d/report.md".into(), 1 << 16)],
            gone: vec![],
            says: vec![],
        },
    ));

    // ---- Nothing the user owns is overwritten without --force, and never an input.
    let mut k = case(
        "train_over_a_user_folder",
        Overwrite,
        train(&[&"--steps", &"1"]),
        err(&["--force"]),
    );
    k.seed = vec![("run/notes.txt".into(), b"mine".to_vec())];
    v.push(k);
    let mut k = case(
        "train_over_a_user_file",
        Overwrite,
        train(&[&"--steps", &"1"]),
        err(&["run"]),
    );
    k.seed = vec![("run".into(), b"mine".to_vec())];
    v.push(k);
    let mut k = case(
        "predict_into_a_user_folder",
        Overwrite,
        predict(&run, &[&"--input", &images, &"--out", &"p"]),
        err(&["--force"]),
    );
    k.seed = vec![("p/classes.npy".into(), b"mine".to_vec())];
    v.push(k);
    // With --force the folder may be replaced, but not the file being read.
    let mut k = case(
        "predict_over_its_own_input",
        Overwrite,
        predict(
            &run,
            &[&"--input", &"p/classes.npy", &"--out", &"p", &"--force"],
        ),
        err(&["classes.npy"]),
    );
    k.seed = vec![(
        "p/classes.npy".into(),
        std::fs::read(&images).expect("corpus images"),
    )];
    v.push(k);
    let mut k = case(
        "eval_json_over_a_user_file",
        Overwrite,
        os(&[
            &"--device",
            &"cpu",
            &"eval",
            &"--run",
            &run,
            &"--json",
            &"e.json",
        ]),
        err(&["--force"]),
    );
    k.seed = vec![("e.json".into(), b"mine".to_vec())];
    v.push(k);
    let mut k = case(
        "demo_over_a_report",
        Overwrite,
        os(&[&"demo", &"--device", &"cpu", &"--out", &"d"]),
        err(&["--force"]),
    );
    k.seed = vec![("d/report.md".into(), b"mine".to_vec())];
    v.push(k);

    // ---- Non-finite data stop the run with a message naming them (the run folder a failed
    // run leaves for inspection is removed by the case itself).
    let mut k = case(
        "train_on_nan_waveforms",
        Nonsense,
        vec![format!(
            "mkdir -p data && cp '{}' data/waveforms.npy && \
             \"$SEISFUSE\" --device cpu train --task seislm-pretrain --quiet --out run --data data \
             --steps 2 --batch 1 --set samples=400; code=$?; rm -rf run data; exit $code",
            p("nan_waves.npy").display()
        )
        .into()],
        err(&["NaN|non-finite"]),
    );
    k.shell = true;
    v.push(k);

    // ---- Closed pipes.
    for (name, args) in [
        ("train_list", os(&[&"train", &"--list"])),
        (
            "eval",
            os(&[
                &"--device",
                &"cpu",
                &"eval",
                &"--run",
                &run,
                &"--json",
                &"e.json",
            ]),
        ),
        (
            "predict",
            predict(&run, &[&"--input", &images, &"--out", &"p", &"--png", &"0"]),
        ),
    ] {
        let mut k = case(
            &format!("closed_stdout_{name}"),
            Pipe,
            args,
            Expect::Success {
                outputs: vec![],
                gone: vec![],
                says: vec![],
            },
        );
        k.closed_stdout = true;
        v.push(k);
    }

    // ---- Unwritable outputs fail before any work.
    let ro = c.read_only.join("x");
    for (name, args) in [
        ("train", train(&[])),
        (
            "predict",
            predict(&run, &[&"--input", &images, &"--out", &ro]),
        ),
        ("demo", os(&[&"demo", &"--device", &"cpu", &"--out", &ro])),
    ] {
        let mut args = args;
        if name == "train" {
            // --out run → the read-only folder
            let at = args.iter().position(|a| a == "run").unwrap();
            args[at] = ro.clone().into_os_string();
        }
        v.push(case(
            &format!("unwritable_{name}"),
            Unwritable,
            args,
            err(&["x"]),
        ));
    }
    v
}
