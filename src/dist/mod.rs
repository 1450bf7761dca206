//! Distributed (data-parallel) training: which rank this process is, the TCP rendezvous,
//! communicators (TCP, NCCL, local) behind one trait, gradient buckets, the distributed
//! sampler and the data-parallel step. See `docs/cluster.md`.

pub mod buckets;
pub mod comm;
pub mod compress;
pub mod data_parallel;
pub mod env;
pub mod hostlist;
pub mod nccl;
pub mod nccl_lib;
pub mod rendezvous;
pub mod sampler;

pub use buckets::{Bucket, BucketConfig, BucketPlan, BucketTracker, ParamSlot};
pub use comm::{init, CommBackend, Communicator, LocalCommunicator, TcpCommunicator};
pub use data_parallel::{
    layout_bytes, sync_parameters, verify_same, DataParallel, DpConfig, GradReduce, GradWire,
    StepMetrics,
};
pub use env::{RankInfo, RankSource};
pub use rendezvous::{Listening, Rendezvous, RendezvousOptions};
pub use sampler::{DistributedSampler, RankBatch};
