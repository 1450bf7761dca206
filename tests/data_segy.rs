//! SEG-Y: files written by segyio (tests/fixtures/segy, from tools/make_segy_fixtures.py),
//! our own writer (read back by us and, when present, by segyio), and corrupt files.

mod common;

use seisfuse::data::segy::{self, SampleFormat, SegyFile, TraceToWrite};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/segy")
        .join(name)
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seisfuse-segy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn value(il: i32, xl: i32, s: usize) -> f32 {
    (il * 100 + xl) as f32 + (s as f64 / 100.0) as f32
}

#[test]
fn reads_segyio_ibm_cube() {
    let f = SegyFile::open(fixture("cube_ibm.sgy")).unwrap();
    assert_eq!(f.text_encoding, "EBCDIC");
    assert!(
        f.text
            .starts_with("C 1 SEISFUSE TEST CUBE WRITTEN BY SEGYIO"),
        "{}",
        &f.text[..80]
    );
    assert_eq!(f.binary.format, SampleFormat::Ibm32);
    assert_eq!(f.binary.samples, 50);
    assert_eq!(f.binary.sample_interval_us, 4000.0);
    assert_eq!(f.traces(), 12);
    let h = &f.headers[5];
    assert_eq!((h.inline, h.crossline, h.offset), (11, 21, 150));
    assert!((h.cdp_xy.0 - 11.0 * 25.5).abs() < 1e-9 && (h.cdp_xy.1 - 21.0 * 12.25).abs() < 1e-9);
    let g = f.geometry().unwrap();
    assert_eq!(g.inlines, vec![10, 11, 12]);
    assert_eq!(g.crosslines, vec![20, 21, 22, 23]);
    let (sec, h, w) = f.inline_section(11).unwrap();
    assert_eq!((h, w), (50, 4));
    for s in 0..50 {
        for (c, xl) in (20..24).enumerate() {
            let want = value(11, xl, s);
            assert!(
                (sec[s * w + c] - want).abs() <= want.abs() * 1e-6,
                "{s},{c}"
            );
        }
    }
    let (xs, h, w) = f.crossline_section(22).unwrap();
    assert_eq!((h, w), (50, 3));
    assert!((xs[10 * 3 + 2] - value(12, 22, 10)).abs() < 1e-3);
    assert!(f
        .inline_section(13)
        .unwrap_err()
        .to_string()
        .contains("no inline 13"));
}

#[test]
fn reads_segyio_ieee_cube_out_of_order_and_sorts_it() {
    let f = SegyFile::open(fixture("cube_ieee.sgy")).unwrap();
    assert_eq!(f.binary.format, SampleFormat::Ieee32);
    let (cube, shape) = f.cube().unwrap();
    assert_eq!(shape, [3, 4, 50]);
    for (i, il) in [10, 11, 12].into_iter().enumerate() {
        for (j, xl) in (20..24).enumerate() {
            for s in 0..50 {
                assert_eq!(cube[(i * 4 + j) * 50 + s], value(il, xl, s));
            }
        }
    }
    for h in &f.headers {
        assert_eq!(h.offset, 100 * h.crossline);
    }
    // As a 2-D section: file order, time down the rows.
    let (sec, ns, nt) = f.section().unwrap();
    assert_eq!((ns, nt), (50, 12));
    let h0 = &f.headers[0];
    assert_eq!(sec[3 * 12], value(h0.inline, h0.crossline, 3));
}

fn our_traces() -> Vec<TraceToWrite> {
    let mut v = Vec::new();
    for il in 1..=2 {
        for xl in 5..=7 {
            v.push(TraceToWrite {
                inline: il,
                crossline: xl,
                offset: 25 * xl,
                cdp_xy: (1000.5 + il as f64, 2000.25 + xl as f64),
                samples: (0..30)
                    .map(|s| ((il * 10 + xl) as f32) * 0.5 - s as f32 * 0.125)
                    .collect(),
            });
        }
    }
    v
}

