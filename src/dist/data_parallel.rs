//! The data-parallel step, host side: the gradient buffer all-reduced bucket by bucket (as
//! the buckets become ready during the backward pass, or all at the end), averaged over the
//! ranks, optionally sent as bf16; the parameters broadcast from rank 0 at start; the step's
//! metrics summed over the ranks for rank 0's log.
//!
//! A step of the trainer (every rank):
//! ```text
//! dp.begin_step();
//! backward pass; whenever the gradients of some parameters are final:
//!     dp.grads_ready(comm, grads, &[their layout indices])?;   // CPU: reduces ready buckets
//!     // GPU: let ids = dp.ready(&[..])?; enqueue NCCL on the communication stream per id
//! dp.finish(comm, grads)?;           // reduces what is left (unused parameters' buckets)
//! optimizer step (the same on every rank, on identical gradients)
//! ```

use super::buckets::{BucketConfig, BucketPlan, BucketTracker, ParamSlot};
use super::comm::Communicator;
use super::compress;
use anyhow::{bail, Result};
use half::bf16;

/// How gradients travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradWire {
    F32,
    /// Rounded to bf16 for the all-reduce (half the bytes), widened back to f32 after.
    Bf16,
}

from_keywords!(trim GradWire,
    |other| "unknown gradient communication type '{other}': expected fp32 or bf16",
    "fp32" | "f32" => F32,
    "bf16" => Bf16,
);

/// What happens to the summed gradients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GradReduce {
    /// Divide by the world size: each rank's gradient is a mean over its (equal) local
    /// batch, the result the mean over the global batch. PyTorch DDP's behaviour.
    Mean,
    /// Keep the sum (each rank already weighted its gradient, e.g. by
    /// [`crate::dist::sampler::RankBatch::weight`] for unequal batches).
    Sum,
    /// Multiply the sum by this factor (e.g. 1 / global batch when ranks send sums).
    Scale(f32),
}

/// Settings of the data-parallel step.
#[derive(Clone, Debug)]
pub struct DpConfig {
    pub buckets: BucketConfig,
    pub wire: GradWire,
    pub reduce: GradReduce,
}

impl Default for DpConfig {
    fn default() -> Self {
        DpConfig {
            buckets: BucketConfig::default(),
            wire: GradWire::F32,
            reduce: GradReduce::Mean,
        }
    }
}

/// Bucketed gradient all-reduce for one model's flat gradient buffer.
#[derive(Debug)]
pub struct DataParallel {
    plan: BucketPlan,
    tracker: BucketTracker,
    cfg: DpConfig,
    scratch: Vec<bf16>,
    /// Length the gradient buffer must have at least (end of the last bucket).
    min_len: usize,
}

impl DataParallel {
    /// Plans the buckets of `layout` (forward order; see [`BucketPlan::new`]).
    pub fn new(layout: &[ParamSlot], cfg: DpConfig) -> Result<Self> {
        let plan = BucketPlan::new(layout, &cfg.buckets)?;
        let min_len = plan
            .buckets()
            .iter()
            .map(|b| b.range.end)
            .max()
            .unwrap_or(0);
        Ok(DataParallel {
            tracker: plan.tracker(),
            plan,
            cfg,
            scratch: Vec::new(),
            min_len,
        })
    }

    pub fn plan(&self) -> &BucketPlan {
        &self.plan
    }

    pub fn config(&self) -> &DpConfig {
        &self.cfg
    }

    /// Starts a backward pass (a fresh tracker).
    pub fn begin_step(&mut self) {
        self.tracker = self.plan.tracker();
    }

    /// Records final gradients (layout indices) and returns the buckets to launch now, in
    /// order, without communicating: the GPU trainer enqueues them on its communication
    /// stream (`NcclCommunicator::all_reduce_sum_device` over `plan().buckets()[id].range`,
    /// then scales by [`DataParallel::post_scale`]).
    pub fn ready(&mut self, params: &[usize]) -> Result<Vec<usize>> {
        self.tracker.mark_ready(params)
    }

    /// End of the backward pass: the buckets not yet launched, in order.
    pub fn finish_backward(&mut self) -> Vec<usize> {
        self.tracker.finish()
    }

