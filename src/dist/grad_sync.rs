//! The data-parallel gradient all-reduce of a training step, overlapped with the backward
//! pass: the model declares gradients final as it goes ([`Grads::mark_final`], after each
//! transformer block), [`GradSync`] turns them into ready buckets (reverse layer order, the
//! plan of [`DataParallel`]) and reduces each bucket as soon as it is ready; [`GradSync::finish`]
//! reduces what is left (embeddings, the feature extractor) and averages.
//!
//! Two paths, chosen by where the gradients live and what the communicator is:
//! - **Device (NCCL, gradients on the GPU)**: a ready bucket's all-reduce is enqueued on the
//!   communicator's own stream after an event of the compute stream (so it waits for that
//!   bucket's gradient kernels only), in place on the flat gradient buffer; the backward pass
//!   goes on on the compute stream meanwhile. `finish` makes the compute stream wait for the
//!   communication stream and divides by the number of ranks there. No host synchronisation.
//!   With `GradWire::Bf16` a bucket is cast to a bf16 scratch on the compute stream, reduced in
//!   bf16 and widened back at `finish`.
//! - **Host (TCP between CPU processes, or a GPU without NCCL)**: each ready bucket is copied to
//!   the host, reduced by the communicator and written back, at once (on the CPU backward and
//!   communication take turns; the order and the buckets are the same as on GPUs).
//!
//! ```text
//! sync.begin_step();
//! grads.watch(Box::new(sync));           // last micro-batch only: earlier ones accumulate
//! backward pass (models call grads.mark_final() after each block)
//! let mut sync = grads.unwatch()...;     // back from the watch
//! sync.finish(grads.flat()?)?;            // the rest; the average is in the buffer
//! ```

use super::comm::Communicator;
use super::data_parallel::{DataParallel, DpConfig, GradWire};
use super::nccl_lib::{DataType, RawStream};
use crate::nn::store::GradWatch;
use crate::ops;
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Context, Result};
use std::ops::Range;

/// When a bucket was reduced, for the log and the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launched {
    /// During the backward pass (overlapped with it on a GPU).
    DuringBackward,
    /// At [`GradSync::finish`].
    AtFinish,
}

/// The gradient all-reduce of one rank; see the module documentation.
pub struct GradSync {
    comm: Box<dyn Communicator>,
    dp: DataParallel,
    /// Start and end (elements) of every parameter of the layout, by layout index, and the
    /// indices sorted by start.
    spans: Vec<Range<usize>>,
    by_start: Vec<usize>,
    /// Buckets reduced this step, in order.
    launched: Vec<(usize, Launched)>,
    /// bf16 copies of buckets in flight on the device (bucket, scratch).
    in_flight: Vec<(usize, Tensor)>,
}

impl std::fmt::Debug for GradSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GradSync {{ {} rank {} of {}, {} buckets }}",
            self.comm.backend(),
            self.comm.rank(),
            self.comm.world_size(),
            self.dp.plan().len()
        )
    }
}

impl GradSync {
    /// `spans[i]` is parameter `i`'s element range in the flat gradient buffer (the layout
    /// the bucket plan of `dp` was made from).
    pub fn new(
        comm: Box<dyn Communicator>,
        layout: &[super::buckets::ParamSlot],
        cfg: DpConfig,
    ) -> Result<Self> {
        let dp = DataParallel::new(layout, cfg)?;
        let spans: Vec<Range<usize>> = layout.iter().map(|p| p.offset..p.offset + p.len).collect();
        let mut by_start: Vec<usize> = (0..spans.len()).collect();
        by_start.sort_by_key(|&i| spans[i].start);
        Ok(GradSync {
            comm,
            dp,
            spans,
            by_start,
            launched: Vec::new(),
            in_flight: Vec::new(),
        })
    }

    pub fn comm(&mut self) -> &mut dyn Communicator {
        self.comm.as_mut()
    }

    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    /// Starts a step: every bucket is pending again.
    pub fn begin_step(&mut self) {
        self.dp.begin_step();
        self.launched.clear();
        self.in_flight.clear();
    }

    /// The buckets reduced in the last step, in order, and when.
    pub fn launched(&self) -> &[(usize, Launched)] {
        &self.launched
    }

