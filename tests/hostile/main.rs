//! The adversarial suite of issue 16: every subcommand of the built binary against a generated
//! corpus of bad input (truncated, oversized claims, wrong modality, NaN/Inf, scalars,
//! zero-size axes, records years apart, absurd flags, output = input, read-only and missing
//! folders, closed pipes), under an address-space limit. Every case must end without a panic
//! or an abort; a failing case must exit 1 with a message naming the file or flag, leave the
//! inputs unchanged and leave no output, partial or temporary, behind.
//!
//! One test per class of finding (`cases::Class`); `HOSTILE_CASE=name` runs one case, and
//! `SEISFUSE_HOSTILE_BIN=path` runs the suite against another build (e.g. one from before a
//! fix, to see the cases fail).

mod cases;
mod corpus;
mod harness;
mod pick_cases;
mod train_cases;

use cases::{Case, Class, Expect};
use corpus::Corpus;
use std::path::PathBuf;
use std::sync::OnceLock;

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        // One folder, emptied at the start of each run (a failed case's files stay there
        // until the next run, for a look).
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile");
        corpus::build(&root)
    })
}

/// Runs one case; None when it behaved, else what went wrong.
fn check(c: &Corpus, k: &Case) -> Option<String> {
    let dir = c.cases.join(&k.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (rel, bytes) in &k.seed {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let corpus_before = harness::snapshot(&c.dir);
    let case_before = harness::snapshot(&dir);
    let o = if k.closed_stdout {
        harness::run_closed_stdout(&k.args, &dir, &k.env)
    } else {
        harness::run(&k.args, &dir, &k.env, k.shell)
    };
    let mut problems = Vec::new();
    if let Some(why) = o.crash() {
        problems.push(why);
    }
    let changed = harness::diff(&corpus_before, &harness::snapshot(&c.dir));
    if !changed.is_empty() {
        problems.push(format!("inputs changed: {}", changed.join("; ")));
    }
    match &k.expect {
        Expect::Error(mentions) => {
            if o.code != Some(1) {
                problems.push(format!("exit {:?}, expected 1 (an error)", o.code));
            }
            if !o.stderr.contains("error: ") {
                problems.push("no \"error:\" message".into());
            }
            for m in mentions {
                if !m.split('|').any(|alt| o.stderr.contains(alt)) {
                    problems.push(format!("the message does not mention {m:?}"));
                }
            }
            let left = harness::diff(&case_before, &harness::snapshot(&dir));
            if !left.is_empty() {
                problems.push(format!("files changed or left behind: {}", left.join("; ")));
            }
        }
        Expect::Success {
            outputs,
            gone,
            says,
        } => {
            if o.code != Some(0) {
                problems.push(format!("exit {:?}, expected 0", o.code));
            }
            for (f, max) in outputs {
                match std::fs::metadata(dir.join(f)) {
                    Err(_) => problems.push(format!("{f} was not written")),
                    Ok(m) if m.len() > *max => {
                        problems.push(format!("{f} has {} bytes, more than {max}", m.len()))
                    }
                    _ => {}
                }
            }
            for f in gone {
                if dir.join(f).exists() {
                    problems.push(format!("{f} is still there"));
                }
            }
            for s in says {
                if !o.stderr.contains(s.as_str()) {
                    problems.push(format!("stderr does not say {s:?}"));
                }
            }
            let temps: Vec<String> = harness::snapshot(&dir)
                .keys()
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| p.contains(".tmp") || p.contains(".synth-stage"))
                .collect();
            if !temps.is_empty() {
                problems.push(format!("temporary files left: {temps:?}"));
            }
        }
    }
    // Failed cases keep their folder for a look, unless a runaway output made it large.
    let size: u64 = walk_size(&dir);
    if problems.is_empty() || size > 16 << 20 {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!(
            "{}: {}\n    args: {:?}\n    exit {:?} signal {:?} in {:.1?}\n    stderr: {}\n    stdout: {}",
            k.name,
            problems.join("; "),
            k.args,
            o.code,
            o.signal,
            o.elapsed,
            o.stderr.trim().lines().take(6).collect::<Vec<_>>().join("\n            "),
            o.stdout.trim().lines().take(2).collect::<Vec<_>>().join("\n            ")
        ))
    }
}

