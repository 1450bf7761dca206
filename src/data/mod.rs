//! Data: readers for the field's file formats (memory-mapped), datasets and a background
//! loader, transforms, and synthetic generators.

pub mod build;
pub mod dat;
pub mod dataset;
pub mod h5;
pub mod loader;
pub mod mseed;
pub mod mseed_write;
pub mod npy;
pub mod segy;
pub mod seisbench;
pub mod synth;
pub mod time;
pub mod transforms;

pub use dataset::{Dataset, NpyDataset, Sample, Target, VecDataset};
pub use loader::{Batch, Loader, LoaderConfig};

/// Opens `path` for reading, refusing folders and special files (a FIFO would block, a device
/// has no size) with a message that says so instead of the OS's "No such device".
pub fn open_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    let name = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot open {name}"))?;
    if meta.is_dir() {
        anyhow::bail!("{name} is a folder; give a file");
    }
    if !meta.is_file() {
        anyhow::bail!("{name} is not a regular file (a device, pipe or socket); give a file");
    }
    std::fs::File::open(path).with_context(|| format!("cannot open {name}"))
}
