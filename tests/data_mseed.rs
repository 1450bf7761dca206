//! miniSEED 2: files written by libmseed through pymseed (tests/fixtures/mseed, from
//! tools/make_mseed_fixtures.py) in every supported encoding, gaps, and corrupt files.

use seisfuse::data::mseed::MseedFile;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mseed")
        .join(name)
}

fn value(i: i64, c: i64) -> f64 {
    let mut v = ((i * i * 7919 + 31 * c) % 20001) - 10000;
    if i % 97 == 0 {
        v += 300000;
    }
    v as f64
}

/// 2024-02-29T12:00:00.5Z in seconds since 1970.
const START: f64 = 1709208000.5;

#[test]
fn steim_files_decode_to_the_written_samples() {
    for name in ["steim1_zne.mseed", "steim2_zne.mseed"] {
        let f = MseedFile::open(fixture(name)).unwrap();
        assert!(f.records.len() > 3, "{name}: several records");
        let segs = f.segments();
        assert_eq!(segs.len(), 3, "{name}");
        for s in &segs {
            let c = match s.id.as_str() {
                "XX.STA.00.HHZ" => 0,
                "XX.STA.00.HHN" => 1,
                "XX.STA.00.HHE" => 2,
                other => panic!("{name}: unexpected id {other}"),
            };
            assert_eq!(s.sampling_rate, 100.0);
            assert!((s.start - START).abs() < 1e-6, "{name}: start {}", s.start);
            assert_eq!(s.samples.len(), 1500, "{name}");
            for (i, v) in s.samples.iter().enumerate() {
                assert_eq!(*v, value(i as i64, c), "{name} {} sample {i}", s.id);
            }
        }
        let t = f.three_components().unwrap();
        assert_eq!((t.samples, t.gap_samples), (1500, 0));
        assert_eq!(t.data[1500 + 5], value(5, 1) as f32);
    }
}

#[test]
fn plain_encodings() {
    let f = MseedFile::open(fixture("int32_z.mseed")).unwrap();
    let s = &f.segments()[0];
    assert!(s
        .samples
        .iter()
        .enumerate()
        .all(|(i, &v)| v == value(i as i64, 0)));
    let f = MseedFile::open(fixture("int16_z.mseed")).unwrap();
    assert_eq!(f.records[0].encoding, 1);
    let s = &f.segments()[0];
    assert!(s
        .samples
        .iter()
        .enumerate()
        .all(|(i, &v)| v == (((i * 37) % 2001) as f64 - 1000.0)));
    for name in ["float32_z.mseed", "float64_z.mseed"] {
        let f = MseedFile::open(fixture(name)).unwrap();
        let s = &f.segments()[0];
        assert_eq!(s.samples.len(), 1500);
        assert!(
            s.samples
                .iter()
                .enumerate()
                .all(|(i, &v)| v == i as f64 * 0.25 - 100.0),
            "{name}"
        );
    }
}

#[test]
fn gaps_split_segments_and_are_zero_filled_in_the_window() {
    let f = MseedFile::open(fixture("gap_zne.mseed")).unwrap();
    let z: Vec<_> = f
        .segments()
        .into_iter()
        .filter(|s| s.id.ends_with('Z'))
        .collect();
    assert_eq!(z.len(), 2);
    assert_eq!(z[0].samples.len(), 600);
    assert!((z[1].start - (START + 8.0)).abs() < 1e-6);
    assert_eq!(z[1].samples[0], value(800, 0));
    let t = f.three_components().unwrap();
    assert_eq!(t.samples, 1500);
    assert_eq!(t.gap_samples, 200);
    assert_eq!(t.data[650], 0.0);
    assert_eq!(t.data[850], value(850, 0) as f32);
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    let d = std::env::temp_dir().join(format!("seisfuse-mseed-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let good = std::fs::read(fixture("steim2_zne.mseed")).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.mseed", vec![], "empty"),
        ("short.mseed", good[..30].to_vec(), "truncated"),
        ("half.mseed", good[..good.len() - 100].to_vec(), "truncated"),
        (
            "text.mseed",
            b"hello world, this is not a miniSEED file at all, nope".to_vec(),
            "no miniSEED record",
        ),
        (
            "v3.mseed",
            b"MS\x03\x00 and then some bytes to make it long enough for a header....".to_vec(),
            "miniSEED 3",
        ),
    ];
    let mut enc = good.clone();
    enc[52] = 99; // blockette 1000 encoding byte of the first record
    cases.push(("encoding.mseed", enc, "encoding 99"));
    let mut steim = good.clone();
    steim[64 + 8..64 + 12].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]); // reverse integration constant
    cases.push(("integrity.mseed", steim, "integrity"));
    for (name, bytes, words) in cases {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = format!(
            "{:#}",
            MseedFile::open(&p)
                .err()
                .unwrap_or_else(|| panic!("{name} opened"))
        );
        assert!(e.contains(words) && e.contains(name), "{name}: {e}");
    }
    // A single component is not a 3-component window.
    let e = MseedFile::open(fixture("int32_z.mseed"))
        .unwrap()
        .three_components()
        .unwrap_err();
    assert!(e.to_string().contains("no N/1 component"), "{e}");
    std::fs::remove_dir_all(d).ok();
}
