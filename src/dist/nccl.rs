//! The NCCL communicator: rank 0's unique id travels over the TCP rendezvous, then NCCL
//! carries the collectives between the GPUs (NVLink, PCIe, InfiniBand, sockets: NCCL picks).
//!
//! Two ways in:
//! - [`NcclCommunicator::all_reduce_sum_device`]: the GPU trainer's path. In place on device
//!   memory, enqueued on a stream the caller chooses (the communication stream, after an
//!   event recorded on the compute stream when a bucket's gradients are final), without
//!   waiting. This is where the gradient buckets go.
//! - The [`Communicator`] trait's host-slice methods: copy to the device, reduce, copy back
//!   and wait (with a timeout that watches NCCL's asynchronous errors). For metrics, the
//!   parameter broadcast at start, and tests; barrier and byte broadcast use the TCP links.

use super::comm::Communicator;
use super::nccl_lib::{DataType, NcclLib, RawComm, RawStream};
use super::rendezvous::Rendezvous;
use crate::backend::cuda::discover;
use anyhow::{bail, Context, Result};
use cudarc::driver::{CudaContext, CudaStream, DevicePtrMut, DeviceRepr};
use half::bf16;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// GPUs the driver reports (0 without a driver); never panics.
pub fn gpu_count() -> usize {
    if !discover::driver_present() {
        return 0;
    }
    CudaContext::device_count().unwrap_or(0).max(0) as usize
}

/// A communicator of one rank over NCCL, on one GPU.
pub struct NcclCommunicator {
    lib: &'static NcclLib,
    comm: RawComm,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    rdv: Rendezvous,
    device: usize,
    /// How long a host-side wait for a collective may take before the communicator is
    /// aborted (a peer that died leaves NCCL waiting forever otherwise).
    pub timeout: Duration,
}

// SAFETY: the NCCL communicator is used from one thread at a time (methods take &mut self or
// only enqueue); NCCL allows a communicator to move between threads.
unsafe impl Send for NcclCommunicator {}

impl std::fmt::Debug for NcclCommunicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NcclCommunicator {{ rank {} of {}, cuda:{}, {:?} }}",
            self.rdv.rank(),
            self.rdv.world_size(),
            self.device,
            self.lib
        )
    }
}

impl NcclCommunicator {
    /// Opens NCCL on `cuda:device` for the ranks of `rdv` (every rank calls this together).
    pub fn new(mut rdv: Rendezvous, device: usize) -> Result<Self> {
        let lib = NcclLib::global()?;
        if !discover::driver_present() {
            bail!("NCCL needs the CUDA driver (libcuda.so.1), which was not found");
        }
        let (rank, world) = (rdv.rank(), rdv.world_size());
        let ctx = CudaContext::new(device).with_context(|| {
            format!("rank {rank}: opening cuda:{device} for NCCL (each rank uses cuda:LOCAL_RANK; does this node have that many GPUs?)")
        })?;
        ctx.bind_to_thread()?;
        let stream = ctx.new_stream()?;
        let mut id = [0u8; 128];
        if rank == 0 {
            id = lib.unique_id()?;
        }
        rdv.broadcast(&mut id, 0)
            .context("sending NCCL's unique id from rank 0")?;
        // SAFETY: the device is current on this thread (bind_to_thread above).
        let comm = unsafe { lib.comm_init_rank(world, &id, rank)? };
        Ok(NcclCommunicator {
            lib,
            comm,
            ctx,
            stream,
            rdv,
            device,
            timeout: Duration::from_secs(1800),
        })
    }

