//! SeisBench dataset folders (tests/fixtures/seisbench, from tools/make_seisbench_fixtures.py):
//! metadata and waveforms.

use seisbench_paths::*;
use seisfuse::data::seisbench::SeisBenchMetadata;

mod seisbench_paths {
    use std::path::{Path, PathBuf};
    pub fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/seisbench")
            .join(name)
    }
}

#[test]
fn metadata_splits_and_picks() {
    let m = SeisBenchMetadata::open(fixture("tiny")).unwrap();
    assert_eq!(m.traces.len(), 3);
    assert_eq!(m.split("train"), vec![0]);
    assert_eq!(m.split("dev"), vec![1]);
    assert_eq!(m.split("test"), vec![2]);
    assert_eq!(m.traces[0].trace_name, "bucket0$0,:3,:200");
    assert_eq!((m.traces[0].p, m.traces[0].s), (Some(45.0), Some(120.5)));
    assert_eq!((m.traces[1].p, m.traces[1].s), (None, Some(80.0)));
    assert_eq!(m.traces[2].sampling_rate, Some(100.0));
    let c = SeisBenchMetadata::open(fixture("chunked")).unwrap();
    assert_eq!(c.chunks, vec!["a", "b"]);
    assert_eq!(c.traces.len(), 3);
    assert_eq!(c.traces[2].chunk, "b");
    let e = SeisBenchMetadata::open(fixture("missing")).unwrap_err();
    assert!(format!("{e:#}").contains("metadata.csv"), "{e:#}");
}

#[test]
fn waveforms_read_in_zne_order_with_picks() {
    use seisfuse::data::seisbench::SeisBenchDataset;
    use seisfuse::data::{Dataset, Target};
    let value = |t: usize, c: usize, w: usize| (t * 1000 + c * 100) as f32 + w as f32 * 0.5;
    let d = SeisBenchDataset::open(fixture("tiny"), None, 250).unwrap();
    assert_eq!(d.len(), 3);
    let s = d.get(0).unwrap();
    assert_eq!(s.shape, vec![3, 250]);
    for c in 0..3 {
        assert_eq!(s.input[c * 250 + 7], value(0, c, 7));
        assert_eq!(s.input[c * 250 + 220], 0.0, "padded");
    }
    assert_eq!(
        s.target,
        Target::Picks {
            p: Some(45.0),
            s: Some(120.5)
        }
    );
    // Trace 2 is declared 150 samples long: the rest is padding.
    let s = d.get(2).unwrap();
    assert_eq!(s.input[149], value(2, 0, 149));
    assert_eq!(s.input[150], 0.0);
    let dev = SeisBenchDataset::open(fixture("tiny"), Some("dev"), 100).unwrap();
    assert_eq!(dev.len(), 1);
    assert_eq!(dev.get(0).unwrap().input[100 + 3], value(1, 1, 3));
    // Chunked, ENZ, samples first: reordered to ZNE, channels first.
    let c = SeisBenchDataset::open(fixture("chunked"), None, 200).unwrap();
    assert_eq!(c.len(), 3);
    let s = c.get(2).unwrap();
    for comp in 0..3 {
        assert_eq!(s.input[comp * 200 + 11], value(2, comp, 11));
    }
    assert_eq!(
        s.target,
        Target::Picks {
            p: Some(12.0),
            s: None
        }
    );
}

/// `synth waveforms` in SeisBench layout, read back by our reader.
#[test]
fn synthetic_waveforms_in_seisbench_layout_read_back() {
    use seisfuse::data::npy::NpyFile;
    use seisfuse::data::seisbench::SeisBenchDataset;
    use seisfuse::data::synth::export::{self, write_waveforms_seisbench, ExportOptions};
    use seisfuse::data::synth::waveforms::WaveformConfig;
    use seisfuse::data::{Dataset, Target};
    let d = std::env::temp_dir().join(format!("seisfuse-sbw-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    let cfg = WaveformConfig::new(300);
    export::write(&d, &cfg, 70, 3, &ExportOptions::default()).unwrap();
    write_waveforms_seisbench(&d.join("sb"), &cfg, 70, 3, false).unwrap();
    let npy = NpyFile::open(d.join("waveforms.npy"))
        .unwrap()
        .to_f32_vec()
        .unwrap();
    let picks = NpyFile::open(d.join("picks.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    let sb = SeisBenchDataset::open(d.join("sb"), None, 300).unwrap();
    assert_eq!(sb.len(), 70);
    for i in [0, 5, 64, 69] {
        let s = sb.get(i).unwrap();
        assert_eq!(&s.input[..], &npy[i * 900..(i + 1) * 900], "trace {i}");
        let want = |v: i64| (v >= 0).then_some(v as f32);
        assert_eq!(
            s.target,
            Target::Picks {
                p: want(picks[2 * i]),
                s: want(picks[2 * i + 1])
            }
        );
    }
    assert_eq!(
        SeisBenchDataset::open(d.join("sb"), Some("test"), 300)
            .unwrap()
            .len(),
        11
    );
    std::fs::remove_dir_all(&d).ok();
}
