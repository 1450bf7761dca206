//! HDF5 for SeisBench's `waveforms.hdf5`, in pure Rust (no C library in any build).
//!
//! - Reading ([`H5File`]) goes through the `hdf5-reader` crate, which reads what h5py writes
//!   with any `libver` (superblocks v0–v3, object headers v1/v2, symbol-table groups and
//!   link-message groups with dense storage, contiguous, compact and chunked layouts with every
//!   chunk index, deflate/shuffle/fletcher32, variable-length strings). We wrap it to check
//!   sizes against the memory budget (`crate::limits`) before anything is read and to name the
//!   file and object in every error.
//! - Writing ([`H5Writer`]) is our own and small: the subset SeisBench files need, in the
//!   format h5py writes by default (superblock version 0, version-1 object headers, groups of
//!   link messages, contiguous little-endian datasets, variable-length UTF-8 string scalars in
//!   a global heap). Data are streamed to disk as they come; the metadata is written at the
//!   end, so a dataset of any size needs memory only for its index.

mod read;
mod write;

pub use read::{H5Dataset, H5File, H5Type};
pub use write::{H5Elem, H5Writer};
