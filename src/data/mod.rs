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
/// The u16 in the first two bytes of `b`, little-endian when `le`, else big-endian.
pub(crate) fn be_or_le16(b: &[u8], le: bool) -> u16 {
    let a = [b[0], b[1]];
    if le {
        u16::from_le_bytes(a)
    } else {
        u16::from_be_bytes(a)
    }
}

/// The u32 in the first four bytes of `b`, little-endian when `le`, else big-endian.
pub(crate) fn be_or_le32(b: &[u8], le: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    }
}

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
