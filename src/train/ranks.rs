//! The trainer's ranks: when `seisfuse train` runs as one of several processes (`seisfuse
//! launch`, torchrun or Slurm set RANK / WORLD_SIZE or SLURM_PROCID / SLURM_NTASKS), each rank
//! trains on its share of every global batch, and the flat gradient buffer is averaged over
//! the ranks (NCCL between GPUs, TCP between CPU processes) before the optimizer step, so that
//! every rank takes the same step — the one a single process would take on the whole global
//! batch. Rank 0 writes the log and the checkpoints.
//!
//! The all-reduce runs bucket by bucket during the backward pass of the step's last
//! micro-batch, as the model declares gradients final (`dist::grad_sync`): on GPUs with NCCL
//! in place on device memory on a communication stream, overlapped with the rest of the
//! backward pass; on the CPU through the host, in the same order.

use crate::backend::Device;
use crate::dist::buckets::ParamSlot;
use crate::dist::comm::{self, CommBackend};
use crate::dist::data_parallel::{layout_bytes, verify_same, DpConfig, GradWire};
use crate::dist::env::RankInfo;
use crate::dist::grad_sync::{write_into, GradSync, Launched};
use crate::dist::rendezvous::RendezvousOptions;
use crate::nn::store::{GradWatch, Grads, ParamStore};
use crate::tensor::Tensor;
use anyhow::{anyhow, bail, Context, Result};
use std::sync::{Arc, Mutex};

/// This process's place among the ranks of a run, and what it needs to take part.
pub struct Ranks {
    pub info: RankInfo,
    /// Shared with the gradient watch while a backward pass runs.
    sync: Arc<Mutex<GradSync>>,
    /// Element ranges of the store's running statistics (BatchNorm's running mean and
    /// variance), which each rank updates from its own batch: averaged after every step.
    buffers: Vec<std::ops::Range<usize>>,
}

impl Ranks {
    /// The ranks of the process's environment; `None` when it runs alone.
    pub fn from_env() -> Result<Option<RankInfo>> {
        let info = RankInfo::from_process_env()?;
        Ok(info.is_distributed().then_some(info))
    }

    /// Joins the other ranks (the rendezvous waits for all of them) and makes every rank's
    /// parameters rank 0's. Gradients travel as `wire`.
    pub fn join(
        info: RankInfo,
        store: &mut ParamStore,
        device: &Device,
        wire: GradWire,
    ) -> Result<Self> {
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
        verify_same(
            comm.as_mut(),
            "the parameter layout",
            &layout_bytes(&layout),
        )?;
        let buffers = store
            .entries()
            .iter()
            .filter(|e| {
                !e.trainable
                    && (e.name.ends_with("running_mean") || e.name.ends_with("running_var"))
            })
            .map(|e| e.offset..e.offset + e.numel())
            .collect();
        // Every rank starts from rank 0's parameters (they agree already when the seeds do;
        // this also covers weights loaded on rank 0 only).
        let mut values = store.values().clone();
        let mut host = values.to_vec_f32()?;
        comm.broadcast_f32(&mut host, 0)?;
        write_into(&mut values, &host)?;
        store.refresh_compute()?;
        let cfg = DpConfig {
            wire,
            ..DpConfig::default()
        };
        let sync = GradSync::new(comm, &layout, cfg)?;
        Ok(Ranks {
            info,
            sync: Arc::new(Mutex::new(sync)),
            buffers,
        })
    }

    pub fn is_main(&self) -> bool {
        self.info.is_main()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, GradSync>> {
        self.sync
            .lock()
            .map_err(|_| anyhow!("the gradient all-reduce failed on another thread"))
    }

    /// Call before the backward pass of a step's last micro-batch: from then on, each
    /// bucket of gradients is all-reduced as soon as the model declares it final, while the
    /// backward pass goes on.
    pub fn watch(&mut self, grads: &mut Grads) -> Result<()> {
        self.lock()?.begin_step();
        grads.watch(Box::new(Watcher(self.sync.clone())));
        Ok(())
    }

    /// After the backward pass: reduces the buckets not reduced yet and leaves the average
    /// over the ranks in the gradient buffer. Returns when each bucket was reduced.
    pub fn finish(&mut self, grads: &mut Grads) -> Result<Vec<(usize, Launched)>> {
        if grads.unwatch().is_none() {
            bail!("Ranks::finish without Ranks::watch before the backward pass");
        }
        let mut sync = self.lock()?;
        sync.finish(grads.flat()?)?;
        Ok(sync.launched().to_vec())
    }

    /// Averages the running statistics over the ranks (after the optimizer step), so that
    /// every rank holds the same model and evaluates alike (PyTorch DDP broadcasts rank 0's
    /// buffers instead; the average uses every rank's batch). Through the host: a few
    /// thousand values, one sync per step, only in models with BatchNorm.
    pub fn sync_buffers(&mut self, store: &ParamStore) -> Result<()> {
        if self.buffers.is_empty() {
            return Ok(());
        }
        let values = store.values();
        let mut host = Vec::new();
        for r in &self.buffers {
            host.extend(values.view(r.start, &[r.len()])?.to_vec_f32()?);
        }
        let mut sync = self.lock()?;
        let n = sync.world_size() as f32;
        sync.comm().all_reduce_sum_f32(&mut host)?;
        let mut at = 0;
        for r in &self.buffers {
            let mean: Vec<f32> = host[at..at + r.len()].iter().map(|x| x / n).collect();
            write_into(&mut values.view(r.start, &[r.len()])?, &mean)?;
            at += r.len();
        }
        Ok(())
    }

    /// Fails on every rank when `bytes` (a dev metric, say) differ between the ranks: the
    /// ranks must take the same decisions (early stopping) or they would wait on each other
    /// forever.
    pub fn agree(&mut self, what: &str, bytes: &[u8]) -> Result<()> {
        verify_same(self.lock()?.comm(), what, bytes)
    }

    /// The mean of `v` over the ranks (the logged loss).
    pub fn mean(&mut self, v: f64) -> Result<f64> {
        let mut b = [v];
        let mut sync = self.lock()?;
        let n = sync.world_size();
        sync.comm().all_reduce_sum_f64(&mut b)?;
        Ok(b[0] / n as f64)
    }
}

/// The gradient watch handed to [`Grads`] for one backward pass.
struct Watcher(Arc<Mutex<GradSync>>);

impl GradWatch for Watcher {
    fn ready(&mut self, flat: &Tensor, ranges: &[std::ops::Range<usize>]) -> Result<()> {
        self.0
            .lock()
            .map_err(|_| anyhow!("the gradient all-reduce failed on another thread"))?
            .ready(flat, ranges)
    }
}
