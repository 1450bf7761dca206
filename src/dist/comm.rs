//! The communicator trait, and its local (one rank) and TCP implementations; NCCL's is in
//! `nccl.rs`.
//!
//! The trait's methods take host slices: that is what the CPU trainer, the metrics and the
//! tests need, and what every backend can do. The GPU trainer's gradient all-reduce works on
//! device memory on a communication stream: that is [`crate::dist::nccl::NcclCommunicator`]'s
//! `all_reduce_sum_device` (raw device pointer + stream), called directly on the NCCL
//! communicator, not through this trait (a device-buffer method belongs here once the
//! backend trait of the core redesign gives device buffers a type; see the note on
//! [`Communicator`]).

use super::compress::{bf16_to_f32, f32_to_bf16};
use super::env::RankInfo;
use super::rendezvous::{Rendezvous, RendezvousOptions, Wire};
use anyhow::{bail, Result};
use half::bf16;

/// Collective communication among the ranks of a run. Every rank must call the same
/// collectives in the same order with buffers of the same length (like NCCL and MPI).
///
/// Device buffers: the NCCL communicator also reduces device memory in place on a stream
/// (`NcclCommunicator::all_reduce_sum_device`); [`Communicator::as_nccl`] reaches it, and the
/// gradient all-reduce (`dist::grad_sync`) uses it when the gradients are on a GPU.
pub trait Communicator: Send {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// "local", "tcp" or "nccl".
    fn backend(&self) -> &'static str;

    /// Sums `buf` elementwise over the ranks, in place, the same result on every rank.
    fn all_reduce_sum_f32(&mut self, buf: &mut [f32]) -> Result<()>;

    /// Sums f64 values (loss sums, sample counts: metrics that must not lose digits).
    fn all_reduce_sum_f64(&mut self, buf: &mut [f64]) -> Result<()>;

    /// Sums bf16 values. The default widens to f32, sums, and rounds once; backends that can
    /// send bf16 (TCP, NCCL) override it to halve the bytes sent.
    fn all_reduce_sum_bf16(&mut self, buf: &mut [bf16]) -> Result<()> {
        let mut wide: Vec<f32> = buf.iter().map(|&h| bf16_to_f32(h)).collect();
        self.all_reduce_sum_f32(&mut wide)?;
        for (h, w) in buf.iter_mut().zip(&wide) {
            *h = f32_to_bf16(*w);
        }
        Ok(())
    }

    /// Copies rank `root`'s bytes into `buf` on every rank (all pass the same length).
    fn broadcast(&mut self, buf: &mut [u8], root: usize) -> Result<()>;

    /// Copies rank `root`'s values into `buf` on every rank (initial parameters, for one).
    fn broadcast_f32(&mut self, buf: &mut [f32], root: usize) -> Result<()> {
        self.broadcast(bytemuck::cast_slice_mut(buf), root)
    }

    /// Returns when every rank has called it.
    fn barrier(&mut self) -> Result<()>;

    /// The NCCL communicator, which can reduce device memory in place; `None` for the others.
    fn as_nccl(&mut self) -> Option<&mut super::nccl::NcclCommunicator> {
        None
    }
}

/// The [`Communicator`] methods that a communicator built on a [`Rendezvous`] (its field
/// `rdv`) takes from it as they are: the rank, the world size, byte broadcasts and the barrier.
macro_rules! from_rendezvous {
    () => {
        fn rank(&self) -> usize {
            self.rdv.rank()
        }
        fn world_size(&self) -> usize {
            self.rdv.world_size()
        }
        fn broadcast(&mut self, buf: &mut [u8], root: usize) -> Result<()> {
            self.rdv.broadcast(buf, root)
        }
        fn barrier(&mut self) -> Result<()> {
            self.rdv.barrier()
        }
    };
}
pub(crate) use from_rendezvous;

/// The communicator of a single process: every collective is the identity.
#[derive(Debug, Default)]
pub struct LocalCommunicator;

