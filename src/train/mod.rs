//! Training: the optimizer over named parameters, learning-rate schedules.

pub mod optimizer;
pub mod schedule;

pub use optimizer::AdamW;
pub use schedule::Schedule;
