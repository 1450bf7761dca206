//! Distributed (data-parallel) training: which rank this process is, the TCP rendezvous, and
//! communicators (TCP, NCCL, local) behind one trait. See `docs/cluster.md`.

pub mod comm;
pub mod compress;
pub mod env;
pub mod hostlist;
pub mod nccl;
pub mod nccl_lib;
pub mod rendezvous;

pub use comm::{init, CommBackend, Communicator, LocalCommunicator, TcpCommunicator};
pub use env::{RankInfo, RankSource};
pub use rendezvous::{Listening, Rendezvous, RendezvousOptions};
