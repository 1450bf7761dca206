//! Property-based tests (proptest) of every reader's header parser and of the shape checks:
//! arbitrary and mutated headers give a value or an error, never a panic, and what parses is
//! consistent (shapes round-trip, products match, offsets stay inside the file).

use proptest::prelude::*;
use seisfuse::data::{dat, mseed, npy, segy, seisbench};
use seisfuse::limits;
use seisfuse::weights::safetensors_io::explain_invalid;
use seisfuse::weights::SafetensorsFile;
use std::path::PathBuf;

fn tmp(tag: &str) -> PathBuf {
    let d =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("props-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(tag)
}

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Dimensions as numpy writes them, small or absurd.
fn dims() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![0usize..5, 1usize..100_000, any::<usize>()],
        0..6,
    )
}

proptest! {
    #![proptest_config(cfg(1024))]

    // ---- .npy

    #[test]
    fn npy_header_round_trips(shape in dims(), which in 0usize..6) {
        let dt = [npy::NpyDType::F32, npy::NpyDType::F64, npy::NpyDType::I16,
                  npy::NpyDType::I32, npy::NpyDType::I64, npy::NpyDType::U8][which];
        let h = npy::header_bytes(dt, &shape);
        prop_assert_eq!(h.len() % 64, 0);
        let p = npy::parse_header(&h, "x.npy").unwrap();
        prop_assert_eq!(&p.shape, &shape);
        prop_assert_eq!(p.dtype, dt);
        prop_assert_eq!(p.data_offset, h.len());
        // data_bytes is checked: None exactly when the u128 product exceeds usize
        let wide = limits::bytes_of(&shape, dt.size());
        let zero = shape.contains(&0);
        match p.data_bytes() {
            Some(b) => prop_assert!(b as u128 == wide || zero),
            // a partial product overflowed (a later zero axis does not make it readable)
            None => prop_assert!(wide > usize::MAX as u128 || zero),
        }
    }

    #[test]
    fn npy_header_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = npy::parse_header(&bytes, "x.npy");
    }

    #[test]
    fn npy_header_never_panics_on_mutated_text(
        shape in dims(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut h = npy::header_bytes(npy::NpyDType::F32, &shape);
        for (i, b) in edits {
            let k = i.index(h.len());
            h[k] = b;
        }
        let _ = npy::parse_header(&h, "x.npy");
        let k = cut.index(h.len());
        let _ = npy::parse_header(&h[..k], "x.npy");
    }

    #[test]
    fn npy_header_dicts_never_panic(
        descr in "[<>|=]?[fiucb][0-9]{0,2}",
        fortran in prop_oneof![Just("True"), Just("False"), Just("0"), Just("")],
        shape in "\\(([0-9]{0,25}L?, ?){0,4}[0-9]{0,25}\\)|\\(-1,\\)|\\[1, 2\\]|\\(\\)",
    ) {
        let d = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(d.len() as u16).to_le_bytes());
        b.extend_from_slice(d.as_bytes());
        if let Ok(p) = npy::parse_header(&b, "x.npy") {
            prop_assert_eq!(p.data_offset, b.len());
        }
    }

    // ---- SFM .dat sidecars and shapes

    #[test]
    fn dat_shapes_resolve_to_the_count(
        dims in prop::collection::vec(prop_oneof![Just(-1i64), 0i64..50, any::<i64>()], 0..5),
        count in prop_oneof![0usize..10_000, any::<usize>()],
    ) {
        if let Ok(shape) = dat::resolve_shape(&dims, count, "x.dat") {
            prop_assert_eq!(limits::numel(&shape), Some(count));
            prop_assert_eq!(shape.len(), dims.len());
        }
    }

    #[test]
    fn dat_sidecars_never_panic(text in ".{0,120}", dims in prop::collection::vec(any::<i64>(), 0..5)) {
        let _ = dat::parse_sidecar(&text, "x.json");
        let good = format!("{{\"shape\": {dims:?}, \"dtype\": \"float32\"}}");
        prop_assert_eq!(dat::parse_sidecar(&good, "x.json").unwrap(), dims);
    }

    // ---- shape checks

    #[test]
    fn shape_products_are_checked(shape in dims(), size in 1usize..9) {
        let wide = limits::bytes_of(&shape, 1);
        match limits::numel(&shape) {
            Some(n) => prop_assert_eq!(n as u128, wide),
            // a partial product overflowed: the whole is too large, or zero after it
            None => prop_assert!(wide > usize::MAX as u128 || wide == 0),
        }
        prop_assert_eq!(limits::numel_of("x", &shape).is_ok(), limits::numel(&shape).is_some());
        prop_assert!(limits::bytes_of(&shape, size) >= wide);
    }

    #[test]
    fn memory_sizes_parse_or_fail(s in "[0-9.]{0,8}[a-zA-Z ]{0,4}") {
        if let Ok(b) = limits::parse_bytes(&s) {
            prop_assert!(b >= 1);
        }
    }

    // ---- miniSEED

    #[test]
    fn mseed_records_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1200)) {
        let _ = mseed::parse_records(&bytes, "x.mseed");
    }

    #[test]
    fn mseed_mutated_records_never_panic(
        edits in prop::collection::vec((0usize..512, any::<u8>()), 1..8),
        n in 0usize..112,
    ) {
        let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut r = record(&v);
        prop_assert_eq!(mseed::parse_records(&r, "x").unwrap().0[0].samples.len(), n);
        for (i, b) in edits {
            r[i] = b;
        }
        if let Ok((recs, _)) = mseed::parse_records(&r, "x.mseed") {
            for rec in recs {
                prop_assert!(rec.samples.iter().all(|s| s.is_finite()));
            }
        }
    }

    #[test]
    fn steim_frames_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..640),
        n in 0usize..400,
        level in 1u8..3,
        be in any::<bool>(),
    ) {
        let _ = mseed::decode_steim(&data, n, level, be, "x");
    }

    // ---- safetensors

    #[test]
    fn safetensors_headers_are_explained_or_valid(
        entries in prop::collection::vec(
            ("[a-z]{1,6}", prop_oneof![Just("F32"), Just("BF16"), Just("I64"), Just("X9")],
             prop::collection::vec(0usize..5, 0..3), 0u64..64, 0u64..64),
            0..4),
        data_len in 0usize..256,
    ) {
        let body: Vec<String> = entries.iter().map(|(n, d, s, a, b)| {
            format!("\"{n}\":{{\"dtype\":\"{d}\",\"shape\":{s:?},\"data_offsets\":[{a},{b}]}}")
        }).collect();
        let h = format!("{{{}}}", body.join(","));
        let _ = explain_invalid(h.as_bytes(), data_len);
    }

    #[test]
    fn safetensors_header_text_never_panics(text in ".{0,200}", data_len in 0usize..100) {
        let _ = explain_invalid(text.as_bytes(), data_len);
    }

    // ---- SeisBench metadata

    // ---- HDF5: a file we wrote, truncated or with bytes overwritten, gives errors only.

    #[test]
    fn hdf5_mutations_never_panic(cut in 0usize..4000, edits in proptest::collection::vec((0usize..4000, any::<u8>()), 0..6)) {
        let mut b = hdf5_sample().to_vec();
        for (at, v) in edits {
            let i = at % b.len();
            b[i] = v;
        }
        b.truncate(cut.max(8).min(b.len()));
        if let Ok(f) = seisfuse::data::h5::H5File::from_bytes("p.hdf5", &b) {
            let _ = f.string("data_format/component_order");
            for n in ["data/bucket0", "data/f64", "data/i16"] {
                if let Ok(d) = f.dataset(n) {
                    let _ = f.read_f32(&d, None);
                }
            }
        }
    }

    #[test]
    fn seisbench_metadata_never_panics(text in "([a-z_,\"$:0-9 ]{0,30}\n){0,5}", name in "[a-z0-9$,: ]{0,20}") {
        let _ = seisbench::parse_csv(&text, "m.csv");
        let _ = seisbench::parse_metadata(&text, "", "m.csv");
        let _ = seisbench::parse_trace_name(&name);
        let _ = seisbench::pick_column_phase(&name);
    }
}

