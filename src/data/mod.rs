//! Data: readers for the field's file formats (memory-mapped), datasets and a background
//! loader, transforms, and synthetic generators.

pub mod dat;
pub mod dataset;
pub mod loader;
pub mod mseed;
pub mod npy;
pub mod segy;
pub mod seisbench;
pub mod synth;
pub mod transforms;

pub use dataset::{Dataset, NpyDataset, Sample, Target, VecDataset};
pub use loader::{Batch, Loader, LoaderConfig};
