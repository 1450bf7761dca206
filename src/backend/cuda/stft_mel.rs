//! Launch wrappers for kernels/stft_mel.cu: the fused log-mel forward (an FFT in shared memory
//! for 7-smooth n_fft ≤ 2048, a direct DFT otherwise), its backward, and the mel-image finish.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use crate::dsp::mel::{LogKind, LogMel};
use crate::tensor::CpuStorage;
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;
use std::sync::Arc;

const FILE: &str = "stft_mel";
/// Threads per block of the per-frame kernels.
const FRAME_BLOCK: u32 = 128;
/// Threads per block of the per-image finish (a multiple of 32 for the block reductions).
const IMAGE_BLOCK: u32 = 256;
/// Largest n_fft of the shared-memory FFT (24·N bytes of shared memory ≤ 48 KiB).
pub const FFT_MAX_N: usize = 2048;
/// Largest n_fft of the direct-DFT forward (N + N/2 + 1 floats ≤ 48 KiB).
pub const DFT_MAX_N: usize = 8000;
/// Largest n_fft of the backward (N + 3(N/2 + 1) + n_mels floats ≤ 48 KiB).
pub const BACKWARD_MAX_N: usize = 4096;
/// Most traces per launch (grid y).
const MAX_GRID_Y: usize = 65535;

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

/// The tables of one log-mel transform on the device.
pub struct LogMelDevice {
    pub n_fft: usize,
    pub hop: usize,
    pub pad: usize,
    pub reflect: bool,
    pub n_mels: usize,
    pub log: LogKind,
    window: CudaBuf,
    twiddles: CudaBuf,
    fb: CudaBuf,
    ranges: CudaBuf,
    radices: Option<Vec<usize>>,
}

impl LogMelDevice {
    pub fn new(b: &Arc<CudaBackend>, lm: &LogMel<f32>) -> Result<Self> {
        let cfg = &lm.stft.cfg;
        let n = cfg.n_fft;
        if n > DFT_MAX_N {
            bail!("n_fft {n} is larger than the GPU path supports ({DFT_MAX_N}); use --device cpu");
        }
        let mut tw = Vec::with_capacity(2 * n);
        for i in 0..n {
            let th = -2.0 * std::f64::consts::PI * i as f64 / n as f64;
            tw.push(th.cos() as f32);
            tw.push(th.sin() as f32);
        }
        let ranges: Vec<i32> = lm
            .fb
            .ranges
            .iter()
            .flat_map(|&(a, z)| [a as i32, z as i32])
            .collect();
        let up = |c: CpuStorage| -> Result<CudaBuf> { Ok(b.upload(&c)?.buf) };
        let radices = fft_radices(n).filter(|_| n <= FFT_MAX_N);
        Ok(LogMelDevice {
            n_fft: n,
            hop: cfg.hop,
            pad: cfg.pad(),
            reflect: cfg.pad_mode == crate::dsp::PadMode::Reflect,
            n_mels: lm.fb.n_mels,
            log: lm.log,
            window: up(CpuStorage::F32(lm.stft.window.clone()))?,
            twiddles: up(CpuStorage::F32(tw))?,
            fb: up(CpuStorage::F32(lm.fb.weights.clone()))?,
            ranges: up(CpuStorage::I32(ranges))?,
            radices,
        })
    }

