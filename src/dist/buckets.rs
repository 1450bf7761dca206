//! Gradient buckets, as PyTorch DDP makes them: the flat gradient buffer is cut into
//! contiguous ranges of whole parameters, in reverse layer order (the backward pass finishes
//! the last layers first), each up to a byte budget (25 MiB by default, the first one 1 MiB
//! so that communication starts early). During the backward pass the trainer reports which
//! parameters' gradients are final; a bucket is ready when all of its parameters are, and
//! buckets are released strictly in plan order, because every rank must launch the same
//! collectives in the same order (NCCL would hang or mix buffers otherwise).

use anyhow::{bail, Result};
use std::collections::HashMap;
use std::ops::Range;

/// One parameter's place in the flat buffers (values and gradients share the layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSlot {
    pub name: String,
    /// First element in the flat buffer.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

impl ParamSlot {
    pub fn new(name: impl Into<String>, offset: usize, len: usize) -> Self {
        ParamSlot {
            name: name.into(),
            offset,
            len,
        }
    }
    fn end(&self) -> usize {
        self.offset + self.len
    }
}

/// How buckets are cut.
#[derive(Clone, Debug)]
pub struct BucketConfig {
    /// Budget of a bucket in bytes of gradient (DDP's `bucket_cap_mb`, 25 MiB).
    pub bucket_bytes: usize,
    /// Budget of the first bucket (the last layers), small so that the first all-reduce
    /// starts early (DDP: 1 MiB).
    pub first_bucket_bytes: usize,
    /// Bytes of one gradient element (4 for f32 gradients).
    pub elem_bytes: usize,
    /// Parameters separated in the buffer by at most this many elements (alignment padding)
    /// may share a bucket; the gap is reduced along (padding gradients stay zero).
    pub max_gap: usize,
}

impl Default for BucketConfig {
    fn default() -> Self {
        BucketConfig {
            bucket_bytes: 25 << 20,
            first_bucket_bytes: 1 << 20,
            elem_bytes: 4,
            max_gap: 64,
        }
    }
}

/// A bucket: a contiguous range of the flat gradient buffer and the parameters in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Elements of the flat buffer this bucket reduces.
    pub range: Range<usize>,
    /// Indices into the layout, in the order they were added (reverse layer order).
    pub params: Vec<usize>,
}

/// Buckets for a parameter layout, in launch order.
#[derive(Clone, Debug)]
pub struct BucketPlan {
    buckets: Vec<Bucket>,
    /// Bucket of each parameter (by layout index).
    bucket_of: Vec<usize>,
    names: HashMap<String, usize>,
    layout_len: usize,
}

impl BucketPlan {
    /// Plans buckets for `layout`, given in forward (layer) order. Parameters must not
    /// overlap; zero-length parameters are allowed (they join a bucket and never delay it).
    pub fn new(layout: &[ParamSlot], cfg: &BucketConfig) -> Result<Self> {
        if cfg.elem_bytes == 0 {
            bail!("bucket plan: the gradient element size is 0");
        }
        let mut names = HashMap::new();
        for (i, p) in layout.iter().enumerate() {
            if names.insert(p.name.clone(), i).is_some() {
                bail!("bucket plan: the parameter name '{}' appears twice", p.name);
            }
        }
        let mut by_offset: Vec<&ParamSlot> = layout.iter().filter(|p| p.len > 0).collect();
        by_offset.sort_by_key(|p| p.offset);
        for w in by_offset.windows(2) {
            if w[1].offset < w[0].end() {
                bail!(
                    "bucket plan: parameters '{}' ({}..{}) and '{}' ({}..{}) overlap in the flat buffer",
                    w[0].name,
                    w[0].offset,
                    w[0].end(),
                    w[1].name,
                    w[1].offset,
                    w[1].end()
                );
            }
        }
        let budget = |first: bool| {
            let bytes = if first {
                cfg.first_bucket_bytes
            } else {
                cfg.bucket_bytes
            };
            (bytes / cfg.elem_bytes).max(1)
        };
        let mut buckets: Vec<Bucket> = Vec::new();
        let mut bucket_of = vec![usize::MAX; layout.len()];
        let mut cur: Option<Bucket> = None;
        for (i, p) in layout.iter().enumerate().rev() {
            if let Some(b) = &mut cur {
                let r = if p.len == 0 {
                    Some(b.range.clone())
                } else if p.end() <= b.range.start && b.range.start - p.end() <= cfg.max_gap {
                    Some(p.offset..b.range.end)
                } else if p.offset >= b.range.end && p.offset - b.range.end <= cfg.max_gap {
                    Some(b.range.start..p.end())
                } else {
                    None
                };
                let fits = r
                    .as_ref()
                    .is_some_and(|r| r.len() <= budget(buckets.is_empty()) || b.range.is_empty());
                if let (Some(r), true) = (r, fits) {
                    b.range = r;
                    b.params.push(i);
                    bucket_of[i] = buckets.len();
                    continue;
                }
                buckets.push(cur.take().unwrap_or_else(|| unreachable!()));
            }
            bucket_of[i] = buckets.len();
            cur = Some(Bucket {
                range: p.offset..p.end(),
                params: vec![i],
            });
        }
        if let Some(b) = cur {
            buckets.push(b);
        }
        Ok(BucketPlan {
            buckets,
            bucket_of,
            names,
            layout_len: layout.len(),
        })
    }

    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The bucket a parameter (layout index) belongs to.
    pub fn bucket_of(&self, param: usize) -> Option<usize> {
        self.bucket_of.get(param).copied()
    }

