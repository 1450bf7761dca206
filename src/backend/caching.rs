//! The logic of the CUDA backend's memory, written against two small traits so that it runs and
//! is tested without a GPU:
//!
//! - [`CachingPool`]: a caching allocator over a [`RawAllocator`] (the CUDA driver in
//!   `backend::cuda::memory`, a fake in the tests below). A request is rounded up to a size
//!   class ([`size_class`]); a block given back is kept in a free list of its class and handed
//!   out again for the next request of that class. Only a miss reaches the raw allocator, so
//!   once a training step has run with the same shapes, the next step allocates nothing. When
//!   the raw allocator reports that memory is exhausted, the pool frees every cached block and
//!   tries once more.
//! - [`StagingRing`]: page-locked (pinned) host buffers for uploads. A host→device copy goes
//!   through one of them: the data is written into the buffer, the copy is queued on the stream,
//!   and an event recorded after it says when the buffer may be written again. Buffers are
//!   reused, not freed, so a steady stream of batches allocates no pinned memory either.
//!
//! The pool also keeps the blocks of captured CUDA graphs apart ([`CachingPool::begin_capture`]):
//! a graph replays its kernels on the addresses they had when it was captured, so a block the
//! captured work used must not go to anyone else while the graph lives.
//!
//! Neither knows about streams: the caller is responsible for the ordering argument (see
//! `backend::cuda::memory` for why reuse in stream order is safe on one stream).

use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashMap};

/// The smallest block and the granularity of small blocks, in bytes.
pub const MIN_BLOCK: usize = 512;

/// Large classes are multiples of this (2 MiB, the driver's own granularity for large blocks).
pub const LARGE_STEP: usize = 2 << 20;

/// The size class a request of `bytes` is served from: at least [`MIN_BLOCK`]; up to 4 KiB a
/// multiple of 512 B; above, eight classes per power of two, but never coarser than
/// [`LARGE_STEP`] (so a class wastes less than 1/8 of the request, and less than 2 MiB for a
/// large one such as a model's flat parameter buffer). Every class is a multiple of 512 B, so
/// blocks stay aligned.
pub fn size_class(bytes: usize) -> usize {
    if bytes <= 4096 {
        return bytes.max(1).div_ceil(MIN_BLOCK) * MIN_BLOCK;
    }
    // p < bytes <= 2p, p a power of two
    let p = 1usize << (usize::BITS - 1 - (bytes - 1).leading_zeros());
    let step = (p / 8).clamp(MIN_BLOCK, LARGE_STEP);
    bytes.div_ceil(step) * step
}

/// Why a raw allocation failed.
#[derive(Debug)]
pub enum RawError {
    /// The device has no room for the block (the pool then frees its cache and retries once).
    OutOfMemory,
    /// Anything else (a driver error), passed on.
    Other(anyhow::Error),
}

/// A device's own allocator, under the pool.
pub trait RawAllocator {
    /// A block's handle (a device address for CUDA).
    type Block: Copy + Eq + std::hash::Hash + std::fmt::Debug;
    /// A new block of exactly `bytes` bytes (a size class).
    fn alloc(&mut self, bytes: usize) -> std::result::Result<Self::Block, RawError>;
    /// Gives a block back to the device.
    fn free(&mut self, block: Self::Block) -> Result<()>;
}

/// What the pool has done so far and holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Blocks obtained from the raw allocator (the only allocations a device sees).
    pub raw_allocations: u64,
    /// Blocks given back to the raw allocator (by [`CachingPool::trim`] or the cache limit).
    pub raw_frees: u64,
    /// Requests served from the cache.
    pub reuses: u64,
    /// Raw allocations that failed for want of memory and were retried after a trim.
    pub oom_retries: u64,
    /// Bytes in blocks handed out and not yet given back (rounded to their classes).
    pub live_bytes: usize,
    /// Bytes in cached blocks, free for reuse.
    pub cached_bytes: usize,
    /// The most bytes the pool has held from the device at once (live + cached + graph).
    pub peak_bytes: usize,
    /// Bytes in blocks that live graphs use and no tensor holds: neither cached for reuse nor
    /// freed until their graph is dropped.
    pub graph_bytes: usize,
}

/// A graph captured over the pool's blocks ([`CachingPool::end_capture`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GraphId(u64);

