//! Readers against the test files ObsPy ships (real miniSEED from stations and dataloggers,
//! SEG-Y from several vendors, each SEG-Y with ObsPy's decoded first trace as .npy).
//! They are fetched at test time from PyPI (`pip download obspy==1.5.1 --no-deps`) into
//! CARGO_TARGET_TMPDIR and kept there; without python3/pip or the network the tests are
//! reported as skipped (tests/common `skip`), a failure under SEISFUSE_REQUIRE_REFS (CI).
//! SEISFUSE_OBSPY_DATA may point at an unpacked copy instead.

mod common;

use seisfuse::data::mseed::MseedFile;
use seisfuse::data::npy::NpyFile;
use seisfuse::data::segy::{SampleFormat, SegyFile};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const OBSPY: &str = "obspy==1.5.1";

fn fetch() -> Result<PathBuf, String> {
    if let Ok(d) = std::env::var("SEISFUSE_OBSPY_DATA") {
        return Ok(PathBuf::from(d));
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("obspy-1.5.1");
    let done = root.join("extracted");
    if done.exists() {
        return Ok(root);
    }
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let dl = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            OBSPY,
            "--no-deps",
            "-q",
            "--timeout",
            "20",
            "--retries",
            "1",
            "-d",
        ])
        .arg(&root)
        .output()
        .map_err(|e| format!("python3 not available ({e})"))?;
    if !dl.status.success() {
        return Err(format!(
            "pip download {OBSPY} failed (offline?): {}",
            String::from_utf8_lossy(&dl.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    // Unpack only the reader test data, from a wheel or an sdist.
    let script = r#"
import sys, os, re, zipfile, tarfile
root = sys.argv[1]
pat = re.compile(r"(^|/)obspy/io/(mseed|segy)/tests/data/")
for name in os.listdir(root):
    p = os.path.join(root, name)
    if name.endswith(".whl"):
        with zipfile.ZipFile(p) as z:
            for m in z.namelist():
                if pat.search(m) and not m.endswith("/"):
                    out = os.path.join(root, m[pat.search(m).start():].lstrip("/"))
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    open(out, "wb").write(z.read(m))
    elif name.endswith(".tar.gz"):
        with tarfile.open(p) as t:
            for m in t.getmembers():
                if pat.search(m.name) and m.isfile():
                    out = os.path.join(root, m.name[pat.search(m.name).start():].lstrip("/"))
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    open(out, "wb").write(t.extractfile(m).read())
open(os.path.join(root, "extracted"), "w").write("ok")
"#;
    let ex = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&root)
        .output()
        .map_err(|e| e.to_string())?;
    if !ex.status.success() {
        return Err(format!(
            "unpacking failed: {}",
            String::from_utf8_lossy(&ex.stderr)
        ));
    }
    Ok(root)
}

fn data_dir(test: &str, kind: &str) -> Option<PathBuf> {
    static ROOT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match ROOT.get_or_init(fetch) {
        Ok(r) => Some(r.join("obspy/io").join(kind).join("tests/data")),
        Err(e) => {
            common::skip(
                test,
                common::Need::Refs,
                format!("ObsPy's reference files are not available: {e}"),
            );
            None
        }
    }
}

fn open_no_panic(p: &Path) -> Result<MseedFile, String> {
    match std::panic::catch_unwind(|| {
        MseedFile::open(p).inspect(|f| {
            let _ = f.segments();
        })
    }) {
        Ok(r) => r.map_err(|e| format!("{e:#}")),
        Err(_) => panic!("reading {} panicked", p.display()),
    }
}

#[test]
fn mseed_every_obspy_file_reads_or_fails_cleanly() {
    let Some(d) = data_dir("mseed_every_obspy_file_reads_or_fails_cleanly", "mseed") else {
        return;
    };
    let mut n = 0;
    for sub in ["", "encoding", "bizarre"] {
        for e in std::fs::read_dir(d.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                if let Err(e) = open_no_panic(&p) {
                    let name = p.file_name().unwrap().to_string_lossy().to_string();
                    assert!(e.contains(&name), "error does not name the file: {e}");
                }
                n += 1;
            }
        }
    }
    assert!(n > 60, "only {n} files");
}

#[test]
fn mseed_encodings_and_byte_orders_agree() {
    let Some(d) = data_dir("mseed_encodings_and_byte_orders_agree", "mseed") else {
        return;
    };
    let want: Vec<f64> = (1..=50).map(|v| v as f64).collect();
    for enc in [
        "int16_INT16",
        "int32_INT32",
        "float32_Float32",
        "float64_Float64",
        "int32_Steim1",
        "int32_Steim2",
    ] {
        for order in ["bigEndian", "littleEndian"] {
            let name = format!("{enc}_{order}.mseed");
            let f = open_no_panic(&d.join("encoding").join(&name)).unwrap();
            let segs = f.segments();
            assert_eq!(segs.len(), 1, "{name}");
            assert_eq!(segs[0].id, "XX.TEST..BHE");
            assert_eq!(segs[0].sampling_rate, 1.0);
            assert_eq!(segs[0].samples, want, "{name}");
        }
    }
    for (name, code) in [
        ("encoding/fullASCII_bigEndian.mseed", 0),
        ("CDSN_encoding.mseed", 16),
        ("DWWSSN_encoding.mseed", 32),
        ("SRO_encoding.mseed", 30),
        ("GEOSCOPE16_4_encoding.mseed", 14),
    ] {
        let e = open_no_panic(&d.join(name)).unwrap_err();
        assert!(
            e.contains(&format!("encoding {code} is not supported")),
            "{name}: {e}"
        );
    }
    // Header and data byte orders in all four combinations: one and the same trace.
    let reference = open_no_panic(&d.join("test.mseed")).unwrap().segments();
    assert_eq!(reference[0].samples.len(), 11947);
    for h in ["be", "le"] {
        for dd in ["be", "le"] {
            let name = format!("bizarre/endiantest.{h}-header.{dd}-data.mseed");
            let s = open_no_panic(&d.join(&name)).unwrap().segments();
            assert_eq!(s.len(), 1, "{name}");
            assert_eq!(s[0].samples, reference[0].samples, "{name}");
            assert!((s[0].start - reference[0].start).abs() < 1e-6, "{name}");
        }
    }
    let steim2 = open_no_panic(&d.join("steim2.mseed")).unwrap().segments();
    assert_eq!(steim2[0].samples[..], reference[0].samples[..5980]);
}

#[test]
fn mseed_gaps_channels_rates_and_full_seed() {
    let Some(d) = data_dir("mseed_gaps_channels_rates_and_full_seed", "mseed") else {
        return;
    };
    assert_eq!(
        open_no_panic(&d.join("gaps.mseed"))
            .unwrap()
            .segments()
            .len(),
        4
    );
    let two = open_no_panic(&d.join("two_channels.mseed"))
        .unwrap()
        .segments();
    assert_eq!(
        two.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["BW.UH3..EHE", "BW.UH3..EHZ"]
    );
    let s = open_no_panic(&d.join("single_record_negative_sr_fact_and_mult.mseed")).unwrap();
    assert!((s.records[0].sampling_rate - 0.1).abs() < 1e-12);
    let t = open_no_panic(&d.join("timingquality.mseed")).unwrap();
    assert_eq!((t.records.len(), t.segments().len()), (101, 1));
    // Full SEED volumes: control headers are skipped, the data records read.
    for name in ["fullseed.mseed", "RJOB.BW.EHZ.D.300806.0000.fullseed"] {
        let f = open_no_panic(&d.join(name)).unwrap();
        assert!(f.skipped_bytes > 0 && !f.records.is_empty(), "{name}");
    }
    assert!(open_no_panic(&d.join("bizarre/emptyfile.mseed"))
        .unwrap_err()
        .contains("empty"));
    assert!(open_no_panic(&d.join("not2.mseed"))
        .unwrap_err()
        .contains("truncated"));
    assert!(
        open_no_panic(&d.join("corrupt_one_extra_byte_at_end.mseed"))
            .unwrap_err()
            .contains("truncated")
    );
}

#[test]
fn segy_first_traces_match_obspy() {
    let Some(d) = data_dir("segy_first_traces_match_obspy", "segy") else {
        return;
    };
    let mut checked = 0;
    for e in std::fs::read_dir(&d).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".npy") || name.ends_with(".txt") {
            continue;
        }
        let npy = PathBuf::from(format!("{}.npy", p.display()));
        let r = std::panic::catch_unwind(|| SegyFile::open(&p))
            .unwrap_or_else(|_| panic!("{name} panicked"));
        if !npy.exists() {
            // Seismic Unix files have no SEG-Y headers: a clean error.
            assert!(format!("{:#}", r.err().expect("SU file refused")).contains(&name));
            continue;
        }
        let f = r.unwrap();
        let want = NpyFile::open(&npy).unwrap().to_f32_vec().unwrap();
        let mut tr = vec![0f32; f.samples()];
        f.read_trace(0, &mut tr).unwrap();
        assert_eq!(tr, want, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 7);
    let f = SegyFile::open(d.join("planes.segy_first_trace")).unwrap();
    assert!(
        f.binary.little_endian
            && f.binary.format == SampleFormat::Ibm32
            && f.text_encoding == "EBCDIC"
    );
    let f = SegyFile::open(d.join("example.y_first_trace")).unwrap();
    assert_eq!(f.binary.format, SampleFormat::Int16);
}
