//! `.npy`: the header parser on raw bytes, and the whole reader on a file.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use seisfuse::data::npy::{parse_header, NpyFile};

fuzz_target!(|data: &[u8]| {
    let _ = parse_header(data, "fuzz.npy");
    let p = common::as_file("x.npy", data);
    if let Ok(f) = NpyFile::open(&p) {
        let _ = f.to_f32_vec();
        let _ = f.to_i64_vec();
    }
});
