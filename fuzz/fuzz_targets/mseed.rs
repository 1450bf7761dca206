//! miniSEED 2: records, segments and the three-component window (with the memory budget
//! capped so that a span of years is refused, not allocated).
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use seisfuse::data::mseed::{parse_records, MseedFile};

fuzz_target!(|data: &[u8]| {
    seisfuse::limits::set_max_memory(256 << 20);
    let _ = parse_records(data, "fuzz.mseed");
    let p = common::as_file("x.mseed", data);
    if let Ok(f) = MseedFile::open(&p) {
        let _ = f.segments();
        let _ = f.streams();
        let _ = f.three_components();
    }
});
