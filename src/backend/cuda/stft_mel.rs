//! Launch wrappers for kernels/stft_mel.cu: the fused log-mel forward (an FFT in shared memory
//! for 7-smooth n_fft ≤ 2048, a direct DFT otherwise), its backward, and the mel-image finish.
//!
//! Launches are planned as plain data ([`Launch`]: kernel, grid, arguments with raw pointers)
//! from host tables ([`MelTables`]) and then run on the stream; the plan does not depend on
//! CUDA, so tests can also run it through a CPU emulation of the kernels
//! (tests/dsp_kernel_emu.rs).

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use crate::dsp::mel::{LogKind, LogMel};
use crate::tensor::{CpuStorage, DType};
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;
use std::sync::Arc;

pub const FILE: &str = "stft_mel";
/// Threads per block of the per-frame kernels.
pub const FRAME_BLOCK: u32 = 128;
/// Threads per block of the per-image finish (a multiple of 32 for the block reductions).
pub const IMAGE_BLOCK: u32 = 256;
/// Largest n_fft of the shared-memory FFT (24·N bytes of shared memory ≤ 48 KiB).
pub const FFT_MAX_N: usize = 2048;
/// Largest n_fft of the direct-DFT forward (N + N/2 + 1 floats ≤ 48 KiB).
pub const DFT_MAX_N: usize = 8000;
/// Largest n_fft of the backward (N + 3(N/2 + 1) + n_mels floats ≤ 48 KiB).
pub const BACKWARD_MAX_N: usize = 4096;
/// Most traces per launch (grid y).
pub const MAX_GRID_Y: usize = 65535;
/// Dynamic shared memory a launch may use without opting in (48 KiB).
pub const MAX_SHARED_BYTES: usize = 48 * 1024;

fn check_shared(kernel: &str, bytes: usize) -> Result<()> {
    if bytes > MAX_SHARED_BYTES {
        bail!(
            "{kernel} would need {bytes} bytes of shared memory (limit {MAX_SHARED_BYTES}); use a smaller n_fft or n_mels, or --device cpu"
        );
    }
    Ok(())
}

/// Radices (8, 4, 2, 3, 5, 7) whose product is `n`, when `n` is 7-smooth and has at most 16
/// factors; `None` otherwise (then the direct DFT serves).
pub fn fft_radices(n: usize) -> Option<Vec<usize>> {
    if n < 2 {
        return None;
    }
    let mut rest = n;
    let mut out = Vec::new();
    for r in [8, 4, 2, 3, 5, 7] {
        while rest.is_multiple_of(r) {
            out.push(r);
            rest /= r;
        }
    }
    (rest == 1 && out.len() <= 16).then_some(out)
}

/// (kind, floor, offset) of a compression as the kernels take them.
pub fn log_args(log: LogKind) -> (i32, f32, f32) {
    match log {
        LogKind::Linear => (0, 0.0, 0.0),
        LogKind::Ln { floor } => (1, floor, 0.0),
        LogKind::Db { amin, ref_value } => (2, amin, 10.0 * ref_value.max(amin).log10()),
    }
}

/// The host side of one log-mel transform: parameters and the tables the kernels read.
#[derive(Clone, Debug)]
pub struct MelTables {
    pub n_fft: usize,
    pub hop: usize,
    pub pad: usize,
    pub reflect: bool,
    pub n_mels: usize,
    pub log: LogKind,
    pub window: Vec<f32>,
    /// e^{-2πin/N} as (cos, −sin) pairs, computed in f64.
    pub twiddles: Vec<f32>,
    /// Dense [n_mels, n_freq].
    pub fb: Vec<f32>,
    /// Per filter [lo, hi) of its non-zero bins.
    pub ranges: Vec<i32>,
    /// The FFT's radices when the fast path applies.
    pub radices: Option<Vec<usize>>,
}

