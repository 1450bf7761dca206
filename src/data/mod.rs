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

/// Opens `path` ([`open_file`]) and maps it read-only; `name` is how errors show the file.
pub(crate) fn map_file(path: &std::path::Path, name: &str) -> anyhow::Result<memmap2::Mmap> {
    use anyhow::Context;
    let file = open_file(path)?;
    // SAFETY: the map is read-only; a file truncated by another process while mapped
    // would fault, as with every memory-mapped reader (numpy's mmap_mode included).
    unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {name}"))
}

/// Checks that `shape` holds exactly the `len` values to be written into `path` (`unit` names
/// them in the error: values, elements).
pub(crate) fn check_write_len(
    path: &std::path::Path,
    shape: &[usize],
    len: usize,
    unit: &str,
) -> anyhow::Result<()> {
    let n = crate::limits::numel_of(format!("writing {}", path.display()), shape)?;
    if n != len {
        anyhow::bail!(
            "writing {}: shape {shape:?} needs {n} {unit} but {len} were given",
            path.display()
        );
    }
    Ok(())
}