    /// The layout indices of the parameters that lie in `ranges`, each once.
    fn params_in(&self, ranges: &[Range<usize>]) -> Vec<usize> {
        let mut out = Vec::new();
        for r in ranges {
            // The first parameter starting at or after r.start, then while inside r.
            let from = self
                .by_start
                .partition_point(|&i| self.spans[i].start < r.start);
            for &i in &self.by_start[from..] {
                let s = &self.spans[i];
                if s.start >= r.end {
                    break;
                }
                if s.end <= r.end && !s.is_empty() {
                    out.push(i);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Reduces the buckets not reduced yet, then leaves the average over the ranks in
    /// `flat` (on a GPU: queued on its compute stream, after the communication).
    pub fn finish(&mut self, flat: &Tensor) -> Result<()> {
        for b in self.dp.finish_backward() {
            self.reduce(flat, b, Launched::AtFinish)?;
        }
        if self.device_path(flat) {
            self.finish_device(flat)?;
        }
        Ok(())
    }

    fn device_path(&mut self, flat: &Tensor) -> bool {
        !flat.is_cpu() && self.comm.as_nccl().is_some()
    }

    fn reduce(&mut self, flat: &Tensor, bucket: usize, when: Launched) -> Result<()> {
        let range = self.dp.bucket_range(bucket)?;
        if range.end > flat.numel() {
            bail!(
                "bucket {bucket} ({range:?}) reaches past the gradient buffer's {} elements",
                flat.numel()
            );
        }
        if self.device_path(flat) {
            self.reduce_device(flat, bucket, range)?;
        } else {
            let mut view = flat.view(range.start, &[range.len()])?;
            let mut host = view.to_vec_f32()?;
            self.dp
                .reduce_values(self.comm.as_mut(), &mut host)
                .with_context(|| format!("all-reducing gradient bucket {bucket}"))?;
            write_into(&mut view, &host)?;
        }
        self.launched.push((bucket, when));
        Ok(())
    }

    /// Enqueues bucket `bucket`'s all-reduce on the communication stream, after the compute
    /// stream's work so far (which wrote its gradients).
    fn reduce_device(&mut self, flat: &Tensor, bucket: usize, range: Range<usize>) -> Result<()> {
        let crate::backend::Device::Cuda(backend) = flat.device() else {
            bail!("the device path needs gradients on a GPU");
        };
        let wire = self.dp.config().wire;
        let view = flat.view(range.start, &[range.len()])?;
        // The bf16 copy is made on the compute stream, before the communication stream waits.
        let (buf, dtype) = match wire {
            GradWire::F32 => (view, DataType::F32),
            GradWire::Bf16 => (ops::cast(&view, DType::BF16)?, DataType::Bf16),
        };
        let ptr = backend.address(&buf)?;
        let nccl = self.comm.as_nccl().expect("device path checked");
        // NCCL enqueues on the device current on this thread: make it this GPU's.
        nccl.context()
            .bind_to_thread()
            .map_err(|e| anyhow::anyhow!("binding cuda:{}: {e:?}", nccl.device()))?;
        let comm_stream = nccl.stream().clone();
        comm_stream
            .join(&backend.stream)
            .map_err(|e| anyhow::anyhow!("ordering bucket {bucket} after its gradients: {e:?}"))?;
        // SAFETY: `buf` is a live range of `range.len()` elements of `dtype` on this GPU; the
        // flat buffer outlives the step and bf16 scratch is kept in `in_flight` until the
        // compute stream has waited for the communication stream (`finish_device`); nothing
        // writes these gradients until then (they are final). Every rank launches the same
        // buckets in the same order (the plan is the same, checked at start).
        unsafe {
            nccl.all_reduce_sum_device(
                ptr,
                range.len(),
                dtype,
                comm_stream.cu_stream() as RawStream,
            )
        }
        .with_context(|| format!("all-reducing gradient bucket {bucket} over NCCL"))?;
        if wire == GradWire::Bf16 {
            self.in_flight.push((bucket, buf));
        }
        Ok(())
    }

    /// The compute stream waits for the communication; bf16 buckets are widened back; the
    /// sums become averages.
    fn finish_device(&mut self, flat: &Tensor) -> Result<()> {
        let crate::backend::Device::Cuda(backend) = flat.device() else {
            bail!("the device path needs gradients on a GPU");
        };
        let nccl = self.comm.as_nccl().expect("device path checked");
        backend
            .stream
            .join(nccl.stream())
            .map_err(|e| anyhow::anyhow!("waiting for the gradient all-reduce: {e:?}"))?;
        for (bucket, scratch) in std::mem::take(&mut self.in_flight) {
            let range = self.dp.bucket_range(bucket)?;
            let mut view = flat.view(range.start, &[range.len()])?;
            let wide = ops::cast(&scratch, DType::F32)?;
            flat.device().backend().copy(&mut view, &wide)?;
        }
        let scale = self.dp.post_scale(self.comm.world_size());
        if scale != 1.0 {
            let mut all = flat.clone();
            ops::scale_assign(&mut all, scale)?;
        }
        Ok(())
    }
}

impl GradWatch for GradSync {
    fn ready(&mut self, flat: &Tensor, ranges: &[Range<usize>]) -> Result<()> {
        let params = self.params_in(ranges);
        for b in self.dp.ready(&params)? {
            self.reduce(flat, b, Launched::DuringBackward)?;
        }
        Ok(())
    }
}

/// Writes host values into a (CPU or device) view in place.
pub fn write_into(t: &mut Tensor, v: &[f32]) -> Result<()> {
    if t.is_cpu() {
        return t.write_f32(v);
    }
    let up = Tensor::from_f32(&t.shape, v.to_vec())?
        .to_dtype(t.dtype)?
        .to_device(&t.device())?;
    t.device().backend().copy(t, &up)
}
