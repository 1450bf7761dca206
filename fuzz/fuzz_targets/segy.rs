//! SEG-Y: textual, binary and trace headers, sections and cubes.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use seisfuse::data::segy::SegyFile;

fuzz_target!(|data: &[u8]| {
    let p = common::as_file("x.sgy", data);
    if let Ok(f) = SegyFile::open(&p) {
        let _ = f.section();
        let _ = f.cube();
    }
});
