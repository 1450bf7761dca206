//! Distributed (data-parallel) training: which rank this process is, the TCP rendezvous,
//! communicators (TCP, NCCL, local) behind one trait, gradient buckets, the distributed
//! sampler and the data-parallel step. See `docs/cluster.md` for running on a cluster.
//!
//! What the trainer calls, in order (src/train/ranks.rs):
//! ```text
//! let info = RankInfo::from_process_env()?;                       // env.rs
//! let mut comm = dist::init(&info, CommBackend::Auto, gpu, &RendezvousOptions::default())?;
//! verify_same(&mut *comm, "the parameter layout", &layout_bytes(&layout))?;
//! sync_parameters(&mut *comm, store.values_mut())?;               // rank 0's initial values
//! let sync = GradSync::new(comm, &layout, DpConfig { wire, .. })?; // grad_sync.rs, buckets.rs
//! every step, from the checkpoint's data position (the epoch's order is global, sampler.rs):
//!     sync.begin_step(); grads.watch(sync);        // before the last micro-batch's backward
//!     forward/backward (models call grads.mark_final() per block: ready buckets are reduced)
//!     grads.unwatch(); sync.finish(grads.flat()?)?; // the rest, then the average
//!     optimizer step; running statistics averaged; loss averaged for rank 0's log
//! ```

pub mod bench;
pub mod buckets;
pub mod comm;
pub mod compress;
pub mod data_parallel;
pub mod env;
pub mod grad_sync;
pub mod hostlist;
pub mod nccl;
pub mod nccl_lib;
pub mod rendezvous;
pub mod sampler;
pub mod selftest;

pub use buckets::{Bucket, BucketConfig, BucketPlan, BucketTracker, ParamSlot};
pub use comm::{init, CommBackend, Communicator, LocalCommunicator, TcpCommunicator};
pub use data_parallel::{
    layout_bytes, sync_parameters, verify_same, DataParallel, DpConfig, GradReduce, GradWire,
    StepMetrics,
};
pub use env::{RankInfo, RankSource};
pub use grad_sync::{GradSync, Launched};
pub use rendezvous::{Listening, Rendezvous, RendezvousOptions};
pub use sampler::{DistributedSampler, RankBatch};
