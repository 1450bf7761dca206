//! CUDA graphs: a step's launches captured once and replayed as one launch.
//!
//! A training step of sfm-base queues about 500 kernels. Queued one by one, each costs the host
//! a few microseconds; wherever kernels are shorter than that, the GPU waits for the host. A
//! graph records the launches once (stream capture) and replays all of them with one call.
//!
//! What a graph freezes, and so what a captured step must respect:
//! - **Addresses.** Every kernel reads and writes the addresses it had at capture. The memory
//!   pool keeps every block the capture handed out or took back for the graph alone until the
//!   graph is dropped (`backend::caching`). Tensors made before the capture and only read in it
//!   (parameters, inputs) are the caller's: keep them alive, and copy new inputs into them
//!   before a replay.
//! - **Scalars.** Values passed by value (a learning rate, a dropout key) are those of the
//!   capture. Capture the part of a step whose scalars do not change; the optimizer step, whose
//!   bias correction changes every step, runs after the replay as ordinary launches.
//! - **No host traffic.** An upload, a download or a host wait inside the capture is refused
//!   with an error that says so (`memory.rs`, `CudaBackend::synchronize`), and so is a request
//!   the pool cannot serve from its cache: run the step once, uncaptured, first.
//!
//! [`crate::backend::counters`] checks the last two on any device: the captured region of a
//! step must show 0 allocations, 0 host syncs and 0 uploads once warm (tests/graph_step.rs).

use super::CudaBackend;
use crate::backend::caching::GraphId;
use anyhow::{anyhow, bail, Result};
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::CudaGraph;
use std::sync::Arc;

/// A captured piece of work; [`StepGraph::replay`] queues all of it again.
pub struct StepGraph {
    graph: Option<CudaGraph>,
    id: GraphId,
    backend: Arc<CudaBackend>,
    /// Launches queued during the capture (kernels, memsets, device copies).
    launches: u64,
}

impl std::fmt::Debug for StepGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StepGraph({} launches on cuda:{})",
            self.launches, self.backend.ordinal
        )
    }
}

impl CudaBackend {
    /// Runs `work` once with this device's stream in capture mode and returns it as a graph.
    /// `work` must have run before with the same shapes (so the pool has every block it asks
    /// for) and must not touch the host (module documentation). On an error, inside `work` or
    /// from the driver, the capture is ended and discarded, and the device stays usable.
    pub fn capture(self: &Arc<Self>, work: impl FnOnce() -> Result<()>) -> Result<StepGraph> {
        if self.profiler.enabled() {
            bail!("the kernel profiler times every launch with events: it cannot run inside a CUDA graph capture");
        }
        self.bind()?;
        self.memory.begin_capture()?;
        if let Err(e) = self
            .stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        {
            self.memory.abort_capture()?;
            bail!("cuStreamBeginCapture on cuda:{}: {e:?}", self.ordinal);
        }
        let before = crate::backend::counters::snapshot();
        let ran = work();
        let launches = (crate::backend::counters::snapshot() - before).launches;
        // The capture must end whatever happened, or the stream stays unusable.
        let ended = self.stream.end_capture(CUgraphInstantiate_flags(0));
        let graph = match (ran, ended) {
            (Ok(()), Ok(Some(g))) => g,
            (Err(e), _) => {
                self.memory.abort_capture()?;
                return Err(e.context("while capturing a CUDA graph (nothing was kept)"));
            }
            (Ok(()), Ok(None)) => {
                self.memory.abort_capture()?;
                bail!("the captured work queued nothing on cuda:{}", self.ordinal);
            }
            (Ok(()), Err(e)) => {
                self.memory.abort_capture()?;
                bail!(
                    "ending the CUDA graph capture on cuda:{} failed: {e:?} (an operation the \
                     capture does not allow ran on this device's stream)",
                    self.ordinal
                );
            }
        };
        let id = self.memory.end_capture()?;
        // Resources up front, so that the first replay costs what the others do.
        graph
            .upload()
            .map_err(|e| anyhow!("cuGraphUpload on cuda:{}: {e:?}", self.ordinal))?;
        Ok(StepGraph {
            graph: Some(graph),
            id,
            backend: self.clone(),
            launches,
        })
    }
}

impl StepGraph {
    /// Queues the captured work again on the device's stream (one host call).
    pub fn replay(&self) -> Result<()> {
        let g = self
            .graph
            .as_ref()
            .ok_or_else(|| anyhow!("the CUDA graph was already released"))?;
        self.backend.bind()?;
        g.launch()
            .map_err(|e| anyhow!("cuGraphLaunch on cuda:{}: {e:?}", self.backend.ordinal))?;
        crate::backend::counters::count_launch();
        Ok(())
    }

    /// How many launches the capture recorded (each replay queues them all).
    pub fn launches(&self) -> u64 {
        self.launches
    }
}

impl Drop for StepGraph {
    fn drop(&mut self) {
        // Replays may still be running: wait before the graph and its blocks are released.
        let _ = self.backend.stream.synchronize();
        drop(self.graph.take());
        let _ = self.backend.memory.drop_graph(self.id);
    }
}
