//! GPU memory: the caching pool of device blocks and the pinned staging buffers of uploads,
//! each behind a lock in [`DeviceMemory`] (the logic is in `backend::caching`, tested there
//! without a GPU). None of this has run on a GPU yet: it compiles and its logic is tested on the
//! CPU against fake allocators.
//!
//! # Why reusing a block right after its tensor is dropped is safe
//!
//! Every kernel, memset and copy of a device runs on its one stream ([`CudaBackend::stream`]),
//! and a stream runs its work in the order it was queued. When the last tensor over a block
//! is dropped, work that reads or writes the block may still be queued; the block goes back to
//! the pool at once anyway. The next op that gets the block queues its own work on the same
//! stream, after that earlier work, so the GPU finishes with the old contents before it
//! touches the new ones. The host never touches device blocks directly (downloads wait for the
//! stream), so no host-side ordering is needed either. Raw frees go through `cuMemFreeAsync`
//! on the same stream, ordered the same way (or, without stream-ordered allocation, after a
//! stream synchronisation).
//!
//! # What must change for a second stream
//!
//! With work on two streams (copies overlapping compute, NCCL on its own stream over these
//! buffers), stream order no longer covers a block used on a stream other than the one it is
//! reused on. Then a release must record an event on every stream that used the block, and the
//! block may be handed out only after those events (`cuStreamWaitEvent` on the new user's
//! stream, or a query that it completed), as PyTorch's `record_stream` does. Today the NCCL
//! communicator (`dist::nccl`) uses its own buffers, never the pool's.
//!
//! # Uploads
//!
//! A host→device copy goes through a pinned staging buffer: the host writes the data into it,
//! the copy is queued with `cuMemcpyHtoDAsync` (from pinned memory, truly asynchronous, no
//! stream synchronisation), and an event recorded after the copy says when the buffer may be
//! written again. Uploads larger than [`STAGING_MAX_BYTES`] (model weights, once) are copied
//! from pageable memory instead, so that no large pinned buffer stays locked; so are uploads
//! when pinned memory cannot be had.

use super::CudaBackend;
use crate::backend::caching::{
    human, CachingPool, GraphId, PinnedHost, PoolStats, RawAllocator, RawError, StagingRing,
    StagingStats, STAGING_SLOTS,
};
use crate::backend::counters;
use crate::tensor::{CpuStorage, DType};
use anyhow::{anyhow, Result};
use cudarc::driver::result as cu;
use cudarc::driver::sys::{CUevent_flags, CUresult};
use cudarc::driver::{CudaContext, CudaEvent, CudaStream, DriverError};
use std::sync::{Arc, Mutex, MutexGuard};

/// Uploads above this size skip the pinned staging buffers.
pub const STAGING_MAX_BYTES: usize = 64 << 20;

/// Device blocks from the driver, stream-ordered when the device supports it.
pub struct DriverAllocator {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
}

fn driver_err(what: &str, e: DriverError) -> anyhow::Error {
    anyhow!("{what}: {e:?}")
}

/// Makes `ctx` current on the calling thread (raw driver calls need it).
fn bind(ctx: &CudaContext) -> Result<()> {
    ctx.bind_to_thread()
        .map_err(|e| driver_err("binding the CUDA context", e))
}

impl RawAllocator for DriverAllocator {
    type Block = u64;
    fn alloc(&mut self, bytes: usize) -> std::result::Result<u64, RawError> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| RawError::Other(driver_err("binding the CUDA context", e)))?;
        // SAFETY: the stream is live; the block is used only on this stream (module docs).
        let r = unsafe {
            if self.ctx.has_async_alloc() {
                cu::malloc_async(self.stream.cu_stream(), bytes)
            } else {
                cu::malloc_sync(bytes)
            }
        };
        r.map_err(|e| match e {
            DriverError(CUresult::CUDA_ERROR_OUT_OF_MEMORY) => RawError::OutOfMemory,
            e => RawError::Other(driver_err(&format!("allocating {}", human(bytes)), e)),
        })
    }
    fn free(&mut self, block: u64) -> Result<()> {
        bind(&self.ctx)?;
        // SAFETY: the pool frees a block once, after the last tensor over it was dropped; the
        // free is queued behind the work that used it (or waits for that work).
        unsafe {
            if self.ctx.has_async_alloc() {
                cu::free_async(block, self.stream.cu_stream())
                    .map_err(|e| driver_err("cuMemFreeAsync", e))
            } else {
                self.stream
                    .synchronize()
                    .map_err(|e| driver_err("cuStreamSynchronize", e))?;
                cu::free_sync(block).map_err(|e| driver_err("cuMemFree", e))
            }
        }
    }
}

