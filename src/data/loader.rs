//! A batch loader: seeded shuffle, batching, drop-last, and background worker threads that
//! fill bounded queues of ready batches (`std::sync::mpsc::sync_channel`).
//!
//! Batch `k` of an epoch is built by worker `k mod W` and read from that worker's queue, so
//! batches arrive in order and their contents depend only on (seed, epoch), never on thread
//! timing. Each queue holds at most `prefetch` batches: workers block when the consumer is
//! slower, and stop when the epoch iterator is dropped.

use super::dataset::{Dataset, Target};
use super::synth::Rng;
use super::transforms::Transform;
use crate::tensor::{CpuStorage, Tensor};
use anyhow::{anyhow, bail, Context, Result};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Clone, Debug)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub shuffle: bool,
    /// Drop the last batch when it would be smaller than `batch_size`.
    pub drop_last: bool,
    pub seed: u64,
    /// Background worker threads (at least 1).
    pub workers: usize,
    /// Ready batches each worker may hold ahead of the consumer.
    pub prefetch: usize,
}

impl LoaderConfig {
    pub fn new(batch_size: usize) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: true,
            drop_last: false,
            seed: 0,
            workers: 2,
            prefetch: 2,
        }
    }
}

/// A batch: inputs `[B, ...]` (f32) and targets stacked by kind: classes → i32 `[B]`,
/// class maps → i32 `[B, ...]`, dense → f32 `[B, ...]`, raw picks → f32 `[B, 2]` (−1 = none).
#[derive(Debug)]
pub struct Batch {
    pub indices: Vec<usize>,
    pub inputs: Tensor,
    pub targets: Option<Tensor>,
}

pub struct Loader<D: Dataset + 'static> {
    dataset: Arc<D>,
    transforms: Arc<Vec<Arc<dyn Transform>>>,
    cfg: LoaderConfig,
    item_shape: Vec<usize>,
    pool: BufferPool,
}

/// Batch buffers handed back through `Loader::recycle`, reused by the workers so that a
/// steady stream of batches does not fault in fresh pages for every batch.
type BufferPool = Arc<Mutex<Vec<Vec<f32>>>>;

