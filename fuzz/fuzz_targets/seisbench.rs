//! SeisBench `metadata.csv`: the CSV parser, the metadata columns and trace names.
#![no_main]
use libfuzzer_sys::fuzz_target;
use seisfuse::data::seisbench::{parse_csv, parse_metadata, parse_trace_name};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_csv(text, "fuzz.csv");
    let _ = parse_metadata(text, "", "fuzz.csv");
    for line in text.lines() {
        let _ = parse_trace_name(line);
    }
});
