//! `seisfuse bench allreduce`: all-reduce time and bandwidth by message size, printed like
//! NVIDIA's nccl-tests (`all_reduce_perf`) so that a fabric can be compared with NCCL's own
//! figures. algbw = bytes / time; busbw = algbw · 2(n−1)/n, the bandwidth each link must carry
//! in a ring all-reduce (independent of the number of ranks). The time is the mean over the
//! ranks of each rank's mean over the timed iterations (as nccl-tests reports it).
//!
//! Run one process per GPU: `seisfuse launch --nproc-per-node 8 -- bench allreduce`.

use super::comm::{CommBackend, Communicator, LocalCommunicator, TcpCommunicator};
use super::data_parallel::GradWire;
use super::env::RankInfo;
use super::rendezvous::RendezvousOptions;
use super::selftest::{choose_backend, rendezvous};
use crate::backend::DeviceRequest;
use anyhow::{bail, Result};
use half::bf16;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct AllreduceArgs {
    /// Message sizes in bytes, comma-separated, with K/M/G suffixes (powers of 1024), e.g.
    /// 8,1K,1M,64M. Default: 1K to 64M by factors of 4 (to 1G with NCCL).
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    pub sizes: Vec<usize>,
    /// auto (NCCL when it and this rank's GPU are present, else TCP), tcp or nccl.
    #[arg(long, default_value = "auto")]
    pub backend: CommBackend,
    /// Element type on the wire: fp32 or bf16.
    #[arg(long, default_value = "fp32")]
    pub dtype: GradWire,
    /// Timed iterations per size.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Untimed iterations before them.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Seconds the rendezvous waits for every rank.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
}

/// "64M" → 67108864; plain numbers are bytes.
pub fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1usize << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("'{s}' is not a size: expected bytes like 8, 4K, 1M or 1G"))
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub bytes: usize,
    pub count: usize,
    pub time_us: f64,
    pub algbw: f64,
    pub busbw: f64,
    pub wrong: usize,
}

/// Bus bandwidth from algorithm bandwidth (nccl-tests' all-reduce factor 2(n−1)/n).
pub fn bus_bandwidth(algbw: f64, ranks: usize) -> f64 {
    if ranks <= 1 {
        0.0
    } else {
        algbw * 2.0 * (ranks - 1) as f64 / ranks as f64
    }
}

fn header(info: &RankInfo, backend: &str, a: &AllreduceArgs) -> String {
    format!(
        "# seisfuse bench allreduce: {} ranks, backend {backend}, {}, in place, {} iterations ({} warm-up)\n\
         #\n\
         # {:>12} {:>12} {:>6} {:>6} {:>10} {:>8} {:>8} {:>6}\n\
         # {:>12} {:>12} {:>6} {:>6} {:>10} {:>8} {:>8} {:>6}",
        info.world_size,
        match a.dtype {
            GradWire::F32 => "float",
            GradWire::Bf16 => "bfloat16",
        },
        a.iters,
        a.warmup,
        "size", "count", "type", "redop", "time", "algbw", "busbw", "#wrong",
        "(B)", "(elements)", "", "", "(us)", "(GB/s)", "(GB/s)", ""
    )
}

fn format_row(r: &Row, dtype: GradWire) -> String {
    format!(
        "  {:>12} {:>12} {:>6} {:>6} {:>10.2} {:>8.2} {:>8.2} {:>6}",
        r.bytes,
        r.count,
        match dtype {
            GradWire::F32 => "float",
            GradWire::Bf16 => "bf16",
        },
        "sum",
        r.time_us,
        r.algbw,
        r.busbw,
        r.wrong
    )
}