/// One 512-byte big-endian float32 miniSEED 2 record at 100 Hz.
fn record(samples: &[f32]) -> Vec<u8> {
    let mut r = vec![0u8; 512];
    r[..8].copy_from_slice(b"000001D ");
    r[8..13].copy_from_slice(b"STA  ");
    r[13..15].copy_from_slice(b"  ");
    r[15..18].copy_from_slice(b"HHZ");
    r[18..20].copy_from_slice(b"XX");
    r[20..22].copy_from_slice(&2024u16.to_be_bytes());
    r[22..24].copy_from_slice(&10u16.to_be_bytes());
    r[30..32].copy_from_slice(&(samples.len() as u16).to_be_bytes());
    r[32..34].copy_from_slice(&100i16.to_be_bytes());
    r[34..36].copy_from_slice(&1i16.to_be_bytes());
    r[39] = 1;
    r[44..46].copy_from_slice(&64u16.to_be_bytes());
    r[46..48].copy_from_slice(&48u16.to_be_bytes());
    r[48..50].copy_from_slice(&1000u16.to_be_bytes());
    r[52] = 4;
    r[53] = 1;
    r[54] = 9;
    for (i, v) in samples.iter().enumerate() {
        r[64 + 4 * i..68 + 4 * i].copy_from_slice(&v.to_be_bytes());
    }
    r
}

