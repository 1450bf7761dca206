//! The table: every subcommand against the corpus, one row per case.

use super::corpus::Corpus;
use std::ffi::OsString;
use std::path::Path;

/// Which finding of issue 16 (or which kind of bad input) a case is about; one test each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Panics on hostile but valid files.
    Panic,
    /// Output to a closed pipe.
    Pipe,
    /// Sizes from headers, flags and time spans trusted before allocating.
    Allocation,
    /// Output written before the sizes were checked.
    Runaway,
    /// Existing files and inputs overwritten.
    Overwrite,
    /// Exit 0 with meaningless results.
    Nonsense,
    /// Errors that do not say what was wrong where.
    Message,
    /// Truncated, corrupt, NaN, oversized and wrong-layout files through every command.
    Reader,
    /// Outputs into missing or read-only folders.
    Unwritable,
}

/// What a case must end with.
pub enum Expect {
    /// Exit 1 with an `error:` message that contains each string (`a|b`: either), and nothing
    /// changed in the case's folder or the corpus.
    Error(Vec<String>),
    /// Exit 0; each (file, max bytes) exists in the case folder and is no larger; each of
    /// `gone` does not exist; stderr contains each of `says`.
    Success {
        outputs: Vec<(String, u64)>,
        gone: Vec<String>,
        says: Vec<String>,
    },
}

pub struct Case {
    pub name: String,
    pub class: Class,
    pub args: Vec<OsString>,
    /// Run `bash -c args[0]` (the binary is `$SEISFUSE`).
    pub shell: bool,
    /// Close standard output before the program writes to it.
    pub closed_stdout: bool,
    /// Files placed in the case folder before the run (relative path, bytes).
    pub seed: Vec<(String, Vec<u8>)>,
    pub env: Vec<(&'static str, &'static str)>,
    pub expect: Expect,
}

pub(crate) fn os(v: &[&dyn AsRefOs]) -> Vec<OsString> {
    v.iter().map(|a| a.os()).collect()
}

/// Strings and paths as arguments.
pub trait AsRefOs {
    fn os(&self) -> OsString;
}
impl AsRefOs for &str {
    fn os(&self) -> OsString {
        OsString::from(*self)
    }
}
impl AsRefOs for String {
    fn os(&self) -> OsString {
        OsString::from(self)
    }
}
impl AsRefOs for std::path::PathBuf {
    fn os(&self) -> OsString {
        self.as_os_str().to_owned()
    }
}

pub(crate) fn err(m: &[&str]) -> Expect {
    Expect::Error(m.iter().map(|s| s.to_string()).collect())
}

pub(crate) fn ok() -> Expect {
    Expect::Success {
        outputs: vec![],
        gone: vec![],
        says: vec![],
    }
}

pub(crate) fn case(name: &str, class: Class, args: Vec<OsString>, expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        class,
        args,
        shell: false,
        closed_stdout: false,
        seed: vec![],
        env: vec![],
        expect,
    }
}

/// Files placed in a case folder: (relative path, bytes).
type Seed = Vec<(String, Vec<u8>)>;
/// The arguments of a command reading one input file.
type MakeArgs = Box<dyn Fn(&Path) -> Vec<OsString>>;

