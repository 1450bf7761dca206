//! Per-kernel timing: when enabled, every launch wrapper brackets its launch with CUDA events
//! and the profiler sums the times per kernel name.

use anyhow::Result;
use cudarc::driver::{CudaEvent, CudaStream};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Profiler {
    enabled: AtomicBool,
    pending: Mutex<Vec<(&'static str, CudaEvent, CudaEvent)>>,
    /// Every kernel name launched so far with its launch count (kept even when disabled).
    launches: Mutex<BTreeMap<&'static str, u64>>,
}

/// Total time and launch count of one kernel.
#[derive(Clone, Debug, Default)]
pub struct KernelTime {
    pub launches: u64,
    pub total_ms: f64,
}

impl Profiler {
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Runs `launch` on `stream`, recording the kernel's name (and events when enabled).
    pub fn run<F>(&self, stream: &CudaStream, name: &'static str, launch: F) -> Result<()>
    where
        F: FnOnce() -> std::result::Result<(), cudarc::driver::DriverError>,
    {
        if let Ok(mut l) = self.launches.lock() {
            *l.entry(name).or_insert(0) += 1;
        }
        if !self.enabled() {
            launch().map_err(|e| anyhow::anyhow!("launching {name}: {e:?}"))?;
            return Ok(());
        }
        let ctx = stream.context();
        // cudarc's default flags disable timing; the profiler needs it.
        let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = ctx.new_event(timing)?;
        let end = ctx.new_event(timing)?;
        start.record(stream)?;
        launch().map_err(|e| anyhow::anyhow!("launching {name}: {e:?}"))?;
        end.record(stream)?;
        if let Ok(mut p) = self.pending.lock() {
            p.push((name, start, end));
        }
        Ok(())
    }

    /// Waits for recorded launches and returns the time per kernel name.
    pub fn collect(&self) -> Result<BTreeMap<&'static str, KernelTime>> {
        let mut out: BTreeMap<&'static str, KernelTime> = BTreeMap::new();
        let pending = std::mem::take(
            &mut *self
                .pending
                .lock()
                .map_err(|_| anyhow::anyhow!("profiler poisoned"))?,
        );
        for (name, s, e) in pending {
            e.synchronize()?;
            let t = out.entry(name).or_default();
            t.launches += 1;
            t.total_ms += s.elapsed_ms(&e)? as f64;
        }
        Ok(out)
    }

    pub fn launch_counts(&self) -> BTreeMap<&'static str, u64> {
        self.launches.lock().map(|l| l.clone()).unwrap_or_default()
    }
}