    /// Layout index of a parameter name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.get(name).copied()
    }

    /// A tracker for one backward pass.
    pub fn tracker(&self) -> BucketTracker {
        BucketTracker {
            pending: self.buckets.iter().map(|b| b.params.len()).collect(),
            done: vec![false; self.layout_len],
            next: 0,
            bucket_of: self.bucket_of.clone(),
            names: self.names.clone(),
        }
    }
}

/// Which buckets are ready during one backward pass.
#[derive(Clone, Debug)]
pub struct BucketTracker {
    /// Parameters still to come, per bucket.
    pending: Vec<usize>,
    done: Vec<bool>,
    /// First bucket not yet released.
    next: usize,
    bucket_of: Vec<usize>,
    names: HashMap<String, usize>,
}

impl BucketTracker {
    /// Records that the gradients of these parameters (layout indices) are final, and
    /// returns the buckets that may be launched now, in launch order. A parameter reported
    /// twice in one pass is an error (its gradient changed after it was final).
    pub fn mark_ready(&mut self, params: &[usize]) -> Result<Vec<usize>> {
        for &p in params {
            let Some(&b) = self.bucket_of.get(p) else {
                bail!(
                    "gradient ready for parameter #{p}, but the layout has {} parameters",
                    self.done.len()
                );
            };
            if std::mem::replace(&mut self.done[p], true) {
                bail!(
                    "the gradient of parameter #{p} was reported final twice in one backward pass"
                );
            }
            self.pending[b] -= 1;
        }
        Ok(self.release())
    }