/// A page-locked host buffer (write-combined: the host only writes it).
pub struct Pinned {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is plain memory owned by this value; access is serialised by the lock
// around the staging ring.
unsafe impl Send for Pinned {}

impl AsMut<[u8]> for Pinned {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `len` bytes of pinned memory owned by this value.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// Pinned host memory and events of one device's stream.
pub struct DriverPinned {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
}

impl PinnedHost for DriverPinned {
    type Buf = Pinned;
    type Event = CudaEvent;
    fn alloc(&mut self, bytes: usize) -> Result<Pinned> {
        bind(&self.ctx)?;
        // SAFETY: a fresh allocation; its contents are written before any copy reads them.
        let ptr =
            unsafe { cu::malloc_host(bytes, cudarc::driver::sys::CU_MEMHOSTALLOC_WRITECOMBINED) }
                .map_err(|e| driver_err(&format!("pinning {} of host memory", human(bytes)), e))?;
        Ok(Pinned {
            ptr: ptr as *mut u8,
            len: bytes,
        })
    }
    fn free(&mut self, buf: Pinned) -> Result<()> {
        // SAFETY: the ring frees a buffer only when no queued copy reads it.
        unsafe { cu::free_host(buf.ptr as *mut std::ffi::c_void) }
            .map_err(|e| driver_err("cuMemFreeHost", e))
    }
    fn new_event(&mut self) -> Result<CudaEvent> {
        self.ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DISABLE_TIMING))
            .map_err(|e| driver_err("cuEventCreate", e))
    }
    fn record(&mut self, e: &CudaEvent) -> Result<()> {
        e.record(&self.stream)
            .map_err(|e| driver_err("cuEventRecord", e))
    }
    fn done(&mut self, e: &CudaEvent) -> Result<bool> {
        e.try_is_complete()
            .map_err(|e| driver_err("cuEventQuery", e))
    }
    fn wait(&mut self, e: &CudaEvent) -> Result<()> {
        counters::count_host_sync();
        e.synchronize()
            .map_err(|e| driver_err("cuEventSynchronize", e))
    }
}

/// One device's memory: the block pool and the staging ring.
pub struct DeviceMemory {
    pool: Mutex<CachingPool<DriverAllocator>>,
    staging: Mutex<StagingRing<DriverPinned>>,
}

/// A snapshot of a device's memory (see [`CudaBackend::memory_stats`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryStats {
    pub pool: PoolStats,
    pub staging: StagingStats,
}

fn locked<'a, T>(m: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>> {
    m.lock()
        .map_err(|_| anyhow!("the {what} lock is poisoned (a thread panicked while holding it)"))
}

impl DeviceMemory {
    pub fn new(ctx: &Arc<CudaContext>, stream: &Arc<CudaStream>) -> Self {
        DeviceMemory {
            pool: Mutex::new(CachingPool::new(DriverAllocator {
                ctx: ctx.clone(),
                stream: stream.clone(),
            })),
            staging: Mutex::new(StagingRing::new(
                DriverPinned {
                    ctx: ctx.clone(),
                    stream: stream.clone(),
                },
                STAGING_SLOTS,
            )),
        }
    }

    /// A block of at least `bytes` bytes and its size class; only a block the driver had to
    /// allocate counts as an allocation (`counters`).
    pub fn alloc(&self, bytes: usize) -> Result<(u64, usize)> {
        let g = locked(&self.pool, "device memory pool")?.alloc(bytes)?;
        if g.fresh {
            counters::count_allocation();
        }
        Ok((g.block, g.class))
    }

    /// Takes a block back into the pool (from a tensor's drop: errors are dropped too, as a
    /// driver error here would surface again at the next launch).
    pub fn release(&self, block: u64, class: usize) {
        if let Ok(mut p) = self.pool.lock() {
            let _ = p.release(block, class);
        }
    }

    pub fn stats(&self) -> Result<MemoryStats> {
        Ok(MemoryStats {
            pool: locked(&self.pool, "device memory pool")?.stats(),
            staging: locked(&self.staging, "staging buffer")?.stats(),
        })
    }

    /// Frees the cached device blocks and the idle staging buffers; returns the bytes freed.
    pub fn trim(&self) -> Result<usize> {
        let d = locked(&self.pool, "device memory pool")?.trim()?;
        let h = locked(&self.staging, "staging buffer")?.trim()?;
        Ok(d + h)
    }