    /// The communicator's own stream (host-slice methods run on it).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    pub fn device(&self) -> usize {
        self.device
    }

    pub fn lib(&self) -> &'static NcclLib {
        self.lib
    }

    /// Enqueues an in-place sum of `count` elements at device address `ptr` on `stream`
    /// (the trainer's communication stream) and returns without waiting.
    ///
    /// # Safety
    /// `ptr` must point to at least `count` elements of `dtype` on this communicator's
    /// device, not written by other work until `stream` has run the all-reduce; `stream` must
    /// belong to this device's context. Every rank must enqueue the same all-reduces in the
    /// same order.
    pub unsafe fn all_reduce_sum_device(
        &self,
        ptr: u64,
        count: usize,
        dtype: DataType,
        stream: RawStream,
    ) -> Result<()> {
        if dtype == DataType::Bf16 && !self.lib.has_bf16() {
            bail!(
                "NCCL {} cannot reduce bf16 (2.10 or newer can); communicate gradients in fp32",
                self.lib.version_string()
            );
        }
        self.lib
            .all_reduce_sum(self.comm, ptr, count, dtype, stream)
    }

    /// Waits for the communicator's stream, watching NCCL's asynchronous errors; fails after
    /// `timeout` (a rank that died leaves the others' NCCL waiting forever otherwise).
    pub fn synchronize(&mut self, what: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            // SAFETY: querying a live stream of the current context.
            let rc = unsafe { cudarc::driver::sys::cuStreamQuery(self.stream.cu_stream()) };
            match rc {
                cudarc::driver::sys::cudaError_enum::CUDA_SUCCESS => return Ok(()),
                cudarc::driver::sys::cudaError_enum::CUDA_ERROR_NOT_READY => {}
                other => bail!(
                    "rank {}: CUDA error {other:?} during NCCL {what}",
                    self.rdv.rank()
                ),
            }
            // SAFETY: the communicator is live until drop.
            unsafe { self.lib.async_error(self.comm) }
                .with_context(|| format!("rank {}: NCCL {what}", self.rdv.rank()))?;
            if start.elapsed() > self.timeout {
                bail!(
                    "rank {}: NCCL {what} did not finish within {:.0} s: another rank is stuck or gone (its log says why)",
                    self.rdv.rank(),
                    self.timeout.as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    fn host_all_reduce<T: DeviceRepr + Copy>(
        &mut self,
        buf: &mut [T],
        dtype: DataType,
    ) -> Result<()> {
        self.through_device(buf, "all-reduce", |c, ptr, len, stream| {
            // SAFETY: `ptr` holds `len` elements on this device and outlives the wait in
            // `through_device`.
            unsafe { c.all_reduce_sum_device(ptr, len, dtype, stream) }
        })
    }

    /// A collective on host memory: copies `buf` to the device, runs `op(self, device pointer,
    /// elements, stream)` there, waits for it (`what` names it in a timeout) and copies the
    /// result back.
    fn through_device<T: DeviceRepr + Copy>(
        &mut self,
        buf: &mut [T],
        what: &str,
        op: impl FnOnce(&Self, u64, usize, RawStream) -> Result<()>,
    ) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.ctx.bind_to_thread()?;
        let mut d = self.stream.clone_htod(&*buf)?;
        {
            let (ptr, _sync) = d.device_ptr_mut(&self.stream);
            op(self, ptr, buf.len(), self.stream.cu_stream() as RawStream)?;
        }
        self.synchronize(what)?;
        self.stream.memcpy_dtoh(&d, buf)?;
        self.stream.synchronize()?;
        Ok(())
    }
}

impl Drop for NcclCommunicator {
    fn drop(&mut self) {
        // SAFETY: the communicator is not used after this; abort does not wait for peers.
        unsafe { self.lib.abort(self.comm) };
    }
}

impl Communicator for NcclCommunicator {
    super::comm::from_rendezvous!();
    fn backend(&self) -> &'static str {
        "nccl"
    }
    fn all_reduce_sum_f32(&mut self, buf: &mut [f32]) -> Result<()> {
        self.host_all_reduce(buf, DataType::F32)
    }
    fn all_reduce_sum_f64(&mut self, buf: &mut [f64]) -> Result<()> {
        self.host_all_reduce(buf, DataType::F64)
    }
    fn all_reduce_sum_bf16(&mut self, buf: &mut [bf16]) -> Result<()> {
        let bits: &mut [u16] = bytemuck::cast_slice_mut(buf);
        self.host_all_reduce(bits, DataType::Bf16)
    }
    fn broadcast_f32(&mut self, buf: &mut [f32], root: usize) -> Result<()> {
        self.through_device(buf, "broadcast", |c, ptr, len, stream| {
            // SAFETY: as in host_all_reduce.
            unsafe {
                c.lib
                    .broadcast(c.comm, ptr, len, DataType::F32, root, stream)
            }
        })
    }
    fn as_nccl(&mut self) -> Option<&mut NcclCommunicator> {
        Some(self)
    }
}