impl MelTables {
    pub fn new(lm: &LogMel<f32>) -> Result<Self> {
        let cfg = &lm.stft.cfg;
        let n = cfg.n_fft;
        if n > DFT_MAX_N {
            bail!("n_fft {n} is larger than the GPU path supports ({DFT_MAX_N}); use --device cpu");
        }
        let mut twiddles = Vec::with_capacity(2 * n);
        for i in 0..n {
            let th = -2.0 * std::f64::consts::PI * i as f64 / n as f64;
            twiddles.push(th.cos() as f32);
            twiddles.push(th.sin() as f32);
        }
        Ok(MelTables {
            n_fft: n,
            hop: cfg.hop,
            pad: cfg.pad(),
            reflect: cfg.pad_mode == crate::dsp::PadMode::Reflect,
            n_mels: lm.fb.n_mels,
            log: lm.log,
            window: lm.stft.window.clone(),
            twiddles,
            fb: lm.fb.weights.clone(),
            ranges: lm
                .fb
                .ranges
                .iter()
                .flat_map(|&(a, z)| [a as i32, z as i32])
                .collect(),
            radices: fft_radices(n).filter(|_| n <= FFT_MAX_N),
        })
    }
}

/// Device addresses of the four tables.
#[derive(Clone, Copy, Debug)]
pub struct TablePtrs {
    pub window: u64,
    pub twiddles: u64,
    pub fb: u64,
    pub ranges: u64,
}

/// One planned kernel launch.
#[derive(Clone, Debug)]
pub struct Launch {
    pub kernel: &'static str,
    pub cfg: LaunchConfig,
    pub args: Vec<KArg>,
}

fn cfg(grid: (u32, u32), block: u32, smem: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid.0, grid.1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: smem as u32,
    }
}

fn grid_stride(total: usize) -> LaunchConfig {
    let mut g = grid_1d(total, 256);
    g.grid_dim.0 = g.grid_dim.0.min(65535 * 4);
    g
}

/// Forward: out [batch, n_mels, frames] (address `out`) from x [batch, t] (address `x`).
pub fn forward_launches(
    tb: &MelTables,
    p: &TablePtrs,
    out: u64,
    x: u64,
    batch: usize,
    t: usize,
    frames: usize,
) -> Vec<Launch> {
    let (kind, fl, off) = log_args(tb.log);
    let n = tb.n_fft;
    let mut v = Vec::new();
    let mut start = 0;
    while start < batch {
        let cnt = (batch - start).min(MAX_GRID_Y);
        let mut args = vec![
            KArg::Ptr(out + (start * tb.n_mels * frames * 4) as u64),
            KArg::Ptr(x + (start * t * 4) as u64),
            KArg::Ptr(p.window),
            KArg::Ptr(p.twiddles),
            KArg::Ptr(p.fb),
            KArg::Ptr(p.ranges),
            KArg::I32(t as i32),
            KArg::I32(n as i32),
            KArg::I32(tb.hop as i32),
            KArg::I32(tb.pad as i32),
            KArg::I32(tb.reflect as i32),
            KArg::I32(frames as i32),
            KArg::I32(tb.n_mels as i32),
        ];
        if let Some(radices) = &tb.radices {
            let code = radices
                .iter()
                .enumerate()
                .fold(0u64, |c, (i, &r)| c | ((r as u64) << (4 * i)));
            args.extend([
                KArg::U64(code),
                KArg::I32(radices.len() as i32),
                KArg::I32(kind),
                KArg::F32(fl),
                KArg::F32(off),
            ]);
            v.push(Launch {
                kernel: "log_mel_frames_fft",
                cfg: cfg((frames.div_ceil(2) as u32, cnt as u32), FRAME_BLOCK, 24 * n),
                args,
            });
        } else {
            args.extend([KArg::I32(kind), KArg::F32(fl), KArg::F32(off)]);
            v.push(Launch {
                kernel: "log_mel_frames_dft",
                cfg: cfg(
                    (frames as u32, cnt as u32),
                    FRAME_BLOCK,
                    4 * (n + n / 2 + 1),
                ),
                args,
            });
        }
        start += cnt;
    }
    v
}

/// Traces per backward step: the frame-gradient scratch holds this many traces.
pub fn backward_chunk(batch: usize) -> usize {
    batch.clamp(1, 256)
}