    /// Caps the bytes the pool keeps cached (`None`: no cap, the default).
    pub fn set_cache_limit(&self, limit: Option<usize>) -> Result<()> {
        locked(&self.pool, "device memory pool")?.set_cache_limit(limit)
    }

    /// Whether work is being captured into a CUDA graph (`cuda::graph`).
    pub fn capturing(&self) -> Result<bool> {
        Ok(locked(&self.pool, "device memory pool")?.capturing())
    }
    pub fn begin_capture(&self) -> Result<()> {
        locked(&self.pool, "device memory pool")?.begin_capture()
    }
    pub fn end_capture(&self) -> Result<GraphId> {
        locked(&self.pool, "device memory pool")?.end_capture()
    }
    pub fn abort_capture(&self) -> Result<()> {
        locked(&self.pool, "device memory pool")?.abort_capture();
        Ok(())
    }
    pub fn drop_graph(&self, id: GraphId) -> Result<()> {
        locked(&self.pool, "device memory pool")?.drop_graph(id)
    }

    /// Queues a copy of `src` into device address `dst` on `stream`, through a staging buffer
    /// (see the module documentation).
    fn copy_in(&self, stream: &CudaStream, dst: u64, src: &[u8]) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        if self.capturing()? {
            // A graph would copy from the staging buffer's address at every replay, long after
            // the buffer was reused.
            anyhow::bail!(
                "an upload of {} from the host inside work being captured into a CUDA graph: \
                 a captured step must find its inputs on the device (upload them before the \
                 replay, into tensors made before the capture)",
                human(src.len())
            );
        }
        if src.len() <= STAGING_MAX_BYTES {
            let mut ring = locked(&self.staging, "staging buffer")?;
            let before = ring.stats().allocations;
            if let Ok((i, buf)) = ring.acquire(src.len()) {
                buf.copy_from_slice(src);
                // SAFETY: `buf` is pinned memory that no queued copy reads, and it stays
                // unwritten until the event recorded by `submit` has completed; `dst` is a live
                // block of at least src.len() bytes used on this stream.
                unsafe { cu::memcpy_htod_async(dst, &*buf, stream.cu_stream()) }
                    .map_err(|e| driver_err("cuMemcpyHtoDAsync", e))?;
                ring.submit(i)?;
                if ring.stats().allocations > before {
                    counters::count_allocation();
                }
                return Ok(());
            }
            // No pinned memory to be had: fall through to a pageable copy.
        }
        // SAFETY: `dst` holds src.len() bytes; from pageable memory the call returns once
        // `src` has been read, so it may be freed afterwards.
        unsafe { cu::memcpy_htod_async(dst, src, stream.cu_stream()) }
            .map_err(|e| driver_err("cuMemcpyHtoDAsync", e))
    }
}

/// A host buffer's elements `start .. start + len` as bytes.
pub(crate) fn host_bytes(c: &CpuStorage, start: usize, len: usize) -> &[u8] {
    let r = start..start + len;
    match c {
        CpuStorage::F32(v) => bytemuck::cast_slice(&v[r]),
        CpuStorage::BF16(v) => bytemuck::cast_slice(&v[r]),
        CpuStorage::I32(v) => bytemuck::cast_slice(&v[r]),
    }
}

fn host_bytes_mut(c: &mut CpuStorage) -> &mut [u8] {
    match c {
        CpuStorage::F32(v) => bytemuck::cast_slice_mut(v),
        CpuStorage::BF16(v) => bytemuck::cast_slice_mut(v),
        CpuStorage::I32(v) => bytemuck::cast_slice_mut(v),
    }
}

/// A device buffer of `len` elements of one dtype: a block of the device's pool, given back to
/// the pool when dropped (see the module documentation for why that is safe).
#[derive(Debug)]
pub struct CudaStorage {
    pub backend: Arc<CudaBackend>,
    ptr: u64,
    len: usize,
    dtype: DType,
    class: usize,
}

impl Drop for CudaStorage {
    fn drop(&mut self) {
        self.backend.memory.release(self.ptr, self.class);
    }
}

