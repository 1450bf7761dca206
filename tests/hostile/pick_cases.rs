//! Cases of `seisfuse pick` on continuous data and `bench pick`: the flags of windows,
//! blinding, thresholds, gaps and stations, the miniSEED output folder, inputs of several
//! kinds, and data that give no probabilities.

use super::cases::{case, err, os, AsRefOs, Case, Class, Expect};
use super::corpus::{mseed_record, Corpus};
use std::ffi::OsString;

/// `pick --model seislm-tiny --random-init` on the CPU, then `rest`.
fn pick(rest: &[&dyn AsRefOs]) -> Vec<OsString> {
    let mut v = os(&[
        &"--device",
        &"cpu",
        &"pick",
        &"--model",
        &"seislm-tiny",
        &"--random-init",
    ]);
    v.extend(os(rest));
    v
}

/// `records` records of 100 samples of one channel, one second apart from 2024-01-10T00:00.
fn channel(net: &str, sta: &str, cha: &str, records: usize) -> Vec<u8> {
    (0..records)
        .flat_map(|k| {
            let v: Vec<f32> = (0..100)
                .map(|i| ((k * 100 + i) as f32 * 0.21).sin() * 50.0)
                .collect();
            let mut r = mseed_record(k + 1, net, sta, cha, (2024, 10, 0), &v);
            r[26] = k as u8; // seconds
            r
        })
        .collect()
}