impl<D: Dataset + 'static> Loader<D> {
    pub fn new(dataset: D, cfg: LoaderConfig) -> Result<Self> {
        Self::from_arc(Arc::new(dataset), cfg)
    }

    pub fn from_arc(dataset: Arc<D>, cfg: LoaderConfig) -> Result<Self> {
        if cfg.batch_size == 0 {
            bail!("batch size must be at least 1");
        }
        let item_shape = dataset.input_shape();
        Ok(Loader {
            dataset,
            transforms: Arc::new(Vec::new()),
            cfg,
            item_shape,
            pool: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Adds a transform after the ones already added.
    pub fn with_transform(mut self, t: impl Transform + 'static) -> Result<Self> {
        self.item_shape = t.output_shape(&self.item_shape)?;
        let mut ts: Vec<Arc<dyn Transform>> = self.transforms.iter().cloned().collect();
        ts.push(Arc::new(t));
        self.transforms = Arc::new(ts);
        Ok(self)
    }

    /// Hands a consumed batch's input buffer back for reuse (optional; it saves the page
    /// faults of a fresh allocation per batch).
    pub fn recycle(&self, batch: Batch) {
        if let Ok(CpuStorage::F32(v)) = batch.inputs.to_cpu_storage() {
            let cap = self.cfg.workers.max(1) * (self.cfg.prefetch.max(1) + 2);
            if let Ok(mut p) = self.pool.lock() {
                if p.len() < cap {
                    p.push(v);
                }
            }
        }
    }

    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// Shape of one input after the transforms.
    pub fn item_shape(&self) -> &[usize] {
        &self.item_shape
    }

    pub fn num_batches(&self) -> usize {
        let n = self.dataset.len();
        if self.cfg.drop_last {
            n / self.cfg.batch_size
        } else {
            n.div_ceil(self.cfg.batch_size)
        }
    }

    /// The sample order of `epoch` (a seeded permutation when shuffling).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.cfg.shuffle {
            Rng::for_sample(self.cfg.seed, 0x5487, epoch).shuffle(&mut order);
        }
        order
    }

    /// Starts the workers for `epoch` and returns the batches in order.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        let order = self.order(epoch);
        let bs = self.cfg.batch_size;
        let batches: Arc<Vec<Vec<usize>>> = Arc::new(
            order
                .chunks(bs)
                .take(self.num_batches())
                .map(|c| c.to_vec())
                .collect(),
        );
        let workers = self.cfg.workers.max(1).min(batches.len().max(1));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel::<Result<Batch>>(self.cfg.prefetch.max(1));
            receivers.push(rx);
            let dataset = Arc::clone(&self.dataset);
            let transforms = Arc::clone(&self.transforms);
            let batches = Arc::clone(&batches);
            let pool = Arc::clone(&self.pool);
            let item_shape = self.item_shape.clone();
            let seed = self.cfg.seed;
            let h = std::thread::Builder::new()
                .name(format!("loader-{w}"))
                .spawn(move || {
                    let mut scratch = Vec::new();
                    for k in (w..batches.len()).step_by(workers) {
                        let n = batches[k].len() * item_shape.iter().product::<usize>();
                        let buffer = pool
                            .lock()
                            .ok()
                            .and_then(|mut p| {
                                p.iter()
                                    .position(|v| v.len() == n)
                                    .map(|i| p.swap_remove(i))
                            })
                            .unwrap_or_else(|| vec![0f32; n]);
                        let b = build_batch(
                            &*dataset,
                            &transforms,
                            &batches[k],
                            &item_shape,
                            seed,
                            epoch,
                            &mut scratch,
                            buffer,
                        );
                        let failed = b.is_err();
                        if tx.send(b).is_err() || failed {
                            return;
                        }
                    }
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    return Epoch {
                        receivers: Vec::new(),
                        handles,
                        next: 0,
                        total: 0,
                        start_error: Some(anyhow!("starting a loader thread: {e}")),
                    }
                }
            }
        }
        Epoch {
            receivers,
            handles,
            next: 0,
            total: batches.len(),
            start_error: None,
        }
    }
}

/// The batches of one epoch, in order. Dropping it stops the workers.
pub struct Epoch {
    receivers: Vec<Receiver<Result<Batch>>>,
    handles: Vec<JoinHandle<()>>,
    next: usize,
    total: usize,
    start_error: Option<anyhow::Error>,
}

