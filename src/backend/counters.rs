//! Per-process counters of what the engine asks of a device: buffer allocations, kernel
//! launches (on the CPU: op calls into the backend) and host synchronisations (a value read
//! back to the host). `seisfuse bench sfm|seislm --counts` prints them per training step, and a
//! test asserts their steady-state values.

use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LAUNCHES: AtomicU64 = AtomicU64::new(0);
static HOST_SYNCS: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the counters; subtract two to get what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub allocations: u64,
    pub launches: u64,
    pub host_syncs: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            allocations: self.allocations - o.allocations,
            launches: self.launches - o.launches,
            host_syncs: self.host_syncs - o.host_syncs,
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
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} allocations, {} launches, {} host syncs",
            self.allocations, self.launches, self.host_syncs
        )
    }
}

pub fn snapshot() -> Counts {
    Counts {
        allocations: ALLOCATIONS.load(Ordering::Relaxed),
        launches: LAUNCHES.load(Ordering::Relaxed),
        host_syncs: HOST_SYNCS.load(Ordering::Relaxed),
    }
}

pub fn count_allocation() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
}
pub fn count_launch() {
    LAUNCHES.fetch_add(1, Ordering::Relaxed);
}
pub fn count_host_sync() {
    HOST_SYNCS.fetch_add(1, Ordering::Relaxed);
}