#[test]
fn round_trips_through_our_writer() {
    let d = tmpdir("rt");
    for (fmt, ebcdic) in [(SampleFormat::Ibm32, true), (SampleFormat::Ieee32, false)] {
        let p = d.join(format!("ours_{}.sgy", fmt.code()));
        segy::write(
            &p,
            "C 1 WRITTEN BY SEISFUSE",
            ebcdic,
            fmt,
            2000,
            &our_traces(),
        )
        .unwrap();
        let f = SegyFile::open(&p).unwrap();
        assert_eq!(f.text_encoding, if ebcdic { "EBCDIC" } else { "ASCII" });
        assert!(f.text.starts_with("C 1 WRITTEN BY SEISFUSE"));
        assert_eq!(f.binary.revision, (1, 0));
        assert_eq!(f.binary.sample_interval_us, 2000.0);
        let (cube, shape) = f.cube().unwrap();
        assert_eq!(shape, [2, 3, 30]);
        for (k, t) in our_traces().iter().enumerate() {
            assert_eq!(&cube[k * 30..(k + 1) * 30], &t.samples[..]);
            assert_eq!(f.headers[k].offset, t.offset);
            assert!((f.headers[k].cdp_xy.0 - t.cdp_xy.0).abs() < 1e-9);
        }
    }
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn segyio_reads_our_files() {
    if !common::python_or_skip("segyio_reads_our_files", "segyio numpy") {
        return;
    }
    let d = tmpdir("segyio");
    // Offsets differ per trace, which segyio takes for a prestack axis: it reads trace by trace.
    segy::write(
        d.join("ibm.sgy"),
        "C 1 SEISFUSE",
        true,
        SampleFormat::Ibm32,
        2000,
        &our_traces(),
    )
    .unwrap();
    let script = format!(
        "import segyio, numpy as np\n\
         with segyio.open(r'{}/ibm.sgy', ignore_geometry=True) as f:\n\
         \x20   assert f.bin[segyio.BinField.Format] == 1 and len(f.samples) == 30 and f.tracecount == 6\n\
         \x20   h = f.header[4]\n\
         \x20   assert (h[segyio.su.iline], h[segyio.su.xline], h[segyio.su.offset]) == (2, 6, 150), h\n\
         \x20   assert h[segyio.su.cdpx] == 100250 and h[segyio.su.scalco] == -100\n\
         \x20   want = (20 + 6) * 0.5 - np.arange(30) * 0.125\n\
         \x20   assert np.allclose(f.trace[4], want, rtol=1e-6), f.trace[4]\n\
         \x20   assert f.bin[segyio.BinField.Interval] == 2000\n",
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

#[test]
fn corrupt_files_are_errors_not_panics() {
    let d = tmpdir("bad");
    let good = std::fs::read(fixture("cube_ieee.sgy")).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.sgy", vec![], "too short"),
        ("headers_only_part.sgy", good[..3000].to_vec(), "too short"),
        (
            "truncated.sgy",
            good[..good.len() - 10].to_vec(),
            "truncated",
        ),
        ("no_traces.sgy", good[..3600].to_vec(), "no traces"),
    ];
    let mut bad_format = good.clone();
    bad_format[3224..3226].copy_from_slice(&77u16.to_be_bytes());
    cases.push(("format.sgy", bad_format, "format code 77"));
    let mut var = good.clone();
    let tr = 240 + 50 * 4;
    var[3600 + 5 * tr + 114..3600 + 5 * tr + 116].copy_from_slice(&49u16.to_be_bytes());
    cases.push(("varlen.sgy", var, "variable-length"));
    for (name, bytes, words) in cases {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = format!(
            "{:#}",
            SegyFile::open(&p)
                .err()
                .unwrap_or_else(|| panic!("{name} opened"))
        );
        assert!(e.contains(words) && e.contains(name), "{name}: {e}");
    }
    // NaN in an IEEE sample: the trace read fails and says where.
    let mut nan = good.clone();
    let o = 3600 + 7 * tr + 240 + 4 * 3;
    nan[o..o + 4].copy_from_slice(&f32::NAN.to_bits().to_be_bytes());
    std::fs::write(d.join("nan.sgy"), &nan).unwrap();
    let f = SegyFile::open(d.join("nan.sgy")).unwrap();
    let e = format!("{:#}", f.cube().unwrap_err());
    assert!(e.contains("nan.sgy") && e.contains("trace 7"), "{e}");
    // A missing trace: whole traces remain, but they no longer fill the grid.
    std::fs::write(d.join("hole.sgy"), &good[..good.len() - tr]).unwrap();
    let e = SegyFile::open(d.join("hole.sgy"))
        .unwrap()
        .geometry()
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular 3-D cube"), "{e}");
    // Two traces claiming one cell.
    let mut dup = good.clone();
    let (a, b) = (3600 + 188, 3600 + tr + 188);
    let il_xl: Vec<u8> = dup[a..a + 8].to_vec();
    dup[b..b + 8].copy_from_slice(&il_xl);
    std::fs::write(d.join("dup.sgy"), &dup).unwrap();
    let e = SegyFile::open(d.join("dup.sgy"))
        .unwrap()
        .geometry()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a regular") || e.contains("both claim"),
        "{e}"
    );
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn inline_sections_as_a_dataset() {
    use seisfuse::data::segy::SegyInlineDataset;
    use seisfuse::data::Dataset;
    let d = SegyInlineDataset::new(SegyFile::open(fixture("cube_ieee.sgy")).unwrap()).unwrap();
    assert_eq!(d.len(), 3);
    assert_eq!(d.input_shape(), vec![50, 4]);
    let s = d.get(1).unwrap();
    assert_eq!(s.input[7 * 4 + 3], value(11, 23, 7));
}

/// A little-endian revision-2 file (byte-order constant at 3297, extended sample count at
/// 3269), built by hand as the standard lays it out.
#[test]
fn little_endian_revision_2() {
    let ns = 7usize;
    let mut b = vec![b' '; 3200];
    b[..3].copy_from_slice(b"C 1");
    let mut bin = [0u8; 400];
    bin[16..18].copy_from_slice(&1000u16.to_le_bytes());
    bin[20..22].copy_from_slice(&0u16.to_le_bytes()); // use the extended count
    bin[24..26].copy_from_slice(&5u16.to_le_bytes());
    bin[68..72].copy_from_slice(&(ns as u32).to_le_bytes());
    bin[96..100].copy_from_slice(&0x0102_0304u32.to_le_bytes());
    bin[300..302].copy_from_slice(&0x0200u16.to_le_bytes());
    bin[302..304].copy_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&bin);
    for t in 0..2i32 {
        let mut h = [0u8; 240];
        h[188..192].copy_from_slice(&(7 + t).to_le_bytes());
        h[192..196].copy_from_slice(&3i32.to_le_bytes());
        h[36..40].copy_from_slice(&(-50i32).to_le_bytes());
        b.extend_from_slice(&h);
        for s in 0..ns {
            b.extend_from_slice(&((t * 10) as f32 + s as f32).to_le_bytes());
        }
    }
    let d = tmpdir("le");
    let p = d.join("le.sgy");
    std::fs::write(&p, &b).unwrap();
    let f = SegyFile::open(&p).unwrap();
    assert!(f.binary.little_endian);
    assert_eq!(f.binary.revision, (2, 0));
    assert_eq!((f.samples(), f.traces()), (ns, 2));
    assert_eq!(f.text_encoding, "ASCII");
    assert_eq!(
        (
            f.headers[1].inline,
            f.headers[1].crossline,
            f.headers[1].offset
        ),
        (8, 3, -50)
    );
    let (cube, shape) = f.cube().unwrap();
    assert_eq!(shape, [2, 1, ns]);
    assert_eq!(cube[ns + 4], 14.0);
    std::fs::remove_dir_all(d).ok();
}
