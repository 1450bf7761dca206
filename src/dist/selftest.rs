//! `seisfuse doctor --dist`: checks a distributed setup before a long job. Each rank reads
//! its place from the environment, joins the rendezvous, all-reduces and broadcasts known
//! values over TCP or NCCL, and says what it saw. Run it the way training will run:
//! `seisfuse launch --nproc-per-node 8 -- doctor --dist`, or `srun seisfuse doctor --dist`.

use super::comm::{CommBackend, Communicator, LocalCommunicator, TcpCommunicator};
use super::env::RankInfo;
use super::nccl::gpu_count;
use super::rendezvous::{Listening, Rendezvous, RendezvousOptions};
use crate::backend::DeviceRequest;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::time::{Duration, Instant};

/// Options of the self-test.
#[derive(Clone, Debug)]
pub struct SelftestOptions {
    pub backend: CommBackend,
    /// How long the rendezvous waits for every rank.
    pub timeout: Duration,
    /// Values all-reduced.
    pub values: usize,
    /// Fault injection for the launcher's tests: this rank fails at once.
    pub fail_rank: Option<usize>,
}

impl Default for SelftestOptions {
    fn default() -> Self {
        SelftestOptions {
            backend: CommBackend::Auto,
            timeout: Duration::from_secs(60),
            values: 1 << 16,
            fail_rank: None,
        }
    }
}

/// Which backend the self-test (and `bench allreduce`) uses: NCCL when asked, or with `auto`
/// when there are several ranks, this rank's GPU exists, NCCL is found and `--device` allows.
pub fn choose_backend(
    req: DeviceRequest,
    backend: CommBackend,
    info: &RankInfo,
) -> (CommBackend, String) {
    match backend {
        CommBackend::Tcp => (CommBackend::Tcp, "tcp (asked for)".into()),
        CommBackend::Nccl => (CommBackend::Nccl, "nccl (asked for)".into()),
        CommBackend::Auto => {
            if matches!(req, DeviceRequest::Cpu) {
                return (CommBackend::Tcp, "tcp (--device cpu)".into());
            }
            let gpu = match info.cuda_device(gpu_count()) {
                Ok(g) => g,
                Err(e) => {
                    return (
                        CommBackend::Tcp,
                        format!("tcp (no GPU for this rank: {e:#})"),
                    )
                }
            };
            match super::nccl_lib::NcclLib::global() {
                Ok(_) => (CommBackend::Nccl, format!("nccl (cuda:{gpu})")),
                Err(_) => (CommBackend::Tcp, "tcp (NCCL not found)".into()),
            }
        }
    }
}

/// Checks that NCCL and this rank's GPU are there; returns the GPU.
pub fn nccl_ready(info: &RankInfo) -> Result<usize> {
    super::nccl_lib::NcclLib::global()
        .with_context(|| format!("rank {}: the nccl backend needs NCCL", info.rank))?;
    info.cuda_device(gpu_count())
        .with_context(|| format!("rank {}: the nccl backend needs a GPU", info.rank))
}

/// Joins the rendezvous; rank 0 prints its address first when MASTER_PORT was 0 (any free
/// port), so that a test or script can start the other ranks with the real port.
pub fn rendezvous(info: &RankInfo, opts: &RendezvousOptions) -> Result<Rendezvous> {
    if info.world_size > 1 && info.rank == 0 {
        let l = Listening::bind(info, opts)?;
        if info.master_port == 0 {
            println!("rank 0: listening on {}", l.local_addr());
            std::io::stdout().flush().ok();
        }
        l.accept_all()
    } else {
        Rendezvous::establish(info, opts)
    }
}

/// Runs the self-test on this rank.
pub fn run(req: DeviceRequest, opts: &SelftestOptions) -> Result<()> {
    let info = RankInfo::from_process_env()?;
    let r = info.rank;
    let w = info.world_size;
    println!("rank {r}: {}", info.describe());
    if let Some(n) = &info.note {
        println!("rank {r}: note: {n}");
    }
    if info.is_main() {
        println!("rank {r}: {}", super::nccl_lib::status_line());
    }
    if opts.fail_rank == Some(r) {
        bail!("rank {r}: failing on purpose (--dist-fail-rank {r})");
    }
    let (backend, why) = choose_backend(req, opts.backend, &info);
    if backend == CommBackend::Nccl {
        // Before the rendezvous, so that every rank says at once what is missing.
        nccl_ready(&info)?;
    }
    let ropts = RendezvousOptions::with_timeout(opts.timeout);
    let t = Instant::now();
    let rdv = rendezvous(&info, &ropts)?;
    println!(
        "rank {r}: rendezvous of {w} ranks at {} in {:.0} ms",
        info.master(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut comm: Box<dyn Communicator> = match backend {
        CommBackend::Nccl => Box::new(
            super::nccl::NcclCommunicator::new(rdv, info.cuda_device(gpu_count())?)
                .with_context(|| format!("rank {r}: opening NCCL"))?,
        ),
        _ if w == 1 => Box::new(LocalCommunicator),
        _ => Box::new(TcpCommunicator::new(rdv)),
    };
    if w == 1 {
        println!("rank {r}: backend local (one rank: nothing to communicate)");
    } else {
        println!("rank {r}: backend {why}");
    }

    // All-reduce: rank k contributes (k + 1)·(i + 1), the sum is w(w + 1)/2 · (i + 1), exact
    // in f32 for these sizes.
    let n = opts.values.max(1);
    let mut v: Vec<f32> = (0..n).map(|i| ((r + 1) * (i % 1024 + 1)) as f32).collect();
    let t = Instant::now();
    comm.all_reduce_sum_f32(&mut v)?;
    let dt = t.elapsed();
    let s = (w * (w + 1) / 2) as f32;
    if let Some(i) = (0..n).find(|&i| v[i] != s * (i % 1024 + 1) as f32) {
        bail!(
            "rank {r}: all-reduce over {} gave {} at index {i}, expected {}",
            comm.backend(),
            v[i],
            s * (i % 1024 + 1) as f32
        );
    }
    // Broadcast from the last rank.
    let mut b = [r as u8; 16];
    comm.broadcast(&mut b, w - 1)?;
    if b != [(w - 1) as u8; 16] {
        bail!("rank {r}: broadcast from rank {} gave {:?}", w - 1, &b[..4]);
    }
    comm.barrier()?;
    println!(
        "rank {r}: all-reduce of {n} f32 over {} ok in {:.2} ms (sum of ranks 1..{w} = {s}); broadcast ok; barrier ok",
        comm.backend(),
        dt.as_secs_f64() * 1e3
    );
    Ok(())
}
