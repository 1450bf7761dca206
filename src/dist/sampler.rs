//! The distributed sampler: one global sample order per epoch, cut into global batches, each
//! rank taking its share of every global batch.
//!
//! - The order of epoch `e` is a permutation of `0..len` drawn from `(seed, e)` alone, the
//!   same one the single-process [`crate::data::Loader`] uses: it does not depend on the
//!   world size, so a run may resume on another number of GPUs.
//! - A global batch is `batch_per_rank × world_size` consecutive positions of that order (the
//!   effective batch is the sum of the per-rank batches); rank `r` takes the `r`-th slice.
//! - Progress is a global sample position within the epoch (what a checkpoint stores): with
//!   the same or another world size, the run continues from the next unseen sample.
//! - Drop-last (default): a tail shorter than a global batch is skipped, so every rank runs
//!   the same number of equal steps. Without drop-last the tail is one last, smaller global
//!   batch split as evenly as possible (ranks may get one sample fewer, or none); the trainer
//!   must then weight each rank's gradient by its share (see [`RankBatch::weight`]).

use super::env::RankInfo;
use crate::data::synth::Rng;
use anyhow::{bail, Result};
use std::sync::Arc;

/// The sampler's settings and this rank's place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistributedSampler {
    pub dataset_len: usize,
    pub batch_per_rank: usize,
    pub rank: usize,
    pub world_size: usize,
    pub seed: u64,
    pub shuffle: bool,
    pub drop_last: bool,
}

/// This rank's part of one global batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankBatch {
    /// Dataset indices for this rank (possibly empty in a non-drop-last tail).
    pub indices: Vec<usize>,
    /// Position of the global batch's first sample in the epoch's order.
    pub global_start: usize,
    /// Samples in the global batch (all ranks together).
    pub global_len: usize,
}

impl RankBatch {
    /// Position after this global batch: what a checkpoint written after this step stores.
    pub fn position_after(&self) -> usize {
        self.global_start + self.global_len
    }

    /// This rank's share of the global batch: `local / global`. Multiply a gradient averaged
    /// over the local samples by it, then sum over the ranks, to get the global average
    /// (equal to `1 / world_size` when the batches are full).
    pub fn weight(&self) -> f64 {
        if self.global_len == 0 {
            0.0
        } else {
            self.indices.len() as f64 / self.global_len as f64
        }
    }
}

impl DistributedSampler {
    /// A shuffling, drop-last sampler with seed 0 (change the public fields as needed).
    pub fn new(
        dataset_len: usize,
        batch_per_rank: usize,
        rank: usize,
        world_size: usize,
    ) -> Result<Self> {
        if batch_per_rank == 0 {
            bail!("the batch per rank must be at least 1");
        }
        if world_size == 0 || rank >= world_size {
            bail!("sampler: rank {rank} is not below the world size {world_size}");
        }
        Ok(DistributedSampler {
            dataset_len,
            batch_per_rank,
            rank,
            world_size,
            seed: 0,
            shuffle: true,
            drop_last: true,
        })
    }

    /// For this process's rank.
    pub fn for_rank(info: &RankInfo, dataset_len: usize, batch_per_rank: usize) -> Result<Self> {
        Self::new(dataset_len, batch_per_rank, info.rank, info.world_size)
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    pub fn with_drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Samples per optimizer step, all ranks together.
    pub fn global_batch(&self) -> usize {
        self.batch_per_rank * self.world_size
    }

    /// The epoch's global order (independent of the world size; the loader's order).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset_len).collect();
        if self.shuffle {
            Rng::for_sample(self.seed, 0x5487, epoch).shuffle(&mut order);
        }
        order
    }

    /// Steps from global position `start` to the end of the epoch.
    pub fn steps_from(&self, start: usize) -> usize {
        let left = self.dataset_len.saturating_sub(start);
        if self.drop_last {
            left / self.global_batch()
        } else {
            left.div_ceil(self.global_batch())
        }
    }

