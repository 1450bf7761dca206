//! Data: readers for the field's file formats (memory-mapped), datasets and a background
//! loader, transforms, and synthetic generators.

pub mod npy;
pub mod synth;
