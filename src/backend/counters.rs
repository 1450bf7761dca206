//! Counters of what the engine asks of a device, kept per thread (the thread that issues the
//! ops): buffer allocations (a buffer the device's caching allocator had to get from the
//! system because its cache had none of that size: a CUDA block from the driver, a pinned
//! staging buffer, or a new host buffer; never a reuse), kernel launches (on CUDA every kernel,
//! memset and device copy queued; on the CPU one per op call through `Device::run`) and host
//! synchronisations (a value the host waits for: a download from a GPU, `ops::item`) and
//! uploads (a tensor made from host data: `Tensor::from_f32` and its kind, which a GPU step
//! must then copy to the device). A step captured into a CUDA graph must show none of the
//! allocations, host syncs and uploads (`backend::cuda::graph`). `seisfuse bench sfm|seislm --counts` prints them per training step, and
//! tests/param_store.rs asserts their steady-state values.

use std::cell::Cell;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LAUNCHES: Cell<u64> = const { Cell::new(0) };
    static HOST_SYNCS: Cell<u64> = const { Cell::new(0) };
    static UPLOADS: Cell<u64> = const { Cell::new(0) };
}

/// A snapshot of the counters; subtract two to get what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub allocations: u64,
    pub launches: u64,
    pub host_syncs: u64,
    pub uploads: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            allocations: self.allocations - o.allocations,
            launches: self.launches - o.launches,
            host_syncs: self.host_syncs - o.host_syncs,
            uploads: self.uploads - o.uploads,
        }
    }
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            allocations: self.allocations + o.allocations,
            launches: self.launches + o.launches,
            host_syncs: self.host_syncs + o.host_syncs,
            uploads: self.uploads + o.uploads,
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} allocations, {} launches, {} host syncs, {} uploads",
            self.allocations, self.launches, self.host_syncs, self.uploads
        )
    }
}

/// This thread's counts so far.
pub fn snapshot() -> Counts {
    Counts {
        allocations: ALLOCATIONS.with(Cell::get),
        launches: LAUNCHES.with(Cell::get),
        host_syncs: HOST_SYNCS.with(Cell::get),
        uploads: UPLOADS.with(Cell::get),
    }
}

fn bump(c: &'static std::thread::LocalKey<Cell<u64>>) {
    c.with(|v| v.set(v.get() + 1));
}
pub fn count_allocation() {
    bump(&ALLOCATIONS);
}
pub fn count_launch() {
    bump(&LAUNCHES);
}
pub fn count_host_sync() {
    bump(&HOST_SYNCS);
}
pub fn count_upload() {
    bump(&UPLOADS);
}
