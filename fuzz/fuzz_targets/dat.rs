//! SFM `.dat`: the sidecar's JSON and the shape resolution, then the reader with that shape.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use seisfuse::data::dat::{parse_sidecar, resolve_shape, DatFile};

fuzz_target!(|data: &[u8]| {
    // The first half is the sidecar text, the rest the raw floats.
    let (side, raw) = data.split_at(data.len() / 2);
    let Ok(text) = std::str::from_utf8(side) else {
        return;
    };
    if let Ok(dims) = parse_sidecar(text, "fuzz.json") {
        let _ = resolve_shape(&dims, raw.len() / 4, "fuzz.dat");
        let p = common::as_file("x.dat", raw);
        if let Ok(f) = DatFile::open(&p, Some(&dims)) {
            let _ = f.to_f32_vec();
        }
    }
});
