//! The trainer's ranks: when `seisfuse train` runs as one of several processes (`seisfuse
//! launch`, torchrun or Slurm set RANK / WORLD_SIZE or SLURM_PROCID / SLURM_NTASKS), each rank
//! trains on its share of every global batch, and after the backward pass the flat gradient
//! buffer is averaged over the ranks (NCCL between GPUs, TCP between CPU processes) before
//! the optimizer step, so that every rank takes the same step — the one a single process
//! would take on the whole global batch. Rank 0 writes the log and the checkpoints.
//!
//! On a GPU the gradients go through the host here (one copy each way per step); the
//! bucketed all-reduce on device memory overlapped with the backward pass is the GPU
//! trainer's next step (docs/cluster.md).

use crate::backend::Device;
use crate::dist::buckets::ParamSlot;
use crate::dist::comm::{self, CommBackend, Communicator};
use crate::dist::data_parallel::{DataParallel, DpConfig};
use crate::dist::env::RankInfo;
use crate::dist::rendezvous::RendezvousOptions;
use crate::nn::store::ParamStore;
use crate::tensor::Tensor;
use anyhow::{Context, Result};

/// This process's place among the ranks of a run, and what it needs to take part.
pub struct Ranks {
    pub info: RankInfo,
    comm: Box<dyn Communicator>,
    dp: DataParallel,
}

impl Ranks {
    /// The ranks of the process's environment; `None` when it runs alone.
    pub fn from_env() -> Result<Option<RankInfo>> {
        let info = RankInfo::from_process_env()?;
        Ok(info.is_distributed().then_some(info))
    }

    /// Joins the other ranks (the rendezvous waits for all of them) and makes every rank's
    /// parameters rank 0's.
    pub fn join(info: RankInfo, store: &mut ParamStore, device: &Device) -> Result<Self> {
        let gpu = match device {
            Device::Cuda(b) => Some(b.ordinal),
            Device::Cpu => None,
        };
        let mut comm = comm::init(&info, CommBackend::Auto, gpu, &RendezvousOptions::default())
            .with_context(|| format!("joining the run as {}", info.describe()))?;
        let layout: Vec<ParamSlot> = store
            .entries()
            .iter()
            .map(|e| ParamSlot::new(e.name.clone(), e.offset, e.numel()))
            .collect();
        let dp = DataParallel::new(&layout, DpConfig::default())?;
        // Every rank starts from rank 0's parameters (they agree already when the seeds do;
        // this also covers weights loaded on rank 0 only).
        let mut values = store.values().clone();
        let mut host = values.to_vec_f32()?;
        comm.broadcast_f32(&mut host, 0)?;
        write_back(&mut values, &host, device)?;
        store.refresh_compute()?;
        Ok(Ranks { info, comm, dp })
    }

    pub fn is_main(&self) -> bool {
        self.info.is_main()
    }

    /// Averages the flat gradient buffer over the ranks, in place.
    pub fn average_grads(&mut self, store: &mut ParamStore, device: &Device) -> Result<()> {
        let mut g = store.grads.flat().clone();
        let mut host = g.to_vec_f32()?;
        self.dp.reduce_all(self.comm.as_mut(), &mut host)?;
        write_back(&mut g, &host, device)
    }

    /// The mean of `v` over the ranks (the logged loss).
    pub fn mean(&mut self, v: f64) -> Result<f64> {
        let mut b = [v];
        self.comm.all_reduce_sum_f64(&mut b)?;
        Ok(b[0] / self.info.world_size as f64)
    }
}

/// Writes host values into a (CPU or device) tensor in place.
fn write_back(t: &mut Tensor, v: &[f32], device: &Device) -> Result<()> {
    if t.is_cpu() {
        return t.write_f32(v);
    }
    let up = Tensor::from_f32(&t.shape, v.to_vec())?
        .to_dtype(t.dtype)?
        .to_device(device)?;
    device.backend().copy(t, &up)
}