pub fn table(c: &Corpus) -> Vec<Case> {
    use Class::*;
    let p = |n: &str| c.path(n);
    let waves = p("good_waves.npy");
    let two = p("two_stations.mseed");
    let years = p("gap_years.mseed");
    let mut v = Vec::new();

    // Flags that cannot work name themselves.
    for (name, flag, val) in [
        ("blinding_longer_than_the_window", "--blinding", "3000,10"),
        ("blinding_not_numbers", "--blinding", "a,b"),
        ("overlap_a_whole_window", "--overlap", "3001"),
        ("overlap_fractional_samples", "--overlap", "12.5"),
        ("p_threshold_off_above_on", "--p-threshold", "0.2,0.5"),
        ("s_threshold_nan", "--s-threshold", "nan"),
        ("s_threshold_zero", "--s-threshold", "0"),
        ("start_time_not_a_time", "--start-time", "yesterday"),
        ("window_below_the_model", "--window", "3"),
    ] {
        v.push(case(
            &format!("pick_{name}"),
            Message,
            pick(&[&"--input", &waves, &flag, &val]),
            err(&[flag]),
        ));
    }
    v.push(case(
        "pick_start_time_of_miniseed",
        Message,
        pick(&[&"--input", &two, &"--start-time", &"2024-01-01"]),
        err(&["--start-time", "miniSEED"]),
    ));
    v.push(case(
        "pick_unknown_station",
        Message,
        pick(&[&"--input", &two, &"--station", &"XX.NOPE"]),
        err(&["--station XX.NOPE", "XX.STA1..HH", "XX.STA2..HH"]),
    ));
    v.push(case(
        "pick_station_of_npy",
        Message,
        pick(&[&"--input", &waves, &"--station", &"XX.STA1"]),
        err(&["--station", "good_waves.npy"]),
    ));
    v.push(case(
        "pick_npy_and_miniseed_mixed",
        Message,
        pick(&[&"--input", &waves, &two]),
        err(&["mixes", "good_waves.npy", "two_stations.mseed"]),
    ));
    v.push(case(
        "pick_two_npy",
        Message,
        pick(&[&"--input", &waves, &waves]),
        err(&["one .npy"]),
    ));

    // Never silently nothing: data too short for any prediction is an error that says so.
    v.push(case(
        "pick_years_apart_pieces_shorter_than_the_blinding",
        Nonsense,
        pick(&[&"--input", &years]),
        err(&["gap_years.mseed", "too short", "blinding 250,250"]),
    ));
    v.push(case(
        "pick_short_skipped_leaves_nothing",
        Nonsense,
        pick(&[&"--input", &waves, &"--short", &"skip", &"--out", &"p.csv"]),
        err(&["good_waves.npy", "too short", "--short pad"]),
    ));
    // … and with less blinding they are picked, the gap between them not filled.
    v.push(case(
        "pick_years_apart_pieces_without_blinding",
        Nonsense,
        pick(&[
            &"--input",
            &years,
            &"--blinding",
            &"0,0",
            &"--out",
            &"p.csv",
        ]),
        Expect::Success {
            outputs: vec![("p.csv".into(), 1 << 20)],
            gone: vec![],
            says: vec!["2 stretches of data separated by gaps".into()],
        },
    ));
    // A station with only Z: zero-filled N and E, with a warning naming it.
    let mut k = case(
        "pick_missing_components_are_named",
        Nonsense,
        pick(&[&"--input", &"z.mseed", &"--out", &"p.csv"]),
        Expect::Success {
            outputs: vec![("p.csv".into(), 1 << 20)],
            gone: vec![],
            says: vec![
                "warning: XX.ZONLY. (HH): no N/1 component".into(),
                "warning: XX.ZONLY. (HH): no E/2 component".into(),
            ],
        },
    );
    k.seed = vec![("z.mseed".into(), channel("XX", "ZONLY", "HHZ", 5))];
    v.push(k);
    // Lower-case Z12 codes are ZNE: no warning.
    let mut bytes = Vec::new();
    for cha in ["hhz", "hh1", "hh2"] {
        bytes.extend(channel("XX", "LOWER", cha, 5));
    }
    let mut k = case(
        "pick_lower_case_z12_is_zne",
        Nonsense,
        pick(&[
            &"--input",
            &"in",
            &"--out",
            &"p.csv",
            &"--probs-mseed",
            &"pm",
        ]),
        Expect::Success {
            outputs: vec![
                ("p.csv".into(), 1 << 20),
                ("pm/XX.LOWER..seislm-tiny.mseed".into(), 1 << 20),
            ],
            gone: vec![],
            says: vec!["1 miniSEED file: 1 station".into()],
        },
    );
    k.seed = vec![("in/day/XX.LOWER..HH.D.2024.010".into(), bytes)];
    v.push(k);

    // --probs-mseed: a file where the folder should be, existing station files, unwritable.
    let mut k = case(
        "pick_probs_mseed_is_a_file",
        Unwritable,
        pick(&[&"--input", &two, &"--probs-mseed", &"pm"]),
        err(&["--probs-mseed", "not a folder"]),
    );
    k.seed = vec![("pm".into(), b"a file".to_vec())];
    v.push(k);
    let mut k = case(
        "pick_probs_mseed_files_exist",
        Overwrite,
        pick(&[
            &"--input",
            &two,
            &"--probs-mseed",
            &"pm",
            &"--out",
            &"p.csv",
        ]),
        err(&["--probs-mseed", "XX.STA2..seislm-tiny.mseed", "--force"]),
    );
    k.seed = vec![("pm/XX.STA2..seislm-tiny.mseed".into(), b"precious".to_vec())];
    v.push(k);
    let ro = c.read_only.join("pm");
    v.push(case(
        "pick_probs_mseed_into_read_only_folder",
        Unwritable,
        pick(&[&"--input", &two, &"--probs-mseed", &ro]),
        err(&["--probs-mseed"]),
    ));
    v.push(case(
        "pick_probs_mseed_creates_missing_parents",
        Unwritable,
        pick(&[
            &"--input",
            &two,
            &"--probs-mseed",
            &"missing/x/pm",
            &"--out",
            &"p.csv",
        ]),
        Expect::Success {
            outputs: vec![
                ("missing/x/pm/XX.STA1..seislm-tiny.mseed".into(), 1 << 20),
                ("missing/x/pm/XX.STA2..seislm-tiny.mseed".into(), 1 << 20),
            ],
            gone: vec![],
            says: vec![],
        },
    ));

    // Time spans: gaps filled over 20 years, or a --probs array over them, are refused
    // before anything is allocated or written.
    v.push(case(
        "pick_years_apart_gaps_zero",
        Allocation,
        pick(&[&"--input", &years, &"--gaps", &"zero"]),
        err(&["gap_years.mseed", "--gaps zero", "--max-memory"]),
    ));
    v.push(case(
        "pick_years_apart_probs_npy",
        Runaway,
        pick(&[
            &"--input",
            &years,
            &"--blinding",
            &"0,0",
            &"--probs",
            &"p.npy",
        ]),
        err(&["gap_years.mseed", "--probs", "--max-memory"]),
    ));
    v.push(case(
        "pick_batch_huge",
        Allocation,
        pick(&[&"--input", &waves, &"--batch", &"1000000000"]),
        err(&["--batch"]),
    ));

    // bench pick.
    for (name, flag, val) in [
        ("stations_0", "--stations", "0"),
        ("hours_zero", "--hours", "0"),
        ("hours_huge", "--hours", "1e12"),
        ("input_rate_tiny", "--input-rate", "0.5"),
        ("batch_0", "--batch", "0"),
    ] {
        v.push(case(
            &format!("bench_pick_{name}"),
            if name == "hours_huge" {
                Allocation
            } else {
                Message
            },
            os(&[
                &"bench",
                &"pick",
                &"--device",
                &"cpu",
                &"--preset",
                &"seislm-tiny",
                &flag,
                &val,
            ]),
            err(&[flag]),
        ));
    }
    v
}
