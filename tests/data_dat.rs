//! SFM raw .dat files: shapes from the caller or a sidecar, numpy-written files, corrupt files.

mod common;

use seisfuse::data::dat::{self, DatDataset, DatFile};
use seisfuse::data::Dataset;
use std::path::PathBuf;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seisfuse-dat-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn round_trip_with_shape_sidecar_and_inference() {
    let d = tmpdir("rt");
    let v: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 - 7.5).collect();
    dat::write(d.join("x.dat"), &[2, 3, 4], &v, true).unwrap();
    let f = DatFile::open(d.join("x.dat"), None).unwrap();
    assert_eq!(f.shape(), &[2, 3, 4]);
    assert_eq!(f.to_f32_vec().unwrap(), v);
    let f = DatFile::open(d.join("x.dat"), Some(&[-1, 12])).unwrap();
    assert_eq!(f.shape(), &[2, 12]);
    let t = f.to_tensor().unwrap();
    assert_eq!(t.shape, vec![2, 12]);
    let ds = DatDataset::new(DatFile::open(d.join("x.dat"), Some(&[2, 3, 4])).unwrap()).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.get(1).unwrap().input[0], 4.5);
    // A sidecar named x.json works too.
    std::fs::rename(d.join("x.dat.json"), d.join("x.json")).unwrap();
    assert_eq!(
        DatFile::open(d.join("x.dat"), None).unwrap().shape(),
        &[2, 3, 4]
    );
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn wrong_shapes_and_bad_files_are_named_errors() {
    let d = tmpdir("bad");
    dat::write(d.join("x.dat"), &[24], &[1.0f32; 24], false).unwrap();
    let p = d.join("x.dat");
    let e = |shape: Option<&[i64]>| format!("{:#}", DatFile::open(&p, shape).err().unwrap());
    let m = e(None);
    assert!(m.contains("x.dat") && m.contains("--shape"), "{m}");
    let m = e(Some(&[5, 2, 2]));
    assert!(m.contains("needs 20") && m.contains("24"), "{m}");
    let m = e(Some(&[3, 2, 2]));
    assert!(m.contains("first dimension would be 6"), "{m}");
    let m = e(Some(&[-1, 5]));
    assert!(m.contains("not a multiple of 5"), "{m}");
    assert!(e(Some(&[-1, -1])).contains("at most one -1"));
    std::fs::write(d.join("odd.dat"), [0u8; 10]).unwrap();
    let m = format!(
        "{:#}",
        DatFile::open(d.join("odd.dat"), Some(&[-1])).err().unwrap()
    );
    assert!(m.contains("not a whole number of float32"), "{m}");
    std::fs::write(
        d.join("y.dat.json"),
        "{\"shape\": [2, 3], \"dtype\": \"float64\"}",
    )
    .unwrap();
    std::fs::write(d.join("y.dat"), [0u8; 24]).unwrap();
    let m = format!("{:#}", DatFile::open(d.join("y.dat"), None).err().unwrap());
    assert!(m.contains("float32"), "{m}");
    let mut v = vec![0.0f32; 6];
    v[4] = f32::NEG_INFINITY;
    dat::write(d.join("inf.dat"), &[6], &v, false).unwrap();
    let m = format!(
        "{:#}",
        DatFile::open(d.join("inf.dat"), Some(&[6]))
            .unwrap()
            .to_f32_vec()
            .unwrap_err()
    );
    assert!(m.contains("element 4") && m.contains("inf.dat"), "{m}");
    std::fs::remove_dir_all(d).ok();
}

/// A file written by numpy's `tofile`, as SFM's data are (a skip without python3/numpy, a
/// failure under SEISFUSE_REQUIRE_REFS).
#[test]
fn reads_numpy_tofile_output() {
    if !common::python_or_skip("reads_numpy_tofile_output", "numpy") {
        return;
    }
    let d = tmpdir("np");
    let script = format!(
        "import numpy as np\nnp.arange(2*5*7, dtype=np.float32).reshape(2, 5, 7).__mul__(0.25).tofile(r'{}/n.dat')",
        d.display()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = DatFile::open(d.join("n.dat"), Some(&[-1, 5, 7])).unwrap();
    assert_eq!(f.shape(), &[2, 5, 7]);
    let v = f.to_f32_vec().unwrap();
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32 * 0.25));
    std::fs::remove_dir_all(d).ok();
}
