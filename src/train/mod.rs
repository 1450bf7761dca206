//! Training: the optimizer over the parameter store, learning-rate schedules, and the
//! training product on top of them: run configurations, run directories with checkpoints and
//! logs, the tasks of both papers and the loop that trains them.

pub mod config;
pub mod data;
pub mod figures;
pub mod optimizer;
pub mod ranks;
pub mod run_dir;
pub mod schedule;
pub mod tasks;
pub mod trainer;

pub use config::TrainConfig;
pub use optimizer::AdamW;
pub use schedule::Schedule;