    /// Steps of a whole epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.steps_from(0)
    }

    /// Where an epoch ends: the position after its last step from `start` (the samples of a
    /// dropped tail are never seen).
    pub fn epoch_end(&self, start: usize) -> usize {
        (start + self.steps_from(start) * self.global_batch()).min(self.dataset_len)
    }

    /// The positions of a global batch `[start, start + len)` that rank `r` takes.
    pub fn share(&self, r: usize, start: usize, len: usize) -> std::ops::Range<usize> {
        let w = self.world_size;
        start + r * len / w..start + (r + 1) * len / w
    }

    /// This rank's batches of `epoch`, from global position `start` (0 for a fresh epoch,
    /// a checkpoint's position when resuming).
    pub fn batches(&self, epoch: u64, start: usize) -> Result<RankBatches> {
        if start > self.dataset_len {
            bail!(
                "resume position {start} is beyond the dataset's {} samples (a checkpoint of another dataset?)",
                self.dataset_len
            );
        }
        Ok(RankBatches {
            sampler: self.clone(),
            order: Arc::new(self.order(epoch)),
            pos: start,
            end: self.epoch_end(start),
        })
    }
}

/// Iterator over this rank's batches of one epoch.
#[derive(Clone, Debug)]
pub struct RankBatches {
    sampler: DistributedSampler,
    order: Arc<Vec<usize>>,
    pos: usize,
    end: usize,
}

impl RankBatches {
    /// The global position of the next batch.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for RankBatches {
    type Item = RankBatch;
    fn next(&mut self) -> Option<RankBatch> {
        if self.pos >= self.end {
            return None;
        }
        let len = self.sampler.global_batch().min(self.end - self.pos);
        let share = self.sampler.share(self.sampler.rank, self.pos, len);
        let b = RankBatch {
            indices: self.order[share].to_vec(),
            global_start: self.pos,
            global_len: len,
        };
        self.pos += len;
        Some(b)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.end - self.pos).div_ceil(self.sampler.global_batch());
        (n, Some(n))
    }
}

impl ExactSizeIterator for RankBatches {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn all_ranks(
        len: usize,
        b: usize,
        w: usize,
        drop_last: bool,
        epoch: u64,
        start: usize,
    ) -> Vec<Vec<RankBatch>> {
        (0..w)
            .map(|r| {
                DistributedSampler::new(len, b, r, w)
                    .unwrap()
                    .with_seed(7)
                    .with_drop_last(drop_last)
                    .batches(epoch, start)
                    .unwrap()
                    .collect()
            })
            .collect()
    }

    #[test]
    fn disjoint_covering_and_the_loaders_order() {
        let (len, b, w) = (103, 4, 3);
        let ranks = all_ranks(len, b, w, true, 2, 0);
        let steps = ranks[0].len();
        assert_eq!(steps, 103 / 12);
        assert!(ranks.iter().all(|r| r.len() == steps));
        let order = DistributedSampler::new(len, b, 0, w)
            .unwrap()
            .with_seed(7)
            .order(2);
        let mut seen = HashSet::new();
        for s in 0..steps {
            // Concatenating the ranks' shares in rank order gives the global batch.
            let global: Vec<usize> = (0..w).flat_map(|r| ranks[r][s].indices.clone()).collect();
            assert_eq!(global, order[s * 12..(s + 1) * 12]);
            for rank in &ranks {
                assert_eq!(rank[s].indices.len(), b);
                assert_eq!(rank[s].global_len, 12);
                assert!((rank[s].weight() - 1.0 / 3.0).abs() < 1e-12);
            }
            for i in global {
                assert!(seen.insert(i), "sample {i} twice");
            }
        }
        assert_eq!(seen.len(), steps * 12);
        // The same order as the single-process loader of the same seed.
        let mut want: Vec<usize> = (0..len).collect();
        Rng::for_sample(7, 0x5487, 2).shuffle(&mut want);
        assert_eq!(order, want);
    }

