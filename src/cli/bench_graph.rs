//! `bench sfm|seislm --graph`: the same steps as without the flag, with the device work
//! captured once into a CUDA graph (`backend::cuda::graph`) and replayed. The training step's
//! forward, zero_grad, backward and gradient settling are the graph; the optimizer step (its
//! bias correction changes every step, and the host reads the gradient norm) follows each
//! replay as ordinary launches.

use super::bench::{device_part, step_counts, time_it, train_step, StepState};
use crate::backend::cuda::CudaBackend;
use crate::backend::Device;
use crate::nn::Grads;
use crate::outln;
use anyhow::{bail, Result};
use std::sync::Arc;

/// The GPU of a `--graph` run; an error on the CPU.
pub fn require_cuda(d: &Device) -> Result<&Arc<CudaBackend>> {
    match d {
        Device::Cuda(b) => Ok(b),
        Device::Cpu => bail!(
            "--graph replays CUDA graphs and needs a GPU (this run is on the CPU); drop --graph"
        ),
    }
}

/// Mean seconds of a training step whose device part is one graph replay, after one ordinary
/// step (kernels compiled, every block the step needs in the pool, optimizer state made).
pub(super) fn time_graphed_train_step<C>(
    d: &Device,
    iters: usize,
    counts: Option<String>,
    (store, opt, lr): StepState,
    forward: impl Fn() -> Result<C>,
    backward: impl Fn(&C, &mut Grads) -> Result<()>,
) -> Result<f64> {
    let gpu = require_cuda(d)?;
    train_step(&mut (&mut *store, &mut *opt, lr), &forward, &backward)?;
    gpu.synchronize()?;
    let graph = gpu.capture(|| device_part(store, &forward, &backward).map(drop))?;
    outln!(
        "  captured the forward and backward: {} launches in one CUDA graph",
        graph.launches()
    )?;
    let mut step = || -> Result<()> {
        graph.replay()?;
        opt.step(store, lr).map(drop)
    };
    if let Some(what) = counts {
        let all = step_counts(d, &mut step)?;
        outln!("{what}, per step (one graph replay, then the optimizer): {all}")?;
    }
    time_it(d, iters, step)
}

/// Mean seconds of a replay of `work` captured as a graph, after one ordinary run.
pub(super) fn time_replays(d: &Device, iters: usize, work: impl Fn() -> Result<()>) -> Result<f64> {
    let gpu = require_cuda(d)?;
    work()?;
    gpu.synchronize()?;
    let graph = gpu.capture(&work)?;
    time_it(d, iters, || graph.replay())
}
