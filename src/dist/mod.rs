//! Distributed (data-parallel) training. See `docs/cluster.md` for running on a cluster.

pub mod env;
pub mod hostlist;

pub use env::{RankInfo, RankSource};