    #[test]
    fn deterministic_and_epochs_differ() {
        let a = all_ranks(50, 2, 2, true, 0, 0);
        let b = all_ranks(50, 2, 2, true, 0, 0);
        let c = all_ranks(50, 2, 2, true, 1, 0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let unshuffled = DistributedSampler::new(10, 2, 1, 2)
            .unwrap()
            .with_shuffle(false);
        let first = unshuffled.batches(0, 0).unwrap().next().unwrap();
        assert_eq!(first.indices, vec![2, 3]);
    }

    #[test]
    fn the_global_order_does_not_depend_on_the_world_size() {
        // The same global batch size from 1×12, 2×6, 3×4 and 4×3: identical global batches.
        let global = |w: usize| -> Vec<Vec<usize>> {
            let ranks = all_ranks(100, 12 / w, w, true, 3, 0);
            (0..ranks[0].len())
                .map(|s| (0..w).flat_map(|r| ranks[r][s].indices.clone()).collect())
                .collect()
        };
        let one = global(1);
        for w in [2, 3, 4] {
            assert_eq!(global(w), one, "world size {w}");
        }
    }

    #[test]
    fn resume_on_another_world_size() {
        // 2 ranks × 5 for 3 steps (30 samples), then resume at position 30 with 3 ranks × 4.
        let len = 97;
        let before = all_ranks(len, 5, 2, true, 4, 0);
        let pos = before[0][2].position_after();
        assert_eq!(pos, 30);
        let after = all_ranks(len, 4, 3, true, 4, pos);
        let mut seen: Vec<usize> = Vec::new();
        for s in 0..3 {
            for r in &before {
                seen.extend(&r[s].indices);
            }
        }
        for s in 0..after[0].len() {
            for r in &after {
                seen.extend(&r[s].indices);
            }
        }
        // Together: the order's first 30 + 12·k samples, each once, in global order.
        let order = DistributedSampler::new(len, 1, 0, 1)
            .unwrap()
            .with_seed(7)
            .order(4);
        assert_eq!(after[0].len(), (97 - 30) / 12);
        assert_eq!(seen, order[..30 + 12 * after[0].len()]);
        // A position past the dataset is an error; at its end, nothing is left.
        let s = DistributedSampler::new(len, 4, 0, 3).unwrap();
        assert!(s.batches(0, 98).is_err());
        assert_eq!(s.batches(0, 97).unwrap().count(), 0);
    }

    #[test]
    fn tail_without_drop_last() {
        // 23 samples, 2 ranks × 4: two full global batches (16), then a tail of 7 split 3/4.
        let ranks = all_ranks(23, 4, 2, false, 0, 0);
        assert_eq!(ranks[0].len(), 3);
        assert_eq!(ranks[0][2].indices.len(), 3);
        assert_eq!(ranks[1][2].indices.len(), 4);
        assert_eq!(ranks[0][2].global_len, 7);
        let w: f64 = ranks.iter().map(|r| r[2].weight()).sum();
        assert!((w - 1.0).abs() < 1e-12);
        let mut all: Vec<usize> = ranks
            .iter()
            .flat_map(|r| r.iter().flat_map(|b| b.indices.clone()))
            .collect();
        all.sort();
        assert_eq!(all, (0..23).collect::<Vec<_>>());
        // A tail smaller than the world: some ranks get nothing, and weight 0.
        let ranks = all_ranks(9, 2, 4, false, 0, 0);
        let last: Vec<usize> = ranks.iter().map(|r| r[1].indices.len()).collect();
        assert_eq!(last, vec![0, 0, 0, 1]);
        assert_eq!(ranks[0][1].weight(), 0.0);
        // Drop-last with fewer samples than a global batch: no step at all.
        assert_eq!(all_ranks(7, 2, 4, true, 0, 0)[0].len(), 0);
        let it = DistributedSampler::new(23, 4, 0, 2)
            .unwrap()
            .with_drop_last(false)
            .batches(0, 0)
            .unwrap();
        assert_eq!(it.len(), 3);
    }

    #[test]
    fn bad_settings() {
        assert!(DistributedSampler::new(10, 0, 0, 1).is_err());
        assert!(DistributedSampler::new(10, 1, 2, 2).is_err());
    }
}