/// The blocks of captured graphs and of the capture in progress.
struct Graphs<B> {
    /// Blocks handed out or given back since `begin_capture`, with their classes (a block may
    /// repeat).
    capturing: Option<Vec<(B, usize)>>,
    /// Every block a live graph uses, and that graph.
    owner: HashMap<B, GraphId>,
    /// Per graph, its blocks that no tensor holds.
    idle: BTreeMap<GraphId, Vec<(B, usize)>>,
    next: u64,
}

/// A block handed out by the pool: give it back with [`CachingPool::release`] and its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant<B> {
    pub block: B,
    /// The block's size in bytes (the request's size class).
    pub class: usize,
    /// True when the block came from the raw allocator, false when it was reused.
    pub fresh: bool,
}

/// A caching allocator: free lists per size class over a [`RawAllocator`].
pub struct CachingPool<A: RawAllocator> {
    raw: A,
    free: BTreeMap<usize, Vec<A::Block>>,
    stats: PoolStats,
    /// At most this many cached bytes; a block given back beyond it goes to the raw allocator.
    limit: Option<usize>,
    graphs: Graphs<A::Block>,
}

impl<A: RawAllocator> CachingPool<A> {
    pub fn new(raw: A) -> Self {
        CachingPool {
            raw,
            free: BTreeMap::new(),
            stats: PoolStats::default(),
            limit: None,
            graphs: Graphs {
                capturing: None,
                owner: HashMap::new(),
                idle: BTreeMap::new(),
                next: 0,
            },
        }
    }

    /// The raw allocator (for its own state, such as a stream).
    pub fn raw(&self) -> &A {
        &self.raw
    }

    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Caps the cached bytes (`None`: keep every block, the default); trims down to the cap now.
    pub fn set_cache_limit(&mut self, limit: Option<usize>) -> Result<()> {
        self.limit = limit;
        if let Some(l) = limit {
            self.trim_to(l)?;
        }
        Ok(())
    }

    /// A block of at least `bytes` bytes: a cached one of the same class when there is one,
    /// else a new one (after a trim and a second try when the device is out of memory).
    pub fn alloc(&mut self, bytes: usize) -> Result<Grant<A::Block>> {
        let class = size_class(bytes);
        if let Some(block) = self.free.get_mut(&class).and_then(Vec::pop) {
            self.stats.reuses += 1;
            self.stats.cached_bytes -= class;
            self.stats.live_bytes += class;
            if let Some(log) = &mut self.graphs.capturing {
                log.push((block, class));
            }
            return Ok(Grant {
                block,
                class,
                fresh: false,
            });
        }
        if self.graphs.capturing.is_some() {
            bail!(
                "the work being captured into a CUDA graph asked for a new device block of {} \
                 (the pool had none of that size): run the step once, uncaptured, before \
                 capturing it, so that every block it needs is cached",
                human(class)
            );
        }
        let block = match self.raw.alloc(class) {
            Ok(b) => b,
            Err(RawError::Other(e)) => return Err(e),
            Err(RawError::OutOfMemory) => {
                self.stats.oom_retries += 1;
                let freed = self.trim()?;
                match self.raw.alloc(class) {
                    Ok(b) => b,
                    Err(RawError::Other(e)) => return Err(e),
                    Err(RawError::OutOfMemory) => bail!(
                        "out of device memory: a block of {} was refused with {} in use by tensors \
                         (the cache of {} was freed before the second try); use a smaller batch",
                        human(class),
                        human(self.stats.live_bytes),
                        human(freed)
                    ),
                }
            }
        };
        self.stats.raw_allocations += 1;
        self.stats.live_bytes += class;
        self.stats.peak_bytes = self
            .stats
            .peak_bytes
            .max(self.stats.live_bytes + self.stats.cached_bytes + self.stats.graph_bytes);
        Ok(Grant {
            block,
            class,
            fresh: true,
        })
    }

    /// Takes back a block handed out with size class `class`: it is cached for reuse, or freed
    /// when the cache limit would be exceeded; a block a live graph uses is kept for the graph.
    pub fn release(&mut self, block: A::Block, class: usize) -> Result<()> {
        self.stats.live_bytes = self.stats.live_bytes.saturating_sub(class);
        if let Some(&g) = self.graphs.owner.get(&block) {
            self.graphs.idle.entry(g).or_default().push((block, class));
            self.stats.graph_bytes += class;
            return Ok(());
        }
        if let Some(log) = &mut self.graphs.capturing {
            // The captured work may have read it before its last tensor went: the graph keeps it.
            log.push((block, class));
        }
        self.cache(block, class)
    }

