//! seisfuse: a Rust engine, with hand-written CUDA kernels, for seismic foundation models.
//!
//! Layers (dependencies point one way): `cli` → models/train/data → `nn` → `ops` → `backend`
//! → `kernels/`. See `docs/architecture.md`.

#[macro_use]
mod keywords;

pub mod atomic;
pub mod backend;
pub mod cli;
pub mod data;
pub mod dist;
pub mod dsp;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod nvtx;
pub mod ops;
pub mod pick;
pub mod plot;
pub mod tensor;
pub mod train;
pub mod viz;
pub mod weights;

pub use backend::{Device, DeviceRequest};
pub use tensor::{DType, Tensor};