impl Communicator for LocalCommunicator {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn backend(&self) -> &'static str {
        "local"
    }
    fn all_reduce_sum_f32(&mut self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f64(&mut self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_bf16(&mut self, _buf: &mut [bf16]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&mut self, _buf: &mut [u8], root: usize) -> Result<()> {
        if root != 0 {
            bail!("broadcast from rank {root} in a world of one rank");
        }
        Ok(())
    }
    fn barrier(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Collectives over the rendezvous's TCP connections (a star around rank 0).
///
/// Rank 0 sums every rank's values in rank order and sends the sum back, so the result is
/// bit-identical on every rank and the same from run to run. Its cost grows with the world
/// size (rank 0 moves 2·(N−1) buffers): good for CPU training on a few processes, for tests,
/// and as a reference; GPU runs use NCCL.
#[derive(Debug)]
pub struct TcpCommunicator {
    rdv: Rendezvous,
    /// bf16 sums are accumulated in f32 on rank 0.
    acc: Vec<f32>,
}

impl TcpCommunicator {
    pub fn new(rdv: Rendezvous) -> Self {
        TcpCommunicator {
            rdv,
            acc: Vec::new(),
        }
    }

    /// Joins the rendezvous and wraps it.
    pub fn connect(info: &RankInfo, opts: &RendezvousOptions) -> Result<Self> {
        Ok(Self::new(Rendezvous::establish(info, opts)?))
    }

    pub fn rendezvous(&mut self) -> &mut Rendezvous {
        &mut self.rdv
    }

    pub fn into_rendezvous(self) -> Rendezvous {
        self.rdv
    }
}

impl Communicator for TcpCommunicator {
    from_rendezvous!();
    fn backend(&self) -> &'static str {
        "tcp"
    }
    fn all_reduce_sum_f32(&mut self, buf: &mut [f32]) -> Result<()> {
        self.rdv
            .all_reduce_with(Wire::F32, buf, &mut |_, acc, x| add(acc, x), &mut |_| {})
    }
    fn all_reduce_sum_f64(&mut self, buf: &mut [f64]) -> Result<()> {
        self.rdv.all_reduce_with(
            Wire::F64,
            buf,
            &mut |_, acc, x| {
                for (a, b) in acc.iter_mut().zip(x) {
                    *a += b;
                }
            },
            &mut |_| {},
        )
    }
    fn all_reduce_sum_bf16(&mut self, buf: &mut [bf16]) -> Result<()> {
        // Rank 0 widens its own values into an f32 accumulator, adds the others' (widened)
        // in rank order, and rounds once at the end.
        let acc = std::cell::RefCell::new(std::mem::take(&mut self.acc));
        if self.rdv.rank() == 0 && self.rdv.world_size() > 1 {
            let mut a = acc.borrow_mut();
            a.clear();
            a.extend(buf.iter().map(|&h| bf16_to_f32(h)));
        }
        let r = self.rdv.all_reduce_with(
            Wire::Bf16,
            buf,
            &mut |off, _, x| {
                let mut a = acc.borrow_mut();
                for (a, &b) in a[off..off + x.len()].iter_mut().zip(x) {
                    *a += bf16_to_f32(b);
                }
            },
            &mut |out| {
                let a = acc.borrow();
                if out.len() == a.len() {
                    for (o, &a) in out.iter_mut().zip(a.iter()) {
                        *o = f32_to_bf16(a);
                    }
                }
            },
        );
        self.acc = acc.into_inner();
        r
    }
}

/// `acc += x`, elementwise (each element summed in the same order on every call).
#[inline]
pub(crate) fn add(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Which communicator [`init`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommBackend {
    /// One rank: local; GPUs: NCCL; else TCP.
    Auto,
    Tcp,
    Nccl,
}

from_keywords!(trim CommBackend,
    |other| "unknown communication backend '{other}': expected auto, tcp or nccl",
    "auto" => Auto,
    "tcp" | "gloo" => Tcp,
    "nccl" => Nccl,
);

/// Makes this rank's communicator: joins the rendezvous (when there are other ranks), and
/// for NCCL shares rank 0's unique id over it and opens NCCL on `cuda:gpu`.
///
/// `gpu` is the CUDA device this rank trains on (`info.cuda_device(..)`: its local rank), `None`
/// for CPU training. With `Auto`: one rank → [`LocalCommunicator`] (no NCCL needed), a GPU →
/// NCCL, else TCP. NCCL missing with more than one GPU rank is an error that says how to
/// install it.
pub fn init(
    info: &RankInfo,
    backend: CommBackend,
    gpu: Option<usize>,
    opts: &RendezvousOptions,
) -> Result<Box<dyn Communicator>> {
    let use_nccl = match backend {
        CommBackend::Nccl => true,
        CommBackend::Tcp => false,
        CommBackend::Auto => gpu.is_some() && info.world_size > 1,
    };
    if !use_nccl && info.world_size == 1 {
        return Ok(Box::new(LocalCommunicator));
    }
    if use_nccl {
        let Some(dev) = gpu else {
            bail!("the NCCL backend needs a GPU: run with --device cuda (or choose the tcp backend for CPU training)");
        };
        // Fail before the rendezvous when NCCL is missing, so every rank says so at once.
        super::nccl_lib::NcclLib::global()
            .map_err(|e| e.context(format!("NCCL is needed for {} GPU ranks", info.world_size)))?;
        let rdv = Rendezvous::establish(info, opts)?;
        return Ok(Box::new(super::nccl::NcclCommunicator::new(rdv, dev)?));
    }
    Ok(Box::new(TcpCommunicator::connect(info, opts)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::rendezvous::tests::info;
    use crate::dist::rendezvous::Listening;
    use std::time::Duration;

    fn tcp_world<T: Send + 'static>(
        n: usize,
        f: impl Fn(&mut dyn Communicator) -> Result<T> + Send + Sync + 'static,
    ) -> Vec<T> {
        let opts = RendezvousOptions::with_timeout(Duration::from_secs(5));
        let l = Listening::bind(&info(0, n, 0), &opts).unwrap();
        let port = l.local_addr().port();
        let f = std::sync::Arc::new(f);
        let hs: Vec<_> = (1..n)
            .map(|r| {
                let (f, opts) = (f.clone(), opts.clone());
                std::thread::spawn(move || {
                    let mut c = TcpCommunicator::connect(&info(r, n, port), &opts)?;
                    f(&mut c)
                })
            })
            .collect();
        let mut c0 = TcpCommunicator::new(l.accept_all().unwrap());
        let mut out = vec![f(&mut c0).unwrap()];
        out.extend(hs.into_iter().map(|h| h.join().unwrap().unwrap()));
        out
    }

    #[test]
    fn sums_are_bit_identical_and_in_rank_order() {
        let n = 4;
        // Values whose sum depends on the order: rank order must be used.
        let vals = |r: usize| -> Vec<f32> {
            (0..300_000)
                .map(|i| ((i * 7 + r * 13) as f32).sin() * 10f32.powi((r % 3) as i32 * 3 - 3))
                .collect()
        };
        let res = tcp_world(n, move |c| {
            let mut v = vals(c.rank());
            c.all_reduce_sum_f32(&mut v)?;
            let mut m = [c.rank() as f64, 1.0];
            c.all_reduce_sum_f64(&mut m)?;
            Ok((v, m))
        });
        let mut want = vals(0);
        for r in 1..n {
            add(&mut want, &vals(r));
        }
        for (v, m) in &res {
            assert!(v.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_eq!(*m, [6.0, 4.0]);
        }
    }

    #[test]
    fn bf16_is_summed_in_f32_and_rounded_once() {
        let n = 3;
        let res = tcp_world(n, |c| {
            // 1 + 2^-8 + 2^-8: 1 when summed pairwise in bf16 (each step a tie to even),
            // 1 + 2^-7 (exact in bf16) when summed in f32 and rounded once.
            let x = if c.rank() == 0 { 1.0 } else { 1.0 / 256.0 };
            let mut v = vec![f32_to_bf16(x); 5];
            c.all_reduce_sum_bf16(&mut v)?;
            let mut again = vec![f32_to_bf16(2.0); 3];
            c.all_reduce_sum_bf16(&mut again)?;
            Ok((v, again))
        });
        for (v, again) in res {
            assert!(
                v.iter().all(|&h| bf16_to_f32(h) == 1.0 + 1.0 / 128.0),
                "{v:?}"
            );
            assert!(again.iter().all(|&h| bf16_to_f32(h) == 6.0));
        }
        // The default (widen, sum, round) gives the same on a single rank.
        let mut l = LocalCommunicator;
        let mut v = vec![f32_to_bf16(3.0)];
        l.all_reduce_sum_bf16(&mut v).unwrap();
        assert_eq!(bf16_to_f32(v[0]), 3.0);
    }

    #[test]
    fn broadcast_f32_and_barrier() {
        let res = tcp_world(3, |c| {
            let mut p = vec![c.rank() as f32; 4];
            c.broadcast_f32(&mut p, 1)?;
            c.barrier()?;
            Ok(p)
        });
        assert!(res.iter().all(|p| p == &[1.0; 4]));
    }

    #[test]
    fn local_and_backend_names() {
        let mut l = LocalCommunicator;
        let mut v = [1.0f32, 2.0];
        l.all_reduce_sum_f32(&mut v).unwrap();
        assert_eq!(v, [1.0, 2.0]);
        assert!(l.broadcast(&mut [0u8; 2], 1).is_err());
        assert_eq!("NCCL".parse::<CommBackend>().unwrap(), CommBackend::Nccl);
        assert!("mpi".parse::<CommBackend>().is_err());
        let c = init(
            &RankInfo::single(),
            CommBackend::Auto,
            Some(0),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(c.backend(), "local");
    }
}
