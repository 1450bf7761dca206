//! Synthetic datasets written to disk: shapes, labels, metadata, determinism, the CLI.

use seisfuse::data::npy::NpyFile;
use seisfuse::data::synth::export::{self, ExportOptions};
use seisfuse::data::synth::images::{ImageConfig, N_FACIES};
use seisfuse::data::synth::paired::PairedConfig;
use seisfuse::data::synth::waveforms::WaveformConfig;
use seisfuse::data::{Dataset, Loader, LoaderConfig, NpyDataset};
use std::path::PathBuf;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seisfuse-synth-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn opts(png: usize) -> ExportOptions {
    ExportOptions {
        png,
        ..Default::default()
    }
}

#[test]
fn images_dataset_is_complete_and_deterministic() {
    let d = tmpdir("img");
    export::write(&d.join("a"), &ImageConfig::new(32, 40), 10, 4, &opts(2)).unwrap();
    export::write(&d.join("b"), &ImageConfig::new(32, 40), 10, 4, &opts(0)).unwrap();
    for name in [
        "clean",
        "noisy",
        "reflectivity",
        "decimated",
        "facies",
        "salt",
        "trace_mask",
    ] {
        let a = std::fs::read(d.join("a").join(format!("{name}.npy"))).unwrap();
        let b = std::fs::read(d.join("b").join(format!("{name}.npy"))).unwrap();
        assert!(a == b, "{name}.npy differs between two runs with one seed");
        let f = NpyFile::open(d.join("a").join(format!("{name}.npy"))).unwrap();
        assert_eq!(f.shape(), &[10, 32, 40], "{name}");
    }
    let facies = NpyFile::open(d.join("a/facies.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    let classes: std::collections::BTreeSet<i64> = facies.iter().copied().collect();
    assert!(classes.len() >= 4 && classes.iter().all(|&c| (0..N_FACIES as i64).contains(&c)));
    let mask = NpyFile::open(d.join("a/trace_mask.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    let dec = NpyFile::open(d.join("a/decimated.npy"))
        .unwrap()
        .to_f32_vec()
        .unwrap();
    assert!(mask.iter().zip(&dec).all(|(m, v)| *m == 1 || *v == 0.0));
    assert!(mask.contains(&0) && mask.contains(&1));
    let csv = std::fs::read_to_string(d.join("a/metadata.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11);
    assert!(csv.lines().nth(1).unwrap().starts_with("0,train,"));
    assert!(csv.lines().last().unwrap().starts_with("9,test,"));
    let json = std::fs::read_to_string(d.join("a/dataset.json")).unwrap();
    assert!(
        json.contains("\"shape\": [10, 32, 40]")
            && json.contains("\"train\": {\"start\": 0, \"end\": 7")
    );
    assert!(d.join("a/png/image_00001.png").exists() && !d.join("a/png/image_00002.png").exists());
    // A segmentation loader over the written files.
    let ds = NpyDataset::open(d.join("a/noisy.npy"))
        .unwrap()
        .with_class_maps(d.join("a/salt.npy"))
        .unwrap();
    let b = Loader::new(ds, LoaderConfig::new(4))
        .unwrap()
        .epoch(0)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(b.targets.unwrap().shape, vec![4, 32, 40]);
    // An existing non-empty folder is not overwritten without force.
    let e = export::write(&d.join("a"), &ImageConfig::new(32, 40), 10, 4, &opts(0)).unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn waveform_dataset_has_seisbench_columns_and_picks() {
    let d = tmpdir("wav");
    let cfg = WaveformConfig::new(600);
    export::write(&d, &cfg, 12, 2, &opts(1)).unwrap();
    let ds = NpyDataset::open(d.join("waveforms.npy"))
        .unwrap()
        .with_picks(d.join("picks.npy"))
        .unwrap();
    assert_eq!(ds.input_shape(), vec![3, 600]);
    let picks = NpyFile::open(d.join("picks.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    let event = NpyFile::open(d.join("event.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    for i in 0..12 {
        let (p, s) = (picks[2 * i], picks[2 * i + 1]);
        if event[i] == 0 {
            assert_eq!((p, s), (-1, -1));
        } else {
            assert!((0..600).contains(&p) && (s == -1 || (p < s && s < 600)));
        }
    }
    let csv = std::fs::read_to_string(d.join("metadata.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for col in [
        "trace_name",
        "split",
        "trace_sampling_rate_hz",
        "trace_P_arrival_sample",
        "trace_S_arrival_sample",
    ] {
        assert!(header.split(',').any(|c| c == col), "{col} missing");
    }
    assert!(d.join("png/waveform_00000.png").exists());
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn paired_dataset_labels_match_the_model() {
    let d = tmpdir("pair");
    export::write(&d, &PairedConfig::new(32, 16, 500), 16, 1, &opts(1)).unwrap();
    let labels = NpyFile::open(d.join("labels.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    assert!(labels.contains(&0) && labels.contains(&1));
    assert_eq!(
        NpyFile::open(d.join("images.npy")).unwrap().shape(),
        &[16, 32, 16]
    );
    assert_eq!(
        NpyFile::open(d.join("waveforms.npy")).unwrap().shape(),
        &[16, 3, 500]
    );
    let csv = std::fs::read_to_string(d.join("metadata.csv")).unwrap();
    for (line, &l) in csv.lines().skip(1).zip(&labels) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[2], l.to_string());
        // The vp column (last) has a decrease exactly when the label says so.
        let vp: Vec<f64> = f[8].split(';').map(|v| v.parse().unwrap()).collect();
        let decrease = vp.windows(2).any(|w| w[1] < w[0]);
        assert_eq!(decrease, l == 1, "{line}");
    }
    assert!(
        d.join("png/pair_00000_image.png").exists()
            && d.join("png/pair_00000_waveform.png").exists()
    );
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn cli_writes_datasets_and_figures() {
    let d = tmpdir("cli");
    let bin = env!("CARGO_BIN_EXE_seisfuse");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let out = d.join("img");
    let o = run(&[
        "synth",
        "images",
        "--n",
        "3",
        "--seed",
        "5",
        "--size",
        "16x24",
        "--png",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        NpyFile::open(out.join("noisy.npy")).unwrap().shape(),
        &[3, 16, 24]
    );
    let o = run(&[
        "synth",
        "images",
        "--n",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--force"));
    let o = run(&[
        "synth",
        "images",
        "--n",
        "3",
        "--size",
        "big",
        "--out",
        d.join("x").to_str().unwrap(),
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("HxW"));
    let w = d.join("wav");
    let o = run(&[
        "synth",
        "waveforms",
        "--n",
        "2",
        "--samples",
        "300",
        "--out",
        w.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "synth",
        "paired",
        "--n",
        "2",
        "--size",
        "16",
        "--samples",
        "300",
        "--out",
        d.join("p").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = d.join("s.png");
    let o = run(&[
        "viz",
        "section",
        out.join("noisy.npy").to_str().unwrap(),
        "--index",
        "2",
        "--classes",
        out.join("facies.npy").to_str().unwrap(),
        "--mask",
        out.join("salt.npy").to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(
        o.status.success() && png.exists(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&[
        "viz",
        "waveform",
        w.join("waveforms.npy").to_str().unwrap(),
        "--picks",
        w.join("picks.npy").to_str().unwrap(),
        "--out",
        d.join("w.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "viz",
        "section",
        out.join("noisy.npy").to_str().unwrap(),
        "--index",
        "3",
        "--out",
        png.to_str().unwrap(),
        "--force",
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--index 3"));
    // An SFM raw .dat file with its shape on the command line, and without one.
    let dat = d.join("s.dat");
    seisfuse::data::dat::write(&dat, &[2, 16, 24], &vec![0.5f32; 2 * 16 * 24], false).unwrap();
    let o = run(&[
        "viz",
        "section",
        dat.to_str().unwrap(),
        "--shape",
        "-1,16,24",
        "--index",
        "1",
        "--out",
        d.join("dat.png").to_str().unwrap(),
    ]);
    assert!(
        o.status.success() && d.join("dat.png").exists(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&[
        "viz",
        "section",
        dat.to_str().unwrap(),
        "--out",
        d.join("dat2.png").to_str().unwrap(),
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--shape"));
    std::fs::remove_dir_all(d).ok();
}