impl CudaStorage {
    /// A buffer of `len` elements from `backend`'s pool; its contents are undefined.
    pub fn uninit(backend: &Arc<CudaBackend>, dtype: DType, len: usize) -> Result<Self> {
        let bytes = len
            .checked_mul(dtype.size_bytes())
            .ok_or_else(|| anyhow!("a buffer of {len} {dtype} elements overflows"))?;
        let (ptr, class) = backend.memory.alloc(bytes)?;
        Ok(CudaStorage {
            backend: backend.clone(),
            ptr,
            len,
            dtype,
            class,
        })
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The device address of the first element.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
    fn bytes_at(&self, start: usize, len: usize) -> Result<(u64, usize)> {
        if start.checked_add(len).is_none_or(|e| e > self.len) {
            anyhow::bail!(
                "elements {start}..{} are outside a device buffer of {}",
                start.saturating_add(len),
                self.len
            );
        }
        let s = self.dtype.size_bytes();
        Ok((self.ptr + (start * s) as u64, len * s))
    }

    /// Elements `start .. start + len` copied to the host (waits for the stream: a host sync).
    pub fn download_range(&self, start: usize, len: usize) -> Result<CpuStorage> {
        let (src, _) = self.bytes_at(start, len)?;
        let mut out = CpuStorage::zeros(self.dtype, len);
        let b = &self.backend;
        b.refuse_host_wait()?;
        b.bind()?;
        counters::count_host_sync();
        // SAFETY: `src` is a range of a live block; `out` has room for it; the stream is
        // synchronised before `out` is read.
        unsafe { cu::memcpy_dtoh_async(host_bytes_mut(&mut out), src, b.stream.cu_stream()) }
            .map_err(|e| driver_err("cuMemcpyDtoHAsync", e))?;
        b.synchronize()?;
        Ok(out)
    }

    /// Elements `start .. start + len` copied into a new buffer on the same device.
    pub fn clone_range(&self, start: usize, len: usize) -> Result<Self> {
        let (src, bytes) = self.bytes_at(start, len)?;
        let out = CudaStorage::uninit(&self.backend, self.dtype, len)?;
        if bytes > 0 {
            self.backend.bind()?;
            // SAFETY: both ranges lie in live blocks of this device; stream-ordered.
            unsafe { cu::memcpy_dtod_async(out.ptr, src, bytes, self.backend.stream.cu_stream()) }
                .map_err(|e| driver_err("cuMemcpyDtoDAsync", e))?;
            counters::count_launch();
        }
        Ok(out)
    }
}

impl CudaBackend {
    /// Makes this device's context current on the calling thread (raw driver calls need it;
    /// a thread other than the one that made the backend, such as a loader's, may not have it).
    pub fn bind(&self) -> Result<()> {
        bind(&self.ctx)
    }

    /// A zero-filled buffer of `n` elements (a pool block and one memset).
    pub fn zeros(self: &Arc<Self>, dtype: DType, n: usize) -> Result<CudaStorage> {
        let s = CudaStorage::uninit(self, dtype, n)?;
        if n > 0 {
            self.bind()?;
            // SAFETY: the block holds n elements; stream-ordered.
            unsafe {
                cu::memset_d8_async(s.ptr, 0, n * dtype.size_bytes(), self.stream.cu_stream())
            }
            .map_err(|e| driver_err("cuMemsetD8Async", e))?;
            counters::count_launch();
        }
        Ok(s)
    }

    /// Elements `start .. start + len` of a host buffer in a new device buffer, copied through
    /// a pinned staging buffer (no host synchronisation).
    pub fn upload_range(
        self: &Arc<Self>,
        c: &CpuStorage,
        start: usize,
        len: usize,
    ) -> Result<CudaStorage> {
        let s = CudaStorage::uninit(self, c.dtype(), len)?;
        self.bind()?;
        self.memory
            .copy_in(&self.stream, s.ptr, host_bytes(c, start, len))?;
        Ok(s)
    }

    /// A whole host buffer in a new device buffer (see [`CudaBackend::upload_range`]).
    pub fn upload(self: &Arc<Self>, c: &CpuStorage) -> Result<CudaStorage> {
        self.upload_range(c, 0, c.len())
    }

    /// What the memory pool and the staging buffers hold and have done.
    pub fn memory_stats(&self) -> Result<MemoryStats> {
        self.memory.stats()
    }

    /// Gives the cached device blocks and idle staging buffers back to the driver (the pool
    /// does this by itself once when an allocation finds the device full); returns the bytes
    /// freed.
    pub fn trim_memory(&self) -> Result<usize> {
        self.memory.trim()
    }

    /// Caps the bytes the memory pool keeps cached (`None`: no cap, the default).
    pub fn set_memory_cache_limit(&self, limit: Option<usize>) -> Result<()> {
        self.memory.set_cache_limit(limit)
    }
}