/// Runs the benchmark on this rank; rank 0 prints the table.
pub fn run(req: DeviceRequest, a: AllreduceArgs) -> Result<()> {
    let info = RankInfo::from_process_env()?;
    if a.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let (backend, why) = choose_backend(req, a.backend, &info);
    let sizes = if a.sizes.is_empty() {
        let top = if backend == CommBackend::Nccl { 30 } else { 26 };
        (5..=top / 2).map(|k| 1usize << (2 * k)).collect()
    } else {
        a.sizes.clone()
    };
    if info.is_main() && !info.is_distributed() {
        eprintln!(
            "note: one rank: nothing crosses a link. Start several, e.g. \
             `seisfuse launch --nproc-per-node 8 -- bench allreduce`"
        );
    }
    if backend == CommBackend::Nccl {
        super::selftest::nccl_ready(&info)?;
    }
    let ropts = RendezvousOptions::with_timeout(Duration::from_secs_f64(a.timeout.max(0.1)));
    let rdv = rendezvous(&info, &ropts)?;
    let elem = match a.dtype {
        GradWire::F32 => 4,
        GradWire::Bf16 => 2,
    };
    if info.is_main() {
        println!("{}", header(&info, &why, &a));
    }
    let mut comm: Box<dyn Communicator> = match backend {
        CommBackend::Nccl => {
            let gpu = info.cuda_device(super::nccl::gpu_count())?;
            let nc = super::nccl::NcclCommunicator::new(rdv, gpu)?;
            return run_nccl(nc, &info, &a, &sizes, elem);
        }
        _ if info.world_size == 1 => Box::new(LocalCommunicator),
        _ => Box::new(TcpCommunicator::new(rdv)),
    };
    let mut rows = Vec::new();
    for &bytes in &sizes {
        let count = (bytes / elem).max(1);
        let fill = |r: usize, i: usize| ((r + 1) * (i % 64 + 1)) as f32;
        // Zeros while timing (sums stay finite), then one checked all-reduce.
        let mut f: Vec<f32> = Vec::new();
        let mut h: Vec<bf16> = Vec::new();
        match a.dtype {
            GradWire::F32 => f = vec![0.0; count],
            GradWire::Bf16 => h = vec![bf16::ZERO; count],
        }
        for _ in 0..a.warmup {
            once(&mut *comm, &mut f, &mut h)?;
        }
        comm.barrier()?;
        let t = Instant::now();
        for _ in 0..a.iters {
            once(&mut *comm, &mut f, &mut h)?;
        }
        let mine = t.elapsed().as_secs_f64() / a.iters as f64;
        match a.dtype {
            GradWire::F32 => f = (0..count).map(|i| fill(info.rank, i)).collect(),
            GradWire::Bf16 => {
                h = (0..count)
                    .map(|i| bf16::from_f32(fill(info.rank, i)))
                    .collect()
            }
        }
        once(&mut *comm, &mut f, &mut h)?;
        let got = |i: usize| match a.dtype {
            GradWire::F32 => f[i],
            GradWire::Bf16 => h[i].to_f32(),
        };
        rows.push(checked_row(
            &mut *comm, &info, a.dtype, count, elem, mine, got,
        )?);
    }
    footer(&info, &rows);
    Ok(())
}

/// One all-reduce of whichever buffer is in use (the other is empty).
fn once(comm: &mut dyn Communicator, f: &mut [f32], h: &mut [bf16]) -> Result<()> {
    if !f.is_empty() {
        comm.all_reduce_sum_f32(f)
    } else {
        comm.all_reduce_sum_bf16(h)
    }
}

/// One size's row: this rank's seconds per all-reduce (`mine`) averaged over the ranks, and
/// the elements of the checked all-reduce (`got`) that miss the expected sum by more than 1 %,
/// counted over all ranks; the main rank prints it.
fn checked_row(
    comm: &mut dyn Communicator,
    info: &RankInfo,
    dtype: GradWire,
    count: usize,
    elem: usize,
    mine: f64,
    got: impl Fn(usize) -> f32,
) -> Result<Row> {
    let w = info.world_size;
    let s = (w * (w + 1) / 2) as f32;
    let wrong = (0..count)
        .filter(|&i| {
            let want = s * (i % 64 + 1) as f32;
            (got(i) - want).abs() > want * 1e-2
        })
        .count();
    let mut t = [mine, wrong as f64];
    comm.all_reduce_sum_f64(&mut t)?;
    let secs = t[0] / w as f64;
    let algbw = (count * elem) as f64 / secs / 1e9;
    let row = Row {
        bytes: count * elem,
        count,
        time_us: secs * 1e6,
        algbw,
        busbw: bus_bandwidth(algbw, w),
        wrong: t[1] as usize,
    };
    if info.is_main() {
        println!("{}", format_row(&row, dtype));
    }
    Ok(row)
}

fn footer(info: &RankInfo, rows: &[Row]) {
    if info.is_main() && !rows.is_empty() {
        let wrong: usize = rows.iter().map(|r| r.wrong).sum();
        println!(
            "# Out of bounds values : {wrong} {}",
            if wrong == 0 { "OK" } else { "FAILED" }
        );
        println!(
            "# Avg bus bandwidth    : {:.4}",
            rows.iter().map(|r| r.busbw).sum::<f64>() / rows.len() as f64
        );
    }
}

