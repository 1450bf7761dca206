//! Corrupted copies of valid files (random bytes overwritten, random truncation) must give an
//! error or a result, never a panic, from every reader.

use seisfuse::data::mseed::MseedFile;
use seisfuse::data::npy::NpyFile;
use seisfuse::data::segy::SegyFile;
use seisfuse::data::synth::Rng;
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn mutations(good: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = good.to_vec();
    match rng.below(3) {
        0 => b.truncate(rng.below(good.len() + 1)),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.next_u64() as u8;
            }
        }
        _ => {
            // Overwrite a header region, where the lengths and codes live.
            let end = b.len().min(4000);
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(end);
                b[i] = rng.next_u64() as u8;
            }
        }
    }
    b
}

fn run(name: &str, good: &[u8], read: impl Fn(&Path) + std::panic::RefUnwindSafe) {
    let dir = std::env::temp_dir().join(format!("seisfuse-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng::new(name.len() as u64);
    for k in 0..150 {
        let p = dir.join(format!("{k}_{name}"));
        std::fs::write(&p, mutations(good, &mut rng)).unwrap();
        if std::panic::catch_unwind(|| read(&p)).is_err() {
            panic!(
                "{name}: mutation {k} panicked (file kept at {})",
                p.display()
            );
        }
        std::fs::remove_file(&p).ok();
    }
}

#[test]
fn npy_never_panics() {
    let good = std::fs::read(fixture("npy/v1_f8.npy")).unwrap();
    run("x.npy", &good, |p| {
        if let Ok(f) = NpyFile::open(p) {
            let _ = f.to_f32_vec();
            let _ = f.to_i64_vec();
        }
    });
}

#[test]
fn segy_never_panics() {
    let good = std::fs::read(fixture("segy/cube_ibm.sgy")).unwrap();
    run("x.sgy", &good, |p| {
        if let Ok(f) = SegyFile::open(p) {
            let _ = f.section();
            let _ = f.cube();
        }
    });
}

#[test]
fn mseed_never_panics() {
    for name in ["steim1_zne.mseed", "steim2_zne.mseed", "float64_z.mseed"] {
        let good = std::fs::read(fixture(&format!("mseed/{name}"))).unwrap();
        run(name, &good, |p| {
            if let Ok(f) = MseedFile::open(p) {
                let _ = f.segments();
                let _ = f.three_components();
            }
        });
    }
}