    /// The factor applied to summed gradients (1 / world size for [`GradReduce::Mean`]).
    pub fn post_scale(&self, world_size: usize) -> f32 {
        match self.cfg.reduce {
            GradReduce::Mean => 1.0 / world_size.max(1) as f32,
            GradReduce::Sum => 1.0,
            GradReduce::Scale(s) => s,
        }
    }

    /// Host path: records final gradients and all-reduces the buckets that became ready.
    pub fn grads_ready(
        &mut self,
        comm: &mut dyn Communicator,
        grads: &mut [f32],
        params: &[usize],
    ) -> Result<()> {
        self.check_len(grads)?;
        for b in self.tracker.mark_ready(params)? {
            self.reduce_bucket(comm, grads, b)?;
        }
        Ok(())
    }

    /// Host path: all-reduces the buckets not reduced yet; ends the step.
    pub fn finish(&mut self, comm: &mut dyn Communicator, grads: &mut [f32]) -> Result<()> {
        self.check_len(grads)?;
        for b in self.tracker.finish() {
            self.reduce_bucket(comm, grads, b)?;
        }
        Ok(())
    }

    /// Host path without overlap: every bucket, in order.
    pub fn reduce_all(&mut self, comm: &mut dyn Communicator, grads: &mut [f32]) -> Result<()> {
        self.begin_step();
        self.finish(comm, grads)
    }

    /// All-reduces one bucket of `grads` in place and applies [`DataParallel::post_scale`].
    pub fn reduce_bucket(
        &mut self,
        comm: &mut dyn Communicator,
        grads: &mut [f32],
        bucket: usize,
    ) -> Result<()> {
        self.check_len(grads)?;
        let range = self.bucket_range(bucket)?;
        self.reduce_values(comm, &mut grads[range])
    }

    /// The elements of the gradient buffer that bucket `bucket` covers.
    pub fn bucket_range(&self, bucket: usize) -> Result<std::ops::Range<usize>> {
        match self.plan.buckets().get(bucket) {
            Some(b) => Ok(b.range.clone()),
            None => bail!(
                "bucket {bucket} does not exist (the plan has {})",
                self.plan.len()
            ),
        }
    }

    /// All-reduces one bucket's values (a copy of them) in place and applies
    /// [`DataParallel::post_scale`], sending them as the configured [`GradWire`].
    pub fn reduce_values(&mut self, comm: &mut dyn Communicator, g: &mut [f32]) -> Result<()> {
        let scale = self.post_scale(comm.world_size());
        match self.cfg.wire {
            GradWire::F32 => {
                comm.all_reduce_sum_f32(g)?;
                if scale != 1.0 {
                    if let GradReduce::Mean = self.cfg.reduce {
                        // Divide rather than multiply by 1/N: exact when N is a power of two
                        // and the closest result otherwise.
                        let n = comm.world_size() as f32;
                        g.iter_mut().for_each(|x| *x /= n);
                    } else {
                        g.iter_mut().for_each(|x| *x *= scale);
                    }
                }
            }
            GradWire::Bf16 => {
                self.scratch.resize(g.len(), bf16::ZERO);
                compress::compress(g, &mut self.scratch);
                comm.all_reduce_sum_bf16(&mut self.scratch)?;
                compress::decompress_scaled(&self.scratch, g, scale);
            }
        }
        Ok(())
    }

    fn check_len(&self, grads: &[f32]) -> Result<()> {
        if grads.len() < self.min_len {
            bail!(
                "the gradient buffer has {} values, but the bucket plan reaches element {}: the \
                 layout given to DataParallel::new is not this buffer's",
                grads.len(),
                self.min_len
            );
        }
        Ok(())
    }
}

/// Makes every rank's parameters rank 0's (call once after building the model and loading
/// any checkpoint, before the first step; DDP does the same).
pub fn sync_parameters(comm: &mut dyn Communicator, values: &mut [f32]) -> Result<()> {
    comm.broadcast_f32(values, 0)
}

/// FNV-1a 64 of some bytes (stable across builds and machines).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// The bytes that identify a parameter layout: names, offsets and lengths.
pub fn layout_bytes(layout: &[ParamSlot]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in layout {
        out.extend_from_slice(p.name.as_bytes());
        out.push(0);
        out.extend_from_slice(&(p.offset as u64).to_le_bytes());
        out.extend_from_slice(&(p.len as u64).to_le_bytes());
    }
    out
}