impl Iterator for Epoch {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(e) = self.start_error.take() {
            return Some(Err(e));
        }
        if self.next >= self.total {
            return None;
        }
        let w = self.next % self.receivers.len();
        self.next += 1;
        match self.receivers[w].recv() {
            Ok(Ok(b)) => Some(Ok(b)),
            Ok(Err(e)) => {
                // The worker stopped after its error; end the epoch.
                self.total = self.next;
                Some(Err(e))
            }
            Err(_) => {
                self.total = self.next;
                Some(Err(anyhow!(
                    "loader worker {w} stopped unexpectedly (it panicked)"
                )))
            }
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let r = self.total - self.next;
        (r, Some(r))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        // Closing the queues makes blocked workers' sends fail, so they return.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Reads, transforms and stacks the samples `indices` into `buffer` (resized as needed).
/// When the transforms keep the input shape, samples are read and transformed in place in
/// the batch buffer; otherwise through `scratch`.
#[allow(clippy::too_many_arguments)]
pub fn build_batch<D: Dataset + ?Sized>(
    dataset: &D,
    transforms: &[Arc<dyn Transform>],
    indices: &[usize],
    item_shape: &[usize],
    seed: u64,
    epoch: u64,
    scratch: &mut Vec<f32>,
    mut buffer: Vec<f32>,
) -> Result<Batch> {
    let b = indices.len();
    let item: usize = item_shape.iter().product();
    let raw_shape = dataset.input_shape();
    let raw: usize = raw_shape.iter().product();
    buffer.resize(b * item, 0.0);
    let mut inputs = buffer;
    let in_place = raw_shape == item_shape;
    let mut targets = Vec::with_capacity(b);
    for (j, &i) in indices.iter().enumerate() {
        let work: &mut [f32] = if in_place {
            &mut inputs[j * item..(j + 1) * item]
        } else {
            scratch.resize(raw, 0.0);
            &mut scratch[..]
        };
        let mut target = dataset
            .get_into(i, work)
            .with_context(|| format!("sample {i}"))?;
        let mut shape = raw_shape.clone();
        let mut rng = Rng::for_sample(seed, 0x7AF0_0000 + epoch, i as u64);
        for t in transforms {
            t.apply(work, &mut shape, &mut target, &mut rng)
                .with_context(|| format!("transforming sample {i}"))?;
        }
        if shape != item_shape {
            bail!("sample {i}: transformed to {shape:?}, expected {item_shape:?}");
        }
        if !in_place {
            inputs[j * item..(j + 1) * item].copy_from_slice(&scratch[..item]);
        }
        targets.push(target);
    }
    let mut shape = vec![b];
    shape.extend_from_slice(item_shape);
    Ok(Batch {
        indices: indices.to_vec(),
        inputs: Tensor::from_f32(&shape, inputs)?,
        targets: stack_targets(targets, item_shape)?,
    })
}

/// Stacks the targets of one batch (all of one kind and shape). Class maps take the input's
/// `item_shape` when they have as many values, else a flat `[B, len]`.
pub fn stack_targets(targets: Vec<Target>, item_shape: &[usize]) -> Result<Option<Tensor>> {
    let b = targets.len();
    let Some(first) = targets.first() else {
        return Ok(None);
    };
    let kind = std::mem::discriminant(first);
    if targets.iter().any(|t| std::mem::discriminant(t) != kind) {
        bail!("the samples of a batch have targets of different kinds");
    }
    Ok(match first {
        Target::None => None,
        Target::Class(_) => Some(Tensor::from_i32(
            &[b],
            targets
                .iter()
                .map(|t| if let Target::Class(c) = t { *c } else { 0 })
                .collect(),
        )?),
        Target::ClassMap(m) => {
            let len = m.len();
            let mut v = Vec::with_capacity(b * len);
            for t in &targets {
                if let Target::ClassMap(m) = t {
                    if m.len() != len {
                        bail!("class maps of {} and {len} values in one batch", m.len());
                    }
                    v.extend_from_slice(m);
                }
            }
            let mut full = vec![b];
            if item_shape.iter().product::<usize>() == len {
                full.extend_from_slice(item_shape);
            } else {
                full.push(len);
            }
            Some(Tensor::from_i32(&full, v)?)
        }
        Target::Dense { shape, .. } => {
            let shape = shape.clone();
            let mut v = Vec::new();
            for t in &targets {
                if let Target::Dense { values, shape: s } = t {
                    if *s != shape {
                        bail!("dense targets of shapes {s:?} and {shape:?} in one batch");
                    }
                    v.extend_from_slice(values);
                }
            }
            let mut full = vec![b];
            full.extend_from_slice(&shape);
            Some(Tensor::from_f32(&full, v)?)
        }
        Target::Picks { .. } => {
            let mut v = Vec::with_capacity(2 * b);
            for t in &targets {
                if let Target::Picks { p, s } = t {
                    v.push(p.unwrap_or(-1.0));
                    v.push(s.unwrap_or(-1.0));
                }
            }
            Some(Tensor::from_f32(&[b, 2], v)?)
        }
    })
}
