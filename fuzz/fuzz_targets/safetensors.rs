//! safetensors: the header check that names bad tensors, the reader, and preset detection.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use seisfuse::weights::safetensors_io::explain_invalid;
use seisfuse::weights::{detect, SafetensorsFile};

fuzz_target!(|data: &[u8]| {
    if data.len() >= 8 {
        let n = (u64::from_le_bytes(data[..8].try_into().unwrap()) as usize).min(data.len() - 8);
        let _ = explain_invalid(&data[8..8 + n], data.len() - 8 - n);
    }
    let p = common::as_file("x.safetensors", data);
    if let Ok(f) = SafetensorsFile::open(&p) {
        let infos = f.infos();
        let _ = detect(&infos).summary();
        for i in infos {
            let _ = f.read_f32(&i.name);
        }
    }
});
