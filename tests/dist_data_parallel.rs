//! The data-parallel step's mathematics: N ranks with batch b end with the same parameters as
//! 1 rank with batch N·b. The ranks are threads talking over loopback TCP through the same
//! `Communicator` trait as NCCL; the model is a small MLP (4 → 8 → 2, tanh, MSE) written here
//! on plain `Vec<f32>` with a hand-written gradient, trained with the distributed sampler,
//! bucketed gradient all-reduce (buckets released during the backward pass) and AdamW / SGD.
//!
//! With the ranks' partial sums added in rank order (what the TCP communicator does) the
//! result is bit-identical to one rank that groups its sum the same way; against a plain
//! single-rank sum the difference is rounding only.
//!
//! The NCCL variants at the end need a CUDA GPU (and NCCL) and are ignored elsewhere.

use seisfuse::dist::{
    self, layout_bytes, sync_parameters, verify_same, BucketConfig, Communicator, DataParallel,
    DistributedSampler, DpConfig, GradReduce, GradWire, Listening, LocalCommunicator, ParamSlot,
    RankInfo, RankSource, RendezvousOptions, StepMetrics, TcpCommunicator,
};
use std::sync::Arc;
use std::time::Duration;

const IN: usize = 4;
const HID: usize = 8;
const OUT: usize = 2;
const N_SAMPLES: usize = 96;

/// Parameter layout in forward order: w1 [HID×IN], b1 [HID], w2 [OUT×HID], b2 [OUT].
fn layout() -> Vec<ParamSlot> {
    let mut off = 0;
    [
        ("w1", HID * IN),
        ("b1", HID),
        ("w2", OUT * HID),
        ("b2", OUT),
    ]
    .into_iter()
    .map(|(n, l)| {
        let p = ParamSlot::new(n, off, l);
        off += l;
        p
    })
    .collect()
}

fn n_params() -> usize {
    layout().iter().map(|p| p.len).sum()
}