/// Backward: dx [batch, t] (written) from x and dy [batch, n_mels, frames]; `dframes` is a
/// scratch of `backward_chunk(batch) · frames · n_fft` floats, reused chunk after chunk.
#[allow(clippy::too_many_arguments)]
pub fn backward_launches(
    tb: &MelTables,
    p: &TablePtrs,
    dx: u64,
    x: u64,
    dy: u64,
    dframes: u64,
    batch: usize,
    t: usize,
    frames: usize,
) -> Result<Vec<Launch>> {
    let n = tb.n_fft;
    if n > BACKWARD_MAX_N {
        bail!("the GPU log-mel backward supports n_fft up to {BACKWARD_MAX_N}, found {n}");
    }
    let (kind, fl, _) = log_args(tb.log);
    let nf = n / 2 + 1;
    let smem = 4 * (n + 3 * nf + tb.n_mels);
    check_shared("log_mel_frames_backward_dft", smem)?;
    let chunk = backward_chunk(batch);
    let mut v = Vec::new();
    let mut start = 0;
    while start < batch {
        let cnt = (batch - start).min(chunk);
        v.push(Launch {
            kernel: "log_mel_frames_backward_dft",
            cfg: cfg(
                (frames as u32, cnt as u32),
                FRAME_BLOCK,
                4 * (n + 3 * nf + tb.n_mels),
            ),
            args: vec![
                KArg::Ptr(dframes),
                KArg::Ptr(x + (start * t * 4) as u64),
                KArg::Ptr(dy + (start * tb.n_mels * frames * 4) as u64),
                KArg::Ptr(p.window),
                KArg::Ptr(p.twiddles),
                KArg::Ptr(p.fb),
                KArg::Ptr(p.ranges),
                KArg::I32(t as i32),
                KArg::I32(n as i32),
                KArg::I32(tb.hop as i32),
                KArg::I32(tb.pad as i32),
                KArg::I32(tb.reflect as i32),
                KArg::I32(frames as i32),
                KArg::I32(tb.n_mels as i32),
                KArg::I32(kind),
                KArg::F32(fl),
            ],
        });
        let total = cnt * t;
        v.push(Launch {
            kernel: "log_mel_overlap_add_backward",
            cfg: grid_stride(total),
            args: vec![
                KArg::Ptr(dx + (start * t * 4) as u64),
                KArg::Ptr(dframes),
                KArg::I64(total as i64),
                KArg::I32(t as i32),
                KArg::I32(n as i32),
                KArg::I32(tb.hop as i32),
                KArg::I32(tb.pad as i32),
                KArg::I32(tb.reflect as i32),
                KArg::I32(frames as i32),
            ],
        });
        start += cnt;
    }
    Ok(v)
}

/// out [images, h, w] from logmel [images, h, f]: top_db, resampling, normalisation
/// (0 none, 1 min-max, 2 z-score).
#[allow(clippy::too_many_arguments)]
pub fn finish_launch(
    out: u64,
    logmel: u64,
    images: usize,
    h: usize,
    f: usize,
    w: usize,
    top_db: Option<f32>,
    normalize: i32,
) -> Launch {
    Launch {
        kernel: "mel_image_finish",
        cfg: cfg((images as u32, 1), IMAGE_BLOCK, 0),
        args: vec![
            KArg::Ptr(out),
            KArg::Ptr(logmel),
            KArg::I32(h as i32),
            KArg::I32(f as i32),
            KArg::I32(w as i32),
            KArg::I32(top_db.is_some() as i32),
            KArg::F32(top_db.unwrap_or(0.0)),
            KArg::I32(normalize),
        ],
    }
}

/// out [n, hw] = mean over c of input [n, c, hw].
pub fn mean_launch(out: u64, input: u64, n: usize, c: usize, hw: usize) -> Launch {
    Launch {
        kernel: "mean_over_channels",
        cfg: grid_stride(n * hw),
        args: vec![
            KArg::Ptr(out),
            KArg::Ptr(input),
            KArg::I64((n * hw) as i64),
            KArg::I32(c as i32),
            KArg::I64(hw as i64),
        ],
    }
}

fn run(b: &CudaBackend, launches: &[Launch]) -> Result<()> {
    for l in launches {
        b.launch(FILE, l.kernel, l.cfg, &l.args)?;
    }
    Ok(())
}

fn check_len(what: &str, buf: &CudaBuf, want: usize) -> Result<()> {
    if buf.len() < want {
        bail!(
            "{what}: the buffer holds {} values, {want} are needed",
            buf.len()
        );
    }
    Ok(())
}