    /// As [`BucketTracker::mark_ready`], by parameter name.
    pub fn mark_ready_by_name(&mut self, names: &[&str]) -> Result<Vec<usize>> {
        let idx = names
            .iter()
            .map(|n| {
                self.names.get(*n).copied().ok_or_else(|| {
                    anyhow::anyhow!("gradient ready for '{n}', which is not in the bucket plan")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.mark_ready(&idx)
    }

    /// End of the backward pass: every bucket not yet released is released (parameters that
    /// got no gradient this step, e.g. an unused head, keep their zero gradients).
    pub fn finish(&mut self) -> Vec<usize> {
        let out: Vec<usize> = (self.next..self.pending.len()).collect();
        self.next = self.pending.len();
        out
    }

    /// True when every bucket has been released.
    pub fn all_released(&self) -> bool {
        self.next == self.pending.len()
    }

    fn release(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        while self.next < self.pending.len() && self.pending[self.next] == 0 {
            out.push(self.next);
            self.next += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Contiguous layout of `lens`, named p0, p1, ...
    fn layout(lens: &[usize]) -> Vec<ParamSlot> {
        let mut off = 0;
        lens.iter()
            .enumerate()
            .map(|(i, &l)| {
                let p = ParamSlot::new(format!("p{i}"), off, l);
                off += l;
                p
            })
            .collect()
    }

    fn cfg(first: usize, rest: usize) -> BucketConfig {
        BucketConfig {
            bucket_bytes: rest * 4,
            first_bucket_bytes: first * 4,
            elem_bytes: 4,
            max_gap: 0,
        }
    }

    #[test]
    fn reverse_order_budgets_and_cover() {
        let l = layout(&[10, 20, 5, 5, 40, 3]);
        let plan = BucketPlan::new(&l, &cfg(8, 30)).unwrap();
        let b: Vec<(Range<usize>, Vec<usize>)> = plan
            .buckets()
            .iter()
            .map(|b| (b.range.clone(), b.params.clone()))
            .collect();
        assert_eq!(
            b,
            vec![
                (80..83, vec![5]),       // the first bucket's budget is 8 elements
                (40..80, vec![4]),       // larger than the budget: alone
                (10..40, vec![3, 2, 1]), // exactly 30
                (0..10, vec![0]),
            ]
        );
        // Every element covered exactly once.
        let mut cover = vec![0; 83];
        for bk in plan.buckets() {
            for c in &mut cover[bk.range.clone()] {
                *c += 1;
            }
        }
        assert!(cover.iter().all(|&c| c == 1));
        assert_eq!(plan.bucket_of(2), Some(2));
        assert_eq!(plan.index_of("p4"), Some(4));
    }

    #[test]
    fn default_budget_is_ddp_like() {
        // 100 parameters of 1 Mi elements (4 MiB each): the first bucket holds one (over 1 MiB
        // alone), the others six (24 MiB).
        let l = layout(&[1 << 20; 100]);
        let plan = BucketPlan::new(&l, &BucketConfig::default()).unwrap();
        assert_eq!(plan.buckets()[0].params, vec![99]);
        assert_eq!(plan.buckets()[1].params.len(), 6);
        assert_eq!(plan.buckets()[1].range.len() * 4, 24 << 20);
    }

    #[test]
    fn gaps_and_order_in_the_buffer() {
        // Aligned offsets (padding gaps of 3), and a layout whose buffer order differs from
        // its layer order.
        let l = vec![
            ParamSlot::new("a", 0, 5),
            ParamSlot::new("b", 8, 5),
            ParamSlot::new("c", 16, 5),
            ParamSlot::new("late", 100, 4),
        ];
        let mut c = cfg(1000, 1000);
        c.max_gap = 3;
        let plan = BucketPlan::new(&l, &c).unwrap();
        let r: Vec<_> = plan.buckets().iter().map(|b| b.range.clone()).collect();
        assert_eq!(r, vec![100..104, 0..21]);
        c.max_gap = 2;
        let plan = BucketPlan::new(&l, &c).unwrap();
        assert_eq!(plan.len(), 4);
    }

    #[test]
    fn bad_layouts() {
        let e = BucketPlan::new(
            &[ParamSlot::new("a", 0, 5), ParamSlot::new("b", 4, 5)],
            &BucketConfig::default(),
        )
        .unwrap_err();
        assert!(format!("{e}").contains("overlap"), "{e}");
        let e = BucketPlan::new(
            &[ParamSlot::new("a", 0, 5), ParamSlot::new("a", 5, 5)],
            &BucketConfig::default(),
        )
        .unwrap_err();
        assert!(format!("{e}").contains("twice"), "{e}");
    }

    #[test]
    fn tracker_releases_in_plan_order() {
        let l = layout(&[4, 4, 4, 4, 4, 4]);
        let plan = BucketPlan::new(&l, &cfg(8, 8)).unwrap();
        // Buckets: [5,4], [3,2], [1,0].
        assert_eq!(plan.len(), 3);
        let mut t = plan.tracker();
        assert_eq!(t.mark_ready(&[5]).unwrap(), Vec::<usize>::new());
        // Bucket 1 complete before bucket 0: held back.
        assert_eq!(t.mark_ready(&[3, 2]).unwrap(), Vec::<usize>::new());
        assert_eq!(t.mark_ready(&[4]).unwrap(), vec![0, 1]);
        assert!(t.mark_ready(&[4]).is_err());
        assert!(t.mark_ready(&[99]).is_err());
        assert!(t.mark_ready_by_name(&["nope"]).is_err());
        assert_eq!(t.mark_ready_by_name(&["p1"]).unwrap(), Vec::<usize>::new());
        assert!(!t.all_released());
        // p0 never got a gradient: finish releases its bucket.
        assert_eq!(t.finish(), vec![2]);
        assert!(t.all_released());
        // A fresh tracker per step.
        let mut t = plan.tracker();
        assert_eq!(t.mark_ready(&[0, 1, 2, 3, 4, 5]).unwrap(), vec![0, 1, 2]);
        assert_eq!(t.finish(), Vec::<usize>::new());
    }

    /// Random layouts and budgets: buckets cover the parameters exactly, respect the budget
    /// unless a parameter alone exceeds it, and list parameters in reverse layer order.
    #[test]
    fn generated_layouts() {
        let mut rng = crate::data::synth::Rng::new(21);
        for _ in 0..200 {
            let n = 1 + rng.below(30);
            let lens: Vec<usize> = (0..n).map(|_| rng.below(50)).collect();
            let l = layout(&lens);
            let (first, rest) = (1 + rng.below(60), 1 + rng.below(120));
            let plan = BucketPlan::new(&l, &cfg(first, rest)).unwrap();
            let order: Vec<usize> = plan
                .buckets()
                .iter()
                .flat_map(|b| b.params.clone())
                .collect();
            assert_eq!(order, (0..n).rev().collect::<Vec<_>>());
            for (k, b) in plan.buckets().iter().enumerate() {
                let budget = if k == 0 { first } else { rest };
                let sum: usize = b.params.iter().map(|&p| lens[p]).sum();
                assert_eq!(sum, b.range.len());
                let nonzero = b.params.iter().filter(|&&p| lens[p] > 0).count();
                assert!(
                    b.range.len() <= budget || nonzero <= 1,
                    "{b:?} budget {budget}"
                );
            }
            let mut t = plan.tracker();
            let mut released = Vec::new();
            for p in (0..n).rev() {
                released.extend(t.mark_ready(&[p]).unwrap());
            }
            assert_eq!(released, (0..plan.len()).collect::<Vec<_>>());
        }
    }
}