/// A deterministic small generator for the data and the initial values.
fn lcg(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

struct Data {
    x: Vec<[f32; IN]>,
    y: Vec<[f32; OUT]>,
}

fn data() -> Data {
    let mut r = lcg(5);
    let x: Vec<[f32; IN]> = (0..N_SAMPLES).map(|_| [r(), r(), r(), r()]).collect();
    let y = x
        .iter()
        .map(|v| [(v[0] * 2.0 - v[1]).sin(), v[2] * v[3] + 0.1])
        .collect();
    Data { x, y }
}

fn init_params(seed: u64) -> Vec<f32> {
    let mut r = lcg(seed);
    (0..n_params()).map(|_| r() * 0.5).collect()
}

/// What a rank sends: the sum of per-sample gradients, or their mean.
#[derive(Clone, Copy, PartialEq)]
enum Local {
    Sum,
    Mean,
}

/// Forward and backward of the MLP on `idx`, layer by layer: the gradients of layer 2 are
/// final before layer 1's are computed, and `ready` is told so (the bucket hook). Every
/// gradient element is summed over the samples in the order of `idx`. Returns the loss sum.
fn forward_backward(
    p: &[f32],
    g: &mut [f32],
    d: &Data,
    idx: &[usize],
    local: Local,
    ready: &mut dyn FnMut(&mut [f32], &[usize]),
) -> f64 {
    let (w1, b1, w2, b2) = (&p[0..32], &p[32..40], &p[40..56], &p[56..58]);
    g.iter_mut().for_each(|v| *v = 0.0);
    let n = idx.len();
    let mut h = vec![[0f32; HID]; n];
    let mut dout = vec![[0f32; OUT]; n];
    let mut loss = 0f64;
    for (s, &i) in idx.iter().enumerate() {
        for j in 0..HID {
            let mut a = b1[j];
            for k in 0..IN {
                a += w1[j * IN + k] * d.x[i][k];
            }
            h[s][j] = a.tanh();
        }
        for o in 0..OUT {
            let mut a = b2[o];
            for j in 0..HID {
                a += w2[o * HID + j] * h[s][j];
            }
            let e = a - d.y[i][o];
            loss += (e * e) as f64;
            dout[s][o] = 2.0 * e;
        }
    }
    let scale = match local {
        Local::Sum => 1.0,
        Local::Mean => 1.0 / n.max(1) as f32,
    };
    // Layer 2: w2 (index 2), b2 (index 3).
    for s in 0..n {
        for o in 0..OUT {
            for j in 0..HID {
                g[40 + o * HID + j] += dout[s][o] * h[s][j];
            }
            g[56 + o] += dout[s][o];
        }
    }
    g[40..58].iter_mut().for_each(|v| *v *= scale);
    ready(g, &[2, 3]);
    // Layer 1: w1 (0), b1 (1).
    for (s, &i) in idx.iter().enumerate() {
        for j in 0..HID {
            let mut dh = 0.0;
            for o in 0..OUT {
                dh += dout[s][o] * w2[o * HID + j];
            }
            let da = dh * (1.0 - h[s][j] * h[s][j]);
            for k in 0..IN {
                g[j * IN + k] += da * d.x[i][k];
            }
            g[32 + j] += da;
        }
    }
    g[0..40].iter_mut().for_each(|v| *v *= scale);
    ready(g, &[0, 1]);
    loss
}

#[derive(Clone, Copy, PartialEq)]
enum Opt {
    Sgd,
    AdamW,
}

struct Optim {
    kind: Opt,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Optim {
    fn new(kind: Opt) -> Self {
        Optim {
            kind,
            m: vec![0.0; n_params()],
            v: vec![0.0; n_params()],
            t: 0,
        }
    }
    fn step(&mut self, p: &mut [f32], g: &[f32]) {
        self.t += 1;
        match self.kind {
            Opt::Sgd => {
                for i in 0..p.len() {
                    self.m[i] = 0.9 * self.m[i] + g[i];
                    p[i] -= 0.05 * self.m[i];
                }
            }
            Opt::AdamW => {
                let (lr, b1, b2, eps, wd) = (1e-2f32, 0.9f32, 0.999f32, 1e-8f32, 0.01f32);
                let c1 = 1.0 - b1.powi(self.t);
                let c2 = 1.0 - b2.powi(self.t);
                for i in 0..p.len() {
                    self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
                    self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
                    p[i] -= lr * (self.m[i] / c1 / ((self.v[i] / c2).sqrt() + eps) + wd * p[i]);
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Setup {
    local: Local,
    reduce: GradReduce,
    wire: GradWire,
    opt: Opt,
    epochs: u64,
}

/// One rank's training run; returns its parameters and the last step's summed metrics.
fn train_rank(
    comm: &mut dyn Communicator,
    batch_per_rank: usize,
    setup: Setup,
    start: Option<(Vec<f32>, usize)>,
    max_steps: Option<usize>,
) -> (Vec<f32>, StepMetrics, usize) {
    let d = data();
    let (rank, world) = (comm.rank(), comm.world_size());
    let lay = layout();
    verify_same(comm, "the parameter layout", &layout_bytes(&lay)).unwrap();
    // Each rank starts from its own values; rank 0's win.
    let (mut p, resume_at) = start.unwrap_or_else(|| (init_params(100 + rank as u64), 0));
    sync_parameters(comm, &mut p).unwrap();
    let cfg = DpConfig {
        buckets: BucketConfig {
            bucket_bytes: 64,
            first_bucket_bytes: 16,
            elem_bytes: 4,
            max_gap: 0,
        },
        wire: setup.wire,
        reduce: setup.reduce,
    };
    let mut dp = DataParallel::new(&lay, cfg).unwrap();
    assert!(dp.plan().len() >= 3, "several buckets: {:?}", dp.plan());
    let sampler = DistributedSampler::new(N_SAMPLES, batch_per_rank, rank, world)
        .unwrap()
        .with_seed(9);
    let mut opt = Optim::new(setup.opt);
    let mut g = vec![0f32; n_params()];
    let mut last = StepMetrics::default();
    let mut steps = 0;
    let mut position = resume_at;
    for epoch in 0..setup.epochs {
        let from = if epoch == 0 { resume_at } else { 0 };
        for b in sampler.batches(epoch, from).unwrap() {
            if max_steps == Some(steps) {
                return (p, last, position);
            }
            dp.begin_step();
            let loss = forward_backward(&p, &mut g, &d, &b.indices, setup.local, &mut |g, ids| {
                dp.grads_ready(comm, g, ids).unwrap()
            });
            dp.finish(comm, &mut g).unwrap();
            opt.step(&mut p, &g);
            last = StepMetrics {
                loss_sum: loss,
                samples: b.indices.len() as f64,
                extra: vec![],
            };
            last.all_reduce(comm).unwrap();
            steps += 1;
            position = b.position_after();
        }
    }
    (p, last, position)
}

/// Runs `f` on `n` ranks (threads) connected over loopback TCP.
fn on_ranks<T: Send + 'static>(
    n: usize,
    f: impl Fn(&mut dyn Communicator) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let info = |rank, port| RankInfo {
        rank,
        world_size: n,
        local_rank: rank,
        local_world_size: Some(n),
        master_addr: "127.0.0.1".into(),
        master_port: port,
        source: RankSource::Torchrun,
        note: None,
    };
    let opts = RendezvousOptions::with_timeout(Duration::from_secs(10));
    if n == 1 {
        return vec![f(&mut LocalCommunicator)];
    }
    let l = Listening::bind(&info(0, 0), &opts).unwrap();
    let port = l.local_addr().port();
    let f = Arc::new(f);
    let hs: Vec<_> = (1..n)
        .map(|r| {
            let (f, opts, i) = (f.clone(), opts.clone(), info(r, port));
            std::thread::spawn(move || f(&mut TcpCommunicator::connect(&i, &opts).unwrap()))
        })
        .collect();
    let mut c0 = TcpCommunicator::new(l.accept_all().unwrap());
    let mut out = vec![f(&mut c0)];
    out.extend(hs.into_iter().map(|h| h.join().unwrap()));
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The single-rank reference whose gradient is grouped as the ranks' partial sums added in
/// rank order: per step, each shard's sum (as rank r computes it), then the shards in order.
fn grouped_reference(world: usize, b: usize, setup: Setup) -> Vec<f32> {
    let d = data();
    let mut p = init_params(100);
    let s = DistributedSampler::new(N_SAMPLES, b * world, 0, 1)
        .unwrap()
        .with_seed(9);
    let mut opt = Optim::new(setup.opt);
    let mut total = vec![0f32; n_params()];
    let mut part = vec![0f32; n_params()];
    for epoch in 0..setup.epochs {
        for batch in s.batches(epoch, 0).unwrap() {
            for r in 0..world {
                let shard = &batch.indices[r * b..(r + 1) * b];
                forward_backward(&p, &mut part, &d, shard, setup.local, &mut |_, _| {});
                if r == 0 {
                    total.copy_from_slice(&part);
                } else {
                    total.iter_mut().zip(&part).for_each(|(t, x)| *t += x);
                }
            }
            match setup.reduce {
                GradReduce::Scale(k) => total.iter_mut().for_each(|t| *t *= k),
                GradReduce::Mean => total.iter_mut().for_each(|t| *t /= world as f32),
                GradReduce::Sum => {}
            }
            opt.step(&mut p, &total);
        }
    }
    p
}

#[test]
fn n_ranks_equal_one_rank_with_n_times_the_batch_bit_for_bit() {
    let b = 4;
    for world in [2, 3, 4] {
        let setup = Setup {
            local: Local::Sum,
            reduce: GradReduce::Scale(1.0 / (b * world) as f32),
            wire: GradWire::F32,
            opt: Opt::AdamW,
            epochs: 2,
        };
        let ranks = on_ranks(world, move |c| train_rank(c, b, setup, None, None));
        let want = grouped_reference(world, b, setup);
        assert!(
            max_abs_diff(&want, &init_params(100)) > 1e-2,
            "the model did not train"
        );
        for (r, (p, m, _)) in ranks.iter().enumerate() {
            assert!(
                p.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                "world {world}, rank {r}: max diff {}",
                max_abs_diff(p, &want)
            );
            assert_eq!(m.samples, (b * world) as f64);
        }
        // One rank with the whole global batch, summed plainly: rounding apart, the same.
        let one = on_ranks(1, move |c| train_rank(c, b * world, setup, None, None));
        let diff = max_abs_diff(&ranks[0].0, &one[0].0);
        assert!(diff < 1e-4, "world {world}: {diff}");
        let (l1, l2) = (ranks[0].1.mean_loss(), one[0].1.mean_loss());
        assert!((l1 - l2).abs() < 1e-4 * l2.max(1.0), "{l1} {l2}");
    }
}

#[test]
fn mean_of_local_means_matches_the_global_mean() {
    // DDP's convention: each rank averages over its batch, the all-reduce divides by N.
    let b = 3;
    for world in [2, 4] {
        let setup = Setup {
            local: Local::Mean,
            reduce: GradReduce::Mean,
            wire: GradWire::F32,
            opt: Opt::Sgd,
            epochs: 2,
        };
        let ranks = on_ranks(world, move |c| train_rank(c, b, setup, None, None));
        let one = on_ranks(1, move |c| train_rank(c, b * world, setup, None, None));
        for (p, _, _) in &ranks {
            assert!(p == &ranks[0].0, "ranks differ");
            let diff = max_abs_diff(p, &one[0].0);
            assert!(diff < 1e-5, "world {world}: {diff}");
        }
    }
}

#[test]
fn bf16_gradients_keep_ranks_identical_and_close() {
    let (b, world) = (4, 4);
    let setup = Setup {
        local: Local::Mean,
        reduce: GradReduce::Mean,
        wire: GradWire::Bf16,
        opt: Opt::Sgd,
        epochs: 1,
    };
    let ranks = on_ranks(world, move |c| train_rank(c, b, setup, None, None));
    let f32_setup = Setup {
        wire: GradWire::F32,
        ..setup
    };
    let exact = on_ranks(1, move |c| train_rank(c, b * world, f32_setup, None, None));
    for (p, _, _) in &ranks {
        assert!(p
            .iter()
            .zip(&ranks[0].0)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    let diff = max_abs_diff(&ranks[0].0, &exact[0].0);
    assert!(diff > 0.0 && diff < 2e-2, "{diff}");
}

#[test]
fn resume_on_another_world_size() {
    // 2 ranks × 4 for 5 steps, then a "checkpoint" (parameters and the global sample
    // position; the optimizer state restarts at the resume point on both sides compared).
    let setup = Setup {
        local: Local::Mean,
        reduce: GradReduce::Mean,
        wire: GradWire::F32,
        opt: Opt::Sgd,
        epochs: 1,
    };
    let first = on_ranks(2, move |c| train_rank(c, 4, setup, None, Some(5)));
    let (p5, _, pos) = first[0].clone();
    assert_eq!(pos, 40);
    // Resume on 4 ranks × 2 (same global batch of 8) from position 40.
    let p = p5.clone();
    let resumed = on_ranks(4, move |c| {
        train_rank(c, 2, setup, Some((p.clone(), pos)), None)
    });
    // The same on one rank × 8.
    let p = p5.clone();
    let single = on_ranks(1, move |c| {
        train_rank(c, 8, setup, Some((p.clone(), pos)), None)
    });
    assert_eq!(resumed[0].2, 96);
    let diff = max_abs_diff(&resumed[0].0, &single[0].0);
    assert!(diff < 1e-5, "{diff}");
    // And a run of 4 ranks × 2 from the start, interrupted nowhere, agrees after the first
    // five steps: the data order is global.
    let straight = on_ranks(4, move |c| train_rank(c, 2, setup, None, Some(5)));
    assert!(max_abs_diff(&straight[0].0, &p5) < 1e-5);
}

#[test]
fn ranks_with_another_model_are_named() {
    let res = on_ranks(3, |c| {
        let mut lay = layout();
        if c.rank() == 2 {
            lay[0].len += 1;
        }
        verify_same(c, "the parameter layout", &layout_bytes(&lay)).map_err(|e| format!("{e:#}"))
    });
    for r in res {
        let e = r.unwrap_err();
        assert!(e.contains("differs between rank 0 and rank 2"), "{e}");
    }
}

// ---- on a GPU: the same through NCCL ------------------------------------------------------

fn gpus() -> usize {
    dist::nccl::gpu_count()
}

#[test]
#[ignore = "needs a CUDA GPU and NCCL"]
fn nccl_world_of_one_through_the_full_path() {
    assert!(gpus() >= 1, "no GPU");
    let mut nc = dist::nccl::NcclCommunicator::new(dist::Rendezvous::alone(), 0).unwrap();
    let mut v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    nc.all_reduce_sum_f32(&mut v).unwrap();
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
    let mut m = [1.5f64, 2.0];
    nc.all_reduce_sum_f64(&mut m).unwrap();
    assert_eq!(m, [1.5, 2.0]);
    // A short training run through NCCL equals the local one.
    let setup = Setup {
        local: Local::Mean,
        reduce: GradReduce::Mean,
        wire: GradWire::F32,
        opt: Opt::AdamW,
        epochs: 1,
    };
    let (p, _, _) = train_rank(&mut nc, 8, setup, None, None);
    let (q, _, _) = train_rank(&mut LocalCommunicator, 8, setup, None, None);
    assert!(max_abs_diff(&p, &q) < 1e-6);
}

#[test]
#[ignore = "needs 2 CUDA GPUs and NCCL"]
fn nccl_two_ranks_train_like_one() {
    // Ignored unless asked for; asked for on a machine with fewer GPUs it fails, not passes.
    assert!(gpus() >= 2, "this test needs 2 CUDA GPUs, found {}", gpus());
    let setup = Setup {
        local: Local::Mean,
        reduce: GradReduce::Mean,
        wire: GradWire::F32,
        opt: Opt::Sgd,
        epochs: 1,
    };
    let opts = RendezvousOptions::with_timeout(Duration::from_secs(60));
    let info = |rank, port| RankInfo {
        rank,
        world_size: 2,
        local_rank: rank,
        local_world_size: Some(2),
        master_addr: "127.0.0.1".into(),
        master_port: port,
        source: RankSource::Torchrun,
        note: None,
    };
    let l = Listening::bind(&info(0, 0), &opts).unwrap();
    let port = l.local_addr().port();
    let o = opts.clone();
    let h = std::thread::spawn(move || {
        let rdv = dist::Rendezvous::connect(&info(1, port), &o).unwrap();
        let mut nc = dist::nccl::NcclCommunicator::new(rdv, 1).unwrap();
        train_rank(&mut nc, 4, setup, None, None).0
    });
    let mut nc = dist::nccl::NcclCommunicator::new(l.accept_all().unwrap(), 0).unwrap();
    let p0 = train_rank(&mut nc, 4, setup, None, None).0;
    let p1 = h.join().unwrap();
    let one = train_rank(&mut LocalCommunicator, 8, setup, None, None).0;
    assert_eq!(p0, p1);
    assert!(max_abs_diff(&p0, &one) < 1e-5);
}
