//! Distributed (data-parallel) training: which rank this process is, the TCP rendezvous,
//! communicators (TCP, NCCL, local) behind one trait, gradient buckets, the distributed
//! sampler and the data-parallel step. See `docs/cluster.md` for running on a cluster.
//!
//! What the trainer calls, in order:
//! ```text
//! let info = RankInfo::from_process_env()?;                       // env.rs
//! let gpu = on_gpu.then(|| info.cuda_device(nccl::gpu_count())).transpose()?; // cuda:LOCAL_RANK
//! let mut comm = dist::init(&info, CommBackend::Auto, gpu, &RendezvousOptions::default())?;
//! verify_same(&mut *comm, "the parameter layout", &layout_bytes(&layout))?;
//! sync_parameters(&mut *comm, store.values_mut())?;               // rank 0's initial values
//! let mut dp = DataParallel::new(&layout, DpConfig::default())?;   // buckets.rs plan
//! let sampler = DistributedSampler::for_rank(&info, dataset.len(), batch)?.with_seed(seed);
//! for b in sampler.batches(epoch, resume_position)? {            // this rank's shard
//!     dp.begin_step(); forward/backward, dp.grads_ready(..) as layers finish; dp.finish(..)?;
//!     optimizer step; metrics.all_reduce(&mut *comm)?;
//!     if info.is_main() { log; checkpoint with (epoch, b.position_after()) }
//! }
//! ```

pub mod bench;
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
pub mod selftest;

pub use buckets::{Bucket, BucketConfig, BucketPlan, BucketTracker, ParamSlot};
pub use comm::{init, CommBackend, Communicator, LocalCommunicator, TcpCommunicator};
pub use data_parallel::{
    layout_bytes, sync_parameters, verify_same, DataParallel, DpConfig, GradReduce, GradWire,
    StepMetrics,
};
pub use env::{RankInfo, RankSource};
pub use rendezvous::{Listening, Rendezvous, RendezvousOptions};
pub use sampler::{DistributedSampler, RankBatch};