/// Checks that every rank has the same `what` (e.g. the parameter layout, the dataset's
/// length, the configuration), by fingerprint. Every rank fails together, naming the ranks
/// that differ from rank 0.
pub fn verify_same(comm: &mut dyn Communicator, what: &str, bytes: &[u8]) -> Result<()> {
    let mine = fingerprint(bytes);
    let mut root = mine.to_le_bytes();
    comm.broadcast(&mut root, 0)?;
    let mut differs = vec![0.0f64; comm.world_size()];
    differs[comm.rank()] = (u64::from_le_bytes(root) != mine) as u8 as f64;
    comm.all_reduce_sum_f64(&mut differs)?;
    let bad: Vec<usize> = (0..differs.len()).filter(|&r| differs[r] != 0.0).collect();
    if !bad.is_empty() {
        bail!(
            "{what} differs between rank 0 and {} {}: every rank must run the same model, \
             configuration and data",
            if bad.len() == 1 { "rank" } else { "ranks" },
            super::rendezvous::ranges(&bad)
        );
    }
    Ok(())
}

/// Per-step metrics summed over the ranks (f64): what rank 0 logs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepMetrics {
    /// Sum of the per-sample losses of this rank's batch.
    pub loss_sum: f64,
    /// Samples of this rank's batch.
    pub samples: f64,
    /// Further sums (correct predictions, picks within tolerance, ...).
    pub extra: Vec<f64>,
}

impl StepMetrics {
    /// Sums every field over the ranks (in place, on every rank).
    pub fn all_reduce(&mut self, comm: &mut dyn Communicator) -> Result<()> {
        let mut v = Vec::with_capacity(2 + self.extra.len());
        v.push(self.loss_sum);
        v.push(self.samples);
        v.extend_from_slice(&self.extra);
        comm.all_reduce_sum_f64(&mut v)?;
        self.loss_sum = v[0];
        self.samples = v[1];
        self.extra.copy_from_slice(&v[2..]);
        Ok(())
    }

    /// Mean loss over the samples (0 when there are none).
    pub fn mean_loss(&self) -> f64 {
        if self.samples > 0.0 {
            self.loss_sum / self.samples
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::comm::LocalCommunicator;

    #[test]
    fn single_rank_is_the_identity_and_checks_lengths() {
        let layout = vec![ParamSlot::new("w", 0, 3), ParamSlot::new("b", 3, 2)];
        let mut dp = DataParallel::new(&layout, DpConfig::default()).unwrap();
        let mut g = vec![1.0, 2.0, 3.0, 4.0, 5.0];
        let mut c = LocalCommunicator;
        dp.begin_step();
        dp.grads_ready(&mut c, &mut g, &[1]).unwrap();
        dp.finish(&mut c, &mut g).unwrap();
        assert_eq!(g, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(dp.reduce_all(&mut c, &mut g[..4]).is_err());
        assert!(dp.reduce_bucket(&mut c, &mut g, 9).is_err());
        // bf16 on one rank rounds.
        let mut dp = DataParallel::new(
            &layout,
            DpConfig {
                wire: GradWire::Bf16,
                ..Default::default()
            },
        )
        .unwrap();
        let mut g = vec![1.0 + 1.0 / 512.0; 5];
        dp.reduce_all(&mut c, &mut g).unwrap();
        assert_eq!(g, [1.0; 5]);
        assert_eq!("bf16".parse::<GradWire>().unwrap(), GradWire::Bf16);
        assert!("int8".parse::<GradWire>().is_err());
    }

    #[test]
    fn metrics_and_fingerprints() {
        let mut m = StepMetrics {
            loss_sum: 3.0,
            samples: 4.0,
            extra: vec![1.0],
        };
        m.all_reduce(&mut LocalCommunicator).unwrap();
        assert_eq!(m.mean_loss(), 0.75);
        let a = layout_bytes(&[ParamSlot::new("w", 0, 3)]);
        let b = layout_bytes(&[ParamSlot::new("w", 0, 4)]);
        assert_ne!(fingerprint(&a), fingerprint(&b));
        verify_same(&mut LocalCommunicator, "the layout", &a).unwrap();
    }
}