    /// Caches a free block, or frees it beyond the cache limit (never while capturing: a free
    /// would be captured too).
    fn cache(&mut self, block: A::Block, class: usize) -> Result<()> {
        if self.graphs.capturing.is_none()
            && self
                .limit
                .is_some_and(|l| self.stats.cached_bytes + class > l)
        {
            self.stats.raw_frees += 1;
            return self.raw.free(block);
        }
        self.free.entry(class).or_default().push(block);
        self.stats.cached_bytes += class;
        Ok(())
    }

    /// Frees every cached block; returns the bytes given back to the device.
    pub fn trim(&mut self) -> Result<usize> {
        self.trim_to(0)
    }

    /// Frees cached blocks, largest first, until at most `keep` cached bytes remain.
    fn trim_to(&mut self, keep: usize) -> Result<usize> {
        if self.graphs.capturing.is_some() {
            bail!("device memory cannot be freed while work is being captured into a CUDA graph");
        }
        let mut freed = 0;
        while self.stats.cached_bytes > keep {
            let Some(mut e) = self.free.last_entry() else {
                break;
            };
            let class = *e.key();
            match e.get_mut().pop() {
                Some(b) => {
                    self.stats.cached_bytes -= class;
                    self.stats.raw_frees += 1;
                    freed += class;
                    self.raw.free(b)?;
                }
                None => {
                    e.remove();
                }
            }
        }
        Ok(freed)
    }
}

impl<A: RawAllocator> CachingPool<A> {
    /// Starts logging the blocks handed out, for a graph capture. Until [`Self::end_capture`]
    /// or [`Self::abort_capture`], a request the cache cannot serve is an error (a raw
    /// allocation would be captured into the graph) and nothing is freed.
    pub fn begin_capture(&mut self) -> Result<()> {
        if self.graphs.capturing.is_some() {
            bail!("a CUDA graph is already being captured on this device");
        }
        self.graphs.capturing = Some(Vec::new());
        Ok(())
    }

    /// Ends the capture: every block handed out or given back during it now belongs to the new
    /// graph and goes to no one else until [`Self::drop_graph`] (those no tensor holds leave
    /// the cache now). Blocks the captured work only read, and that outlive the capture (the
    /// parameters, the inputs), are the caller's to keep alive while the graph is replayed.
    pub fn end_capture(&mut self) -> Result<GraphId> {
        let Some(log) = self.graphs.capturing.take() else {
            bail!("no CUDA graph capture is in progress");
        };
        let id = GraphId(self.graphs.next);
        self.graphs.next += 1;
        let mut idle = Vec::new();
        for (block, class) in log {
            if self.graphs.owner.insert(block, id).is_some() {
                continue; // handed out twice during the capture
            }
            let cached = self.free.get_mut(&class).and_then(|v| {
                let i = v.iter().position(|&b| b == block)?;
                Some(v.swap_remove(i))
            });
            if cached.is_some() {
                self.stats.cached_bytes -= class;
                self.stats.graph_bytes += class;
                idle.push((block, class));
            }
        }
        self.graphs.idle.insert(id, idle);
        Ok(id)
    }

    /// Whether a capture is in progress.
    pub fn capturing(&self) -> bool {
        self.graphs.capturing.is_some()
    }

    /// Forgets a failed capture: its blocks stay ordinary.
    pub fn abort_capture(&mut self) {
        self.graphs.capturing = None;
    }

    /// The graph is gone: its blocks become ordinary again (idle ones are cached or freed).
    pub fn drop_graph(&mut self, id: GraphId) -> Result<()> {
        self.graphs.owner.retain(|_, g| *g != id);
        for (block, class) in self.graphs.idle.remove(&id).unwrap_or_default() {
            self.stats.graph_bytes -= class;
            self.cache(block, class)?;
        }
        Ok(())
    }
}