fn walk_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn run_class(class: Class) {
    let c = corpus();
    let only = std::env::var("HOSTILE_CASE").ok();
    let cases: Vec<Case> = cases::table(c)
        .into_iter()
        .filter(|k| k.class == class)
        .filter(|k| only.as_deref().is_none_or(|n| n == k.name))
        .collect();
    let total = cases.len();
    let failures: Vec<String> = cases.iter().filter_map(|k| check(c, k)).collect();
    println!(
        "{class:?}: {} of {total} cases behaved",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} {class:?} cases misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn hostile_weights_do_not_panic() {
    run_class(Class::Panic);
}

#[test]
fn closed_pipes_end_quietly_with_success() {
    run_class(Class::Pipe);
}

#[test]
fn sizes_from_headers_flags_and_spans_are_bounded() {
    run_class(Class::Allocation);
}

#[test]
fn runaway_output_is_refused_before_writing() {
    run_class(Class::Runaway);
}

#[test]
fn nothing_is_overwritten() {
    run_class(Class::Overwrite);
}

#[test]
fn no_silent_nonsense() {
    run_class(Class::Nonsense);
}

#[test]
fn messages_name_what_and_where() {
    run_class(Class::Message);
}

#[test]
fn bad_files_through_every_command() {
    run_class(Class::Reader);
}

#[test]
fn unwritable_outputs_fail_before_work() {
    run_class(Class::Unwritable);
}

/// Every subcommand has cases.
#[test]
fn every_subcommand_is_covered() {
    let c = corpus();
    let t = cases::table(c);
    for cmd in [
        "doctor", "bench", "profile", "weights", "mel", "embed", "pick", "synth", "viz", "dataset",
        "train", "eval", "predict", "demo",
    ] {
        assert!(
            t.iter().any(|k| k
                .args
                .iter()
                .any(|a| a == cmd || a.to_string_lossy().contains(&format!(" {cmd} ")))),
            "no case runs {cmd}"
        );
    }
    let mut names: Vec<&str> = t.iter().map(|k| k.name.as_str()).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!(n, names.len(), "case names must be unique");
}

/// Help texts say only what is true of each command.
#[test]
fn help_texts_say_what_is_true() {
    let help = |args: &[&str]| {
        let o = std::process::Command::new(harness::binary())
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?} --help");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for cmd in [
        &["synth", "images"][..],
        &["viz", "section"],
        &["weights", "inspect"],
    ] {
        let h = help(cmd);
        assert!(!h.contains("--device"), "{cmd:?} runs on no device:\n{h}");
    }
    for cmd in [
        &["embed"][..],
        &["pick"],
        &["mel"],
        &["doctor"],
        &["bench", "ops"],
    ] {
        let h = help(cmd);
        assert!(h.contains("--device"), "{cmd:?} should take --device:\n{h}");
    }
    let h = help(&["embed"]);
    let input = &h[h.find("--input").expect("embed --input")..];
    let input = &input[..input.find("\n  -").unwrap_or(input.len())];
    assert!(
        input.contains("images") && input.contains("waveforms"),
        "embed --input must name both modalities:\n{input}"
    );
    assert!(help(&[]).contains("--max-memory"));
}

/// Long-running commands write periodic progress lines when standard error is not a terminal.
#[test]
fn progress_lines_when_not_a_terminal() {
    let c = corpus();
    let dir = c.cases.join("progress");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let images = c.path("good_images.npy");
    let waves = c.path("good_waves.npy");
    let runs: Vec<(&str, Vec<std::ffi::OsString>)> = vec![
        (
            "embed: ",
            vec![
                "--device".into(),
                "cpu".into(),
                "embed".into(),
                "--model".into(),
                "sfm-tiny".into(),
                "--random-init".into(),
                "--batch".into(),
                "1".into(),
                "--input".into(),
                images.clone().into(),
                "--out".into(),
                "e.npy".into(),
            ],
        ),
        (
            "pick: ",
            vec![
                "--device".into(),
                "cpu".into(),
                "pick".into(),
                "--model".into(),
                "seislm-tiny".into(),
                "--random-init".into(),
                "--batch".into(),
                "1".into(),
                "--input".into(),
                waves.clone().into(),
                "--out".into(),
                "p.csv".into(),
            ],
        ),
        (
            "mel: ",
            vec![
                "--device".into(),
                "cpu".into(),
                "mel".into(),
                "--chunk".into(),
                "1".into(),
                "--input".into(),
                waves.clone().into(),
                "--out".into(),
                "m.npy".into(),
            ],
        ),
    ];
    for (want, args) in runs {
        let o = harness::run(&args, &dir, &[("SEISFUSE_PROGRESS_SECS", "0")], false);
        assert_eq!(o.code, Some(0), "{args:?}: {}", o.stderr);
        let lines: Vec<&str> = o.stderr.lines().filter(|l| l.starts_with(want)).collect();
        assert!(
            lines.len() >= 2 && lines.iter().any(|l| l.contains("(100%)")),
            "{args:?}: expected progress lines starting with {want:?}:\n{}",
            o.stderr
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
