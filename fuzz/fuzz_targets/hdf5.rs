//! SeisBench `waveforms.hdf5`: open, read the format strings, list `data`, read every dataset
//! (one row of a bucket, or all of it) as f32.
#![no_main]
use libfuzzer_sys::fuzz_target;
use seisfuse::data::h5::H5File;

fuzz_target!(|data: &[u8]| {
    seisfuse::limits::set_max_memory(256 << 20);
    let Ok(f) = H5File::from_bytes("fuzz.hdf5", data) else {
        return;
    };
    let _ = f.string("data_format/component_order");
    let Ok(Some(names)) = f.members("data") else {
        return;
    };
    for n in names.iter().take(64) {
        if let Ok(d) = f.dataset(&format!("data/{n}")) {
            let row = (d.shape.len() == 3).then_some(0);
            let _ = f.read_f32(&d, row);
        }
    }
});