/// A small valid SEG-Y file (2 traces of 8 IEEE samples).
fn segy_bytes() -> Vec<u8> {
    let p = tmp("base.sgy");
    let traces: Vec<segy::TraceToWrite> = (0..2)
        .map(|i| segy::TraceToWrite {
            inline: 1,
            crossline: i + 1,
            samples: vec![i as f32; 8],
            ..Default::default()
        })
        .collect();
    segy::write(
        &p,
        "C 1 props",
        false,
        segy::SampleFormat::Ieee32,
        4000,
        &traces,
    )
    .unwrap();
    std::fs::read(&p).unwrap()
}

proptest! {
    // File-based readers: fewer cases (each writes and maps a file).
    #![proptest_config(cfg(96))]

    #[test]
    fn segy_headers_never_panic(
        edits in prop::collection::vec((3200usize..3600, any::<u8>()), 1..6),
        trace_edits in prop::collection::vec((3600usize..4128, any::<u8>()), 0..4),
        cut in 0usize..200,
    ) {
        let mut b = segy_bytes();
        for (i, v) in edits.into_iter().chain(trace_edits) {
            if i < b.len() {
                b[i] = v;
            }
        }
        b.truncate(b.len().saturating_sub(cut));
        let p = tmp("m.sgy");
        std::fs::write(&p, &b).unwrap();
        if let Ok(f) = segy::SegyFile::open(&p) {
            // what opened is consistent with the file's size
            prop_assert!(f.traces() > 0 && f.samples() > 0);
            let _ = f.section();
            let _ = f.cube();
        }
    }

    #[test]
    fn safetensors_files_never_panic(
        edits in prop::collection::vec((0usize..120, any::<u8>()), 1..6),
        cut in 0usize..40,
    ) {
        let t = seisfuse::Tensor::from_f32(&[2, 3], vec![1.0; 6]).unwrap();
        let p = tmp("base.safetensors");
        let _ = std::fs::remove_file(&p);
        seisfuse::weights::save_tensors(&p, [("a.weight", &t), ("b", &t)], &Default::default()).unwrap();
        let mut b = std::fs::read(&p).unwrap();
        for (i, v) in edits {
            if i < b.len() {
                b[i] = v;
            }
        }
        b.truncate(b.len().saturating_sub(cut));
        let q = tmp("m.safetensors");
        std::fs::write(&q, &b).unwrap();
        if let Ok(f) = SafetensorsFile::open(&q) {
            for i in f.infos() {
                let _ = f.read_f32(&i.name);
            }
            let _ = seisfuse::weights::detect(&f.infos());
        }
    }

    #[test]
    fn npy_files_never_panic(
        shape in prop::collection::vec(0usize..4, 0..4),
        edits in prop::collection::vec((0usize..80, any::<u8>()), 0..4),
        extra in 0usize..8,
    ) {
        let n: usize = shape.iter().product();
        let p = tmp("base.npy");
        npy::write(&p, &shape, &vec![0.5f32; n]).unwrap();
        let mut b = std::fs::read(&p).unwrap();
        for (i, v) in edits {
            if i < b.len() {
                b[i] = v;
            }
        }
        b.extend(std::iter::repeat_n(0u8, extra));
        let q = tmp("m.npy");
        std::fs::write(&q, &b).unwrap();
        if let Ok(f) = npy::NpyFile::open(&q) {
            // what opened holds exactly the bytes its header claims
            prop_assert_eq!(f.header().data_bytes(), Some(b.len() - f.header().data_offset));
            let _ = f.to_f32_vec();
        }
    }
}

/// A small HDF5 file of ours (strings, a bucket, f64 and i16 datasets), made once.
fn hdf5_sample() -> &'static [u8] {
    static B: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("seisfuse-props-{}.hdf5", std::process::id()));
        let mut w = seisfuse::data::h5::H5Writer::create(&p).unwrap();
        w.string("data_format/component_order", "ZNE").unwrap();
        let x: Vec<f32> = (0..60).map(|i| i as f32).collect();
        w.dataset("data/bucket0", &[2, 3, 10], &x).unwrap();
        w.dataset("data/f64", &[4], &[1.0f64, 2.0, 3.0, 4.0])
            .unwrap();
        w.dataset("data/i16", &[2], &[1i16, -1]).unwrap();
        w.finish().unwrap().commit().unwrap();
        let b = std::fs::read(&p).unwrap();
        let _ = std::fs::remove_file(&p);
        b
    })
}