/// A byte count for messages (KiB, MiB, GiB).
pub fn human(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1 << 20) as f64 {
        format!("{:.1} MiB", b / (1 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// Page-locked host memory and the events that say when a copy out of it has finished (the CUDA
/// driver in `backend::cuda::memory`; a fake in the tests).
pub trait PinnedHost {
    /// A pinned buffer.
    type Buf: AsMut<[u8]>;
    /// A marker recorded on the stream after a copy.
    type Event;
    fn alloc(&mut self, bytes: usize) -> Result<Self::Buf>;
    /// Frees a buffer no copy reads any more.
    fn free(&mut self, buf: Self::Buf) -> Result<()>;
    fn new_event(&mut self) -> Result<Self::Event>;
    /// Records `e` on the stream after the work queued so far (the copy just queued).
    fn record(&mut self, e: &Self::Event) -> Result<()>;
    /// Whether the work before `e` has finished (without waiting).
    fn done(&mut self, e: &Self::Event) -> Result<bool>;
    /// Waits until the work before `e` has finished.
    fn wait(&mut self, e: &Self::Event) -> Result<()>;
}

struct Slot<H: PinnedHost> {
    buf: H::Buf,
    bytes: usize,
    event: H::Event,
    /// A copy out of the buffer was queued and its event has not been seen complete.
    in_flight: bool,
    /// When the last copy was queued (for choosing the oldest one to wait for).
    queued_at: u64,
}

/// What the staging ring has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StagingStats {
    /// Pinned buffers allocated.
    pub allocations: u64,
    /// Uploads that reused a buffer.
    pub reuses: u64,
    /// Times every buffer was still being copied from and the host waited for the oldest.
    pub waits: u64,
    /// Pinned bytes held now.
    pub held_bytes: usize,
}

/// At most this many pinned staging buffers per device.
pub const STAGING_SLOTS: usize = 4;

/// Pinned staging buffers reused once the copy out of them has finished.
pub struct StagingRing<H: PinnedHost> {
    host: H,
    slots: Vec<Slot<H>>,
    max_slots: usize,
    clock: u64,
    stats: StagingStats,
}

impl<H: PinnedHost> StagingRing<H> {
    pub fn new(host: H, max_slots: usize) -> Self {
        StagingRing {
            host,
            slots: Vec::new(),
            max_slots: max_slots.max(1),
            clock: 0,
            stats: StagingStats::default(),
        }
    }

    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    pub fn stats(&self) -> StagingStats {
        self.stats
    }

    fn idle(&mut self, i: usize) -> Result<bool> {
        if self.slots[i].in_flight && self.host.done(&self.slots[i].event)? {
            self.slots[i].in_flight = false;
        }
        Ok(!self.slots[i].in_flight)
    }

    /// A buffer of at least `bytes` bytes that no queued copy reads: the smallest idle one that
    /// is large enough; else a new one while there are fewer than the maximum; else an idle one
    /// replaced by a larger one; else, when every buffer is being copied from, the oldest one
    /// once its copy has finished. Returns its index and its bytes to write into.
    pub fn acquire(&mut self, bytes: usize) -> Result<(usize, &mut [u8])> {
        let mut best: Option<usize> = None;
        let mut idle_small: Option<usize> = None;
        for i in 0..self.slots.len() {
            if !self.idle(i)? {
                continue;
            }
            if self.slots[i].bytes >= bytes {
                if best.is_none_or(|b| self.slots[i].bytes < self.slots[b].bytes) {
                    best = Some(i);
                }
            } else {
                idle_small = Some(i);
            }
        }
        let i = match (best, idle_small) {
            (Some(i), _) => {
                self.stats.reuses += 1;
                i
            }
            _ if self.slots.len() < self.max_slots => {
                let slot = self.new_slot(bytes)?;
                self.slots.push(slot);
                self.slots.len() - 1
            }
            (None, Some(i)) => {
                self.replace(i, bytes)?;
                i
            }
            (None, None) => {
                // Every buffer is in flight: wait for the one queued first.
                let i = (0..self.slots.len())
                    .min_by_key(|&i| self.slots[i].queued_at)
                    .unwrap_or(0);
                self.stats.waits += 1;
                self.host.wait(&self.slots[i].event)?;
                self.slots[i].in_flight = false;
                if self.slots[i].bytes >= bytes {
                    self.stats.reuses += 1;
                } else {
                    self.replace(i, bytes)?;
                }
                i
            }
        };
        Ok((i, &mut self.slots[i].buf.as_mut()[..bytes]))
    }

    fn new_slot(&mut self, bytes: usize) -> Result<Slot<H>> {
        let class = size_class(bytes);
        let buf = self.host.alloc(class)?;
        let event = self.host.new_event()?;
        self.stats.allocations += 1;
        self.stats.held_bytes += class;
        Ok(Slot {
            buf,
            bytes: class,
            event,
            in_flight: false,
            queued_at: 0,
        })
    }

    /// Swaps idle slot `i`'s buffer for one of at least `bytes` bytes.
    fn replace(&mut self, i: usize, bytes: usize) -> Result<()> {
        let slot = self.new_slot(bytes)?;
        let old = std::mem::replace(&mut self.slots[i], slot);
        self.stats.held_bytes -= old.bytes;
        self.host.free(old.buf)
    }

    /// Marks buffer `i` as read by the copy just queued: records its event on the stream.
    pub fn submit(&mut self, i: usize) -> Result<()> {
        self.host.record(&self.slots[i].event)?;
        self.clock += 1;
        self.slots[i].in_flight = true;
        self.slots[i].queued_at = self.clock;
        Ok(())
    }

    /// Frees the buffers no copy reads any more; returns the bytes freed.
    pub fn trim(&mut self) -> Result<usize> {
        let mut freed = 0;
        let mut i = 0;
        while i < self.slots.len() {
            if self.idle(i)? {
                let s = self.slots.swap_remove(i);
                self.stats.held_bytes -= s.bytes;
                freed += s.bytes;
                self.host.free(s.buf)?;
            } else {
                i += 1;
            }
        }
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A device of `capacity` bytes whose blocks are numbered.
    struct FakeDevice {
        capacity: usize,
        used: usize,
        next: u64,
        live: HashSet<u64>,
        sizes: BTreeMap<u64, usize>,
        allocs: u64,
        frees: u64,
    }

    impl FakeDevice {
        fn new(capacity: usize) -> Self {
            FakeDevice {
                capacity,
                used: 0,
                next: 1,
                live: HashSet::new(),
                sizes: BTreeMap::new(),
                allocs: 0,
                frees: 0,
            }
        }
    }

    impl RawAllocator for FakeDevice {
        type Block = u64;
        fn alloc(&mut self, bytes: usize) -> std::result::Result<u64, RawError> {
            if self.used + bytes > self.capacity {
                return Err(RawError::OutOfMemory);
            }
            let b = self.next;
            self.next += 1;
            self.used += bytes;
            self.live.insert(b);
            self.sizes.insert(b, bytes);
            self.allocs += 1;
            Ok(b)
        }
        fn free(&mut self, b: u64) -> Result<()> {
            if !self.live.remove(&b) {
                bail!("double free of block {b}");
            }
            self.used -= self.sizes[&b];
            self.frees += 1;
            Ok(())
        }
    }

    #[test]
    fn size_classes_round_up_by_less_than_an_eighth() {
        assert_eq!(size_class(0), 512);
        assert_eq!(size_class(1), 512);
        assert_eq!(size_class(512), 512);
        assert_eq!(size_class(513), 1024);
        assert_eq!(size_class(4096), 4096);
        assert_eq!(size_class(4097), 4608);
        assert_eq!(size_class(1 << 20), 1 << 20);
        assert_eq!(size_class((1 << 20) + 1), (1 << 20) + (1 << 17));
        // 340 MB of parameters: a multiple of 2 MiB, not of 32 MiB.
        assert_eq!(size_class(340_000_000), 163 * LARGE_STEP);
        for bytes in (1..200_000).step_by(37).chain([12_845_056, 340_000_001]) {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert_eq!(c % MIN_BLOCK, 0, "{bytes} -> {c}");
            assert_eq!(
                size_class(c),
                c,
                "a class is its own class ({bytes} -> {c})"
            );
            if bytes > 4096 {
                assert!((c - bytes) * 8 < bytes, "{bytes} -> {c}");
                assert!(c - bytes < LARGE_STEP, "{bytes} -> {c}");
            }
        }
        // Monotonic.
        let mut last = 0;
        for bytes in (0..100_000).step_by(13) {
            let c = size_class(bytes);
            assert!(c >= last);
            last = c;
        }
    }

    #[test]
    fn a_released_block_is_reused_for_the_same_class() {
        let mut p = CachingPool::new(FakeDevice::new(1 << 30));
        let a = p.alloc(1000).unwrap();
        assert!(a.fresh);
        assert_eq!(a.class, 1024);
        p.release(a.block, a.class).unwrap();
        // 900 bytes is the same class: the same block comes back.
        let b = p.alloc(900).unwrap();
        assert!(!b.fresh);
        assert_eq!(b.block, a.block);
        // Another class is a new block.
        let c = p.alloc(5000).unwrap();
        assert!(c.fresh);
        assert_ne!(c.block, a.block);
        let s = p.stats();
        assert_eq!((s.raw_allocations, s.reuses, s.raw_frees), (2, 1, 0));
        assert_eq!(s.live_bytes, 1024 + size_class(5000));
        assert_eq!(s.cached_bytes, 0);
        assert_eq!(p.raw().allocs, 2);
    }

    #[test]
    fn a_steady_state_step_allocates_nothing() {
        // A "step": a fixed sequence of allocations, some freed inside the step, all by its end.
        let sizes = [
            4 * 768 * 197,
            4 * 768,
            4 * 3072 * 197,
            2 * 768 * 197,
            4,
            4 * 768 * 197,
        ];
        let mut p = CachingPool::new(FakeDevice::new(1 << 30));
        let step = |p: &mut CachingPool<FakeDevice>| {
            let mut held = Vec::new();
            for (i, &s) in sizes.iter().enumerate() {
                let g = p.alloc(s).unwrap();
                if i % 2 == 0 {
                    held.push(g);
                } else {
                    p.release(g.block, g.class).unwrap();
                }
            }
            for g in held {
                p.release(g.block, g.class).unwrap();
            }
        };
        step(&mut p);
        let first = p.stats();
        for _ in 0..5 {
            step(&mut p);
        }
        let after = p.stats();
        assert_eq!(after.raw_allocations, first.raw_allocations);
        assert_eq!(after.reuses, first.reuses + 5 * sizes.len() as u64);
        assert_eq!(after.live_bytes, 0);
        assert_eq!(after.peak_bytes, first.peak_bytes);
        assert_eq!(after.cached_bytes, p.raw().used);
    }

    #[test]
    fn trim_gives_every_cached_block_back() {
        let mut p = CachingPool::new(FakeDevice::new(1 << 30));
        let gs: Vec<_> = [100, 2000, 70_000, 70_000]
            .iter()
            .map(|&b| p.alloc(b).unwrap())
            .collect();
        let keep = p.alloc(1 << 20).unwrap();
        for g in &gs {
            p.release(g.block, g.class).unwrap();
        }
        let cached = p.stats().cached_bytes;
        assert_eq!(p.trim().unwrap(), cached);
        let s = p.stats();
        assert_eq!((s.cached_bytes, s.raw_frees), (0, 4));
        // The live block is untouched, and the device holds only it.
        assert_eq!(p.raw().used, keep.class);
        assert!(p.raw().live.contains(&keep.block));
        assert_eq!(p.trim().unwrap(), 0);
    }

    #[test]
    fn out_of_memory_trims_the_cache_and_retries_once() {
        // Room for 4 MiB: fill it with cached 1 MiB blocks, then ask for 2 MiB.
        let mut p = CachingPool::new(FakeDevice::new(4 << 20));
        let gs: Vec<_> = (0..4).map(|_| p.alloc(1 << 20).unwrap()).collect();
        for g in &gs {
            p.release(g.block, g.class).unwrap();
        }
        let big = p.alloc(2 << 20).unwrap();
        assert!(big.fresh);
        let s = p.stats();
        assert_eq!(s.oom_retries, 1);
        assert_eq!(s.cached_bytes, 0);
        assert_eq!(s.raw_frees, 4);
        assert_eq!(s.live_bytes, 2 << 20);
        // With 2 MiB live and nothing cached, 3 MiB more cannot fit even after the trim.
        let e = p.alloc(3 << 20).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("out of device memory"), "{msg}");
        assert!(msg.contains("3.0 MiB") && msg.contains("2.0 MiB"), "{msg}");
        assert_eq!(p.stats().oom_retries, 2);
        // The pool still works after the error.
        p.release(big.block, big.class).unwrap();
        assert!(!p.alloc(2 << 20).unwrap().fresh);
    }

    #[test]
    fn other_raw_errors_are_not_retried() {
        struct Broken;
        impl RawAllocator for Broken {
            type Block = u64;
            fn alloc(&mut self, _: usize) -> std::result::Result<u64, RawError> {
                Err(RawError::Other(anyhow::anyhow!("driver says no")))
            }
            fn free(&mut self, _: u64) -> Result<()> {
                Ok(())
            }
        }
        let mut p = CachingPool::new(Broken);
        let e = p.alloc(10).unwrap_err();
        assert_eq!(format!("{e}"), "driver says no");
        assert_eq!(p.stats().oom_retries, 0);
    }

    #[test]
    fn the_cache_limit_frees_what_does_not_fit() {
        let mut p = CachingPool::new(FakeDevice::new(1 << 30));
        let a = p.alloc(1 << 20).unwrap();
        let b = p.alloc(1 << 20).unwrap();
        p.set_cache_limit(Some(1 << 20)).unwrap();
        p.release(a.block, a.class).unwrap();
        p.release(b.block, b.class).unwrap(); // over the limit: freed
        let s = p.stats();
        assert_eq!((s.cached_bytes, s.raw_frees), (1 << 20, 1));
        p.set_cache_limit(Some(0)).unwrap();
        assert_eq!(p.stats().cached_bytes, 0);
        assert_eq!(p.raw().used, 0);
    }

    /// A "step" that takes blocks of two classes, gives one back early and returns the other.
    fn graph_step(p: &mut CachingPool<FakeDevice>) -> Result<Grant<u64>> {
        let a = p.alloc(1000)?;
        let b = p.alloc(70_000)?;
        p.release(a.block, a.class)?;
        Ok(b)
    }

    #[test]
    fn captured_blocks_go_to_no_one_else_until_the_graph_is_dropped() {
        let mut p = CachingPool::new(FakeDevice::new(1 << 30));
        let warm = graph_step(&mut p).unwrap();
        p.release(warm.block, warm.class).unwrap();
        let cached = p.stats().cached_bytes;
        p.begin_capture().unwrap();
        let out = graph_step(&mut p).unwrap();
        let g = p.end_capture().unwrap();
        // The small block went back during the capture: it left the cache for the graph.
        let s = p.stats();
        assert_eq!(s.graph_bytes, 1024);
        assert_eq!(s.cached_bytes, cached - 1024 - out.class);
        // Requests of both classes now get new blocks, never the graph's.
        let x = p.alloc(1000).unwrap();
        let y = p.alloc(70_000).unwrap();
        assert!(x.fresh && y.fresh);
        assert_ne!(y.block, out.block);
        // The step's output, given back later, stays with the graph too.
        p.release(out.block, out.class).unwrap();
        assert_eq!(p.stats().graph_bytes, 1024 + out.class);
        p.release(x.block, x.class).unwrap();
        p.release(y.block, y.class).unwrap();
        // Dropping the graph makes its blocks ordinary cached blocks.
        p.drop_graph(g).unwrap();
        let s = p.stats();
        assert_eq!(s.graph_bytes, 0);
        assert_eq!(s.cached_bytes, p.raw().used);
        assert_eq!(s.live_bytes, 0);
        let again = p.alloc(70_000).unwrap();
        assert!(!again.fresh);
    }

    #[test]
    fn a_capture_that_needs_a_new_block_fails_and_the_pool_goes_on() {
        let mut p = CachingPool::new(FakeDevice::new(1 << 30));
        p.begin_capture().unwrap();
        let e = graph_step(&mut p).unwrap_err().to_string();
        assert!(e.contains("run the step once, uncaptured"), "{e}");
        assert_eq!(p.raw().allocs, 0, "no raw allocation while capturing");
        assert!(p.begin_capture().is_err(), "one capture at a time");
        assert!(p.trim().is_err(), "no frees while capturing");
        p.abort_capture();
        let b = graph_step(&mut p).unwrap();
        assert!(b.fresh);
        assert!(p.end_capture().is_err(), "no capture is in progress");
    }

    #[test]
    fn blocks_given_back_during_a_capture_stay_with_the_graph() {
        // A tensor made before the capture and dropped inside it: the graph may have read it.
        let mut p = CachingPool::new(FakeDevice::new(1 << 30));
        let before = p.alloc(5000).unwrap();
        p.set_cache_limit(Some(0)).unwrap();
        p.begin_capture().unwrap();
        p.release(before.block, before.class).unwrap();
        assert_eq!(
            p.stats().raw_frees,
            0,
            "the cache limit frees nothing while capturing"
        );
        let g = p.end_capture().unwrap();
        assert!(p.alloc(5000).unwrap().fresh);
        // Two graphs keep their own blocks; dropping one gives back only its blocks (freed here,
        // as the cache limit is 0).
        let warm = p.alloc(1000).unwrap();
        p.set_cache_limit(None).unwrap();
        p.release(warm.block, warm.class).unwrap();
        p.begin_capture().unwrap();
        let h_block = p.alloc(1000).unwrap();
        let h = p.end_capture().unwrap();
        p.set_cache_limit(Some(0)).unwrap();
        p.drop_graph(g).unwrap();
        assert_eq!(p.stats().graph_bytes, 0);
        assert_eq!(p.stats().raw_frees, 1);
        p.release(h_block.block, h_block.class).unwrap();
        assert_eq!(p.stats().graph_bytes, 1024);
        p.drop_graph(h).unwrap();
        assert_eq!(p.stats().graph_bytes, 0);
    }

    /// Pinned memory as vectors; an event completes when the test says so.
    #[derive(Default)]
    struct FakeHost {
        allocs: usize,
        frees: usize,
        /// events[e] = complete?
        events: Vec<bool>,
        waited: Vec<usize>,
    }

    impl PinnedHost for FakeHost {
        type Buf = Vec<u8>;
        type Event = usize;
        fn alloc(&mut self, bytes: usize) -> Result<Vec<u8>> {
            self.allocs += 1;
            Ok(vec![0; bytes])
        }
        fn free(&mut self, _: Vec<u8>) -> Result<()> {
            self.frees += 1;
            Ok(())
        }
        fn new_event(&mut self) -> Result<usize> {
            self.events.push(true);
            Ok(self.events.len() - 1)
        }
        fn record(&mut self, e: &usize) -> Result<()> {
            self.events[*e] = false;
            Ok(())
        }
        fn done(&mut self, e: &usize) -> Result<bool> {
            Ok(self.events[*e])
        }
        fn wait(&mut self, e: &usize) -> Result<()> {
            self.waited.push(*e);
            self.events[*e] = true;
            Ok(())
        }
    }

    fn complete_all(r: &mut StagingRing<FakeHost>) {
        r.host_mut().events.iter_mut().for_each(|e| *e = true);
    }

    /// One upload of `len` bytes: a buffer acquired and its copy submitted at once.
    fn upload(r: &mut StagingRing<FakeHost>, len: usize) -> usize {
        let (i, _) = r.acquire(len).unwrap();
        r.submit(i).unwrap();
        i
    }

    #[test]
    fn a_staging_buffer_is_reused_once_its_copy_has_finished() {
        let mut r = StagingRing::new(FakeHost::default(), 4);
        let (i, buf) = r.acquire(1000).unwrap();
        assert_eq!(buf.len(), 1000);
        buf.fill(7);
        r.submit(i).unwrap();
        // While the copy runs, a second upload gets another buffer.
        assert_ne!(i, upload(&mut r, 1000));
        // Once both copies have finished, uploads cycle through the same buffer.
        complete_all(&mut r);
        for _ in 0..10 {
            upload(&mut r, 800);
            complete_all(&mut r);
        }
        let s = r.stats();
        assert_eq!((s.allocations, s.reuses, s.waits), (2, 10, 0));
        assert_eq!(r.host_mut().allocs, 2);
    }

    #[test]
    fn staging_waits_for_the_oldest_copy_when_every_buffer_is_busy() {
        let mut r = StagingRing::new(FakeHost::default(), 2);
        let a = upload(&mut r, 100);
        let b = upload(&mut r, 100);
        let (c, _) = r.acquire(100).unwrap();
        assert_eq!(c, a, "the oldest buffer, after waiting for its copy");
        assert_eq!(r.host_mut().waited, vec![a]);
        assert_eq!(r.stats().waits, 1);
        r.submit(c).unwrap();
        // Now b is the oldest.
        let (d, _) = r.acquire(100).unwrap();
        assert_eq!(d, b);
    }

    #[test]
    fn staging_grows_a_buffer_that_is_too_small() {
        let mut r = StagingRing::new(FakeHost::default(), 1);
        let a = upload(&mut r, 100);
        complete_all(&mut r);
        let (b, buf) = r.acquire(100_000).unwrap();
        assert_eq!((b, buf.len()), (a, 100_000));
        assert_eq!((r.host_mut().allocs, r.host_mut().frees), (2, 1));
        assert_eq!(r.stats().held_bytes, size_class(100_000));
        // A busy, too small buffer is waited for, then replaced.
        r.submit(b).unwrap();
        let (c, buf) = r.acquire(1 << 20).unwrap();
        assert_eq!((c, buf.len()), (a, 1 << 20));
        assert_eq!(r.stats().waits, 1);
    }

    #[test]
    fn staging_trim_frees_only_idle_buffers() {
        let mut r = StagingRing::new(FakeHost::default(), 4);
        upload(&mut r, 1000);
        upload(&mut r, 5000);
        r.host_mut().events[1] = true; // b's copy finished, a's not
        assert_eq!(r.trim().unwrap(), size_class(5000));
        assert_eq!(r.stats().held_bytes, size_class(1000));
        complete_all(&mut r);
        assert_eq!(r.trim().unwrap(), size_class(1000));
        assert_eq!(r.stats().held_bytes, 0);
    }
}
