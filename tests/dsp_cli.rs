//! `seisfuse mel` end to end on the CPU: output shape, PNGs, and no overwriting without --force.

use clap::Parser;
use seisfuse::cli::{run, Cli};

fn mel(args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec!["seisfuse", "--device", "cpu", "mel"];
    v.extend_from_slice(args);
    run(Cli::try_parse_from(v)?)
}

#[test]
fn mel_cli_converts_refuses_to_overwrite_and_writes_pngs() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dsp_cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("waves.npy");
    let (n, c, t) = (2, 3, 900);
    let x: Vec<f32> = (0..n * c * t).map(|i| (i as f32 * 0.3).sin()).collect();
    seisfuse::data::npy::write(&input, &[n, c, t], &x).unwrap();
    let out = dir.join("mel.npy");
    let (i, o, png) = (
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        dir.join("png"),
    );
    let common = ["--input", i, "--out", o, "--height", "32", "--width", "40"];
    let mut a = common.to_vec();
    a.extend(["--db", "--png", png.to_str().unwrap(), "--png-count", "2"]);
    mel(&a).unwrap();
    let (shape, v) = read(&out);
    assert_eq!(shape, vec![n, c, 32, 40]);
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    assert_eq!(std::fs::read_dir(&png).unwrap().count(), 2);

    let e = mel(&common).unwrap_err().to_string();
    assert!(e.contains("--force"), "{e}");
    let mut a = common.to_vec();
    a.extend(["--force", "--average-channels", "--scale", "slaney"]);
    mel(&a).unwrap();
    assert_eq!(read(&out).0, vec![n, 1, 32, 40]);

    // Bad input: a 1-D array, and too few samples for the default n_fft.
    let bad = dir.join("bad.npy");
    seisfuse::data::npy::write(&bad, &[10], &[0.0; 10]).unwrap();
    let b = bad.to_str().unwrap();
    let o2 = dir.join("o2.npy");
    let e = mel(&["--input", b, "--out", o2.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("N×C×T"), "{e}");
    seisfuse::data::npy::write(&bad, &[1, 1, 50], &[0.0; 50]).unwrap();
    let e = format!(
        "{:#}",
        mel(&["--input", b, "--out", o2.to_str().unwrap()]).unwrap_err()
    );
    assert!(e.contains("n_fft"), "{e}");
}

fn read(p: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let t = seisfuse::data::npy::read_f32_tensor(p).unwrap();
    (t.shape.clone(), t.to_vec_f32().unwrap())
}