/// The NCCL variant: device buffers on this rank's GPU, all-reduces enqueued back to back
/// on the communicator's stream, timed from the host around a stream synchronisation.
fn run_nccl(
    mut nc: super::nccl::NcclCommunicator,
    info: &RankInfo,
    a: &AllreduceArgs,
    sizes: &[usize],
    elem: usize,
) -> Result<()> {
    use super::nccl_lib::{DataType, RawStream};
    let dtype = match a.dtype {
        GradWire::F32 => DataType::F32,
        GradWire::Bf16 => DataType::Bf16,
    };
    let mut rows = Vec::new();
    for &bytes in sizes {
        let count = (bytes / elem).max(1);
        let stream = nc.stream().clone();
        nc.context().bind_to_thread()?;
        // Elements of 4 (f32) or 2 (bf16) bytes, allocated as u32 / u16.
        let fill = |i: usize| (info.rank + 1) as f32 * (i % 64 + 1) as f32;
        let host32: Vec<f32> = (0..count).map(fill).collect();
        let host16: Vec<u16> = host32
            .iter()
            .map(|&x| bf16::from_f32(x).to_bits())
            .collect();
        let mut d32 = if elem == 4 {
            Some(stream.alloc_zeros::<f32>(count)?)
        } else {
            None
        };
        let mut d16 = if elem == 2 {
            Some(stream.alloc_zeros::<u16>(count)?)
        } else {
            None
        };
        let raw = stream.cu_stream() as RawStream;
        for _ in 0..a.warmup {
            enqueue(&nc, &stream, raw, &mut d32, &mut d16, count, dtype)?;
        }
        nc.synchronize("all-reduce (warm-up)")?;
        nc.barrier()?;
        let t = Instant::now();
        for _ in 0..a.iters {
            enqueue(&nc, &stream, raw, &mut d32, &mut d16, count, dtype)?;
        }
        nc.synchronize("all-reduce")?;
        let mine = t.elapsed().as_secs_f64() / a.iters as f64;
        // Check: fill, one all-reduce, compare.
        if let Some(d) = &mut d32 {
            stream.memcpy_htod(&host32, d)?;
        }
        if let Some(d) = &mut d16 {
            stream.memcpy_htod(&host16, d)?;
        }
        enqueue(&nc, &stream, raw, &mut d32, &mut d16, count, dtype)?;
        let got: Vec<f32> = if let Some(d) = &d32 {
            stream.clone_dtoh(d)?
        } else if let Some(d) = &d16 {
            stream
                .clone_dtoh(d)?
                .into_iter()
                .map(|b| bf16::from_bits(b).to_f32())
                .collect()
        } else {
            Vec::new()
        };
        rows.push(checked_row(
            &mut nc,
            info,
            a.dtype,
            count,
            elem,
            mine,
            |i| got[i],
        )?);
    }
    footer(info, &rows);
    Ok(())
}

/// Enqueues one in-place all-reduce of whichever device buffer is in use.
fn enqueue(
    nc: &super::nccl::NcclCommunicator,
    stream: &cudarc::driver::CudaStream,
    raw: super::nccl_lib::RawStream,
    d32: &mut Option<cudarc::driver::CudaSlice<f32>>,
    d16: &mut Option<cudarc::driver::CudaSlice<u16>>,
    count: usize,
    dtype: super::nccl_lib::DataType,
) -> Result<()> {
    use cudarc::driver::DevicePtrMut;
    // SAFETY: the buffers hold `count` elements on this device and live until the stream is
    // synchronised by the caller.
    unsafe {
        if let Some(d) = d32 {
            let (p, _s) = d.device_ptr_mut(stream);
            nc.all_reduce_sum_device(p, count, dtype, raw)
        } else if let Some(d) = d16 {
            let (p, _s) = d.device_ptr_mut(stream);
            nc.all_reduce_sum_device(p, count, dtype, raw)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bus_bandwidth() {
        assert_eq!(parse_size("8"), Ok(8));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert_eq!(bus_bandwidth(10.0, 8), 17.5);
        assert_eq!(bus_bandwidth(10.0, 1), 0.0);
    }
}