/// The tables of one log-mel transform, uploaded.
pub struct LogMelDevice {
    pub tables: MelTables,
    window: CudaBuf,
    twiddles: CudaBuf,
    fb: CudaBuf,
    ranges: CudaBuf,
}

impl LogMelDevice {
    pub fn new(b: &Arc<CudaBackend>, lm: &LogMel<f32>) -> Result<Self> {
        let tables = MelTables::new(lm)?;
        let up = |c: CpuStorage| -> Result<CudaBuf> { Ok(b.upload(&c)?.buf) };
        Ok(LogMelDevice {
            window: up(CpuStorage::F32(tables.window.clone()))?,
            twiddles: up(CpuStorage::F32(tables.twiddles.clone()))?,
            fb: up(CpuStorage::F32(tables.fb.clone()))?,
            ranges: up(CpuStorage::I32(tables.ranges.clone()))?,
            tables,
        })
    }

    fn ptrs(&self, b: &CudaBackend) -> TablePtrs {
        TablePtrs {
            window: self.window.ptr(b),
            twiddles: self.twiddles.ptr(b),
            fb: self.fb.ptr(b),
            ranges: self.ranges.ptr(b),
        }
    }

    /// Whether the forward runs the shared-memory FFT (else the direct DFT).
    pub fn uses_fft(&self) -> bool {
        self.tables.radices.is_some()
    }
}

/// out [batch, n_mels, frames] = log-mel of x [batch, t].
pub fn log_mel_frames(
    b: &CudaBackend,
    d: &LogMelDevice,
    out: &CudaBuf,
    x: &CudaBuf,
    batch: usize,
    t: usize,
    frames: usize,
) -> Result<()> {
    check_len("log_mel_frames x", x, batch * t)?;
    check_len("log_mel_frames out", out, batch * d.tables.n_mels * frames)?;
    let l = forward_launches(
        &d.tables,
        &d.ptrs(b),
        out.ptr(b),
        x.ptr(b),
        batch,
        t,
        frames,
    );
    run(b, &l)
}

/// dx [batch, t] (written) = (∂ logmel / ∂x)ᵀ dy, dy [batch, n_mels, frames].
#[allow(clippy::too_many_arguments)]
pub fn log_mel_frames_backward(
    b: &Arc<CudaBackend>,
    d: &LogMelDevice,
    dx: &CudaBuf,
    x: &CudaBuf,
    dy: &CudaBuf,
    batch: usize,
    t: usize,
    frames: usize,
) -> Result<()> {
    check_len("log_mel_backward x", x, batch * t)?;
    check_len("log_mel_backward dx", dx, batch * t)?;
    check_len("log_mel_backward dy", dy, batch * d.tables.n_mels * frames)?;
    let dframes = b.zeros(DType::F32, backward_chunk(batch) * frames * d.tables.n_fft)?;
    let l = backward_launches(
        &d.tables,
        &d.ptrs(b),
        dx.ptr(b),
        x.ptr(b),
        dy.ptr(b),
        dframes.buf.ptr(b),
        batch,
        t,
        frames,
    )?;
    run(b, &l)
}

/// See [`finish_launch`].
#[allow(clippy::too_many_arguments)]
pub fn mel_image_finish(
    b: &CudaBackend,
    out: &CudaBuf,
    logmel: &CudaBuf,
    images: usize,
    h: usize,
    f: usize,
    w: usize,
    top_db: Option<f32>,
    normalize: i32,
) -> Result<()> {
    check_len("mel_image_finish logmel", logmel, images * h * f)?;
    check_len("mel_image_finish out", out, images * h * w)?;
    if images > i32::MAX as usize {
        bail!("too many images ({images}) for one launch");
    }
    run(
        b,
        &[finish_launch(
            out.ptr(b),
            logmel.ptr(b),
            images,
            h,
            f,
            w,
            top_db,
            normalize,
        )],
    )
}

/// out [n, hw] = mean over c of input [n, c, hw].
pub fn mean_over_channels(
    b: &CudaBackend,
    out: &CudaBuf,
    input: &CudaBuf,
    n: usize,
    c: usize,
    hw: usize,
) -> Result<()> {
    check_len("mean_over_channels input", input, n * c * hw)?;
    check_len("mean_over_channels out", out, n * hw)?;
    run(b, &[mean_launch(out.ptr(b), input.ptr(b), n, c, hw)])
}