    /// Whether the forward runs the shared-memory FFT (else the direct DFT).
    pub fn uses_fft(&self) -> bool {
        self.radices.is_some()
    }
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
    check_len("log_mel_frames out", out, batch * d.n_mels * frames)?;
    let (kind, fl, off) = log_args(d.log);
    let n = d.n_fft;
    let mut start = 0;
    while start < batch {
        let cnt = (batch - start).min(MAX_GRID_Y);
        let xp = x.ptr(b) + (start * t * 4) as u64;
        let op = out.ptr(b) + (start * d.n_mels * frames * 4) as u64;
        let common = [
            KArg::Ptr(op),
            KArg::Ptr(xp),
            KArg::Ptr(d.window.ptr(b)),
            KArg::Ptr(d.twiddles.ptr(b)),
            KArg::Ptr(d.fb.ptr(b)),
            KArg::Ptr(d.ranges.ptr(b)),
            KArg::I32(t as i32),
            KArg::I32(n as i32),
            KArg::I32(d.hop as i32),
            KArg::I32(d.pad as i32),
            KArg::I32(d.reflect as i32),
            KArg::I32(frames as i32),
            KArg::I32(d.n_mels as i32),
        ];
        if let Some(radices) = &d.radices {
            let code = radices
                .iter()
                .enumerate()
                .fold(0u64, |c, (i, &r)| c | ((r as u64) << (4 * i)));
            let mut args = common.to_vec();
            args.extend([
                KArg::U64(code),
                KArg::I32(radices.len() as i32),
                KArg::I32(kind),
                KArg::F32(fl),
                KArg::F32(off),
            ]);
            let cfg = LaunchConfig {
                grid_dim: (frames.div_ceil(2) as u32, cnt as u32, 1),
                block_dim: (FRAME_BLOCK, 1, 1),
                shared_mem_bytes: (24 * n) as u32,
            };
            b.launch(FILE, "log_mel_frames_fft", cfg, &args)?;
        } else {
            let mut args = common.to_vec();
            args.extend([KArg::I32(kind), KArg::F32(fl), KArg::F32(off)]);
            let cfg = LaunchConfig {
                grid_dim: (frames as u32, cnt as u32, 1),
                block_dim: (FRAME_BLOCK, 1, 1),
                shared_mem_bytes: (4 * (n + n / 2 + 1)) as u32,
            };
            b.launch(FILE, "log_mel_frames_dft", cfg, &args)?;
        }
        start += cnt;
    }
    Ok(())
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
    let n = d.n_fft;
    if n > BACKWARD_MAX_N {
        bail!("the GPU log-mel backward supports n_fft up to {BACKWARD_MAX_N}, found {n}");
    }
    check_len("log_mel_backward x", x, batch * t)?;
    check_len("log_mel_backward dx", dx, batch * t)?;
    check_len("log_mel_backward dy", dy, batch * d.n_mels * frames)?;
    let (kind, fl, _) = log_args(d.log);
    let nf = n / 2 + 1;
    let mut start = 0;
    while start < batch {
        let cnt = (batch - start).min(MAX_GRID_Y);
        let dframes = b.zeros(crate::tensor::DType::F32, cnt * frames * n)?;
        let cfg = LaunchConfig {
            grid_dim: (frames as u32, cnt as u32, 1),
            block_dim: (FRAME_BLOCK, 1, 1),
            shared_mem_bytes: (4 * (n + 3 * nf + d.n_mels)) as u32,
        };
        b.launch(
            FILE,
            "log_mel_frames_backward_dft",
            cfg,
            &[
                KArg::Ptr(dframes.buf.ptr(b)),
                KArg::Ptr(x.ptr(b) + (start * t * 4) as u64),
                KArg::Ptr(dy.ptr(b) + (start * d.n_mels * frames * 4) as u64),
                KArg::Ptr(d.window.ptr(b)),
                KArg::Ptr(d.twiddles.ptr(b)),
                KArg::Ptr(d.fb.ptr(b)),
                KArg::Ptr(d.ranges.ptr(b)),
                KArg::I32(t as i32),
                KArg::I32(n as i32),
                KArg::I32(d.hop as i32),
                KArg::I32(d.pad as i32),
                KArg::I32(d.reflect as i32),
                KArg::I32(frames as i32),
                KArg::I32(d.n_mels as i32),
                KArg::I32(kind),
                KArg::F32(fl),
            ],
        )?;
        let total = cnt * t;
        let mut g = grid_1d(total, 256);
        g.grid_dim.0 = g.grid_dim.0.min(65535 * 4);
        b.launch(
            FILE,
            "log_mel_overlap_add_backward",
            g,
            &[
                KArg::Ptr(dx.ptr(b) + (start * t * 4) as u64),
                KArg::Ptr(dframes.buf.ptr(b)),
                KArg::I64(total as i64),
                KArg::I32(t as i32),
                KArg::I32(n as i32),
                KArg::I32(d.hop as i32),
                KArg::I32(d.pad as i32),
                KArg::I32(d.reflect as i32),
                KArg::I32(frames as i32),
            ],
        )?;
        start += cnt;
    }
    Ok(())
}

/// out [images, h, w] from logmel [images, h, f]: top_db, resampling, normalisation
/// (0 none, 1 min-max, 2 z-score).
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
    let cfg = LaunchConfig {
        grid_dim: (images as u32, 1, 1),
        block_dim: (IMAGE_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    b.launch(
        FILE,
        "mel_image_finish",
        cfg,
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(logmel.ptr(b)),
            KArg::I32(h as i32),
            KArg::I32(f as i32),
            KArg::I32(w as i32),
            KArg::I32(top_db.is_some() as i32),
            KArg::F32(top_db.unwrap_or(0.0)),
            KArg::I32(normalize),
        ],
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
    let total = n * hw;
    let mut g = grid_1d(total, 256);
    g.grid_dim.0 = g.grid_dim.0.min(65535 * 4);
    b.launch(
        FILE,
        "mean_over_channels",
        g,
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(input.ptr(b)),
            KArg::I64(total as i64),
            KArg::I32(c as i32),
            KArg::I64(hw as i64),
        ],
    )
}