pub fn table(c: &Corpus) -> Vec<Case> {
    use Class::*;
    let p = |n: &str| c.path(n);
    let mut v: Vec<Case> = Vec::new();
    let cpu = "--device";
    let images = p("good_images.npy");
    let waves = p("good_waves.npy");
    let sfm_w = p("sfm_tiny.safetensors");
    let picker = p("picker_tiny.safetensors");

    // ---- Panics: hostile but valid weight files are described, not crashed on.
    for f in [
        "scalar_vit.safetensors",
        "scalar_w2v.safetensors",
        "scalar_decoder.safetensors",
    ] {
        v.push(case(
            &format!("weights_inspect_{f}"),
            Panic,
            os(&[&"weights", &"inspect", &p(f)]),
            ok(),
        ));
    }
    v.push(case(
        "embed_weights_scalar_vit",
        Panic,
        os(&[
            &cpu,
            &"cpu",
            &"embed",
            &"--model",
            &"sfm-tiny",
            &"--weights",
            &p("scalar_vit.safetensors"),
            &"--input",
            &images,
            &"--out",
            &"e.npy",
        ]),
        err(&["scalar_vit.safetensors"]),
    ));

    // ---- Closed pipes end quietly with success.
    let pipes: Vec<(&str, Vec<OsString>)> = vec![
        ("doctor", os(&[&"doctor"])),
        ("weights_inspect", os(&[&"weights", &"inspect", &sfm_w])),
        (
            "bench_ops",
            os(&[
                &"bench", &"ops", &cpu, &"cpu", &"--size", &"32", &"--iters", &"1",
            ]),
        ),
        (
            "pick_stdout",
            os(&[
                &cpu,
                &"cpu",
                &"pick",
                &"--model",
                &"seislm-tiny",
                &"--random-init",
                &"--input",
                &waves,
            ]),
        ),
        (
            "viz",
            os(&[&"viz", &"section", &images, &"--out", &"v.png"]),
        ),
        (
            "profile",
            os(&[
                &"profile",
                &cpu,
                &"cpu",
                &"--model",
                &"sfm-tiny",
                &"--batch",
                &"2",
                &"--no-ptxas",
            ]),
        ),
        ("help", os(&[&"--help"])),
    ];
    for (name, args) in pipes {
        let mut k = case(&format!("closed_stdout_{name}"), Pipe, args, ok());
        k.closed_stdout = true;
        v.push(k);
    }
    for (name, cmd) in [
        ("doctor", "\"$SEISFUSE\" doctor"),
        (
            "weights_inspect",
            &*format!("\"$SEISFUSE\" weights inspect '{}'", sfm_w.display()),
        ),
        (
            "bench_ops",
            "\"$SEISFUSE\" bench ops --device cpu --size 32 --iters 1",
        ),
    ] {
        let mut k = case(
            &format!("head_{name}"),
            Pipe,
            vec![format!("{cmd} | head -c1 >/dev/null; exit ${{PIPESTATUS[0]}}").into()],
            ok(),
        );
        k.shell = true;
        v.push(k);
    }

    // ---- Sizes from headers, flags and time spans are checked before allocating.
    // (In --gaps split mode, the default, the two stretches are picked alone: pick_cases.rs.)
    v.push(case(
        "pick_mseed_records_years_apart",
        Allocation,
        os(&[
            &cpu,
            &"cpu",
            &"pick",
            &"--model",
            &"seislm-tiny",
            &"--random-init",
            &"--gaps",
            &"zero",
            &"--input",
            &p("gap_years.mseed"),
        ]),
        err(&["gap_years.mseed", "--max-memory"]),
    ));
    v.push(case(
        "embed_zero_batch_huge_images",
        Allocation,
        os(&[
            &cpu,
            &"cpu",
            &"embed",
            &"--model",
            &"sfm-tiny",
            &"--random-init",
            &"--input",
            &p("zero_batch.npy"),
            &"--out",
            &"e.npy",
        ]),
        err(&["zero_batch.npy"]),
    ));
    v.push(case(
        "viz_thin_array_bounded_figure",
        Allocation,
        os(&[&"viz", &"section", &p("thin.npy"), &"--out", &"thin.png"]),
        Expect::Success {
            outputs: vec![("thin.png".into(), 8 << 20)],
            gone: vec![],
            says: vec![],
        },
    ));
    for rate in ["0", "-100", "NaN", "inf"] {
        v.push(case(
            &format!("viz_waveform_sampling_rate_{}", rate.replace('-', "minus")),
            Nonsense,
            os(&[
                &"viz",
                &"waveform",
                &waves,
                &"--sampling-rate",
                &rate,
                &"--out",
                &"w.png",
            ]),
            err(&["--sampling-rate"]),
        ));
    }
    v.push(case(
        "viz_dat_shape_product_overflows",
        Allocation,
        os(&[
            &"viz",
            &"section",
            &p("small.dat"),
            &"--shape",
            &"4294967296,4294967296,1",
            &"--out",
            &"d.png",
        ]),
        err(&["small.dat"]),
    ));
    v.push(case(
        "viz_dat_sidecar_product_overflows",
        Allocation,
        os(&[&"viz", &"section", &p("overflow.dat"), &"--out", &"d.png"]),
        err(&["overflow.dat"]),
    ));
    for (flag, val) in [
        ("--height", "18446744073709551615"),
        ("--width", "18446744073709551615"),
        ("--n-fft", "18446744073709551615"),
        ("--height", "100000000"),
        ("--width", "100000000"),
        ("--n-fft", "1000000000"),
    ] {
        v.push(case(
            &format!("mel_{}_{}", flag.trim_start_matches('-'), val.len()),
            Allocation,
            os(&[
                &cpu, &"cpu", &"mel", &"--input", &waves, &"--out", &"m.npy", &flag, &val,
            ]),
            err(&[&format!(
                "{flag}|{}",
                flag.trim_start_matches('-').replace('-', "_")
            )]),
        ));
    }
    v.push(case(
        "synth_samples_huge",
        Allocation,
        os(&[
            &"synth",
            &"waveforms",
            &"--n",
            &"2",
            &"--samples",
            &"1000000000000",
            &"--out",
            &"ds",
        ]),
        err(&["--samples"]),
    ));
    v.push(case(
        "pick_head_channels_huge",
        Allocation,
        os(&[
            &cpu,
            &"cpu",
            &"pick",
            &"--model",
            &"seislm-tiny",
            &"--random-init",
            &"--head-channels",
            &"1000000000",
            &"--input",
            &waves,
        ]),
        err(&["--head-channels"]),
    ));
    v.push(case(
        "bench_ops_size_huge",
        Allocation,
        os(&[
            &"bench", &"ops", &cpu, &"cpu", &"--size", &"1000000", &"--iters", &"1",
        ]),
        err(&["--size"]),
    ));
    v.push(case(
        "bench_sfm_batch_huge",
        Allocation,
        os(&[
            &"bench",
            &"sfm",
            &cpu,
            &"cpu",
            &"--preset",
            &"sfm-tiny",
            &"--batch",
            &"100000000",
            &"--iters",
            &"1",
        ]),
        err(&["--batch"]),
    ));
    v.push(case(
        "profile_batch_huge",
        Allocation,
        os(&[
            &"profile",
            &cpu,
            &"cpu",
            &"--model",
            &"sfm-base",
            &"--batch",
            &"60000",
            &"--no-ptxas",
        ]),
        err(&["--batch 60000"]),
    ));
    v.push(case(
        "bench_seislm_samples_huge",
        Allocation,
        os(&[
            &"bench",
            &"seislm",
            &cpu,
            &"cpu",
            &"--preset",
            &"seislm-tiny",
            &"--samples",
            &"1000000000000",
            &"--iters",
            &"1",
        ]),
        err(&["--samples"]),
    ));
    v.push(case(
        "max_memory_flag_is_the_limit",
        Allocation,
        os(&[
            &"--max-memory",
            &"1M",
            &cpu,
            &"cpu",
            &"embed",
            &"--model",
            &"sfm-tiny",
            &"--random-init",
            &"--input",
            &images,
            &"--out",
            &"e.npy",
        ]),
        err(&["good_images.npy", "--max-memory"]),
    ));

    // ---- Output is refused before any is written.
    v.push(case(
        "synth_n_ten_billion",
        Runaway,
        os(&[
            &"synth",
            &"waveforms",
            &"--n",
            &"10000000000",
            &"--samples",
            &"100",
            &"--out",
            &"ds",
        ]),
        err(&["--n"]),
    ));
    v.push(case(
        "synth_images_n_ten_billion",
        Runaway,
        os(&[
            &"synth",
            &"images",
            &"--n",
            &"10000000000",
            &"--size",
            &"16",
            &"--out",
            &"ds",
        ]),
        err(&["--n"]),
    ));

    // ---- Nothing is overwritten: existing files need --force, inputs never.
    let precious = || vec![("existing.png".to_string(), b"precious".to_vec())];
    let mut k = case(
        "viz_out_existing_without_force",
        Overwrite,
        os(&[&"viz", &"section", &images, &"--out", &"existing.png"]),
        err(&["existing.png", "--force"]),
    );
    k.seed = precious();
    v.push(k);
    let mut k = case(
        "viz_waveform_out_existing_without_force",
        Overwrite,
        os(&[&"viz", &"waveform", &waves, &"--out", &"existing.png"]),
        err(&["existing.png", "--force"]),
    );
    k.seed = precious();
    v.push(k);
    // Inputs that a broken build would destroy are copies in the case folder, not the corpus.
    let copy = |name: &str, from: &str| (name.to_string(), std::fs::read(p(from)).unwrap());
    let rows: Vec<(&str, Vec<OsString>, Seed, &str)> = vec![
        (
            "viz_out_is_its_input",
            os(&[
                &"viz", &"section", &"in.npy", &"--out", &"in.npy", &"--force",
            ]),
            vec![copy("in.npy", "good_images.npy")],
            "in.npy",
        ),
        (
            "viz_out_is_its_picks",
            os(&[
                &"viz",
                &"waveform",
                &waves,
                &"--picks",
                &"picks.npy",
                &"--out",
                &"picks.npy",
                &"--force",
            ]),
            vec![copy("picks.npy", "good_picks.npy")],
            "picks.npy",
        ),
        (
            "mel_out_is_its_input",
            os(&[
                &cpu, &"cpu", &"mel", &"--input", &"in.npy", &"--out", &"in.npy", &"--force",
            ]),
            vec![copy("in.npy", "good_waves.npy")],
            "in.npy",
        ),
        (
            "embed_out_is_its_input",
            os(&[
                &cpu,
                &"cpu",
                &"embed",
                &"--model",
                &"sfm-tiny",
                &"--random-init",
                &"--input",
                &"in.npy",
                &"--out",
                &"in.npy",
                &"--force",
            ]),
            vec![copy("in.npy", "good_images.npy")],
            "in.npy",
        ),
        (
            "embed_out_is_its_weights",
            os(&[
                &cpu,
                &"cpu",
                &"embed",
                &"--model",
                &"sfm-tiny",
                &"--weights",
                &"w.safetensors",
                &"--input",
                &images,
                &"--out",
                &"w.safetensors",
                &"--force",
            ]),
            vec![copy("w.safetensors", "sfm_tiny.safetensors")],
            "w.safetensors",
        ),
        (
            "pick_probs_is_its_input",
            os(&[
                &cpu,
                &"cpu",
                &"pick",
                &"--model",
                &"seislm-tiny",
                &"--random-init",
                &"--input",
                &"in.npy",
                &"--probs",
                &"in.npy",
                &"--force",
            ]),
            vec![copy("in.npy", "good_waves.npy")],
            "in.npy",
        ),
        (
            "pick_out_is_its_weights",
            os(&[
                &cpu,
                &"cpu",
                &"pick",
                &"--model",
                &"seislm-tiny",
                &"--weights",
                &"w.safetensors",
                &"--input",
                &waves,
                &"--out",
                &"w.safetensors",
                &"--force",
            ]),
            vec![copy("w.safetensors", "picker_tiny.safetensors")],
            "w.safetensors",
        ),
    ];
    for (name, args, seed, file) in rows {
        let mut k = case(name, Overwrite, args, err(&[file, "input"]));
        k.seed = seed;
        v.push(k);
    }
    v.push(case(
        "pick_out_and_probs_are_one_file",
        Overwrite,
        os(&[
            &cpu,
            &"cpu",
            &"pick",
            &"--model",
            &"seislm-tiny",
            &"--random-init",
            &"--input",
            &waves,
            &"--out",
            &"x",
            &"--probs",
            &"x",
        ]),
        err(&["--out", "--probs"]),
    ));
    let mut k = case(
        "synth_force_into_a_foreign_folder",
        Overwrite,
        os(&[
            &"synth",
            &"waveforms",
            &"--n",
            &"2",
            &"--samples",
            &"100",
            &"--out",
            &"ds",
            &"--force",
        ]),
        err(&["ds", "notes.txt"]),
    );
    k.seed = vec![("ds/notes.txt".into(), b"my notes".to_vec())];
    v.push(k);

    // ---- No silent nonsense.
    for (name, f) in [
        ("embed_weights_empty_file", "empty.safetensors"),
        ("embed_weights_unknown_names", "unknown.safetensors"),
        ("embed_weights_other_family", "seislm_tiny.safetensors"),
        ("embed_weights_nan", "sfm_tiny_nan.safetensors"),
        (
            "embed_weights_missing_tensors",
            "sfm_tiny_partial.safetensors",
        ),
    ] {
        v.push(case(
            name,
            Nonsense,
            os(&[
                &cpu,
                &"cpu",
                &"embed",
                &"--model",
                &"sfm-tiny",
                &"--weights",
                &p(f),
                &"--input",
                &images,
                &"--out",
                &"e.npy",
            ]),
            err(&[f]),
        ));
    }
    v.push(case(
        "embed_weights_missing_tensors_lenient",
        Nonsense,
        os(&[
            &cpu,
            &"cpu",
            &"embed",
            &"--model",
            &"sfm-tiny",
            &"--lenient",
            &"--weights",
            &p("sfm_tiny_partial.safetensors"),
            &"--input",
            &images,
            &"--out",
            &"e.npy",
        ]),
        Expect::Success {
            outputs: vec![("e.npy".into(), 1 << 20)],
            gone: vec![],
            says: vec!["missing".into()],
        },
    ));
    v.push(case(
        "embed_seislm_weights_other_family",
        Nonsense,
        os(&[
            &cpu,
            &"cpu",
            &"embed",
            &"--model",
            &"seislm-tiny",
            &"--pool",
            &"mean",
            &"--weights",
            &sfm_w,
            &"--input",
            &waves,
            &"--out",
            &"e.npy",
        ]),
        err(&["sfm_tiny.safetensors"]),
    ));
    v.push(case(
        "embed_seislm_weights_empty_file",
        Nonsense,
        os(&[
            &cpu,
            &"cpu",
            &"embed",
            &"--model",
            &"seislm-tiny",
            &"--pool",
            &"mean",
            &"--weights",
            &p("empty.safetensors"),
            &"--input",
            &waves,
            &"--out",
            &"e.npy",
        ]),
        err(&["empty.safetensors"]),
    ));
    v.push(case(
        "pick_weights_nan",
        Nonsense,
        os(&[
            &cpu,
            &"cpu",
            &"pick",
            &"--model",
            &"seislm-tiny",
            &"--weights",
            &p("picker_nan.safetensors"),
            &"--input",
            &waves,
            &"--out",
            &"p.csv",
        ]),
        err(&["picker_nan.safetensors", "classifier.weight"]),
    ));
    v.push(case(
        "mel_f_max_above_nyquist",
        Nonsense,
        os(&[
            &cpu, &"cpu", &"mel", &"--input", &waves, &"--out", &"m.npy", &"--f-max", &"1e30",
        ]),
        err(&["--f-max"]),
    ));
    v.push(case(
        "mel_huge_finite_amplitudes",
        Nonsense,
        os(&[
            &cpu,
            &"cpu",
            &"mel",
            &"--input",
            &p("huge_amplitude.npy"),
            &"--out",
            &"m.npy",
        ]),
        err(&["huge_amplitude.npy"]),
    ));
    v.push(case(
        "embed_images_of_height_0",
        Nonsense,
        os(&[
            &cpu,
            &"cpu",
            &"embed",
            &"--model",
            &"sfm-tiny",
            &"--random-init",
            &"--input",
            &p("height0.npy"),
            &"--out",
            &"e.npy",
        ]),
        err(&["height0.npy"]),
    ));
    v.push(case(
        "embed_seislm_zero_batch",
        Nonsense,
        os(&[
            &cpu,
            &"cpu",
            &"embed",
            &"--model",
            &"seislm-tiny",
            &"--pool",
            &"mean",
            &"--random-init",
            &"--input",
            &p("zero_batch_waves.npy"),
            &"--out",
            &"e.npy",
        ]),
        err(&["zero_batch_waves.npy"]),
    ));
    // Every station is picked (each its own trace), unless --station chooses.
    v.push(case(
        "pick_mseed_of_two_stations",
        Nonsense,
        os(&[
            &cpu,
            &"cpu",
            &"pick",
            &"--model",
            &"seislm-tiny",
            &"--random-init",
            &"--input",
            &p("two_stations.mseed"),
            &"--out",
            &"p.csv",
        ]),
        Expect::Success {
            outputs: vec![("p.csv".into(), 1 << 20)],
            gone: vec![],
            says: vec!["1 miniSEED file: 2 stations".into()],
        },
    ));
    v.push(case(
        "pick_mseed_station_chosen",
        Nonsense,
        os(&[
            &cpu,
            &"cpu",
            &"pick",
            &"--model",
            &"seislm-tiny",
            &"--random-init",
            &"--input",
            &p("two_stations.mseed"),
            &"--station",
            &"XX.STA2",
            &"--out",
            &"p.csv",
        ]),
        Expect::Success {
            outputs: vec![("p.csv".into(), 1 << 20)],
            gone: vec![],
            says: vec![],
        },
    ));
    v.push(case(
        "doctor_compile_for_0",
        Nonsense,
        os(&[&"doctor", &"--compile-for", &"0"]),
        err(&["--compile-for"]),
    ));
    let mut k = case(
        "synth_force_removes_the_old_set",
        Nonsense,
        os(&[
            &"synth",
            &"waveforms",
            &"--n",
            &"2",
            &"--samples",
            &"100",
            &"--out",
            &"ds",
            &"--force",
        ]),
        Expect::Success {
            outputs: vec![
                ("ds/waveforms.npy".into(), 1 << 20),
                ("ds/dataset.json".into(), 1 << 20),
            ],
            gone: vec!["ds/sequence_class.npy".into(), "ds/png".into()],
            says: vec![],
        },
    );
    k.seed = vec![
        ("ds/sequence_class.npy".into(), b"old".to_vec()),
        ("ds/dataset.json".into(), b"{}".to_vec()),
        ("ds/png/waveform_00000.png".into(), b"old".to_vec()),
    ];
    v.push(k);

    // ---- Messages say what was wrong, where.
    v.push(case(
        "mel_input_is_a_folder",
        Message,
        os(&[
            &cpu,
            &"cpu",
            &"mel",
            &"--input",
            &p("folder.npy"),
            &"--out",
            &"m.npy",
        ]),
        err(&["folder.npy", "folder;"]),
    ));
    v.push(case(
        "pick_input_is_a_folder",
        Message,
        os(&[
            &cpu,
            &"cpu",
            &"pick",
            &"--model",
            &"seislm-tiny",
            &"--random-init",
            &"--input",
            &p("folder.mseed"),
        ]),
        err(&["folder.mseed", "folder;"]),
    ));
    v.push(case(
        "weights_inspect_a_folder",
        Message,
        os(&[&"weights", &"inspect", &p("folder.safetensors")]),
        err(&["folder.safetensors", "folder;"]),
    ));
    v.push(case(
        "bench_sfm_batch_0",
        Message,
        os(&[
            &"bench",
            &"sfm",
            &cpu,
            &"cpu",
            &"--preset",
            &"sfm-tiny",
            &"--batch",
            &"0",
            &"--iters",
            &"1",
        ]),
        err(&["--batch"]),
    ));
    v.push(case(
        "safetensors_bad_offsets_name_the_tensor",
        Message,
        os(&[&"weights", &"inspect", &p("bad_offsets.safetensors")]),
        err(&["bad_offsets.safetensors", "bad_one"]),
    ));
    v.push(case(
        "embed_sfm_given_waveforms",
        Message,
        os(&[
            &cpu,
            &"cpu",
            &"embed",
            &"--model",
            &"sfm-tiny",
            &"--random-init",
            &"--input",
            &waves,
            &"--out",
            &"e.npy",
        ]),
        err(&["good_waves.npy", "seislm"]),
    ));
    v.push(case(
        "embed_seislm_given_images",
        Message,
        os(&[
            &cpu,
            &"cpu",
            &"embed",
            &"--model",
            &"seislm-tiny",
            &"--pool",
            &"mean",
            &"--random-init",
            &"--input",
            &images,
            &"--out",
            &"e.npy",
        ]),
        err(&["good_images.npy"]),
    ));
    v.push(case(
        "device_on_a_command_without_one",
        Message,
        os(&[
            &cpu, &"cpu", &"synth", &"images", &"--n", &"1", &"--size", &"16", &"--out", &"ds",
        ]),
        err(&["--device", "synth"]),
    ));

    // ---- Bad files through every command that reads them.
    let npy_bad = [
        "truncated.npy",
        "random.npy",
        "fortran.npy",
        "bigendian.npy",
        "oversized_claim.npy",
        "scalar.npy",
    ];
    let commands: Vec<(&str, MakeArgs)> = vec![
        (
            "embed_sfm",
            Box::new(|f: &Path| {
                os(&[
                    &"--device",
                    &"cpu",
                    &"embed",
                    &"--model",
                    &"sfm-tiny",
                    &"--random-init",
                    &"--input",
                    &f.to_path_buf(),
                    &"--out",
                    &"e.npy",
                ])
            }),
        ),
        (
            "embed_seislm",
            Box::new(|f: &Path| {
                os(&[
                    &"--device",
                    &"cpu",
                    &"embed",
                    &"--model",
                    &"seislm-tiny",
                    &"--pool",
                    &"mean",
                    &"--random-init",
                    &"--input",
                    &f.to_path_buf(),
                    &"--out",
                    &"e.npy",
                ])
            }),
        ),
        (
            "mel",
            Box::new(|f: &Path| {
                os(&[
                    &"--device",
                    &"cpu",
                    &"mel",
                    &"--input",
                    &f.to_path_buf(),
                    &"--out",
                    &"m.npy",
                ])
            }),
        ),
        (
            "pick",
            Box::new(|f: &Path| {
                os(&[
                    &"--device",
                    &"cpu",
                    &"pick",
                    &"--model",
                    &"seislm-tiny",
                    &"--random-init",
                    &"--input",
                    &f.to_path_buf(),
                    &"--out",
                    &"p.csv",
                ])
            }),
        ),
        (
            "viz_section",
            Box::new(|f: &Path| os(&[&"viz", &"section", &f.to_path_buf(), &"--out", &"v.png"])),
        ),
        (
            "viz_waveform",
            Box::new(|f: &Path| os(&[&"viz", &"waveform", &f.to_path_buf(), &"--out", &"v.png"])),
        ),
    ];
    for (cmd, make) in &commands {
        for f in npy_bad
            .iter()
            .chain(["nan_waves.npy", "inf_images.npy", "missing.npy"].iter())
        {
            let fp = p(f);
            v.push(case(
                &format!("{cmd}_{}", f.replace('.', "_")),
                Reader,
                make(&fp),
                err(&[f]),
            ));
        }
    }
    for f in ["truncated.mseed", "random.mseed"] {
        v.push(case(
            &format!("pick_{}", f.replace('.', "_")),
            Reader,
            os(&[
                &cpu,
                &"cpu",
                &"pick",
                &"--model",
                &"seislm-tiny",
                &"--random-init",
                &"--input",
                &p(f),
            ]),
            err(&[f]),
        ));
    }
    for f in [
        "truncated.safetensors",
        "bad_offsets.safetensors",
        "folder.safetensors",
    ] {
        v.push(case(
            &format!("embed_weights_{}", f.replace('.', "_")),
            Reader,
            os(&[
                &cpu,
                &"cpu",
                &"embed",
                &"--model",
                &"sfm-tiny",
                &"--weights",
                &p(f),
                &"--input",
                &images,
                &"--out",
                &"e.npy",
            ]),
            err(&[f]),
        ));
        v.push(case(
            &format!("pick_weights_{}", f.replace('.', "_")),
            Reader,
            os(&[
                &cpu,
                &"cpu",
                &"pick",
                &"--model",
                &"seislm-tiny",
                &"--weights",
                &p(f),
                &"--input",
                &waves,
            ]),
            err(&[f]),
        ));
        v.push(case(
            &format!("weights_inspect_{}", f.replace('.', "_")),
            Reader,
            os(&[&"weights", &"inspect", &p(f)]),
            err(&[f]),
        ));
    }
    // SeisBench folders through `dataset check`: errors name waveforms.hdf5 (or the row).
    v.push(case(
        "dataset_check_good",
        Reader,
        os(&[
            &"dataset",
            &"check",
            &"--dataset",
            &p("sb_good"),
            &"--samples",
            &"60",
        ]),
        ok(),
    ));
    for (f, want) in [
        ("sb_truncated", "waveforms.hdf5"),
        ("sb_random", "waveforms.hdf5"),
        ("sb_huge", "waveforms.hdf5"),
        ("sb_bad_row", "bucket0$7"),
    ] {
        v.push(case(
            &format!("dataset_check_{f}"),
            Reader,
            os(&[&"dataset", &"check", &"--dataset", &p(f)]),
            err(&[want]),
        ));
    }
    // `dataset build`: bad catalogs, bad miniSEED, a window too long for memory.
    let build = |picks: &Path, wav: &Path, extra: &[&str]| {
        let mut a = os(&[
            &"dataset",
            &"build",
            &"--waveforms",
            &wav.to_path_buf(),
            &"--picks",
            &picks.to_path_buf(),
            &"--out",
            &"ds",
        ]);
        a.extend(extra.iter().map(OsString::from));
        a
    };
    let cont = p("cont");
    for (name, picks, wav, extra, class, want) in [
        (
            "bad_row",
            p("bad_catalog.csv"),
            cont.clone(),
            vec![],
            Message,
            vec!["bad_catalog.csv", "line 3"],
        ),
        (
            "binary_catalog",
            p("binary_catalog.csv"),
            cont.clone(),
            vec![],
            Reader,
            vec!["binary_catalog.csv"],
        ),
        (
            "unknown_stations",
            p("unknown_catalog.csv"),
            cont.clone(),
            vec![],
            Message,
            vec!["ZZ.NOPE.00", "XS.S0001.00"],
        ),
        (
            "truncated_mseed",
            cont.join("catalog.csv"),
            p("truncated.mseed"),
            vec![],
            Reader,
            vec!["truncated.mseed"],
        ),
        (
            "window_huge",
            cont.join("catalog.csv"),
            cont.clone(),
            vec!["--window", "1e12", "--p-offset", "1:2"],
            Allocation,
            vec!["--window", "--max-memory"],
        ),
        (
            "p_offset_past_window",
            cont.join("catalog.csv"),
            cont.clone(),
            vec!["--window", "5", "--p-offset", "6"],
            Nonsense,
            vec!["--p-offset"],
        ),
    ] {
        v.push(case(
            &format!("dataset_build_{name}"),
            class,
            build(&picks, &wav, &extra),
            err(&want),
        ));
    }
    v.push(case(
        "dataset_build_good",
        Reader,
        build(
            &cont.join("catalog.csv"),
            &cont,
            &["--window", "10", "--p-offset", "2:4"],
        ),
        Expect::Success {
            outputs: vec![
                ("ds/metadata.csv".into(), 1 << 20),
                ("ds/waveforms.hdf5".into(), 4 << 20),
            ],
            gone: vec![],
            says: vec![],
        },
    ));
    let mut k = case(
        "dataset_build_keeps_an_existing_dataset",
        Overwrite,
        build(&cont.join("catalog.csv"), &cont, &[]),
        err(&["--force"]),
    );
    k.seed = vec![("ds/metadata.csv".into(), b"keep me".to_vec())];
    v.push(k);
    v.push(case(
        "viz_dat_truncated_for_its_shape",
        Reader,
        os(&[
            &"viz",
            &"section",
            &p("small.dat"),
            &"--shape",
            &"4,4,4",
            &"--out",
            &"d.png",
        ]),
        err(&["small.dat"]),
    ));

    // ---- Outputs into folders that are missing or cannot be written: refused before work.
    let ro = c.read_only.join("x");
    let ro_s = ro.to_string_lossy().into_owned();
    let missing = "missing/x".to_string();
    for (dir, tag) in [(&ro_s, "read_only"), (&missing, "missing")] {
        let out = |ext: &str| format!("{dir}.{ext}");
        let rows: Vec<(&str, Vec<OsString>, &str)> = vec![
            (
                "mel",
                os(&[
                    &cpu,
                    &"cpu",
                    &"mel",
                    &"--input",
                    &waves,
                    &"--out",
                    &out("npy"),
                ]),
                "--out",
            ),
            (
                "mel_png",
                os(&[
                    &cpu,
                    &"cpu",
                    &"mel",
                    &"--input",
                    &waves,
                    &"--out",
                    &"m.npy",
                    &"--png",
                    &format!("{dir}/png"),
                ]),
                "--png",
            ),
            (
                "embed",
                os(&[
                    &cpu,
                    &"cpu",
                    &"embed",
                    &"--model",
                    &"sfm-tiny",
                    &"--random-init",
                    &"--input",
                    &images,
                    &"--out",
                    &out("npy"),
                ]),
                "--out",
            ),
            (
                "pick_out",
                os(&[
                    &cpu,
                    &"cpu",
                    &"pick",
                    &"--model",
                    &"seislm-tiny",
                    &"--random-init",
                    &"--input",
                    &waves,
                    &"--out",
                    &out("csv"),
                ]),
                "--out",
            ),
            (
                "pick_probs",
                os(&[
                    &cpu,
                    &"cpu",
                    &"pick",
                    &"--model",
                    &"seislm-tiny",
                    &"--weights",
                    &picker,
                    &"--input",
                    &waves,
                    &"--probs",
                    &out("npy"),
                ]),
                "--probs",
            ),
            (
                "viz",
                os(&[&"viz", &"section", &images, &"--out", &out("png")]),
                "--out",
            ),
            (
                "synth",
                os(&[
                    &"synth",
                    &"images",
                    &"--n",
                    &"2",
                    &"--size",
                    &"16",
                    &"--out",
                    &format!("{dir}/ds"),
                ]),
                "--out",
            ),
        ];
        for (name, args, flag) in rows {
            if tag == "missing" && (name == "synth" || name == "mel_png") {
                continue; // output folders are created with their parents (below)
            }
            v.push(case(
                &format!("{name}_into_{tag}_folder"),
                Unwritable,
                args,
                err(&[flag]),
            ));
        }
    }
    v.push(case(
        "synth_creates_missing_parents",
        Unwritable,
        os(&[
            &"synth",
            &"images",
            &"--n",
            &"2",
            &"--size",
            &"16",
            &"--out",
            &"missing/x/ds",
        ]),
        Expect::Success {
            outputs: vec![("missing/x/ds/dataset.json".into(), 1 << 20)],
            gone: vec![],
            says: vec![],
        },
    ));
    v.push(case(
        "mel_png_creates_missing_parents",
        Unwritable,
        os(&[
            &cpu,
            &"cpu",
            &"mel",
            &"--input",
            &waves,
            &"--out",
            &"m.npy",
            &"--png",
            &"missing/x/png",
            &"--png-count",
            &"1",
        ]),
        Expect::Success {
            outputs: vec![("missing/x/png/mel_00000_c0.png".into(), 1 << 20)],
            gone: vec![],
            says: vec![],
        },
    ));
    v.push(case(
        "mel_png_error_leaves_no_folders",
        Nonsense,
        os(&[
            &cpu,
            &"cpu",
            &"mel",
            &"--input",
            &p("huge_amplitude.npy"),
            &"--out",
            &"m.npy",
            &"--png",
            &"missing/x/png",
        ]),
        err(&["huge_amplitude.npy"]),
    ));
    v.push(case(
        "synth_refused_leaves_no_parents",
        Runaway,
        os(&[
            &"synth",
            &"images",
            &"--n",
            &"10000000000",
            &"--size",
            &"16",
            &"--out",
            &"missing/x/ds",
        ]),
        err(&["--n"]),
    ));
    v.extend(super::pick_cases::table(c));
    v.extend(super::train_cases::table(c));
    v
}
