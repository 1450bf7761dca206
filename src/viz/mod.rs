//! PNG figures. `image` holds the raster primitives every figure is drawn with.

pub mod image;
pub mod section;
pub mod waveform;
