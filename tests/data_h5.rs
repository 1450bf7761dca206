//! HDF5 (`data::h5`) against h5py: files h5py wrote (committed fixtures from
//! tools/make_seisbench_fixtures.py, and larger ones written at test time), files we write read
//! back by us and by h5py, and hostile files (truncated, bytes flipped) that must give errors
//! naming the file, never a panic.
//!
//! Tests that run h5py are reported as skipped (tests/common `skip`) when `import h5py` fails,
//! unless
//! `SEISFUSE_REQUIRE_REFS` is set (CI sets it), in which case they fail.

mod common;

use seisfuse::data::h5::{H5File, H5Writer};
use seisfuse::data::seisbench::{parse_trace_name, SeisBenchDataset, SeisBenchMetadata};
use seisfuse::data::{Dataset, Target};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seisbench")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("h5-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Whether h5py can be used; without it the caller skips, or fails under SEISFUSE_REQUIRE_REFS.
fn h5py(test: &str) -> bool {
    common::python_or_skip(test, "h5py numpy")
}

fn python(script: &str, args: &[&Path]) -> String {
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Value of fixture trace t, component c, sample w (tools/make_seisbench_fixtures.py).
fn value(t: usize, c: usize, w: usize, int: bool) -> f32 {
    (t * 1000 + c * 100) as f32 + w as f32 * if int { 1.0 } else { 0.5 }
}

const STORAGE_SETS: [&str; 3] = ["h5py_earliest", "h5py_latest", "h5py_dense"];

#[test]
fn reads_every_storage_h5py_writes() {
    for set in STORAGE_SETS {
        let dir = fixture(set);
        let f = H5File::open(dir.join("waveforms.hdf5")).unwrap();
        assert_eq!(
            f.string("data_format/component_order").unwrap().as_deref(),
            Some("ZNE"),
            "{set}"
        );
        assert_eq!(
            f.string("data_format/dimension_order").unwrap().as_deref(),
            Some("CW")
        );
        assert_eq!(f.string("data_format/missing").unwrap(), None);
        let sr = f.dataset("data_format/sampling_rate").unwrap();
        assert_eq!(f.read_f32(&sr, None).unwrap().0, vec![100.0]);
        let members = f.members("data").unwrap().unwrap();
        let meta = SeisBenchMetadata::open(&dir).unwrap();
        let text = std::fs::read_to_string(dir.join("metadata.csv")).unwrap();
        let traces: Vec<usize> = text
            .lines()
            .skip(1)
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(traces.len(), meta.traces.len());
        let mut seen = 0;
        for (m, &t) in meta.traces.iter().zip(&traces) {
            let loc = parse_trace_name(&m.trace_name).unwrap();
            assert!(members.contains(&loc.dataset), "{set}: {}", loc.dataset);
            let d = f.dataset(&format!("data/{}", loc.dataset)).unwrap();
            let int = !matches!(
                d.dtype,
                seisfuse::data::h5::H5Type::F32 | seisfuse::data::h5::H5Type::F64
            );
            let (v, shape) = f.read_f32(&d, loc.row).unwrap();
            assert_eq!(shape, vec![3, 24], "{set} {}", m.trace_name);
            for c in 0..3 {
                for w in 0..24 {
                    assert_eq!(v[c * 24 + w], value(t, c, w, int), "{set} {}", m.trace_name);
                }
            }
            seen += 1;
        }
        assert!(seen >= 11, "{set}: {seen} traces");
        if set == "h5py_dense" {
            assert_eq!(members.len(), 8 + 12);
        }
    }
}

#[test]
fn seisbench_dataset_over_h5py_files() {
    for set in STORAGE_SETS {
        let d = SeisBenchDataset::open(fixture(set), None, 30).unwrap();
        for i in 0..d.len() {
            let s = d.get(i).unwrap();
            let t: usize = i; // traces are listed in order 0, 1, 2, …
            let m = d.trace(i).unwrap();
            let int = m.trace_name.contains("_i") || m.trace_name.starts_with("extra");
            for c in 0..3 {
                assert_eq!(s.input[c * 30 + 5], value(t, c, 5, int), "{set} {i}");
                assert_eq!(s.input[c * 30 + 27], 0.0, "padded");
            }
            let noise = t % 4 == 3;
            assert_eq!(
                d.category(i),
                Some(if noise { "noise" } else { "earthquake" })
            );
            let want = if noise {
                Target::Picks { p: None, s: None }
            } else {
                Target::Picks {
                    p: Some((3 + t % 5) as f32),
                    s: Some((12 + t % 7) as f32),
                }
            };
            assert_eq!(s.target, want, "{set} {i}");
        }
        let dev = SeisBenchDataset::open(fixture(set), Some("dev"), 24).unwrap();
        assert!(dev.len() >= 3);
        assert!((0..dev.len()).all(|i| dev.trace(i).unwrap().split.as_deref() == Some("dev")));
    }
}

/// Everything the writer writes, read back by our reader.
fn write_sample(path: &Path, n_many: usize) {
    let mut w = H5Writer::create(path).unwrap();
    w.string("data_format/component_order", "ZNE").unwrap();
    w.string("data_format/dimension_order", "CW").unwrap();
    w.string("data_format/unicode", "Zürich ✓").unwrap();
    w.scalar_f64("data_format/sampling_rate", 100.0).unwrap();
    let f: Vec<f32> = (0..2 * 3 * 5).map(|i| i as f32 * 0.25 - 3.0).collect();
    w.dataset("data/bucket0", &[2, 3, 5], &f).unwrap();
    let d: Vec<f64> = (0..6).map(|i| i as f64 * 1e-3).collect();
    w.dataset("data/f64", &[3, 2], &d).unwrap();
    w.dataset("data/i16", &[4], &[-3i16, 0, 7, i16::MAX])
        .unwrap();
    w.dataset("data/i32", &[2, 2], &[-70000i32, 1, 2, 3])
        .unwrap();
    w.dataset("data/u8", &[3], &[0u8, 128, 255]).unwrap();
    w.dataset("data/empty", &[0, 3], &[] as &[f32]).unwrap();
    for i in 0..n_many {
        w.dataset(&format!("many/t{i:05}"), &[2], &[i as f32, -(i as f32)])
            .unwrap();
    }
    w.finish().unwrap().commit().unwrap();
}

#[test]
fn writer_round_trip() {
    let d = tmp("roundtrip");
    let p = d.join("w.hdf5");
    write_sample(&p, 3000);
    let f = H5File::open(&p).unwrap();
    assert_eq!(
        f.string("data_format/component_order").unwrap().as_deref(),
        Some("ZNE")
    );
    assert_eq!(
        f.string("data_format/unicode").unwrap().as_deref(),
        Some("Zürich ✓")
    );
    let b = f.dataset("data/bucket0").unwrap();
    assert_eq!(b.shape, vec![2, 3, 5]);
    let (row, shape) = f.read_f32(&b, Some(1)).unwrap();
    assert_eq!(shape, vec![3, 5]);
    assert_eq!(row[0], 15.0 * 0.25 - 3.0);
    let read = |n: &str| f.read_f32(&f.dataset(n).unwrap(), None).unwrap().0;
    assert_eq!(read("data/f64")[5], 0.005);
    assert_eq!(read("data/i16"), vec![-3.0, 0.0, 7.0, 32767.0]);
    assert_eq!(read("data/i32")[0], -70000.0);
    assert_eq!(read("data/u8"), vec![0.0, 128.0, 255.0]);
    assert_eq!(read("data/empty").len(), 0);
    assert_eq!(read("data_format/sampling_rate"), vec![100.0]);
    assert_eq!(read("many/t02999"), vec![2999.0, -2999.0]);
    assert_eq!(f.members("many").unwrap().unwrap().len(), 3000);
    // Errors name the file and the object.
    let e = f.dataset("data/nope").err().unwrap().to_string();
    assert!(e.contains("w.hdf5") && e.contains("data/nope"), "{e}");
    let e = f
        .read_f32(&f.dataset("data/bucket0").unwrap(), Some(2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 2"), "{e}");
    // Paths that cannot be written are refused.
    let mut w = H5Writer::create(&d.join("bad.hdf5")).unwrap();
    w.dataset("a/b", &[1], &[1f32]).unwrap();
    assert!(w.dataset("a/b", &[1], &[1f32]).is_err(), "twice");
    assert!(
        w.dataset("a/b/c", &[1], &[1f32]).is_err(),
        "under a dataset"
    );
    assert!(w.dataset("a//c", &[1], &[1f32]).is_err(), "empty name");
    assert!(w.dataset("x", &[2], &[1f32]).is_err(), "wrong count");
    drop(w);
    assert!(!d.join("bad.hdf5").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn h5py_reads_what_we_write() {
    if !h5py("h5py_reads_what_we_write") {
        return;
    }
    let d = tmp("h5py-reads");
    let p = d.join("w.hdf5");
    write_sample(&p, 300);
    let out = python(
        r#"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    s = f["data_format/component_order"][()]
    print(s.decode() if isinstance(s, bytes) else s)
    u = f["data_format/unicode"][()]
    print(u.decode() if isinstance(u, bytes) else u)
    print(f["data_format/component_order"].dtype.metadata)
    print(float(f["data_format/sampling_rate"][()]))
    b = f["data/bucket0"]
    print(b.dtype, b.shape, float(b[1, 0, 0]), float(b[:].sum()))
    print(f["data/f64"].dtype, float(f["data/f64"][2, 1]))
    print(f["data/i16"].dtype, f["data/i16"][:].tolist())
    print(f["data/i32"].dtype, int(f["data/i32"][0, 0]))
    print(f["data/u8"].dtype, f["data/u8"][:].tolist())
    print(f["data/empty"].shape)
    print(len(f["many"]), f["many/t00299"][:].tolist())
    print(sorted(f.keys()), sorted(f["data"].keys())[:2])
"#,
        &[&p],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ZNE");
    assert_eq!(lines[1], "Zürich ✓");
    assert!(lines[2].contains("str"), "vlen str: {}", lines[2]);
    assert_eq!(lines[3], "100.0");
    let sum: f32 = (0..30).map(|i| i as f32 * 0.25 - 3.0).sum();
    assert_eq!(
        lines[4],
        format!("float32 (2, 3, 5) {} {}", 15.0 * 0.25 - 3.0, sum as f64)
    );
    assert_eq!(lines[5], "float64 0.005");
    assert_eq!(lines[6], "int16 [-3, 0, 7, 32767]");
    assert_eq!(lines[7], "int32 -70000");
    assert_eq!(lines[8], "uint8 [0, 128, 255]");
    assert_eq!(lines[9], "(0, 3)");
    assert_eq!(lines[10], "300 [299.0, -299.0]");
    assert_eq!(
        lines[11],
        "['data', 'data_format', 'many'] ['bucket0', 'empty']"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Big groups (3000 datasets) and every chunk index, written by h5py now, in the three file
/// formats: what real SeisBench files with one dataset per trace look like.
#[test]
fn reads_big_groups_h5py_writes() {
    if !h5py("reads_big_groups_h5py_writes") {
        return;
    }
    let d = tmp("h5py-big");
    python(
        r#"
import sys, os, h5py, numpy as np
for name, kw in [("earliest", {}), ("latest", {"libver": "latest"}), ("track", {"track_order": True})]:
    with h5py.File(os.path.join(sys.argv[1], name + ".hdf5"), "w", **kw) as f:
        f["data_format/component_order"] = "ENZ"
        g = f.create_group("data")
        for i in range(3000):
            g.create_dataset(f"t{i:05d}", data=np.full((3, 4), i, np.int32))
        a = np.arange(5 * 3 * 100, dtype=np.float64).reshape(5, 3, 100)
        g.create_dataset("fixed", data=a, chunks=(1, 3, 16), compression="gzip", shuffle=True)
        g.create_dataset("ext", data=a, chunks=(1, 3, 16), maxshape=(None, 3, 100), compression="gzip")
        g.create_dataset("bt2", data=a, chunks=(1, 3, 16), maxshape=(None, 3, None))
        g.create_dataset("single", data=a.astype(np.float32), chunks=(5, 3, 100), compression="gzip")
        g.create_dataset("compact", data=np.arange(6, dtype=np.int16).reshape(2, 3))
"#,
        &[&d],
    );
    for name in ["earliest", "latest", "track"] {
        let f = H5File::open(d.join(format!("{name}.hdf5"))).unwrap();
        assert_eq!(
            f.string("data_format/component_order").unwrap().as_deref(),
            Some("ENZ")
        );
        assert_eq!(f.members("data").unwrap().unwrap().len(), 3005, "{name}");
        for i in [0, 1, 1234, 2999] {
            let ds = f.dataset(&format!("data/t{i:05}")).unwrap();
            assert_eq!(f.read_f32(&ds, None).unwrap().0, vec![i as f32; 12]);
        }
        for chunked in ["fixed", "ext", "bt2", "single"] {
            let ds = f.dataset(&format!("data/{chunked}")).unwrap();
            let (row, shape) = f.read_f32(&ds, Some(3)).unwrap();
            assert_eq!(shape, vec![3, 100]);
            for (k, v) in row.iter().enumerate() {
                assert_eq!(*v, (300 * 3 + k) as f32, "{name} {chunked}");
            }
        }
        let ds = f.dataset("data/compact").unwrap();
        assert_eq!(f.read_f32(&ds, None).unwrap().0[5], 5.0);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A tiny xorshift for the mutations (deterministic).
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Opens `bytes` and reads everything a SeisBench reader reads; must not panic.
fn read_all(bytes: &[u8]) -> Result<(), String> {
    let f = H5File::from_bytes("hostile.hdf5", bytes).map_err(|e| e.to_string())?;
    let _ = f.string("data_format/component_order");
    let names = f
        .members("data")
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    for n in names {
        let ds = match f.dataset(&format!("data/{n}")) {
            Ok(d) => d,
            Err(e) => {
                assert!(e.to_string().contains("hostile.hdf5"), "{e}");
                continue;
            }
        };
        let row = (ds.shape.len() == 3).then_some(0);
        if let Err(e) = f.read_f32(&ds, row) {
            assert!(e.to_string().contains("hostile.hdf5"), "{e}");
        }
    }
    Ok(())
}

/// Truncated at every length (in steps) and with bytes flipped: errors, never panics.
#[test]
fn hostile_files_give_errors_not_panics() {
    let d = tmp("hostile");
    let ours = d.join("ours.hdf5");
    write_sample(&ours, 20);
    let mut files: Vec<Vec<u8>> = STORAGE_SETS
        .iter()
        .map(|s| std::fs::read(fixture(s).join("waveforms.hdf5")).unwrap())
        .collect();
    files.push(std::fs::read(&ours).unwrap());
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for bytes in &files {
        read_all(bytes).unwrap();
        let step = (bytes.len() / 300).max(1);
        for len in (0..bytes.len()).step_by(step) {
            let r = std::panic::catch_unwind(|| read_all(&bytes[..len]));
            assert!(r.is_ok(), "truncated to {len} bytes: panic");
        }
        for _ in 0..400 {
            let mut b = bytes.clone();
            for _ in 0..1 + next(&mut x) % 4 {
                let i = (next(&mut x) % b.len() as u64) as usize;
                b[i] = next(&mut x) as u8;
            }
            let r = std::panic::catch_unwind(|| read_all(&b));
            assert!(r.is_ok(), "mutated file: panic");
        }
    }
    // Not HDF5 at all, and an empty file: errors naming the file.
    for bad in [
        &b""[..],
        b"\x89HDF\r\n\x1a\n",
        b"hello world, this is not hdf5",
    ] {
        let e = H5File::from_bytes("x.hdf5", bad).err().unwrap().to_string();
        assert!(e.contains("x.hdf5"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
