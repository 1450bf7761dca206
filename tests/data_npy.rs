//! `.npy`: files written by numpy (tests/fixtures/npy, from tools/make_npy_fixtures.py),
//! round trips through our writer, and corrupt files.

mod common;

use seisfuse::data::npy::{self, NpyDType, NpyFile};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npy")
        .join(name)
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seisfuse-npy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn expected(float: bool, unsigned: bool) -> Vec<f32> {
    (0..12)
        .map(|i| {
            let v = i as f32 - 5.0;
            if float {
                v * 0.5
            } else if unsigned {
                v + 5.0
            } else {
                v
            }
        })
        .collect()
}

#[test]
fn reads_every_type_numpy_writes() {
    for (name, dt, float, unsigned) in [
        ("v1_f4.npy", NpyDType::F32, true, false),
        ("v1_f8.npy", NpyDType::F64, true, false),
        ("v1_i2.npy", NpyDType::I16, false, false),
        ("v1_i4.npy", NpyDType::I32, false, false),
        ("v1_i8.npy", NpyDType::I64, false, false),
        ("v1_u1.npy", NpyDType::U8, false, true),
        ("v2_f4.npy", NpyDType::F32, true, false),
        ("v3_f4.npy", NpyDType::F32, true, false),
    ] {
        let f = NpyFile::open(fixture(name)).unwrap();
        assert_eq!(f.dtype(), dt, "{name}");
        assert_eq!(f.shape(), &[3, 4], "{name}");
        assert_eq!(f.to_f32_vec().unwrap(), expected(float, unsigned), "{name}");
        let t = npy::read_f32_tensor(fixture(name)).unwrap();
        assert_eq!(t.shape, vec![3, 4]);
    }
    let f = NpyFile::open(fixture("v1_f4.npy")).unwrap();
    assert!(matches!(f.as_f32().unwrap(), std::borrow::Cow::Borrowed(_)));
    assert_eq!(
        NpyFile::open(fixture("v1_i8.npy"))
            .unwrap()
            .to_i64_vec()
            .unwrap()[0],
        -5
    );
    let s = NpyFile::open(fixture("scalar_f4.npy")).unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(s.to_f32_vec().unwrap(), vec![2.5]);
}

#[test]
fn refuses_what_it_cannot_read_with_a_clear_message() {
    for (name, words) in [
        ("fortran_f4.npy", "Fortran"),
        ("bigendian_f4.npy", "big-endian"),
        ("complex_c8.npy", "not supported"),
    ] {
        let e = format!("{:#}", NpyFile::open(fixture(name)).unwrap_err());
        assert!(e.contains(words) && e.contains(name), "{name}: {e}");
    }
    let e = format!(
        "{:#}",
        NpyFile::open(fixture("nan_f4.npy"))
            .unwrap()
            .to_f32_vec()
            .unwrap_err()
    );
    assert!(e.contains("element 6") && e.contains("nan_f4.npy"), "{e}");
}

#[test]
fn round_trips_through_our_writer() {
    let d = tmpdir("rt");
    let f: Vec<f32> = (0..60).map(|i| i as f32 * 0.25 - 3.0).collect();
    npy::write(d.join("a.npy"), &[3, 4, 5], &f).unwrap();
    let r = NpyFile::open(d.join("a.npy")).unwrap();
    assert_eq!(r.shape(), &[3, 4, 5]);
    assert_eq!(&*r.as_f32().unwrap(), &f[..]);
    let mut part = vec![0f32; 5];
    r.read_f32_into(20, &mut part).unwrap();
    assert_eq!(part, f[20..25]);
    assert!(r.read_f32_into(58, &mut part).is_err());

    let i: Vec<i32> = (-5..5).collect();
    npy::write(d.join("i.npy"), &[10], &i).unwrap();
    assert_eq!(
        NpyFile::open(d.join("i.npy"))
            .unwrap()
            .to_i64_vec()
            .unwrap(),
        (-5..5).collect::<Vec<i64>>()
    );
    let u: Vec<u8> = vec![0, 1, 255];
    npy::write(d.join("u.npy"), &[1, 3], &u).unwrap();
    assert_eq!(
        &*NpyFile::open(d.join("u.npy"))
            .unwrap()
            .as_slice::<u8>()
            .unwrap(),
        &u[..]
    );
    let e = npy::write(d.join("bad.npy"), &[2, 2], &[1f32; 3]).unwrap_err();
    assert!(e.to_string().contains("needs 4 elements"));
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    let d = tmpdir("bad");
    let good = std::fs::read(fixture("v1_f4.npy")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.npy", vec![], "not a .npy file"),
        (
            "magic.npy",
            {
                let mut b = good.clone();
                b[1] = b'X';
                b
            },
            "not a .npy file",
        ),
        (
            "short_header.npy",
            good[..40].to_vec(),
            "truncated .npy header",
        ),
        (
            "short_data.npy",
            good[..good.len() - 4].to_vec(),
            "truncated",
        ),
        (
            "long_data.npy",
            {
                let mut b = good.clone();
                b.extend_from_slice(&[0; 8]);
                b
            },
            "does not match",
        ),
        (
            "version.npy",
            {
                let mut b = good.clone();
                b[6] = 9;
                b
            },
            "version 9",
        ),
        (
            "garbled.npy",
            {
                let mut b = good.clone();
                b[20] = b'#';
                b
            },
            "cannot parse",
        ),
    ];
    for (name, bytes, words) in cases {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = format!("{:#}", NpyFile::open(&p).unwrap_err());
        assert!(e.contains(words) && e.contains(name), "{name}: {e}");
    }
    let e = format!("{:#}", NpyFile::open(d.join("missing.npy")).unwrap_err());
    assert!(e.contains("missing.npy"), "{e}");
    std::fs::remove_dir_all(d).ok();
}

/// numpy reads what we write (a skip without python3/numpy, a failure under
/// SEISFUSE_REQUIRE_REFS).
#[test]
fn numpy_reads_our_files() {
    if !common::python_or_skip("numpy_reads_our_files", "numpy") {
        return;
    }
    let d = tmpdir("np");
    let f: Vec<f32> = (0..24).map(|i| i as f32 / 3.0).collect();
    npy::write(d.join("f.npy"), &[2, 3, 4], &f).unwrap();
    npy::write(d.join("i.npy"), &[4], &[1i32, -2, 3, -4]).unwrap();
    npy::write(d.join("u.npy"), &[2, 2], &[0u8, 7, 8, 255]).unwrap();
    let script = format!(
        "import numpy as np\n\
         a = np.load(r'{0}/f.npy'); assert a.dtype == np.float32 and a.shape == (2, 3, 4)\n\
         assert np.allclose(a.ravel(), np.arange(24, dtype=np.float32) / 3)\n\
         b = np.load(r'{0}/i.npy'); assert b.dtype == np.int32 and list(b) == [1, -2, 3, -4]\n\
         c = np.load(r'{0}/u.npy'); assert c.dtype == np.uint8 and c.tolist() == [[0, 7], [8, 255]]\n",
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
    std::fs::remove_dir_all(d).ok();
}
