//! kernels/stft_mel.cu: declarations and the CUDA implementation of [`StftMelOps`]: the fused
//! log-mel forward (an FFT in shared memory for 7-smooth n_fft ≤ 2048, a direct DFT otherwise),
//! its backward, and the mel-image finish.
//!
//! Launches are planned ([`forward_launches`], [`backward_launches`], ...) as typed kernel
//! arguments over tensor views plus a grid ([`Launch`]), from host tables ([`MelTables`]); the
//! plan does not depend on CUDA, so tests also run it, on CPU tensors, through a CPU emulation
//! of the kernels (tests/dsp_kernel_emu.rs).

use super::launch::{kernels, launch_enum};
use super::{grid_stride, CudaBackend};
use crate::backend::api::{Backend, LogMelBackward, StftMelOps};
use crate::backend::Device;
use crate::dsp::images::{MelImagePlan, Normalize};
use crate::dsp::mel::{LogKind, LogMel};
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

kernels! { file "stft_mel";
    /// One block per (pair of frames, trace); 24·n_fft bytes of dynamic shared memory.
    LogMelFramesFft = log_mel_frames_fft(out: out f32, x: inp f32, window: inp f32,
        twiddles: inp f32, fb: inp f32, fb_range: inp i32, t: val i32, n_fft: val i32,
        hop: val i32, pad: val i32, reflect: val i32, frames: val i32, n_mels: val i32,
        radix_code: val u64, n_stages: val i32, log_kind: val i32, log_floor: val f32,
        log_offset: val f32);
    /// mel variant 2: one block per (tile of 2·pairs frames, trace), [`MEL_TILE_THREADS`]
    /// threads; 8·n_fft·(1 + 2·pairs) bytes of dynamic shared memory ([`tile_pairs`]).
    LogMelTileFft = log_mel_tile_fft(out: out f32, x: inp f32, window: inp f32,
        twiddles: inp f32, fb: inp f32, fb_range: inp i32, t: val i32, n_fft: val i32,
        hop: val i32, pad: val i32, reflect: val i32, frames: val i32, n_mels: val i32,
        radix_code: val u64, n_stages: val i32, pairs: val i32, log_kind: val i32,
        log_floor: val f32, log_offset: val f32);
    /// One block per (frame, trace); (n_fft + n_fft/2 + 1) floats of dynamic shared memory.
    LogMelFramesDft = log_mel_frames_dft(out: out f32, x: inp f32, window: inp f32,
        twiddles: inp f32, fb: inp f32, fb_range: inp i32, t: val i32, n_fft: val i32,
        hop: val i32, pad: val i32, reflect: val i32, frames: val i32, n_mels: val i32,
        log_kind: val i32, log_floor: val f32, log_offset: val f32);
    /// One block per (frame, trace): the gradient of each windowed frame.
    LogMelFramesBackwardDft = log_mel_frames_backward_dft(dframes: out f32, x: inp f32,
        dy: inp f32, window: inp f32, twiddles: inp f32, fb: inp f32, fb_range: inp i32,
        t: val i32, n_fft: val i32, hop: val i32, pad: val i32, reflect: val i32,
        frames: val i32, n_mels: val i32, log_kind: val i32, log_floor: val f32);
    /// Grid-stride over dx: a gather of the frame gradients.
    LogMelOverlapAddBackward = log_mel_overlap_add_backward(dx: out f32, dframes: inp f32,
        total: val i64, t: val i32, n_fft: val i32, hop: val i32, pad: val i32,
        reflect: val i32, frames: val i32);
    /// One block per image (a multiple of 32 threads).
    MelImageFinish = mel_image_finish(out: out f32, logmel: inp f32, h: val i32, f: val i32,
        w: val i32, has_top_db: val i32, top_db: val f32, normalize: val i32);
    /// Grid-stride over out.
    MeanOverChannels = mean_over_channels(out: out f32, input: inp f32, total: val i64,
        channels: val i32, hw: val i64);
}

/// Threads per block of the per-frame kernels.
pub const FRAME_BLOCK: u32 = 128;
/// Threads per block of the tiled FFT (`MEL_TILE_THREADS` in kernels/stft_mel.cu).
pub const MEL_TILE_THREADS: u32 = 256;
/// Most frame pairs per tile of the tiled FFT (16 frames: a warp's stores are runs of 64 bytes).
pub const TILE_MAX_PAIRS: usize = 8;
/// Dynamic shared memory of one tiled-FFT block at most (above 48 KiB the launch opts in;
/// every card from sm_80 on allows at least 99 KiB).
pub const TILE_MAX_SHARED: usize = 64 * 1024;
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

/// Frame pairs per block of the tiled FFT (mel variant 2) for `n`-point frames `hop` apart,
/// `frames` per trace: as many as [`TILE_MAX_SHARED`] holds, at most [`TILE_MAX_PAIRS`] and no
/// more than the frames need. `None` when the tile's stretch of signal would not fit its
/// staging buffer (hop > n) — variant 1 then serves.
pub fn tile_pairs(n: usize, hop: usize, frames: usize) -> Option<usize> {
    if hop > n || n == 0 {
        return None;
    }
    let by_smem = TILE_MAX_SHARED.saturating_sub(8 * n) / (16 * n);
    let p = by_smem.min(TILE_MAX_PAIRS).min(frames.div_ceil(2));
    (p >= 1).then_some(p)
}

/// Dynamic shared memory of a tiled-FFT block: twiddles and two buffers of `pairs` FFTs.
pub fn tile_smem(n: usize, pairs: usize) -> usize {
    8 * n * (1 + 2 * pairs)
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

/// The four tables of a transform as tensors on the device that runs it.
pub struct MelTableTensors {
    pub window: Tensor,
    pub twiddles: Tensor,
    pub fb: Tensor,
    /// i32 [2·n_mels]: per filter [lo, hi) of its non-zero bins.
    pub ranges: Tensor,
}

impl MelTableTensors {
    pub fn new(tb: &MelTables, device: &Device) -> Result<Self> {
        let up = |v: &[f32]| Tensor::from_f32(&[v.len()], v.to_vec())?.to_device(device);
        Ok(MelTableTensors {
            window: up(&tb.window)?,
            twiddles: up(&tb.twiddles)?,
            fb: up(&tb.fb)?,
            ranges: Tensor::from_i32(&[tb.ranges.len()], tb.ranges.clone())?.to_device(device)?,
        })
    }
}

launch_enum! {
    /// The typed arguments of one kernel of kernels/stft_mel.cu.
    enum MelKernel;
    /// One planned kernel launch.
    struct Launch;
    FramesFft(LogMelFramesFft),
    TileFft(LogMelTileFft),
    FramesDft(LogMelFramesDft),
    FramesBackwardDft(LogMelFramesBackwardDft),
    OverlapAddBackward(LogMelOverlapAddBackward),
    ImageFinish(MelImageFinish),
    MeanOverChannels(MeanOverChannels),
}

fn cfg(grid: (u32, u32), block: u32, smem: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid.0, grid.1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: smem as u32,
    }
}

/// The sizes of one transform's launches: `batch` traces of `t` samples, `frames` frames.
#[derive(Clone, Copy, Debug)]
pub struct MelDims {
    pub batch: usize,
    pub t: usize,
    pub frames: usize,
}

/// The launch struct `$K` with the framing arguments every frame kernel takes (t, n_fft, hop,
/// pad, reflect, frames; from the tables `$tb` and the sizes) and the others given by name.
/// The order of fields in a struct literal does not change the launch's argument order,
/// which `kernels!` fixes.
macro_rules! framed {
    ($K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $tb:expr, $t:expr, $frames:expr) => {
        $K {
            $($f $(: $v)?,)*
            t: $t as i32,
            n_fft: $tb.n_fft as i32,
            hop: $tb.hop as i32,
            pad: $tb.pad as i32,
            reflect: $tb.reflect as i32,
            frames: $frames as i32,
        }
    };
}

/// [`framed!`] plus what the three log-mel frame kernels (FFT, DFT and the DFT backward) also
/// read: the window, the DFT twiddles and the mel filterbank (`$tables`), the mel count and
/// the log compression's kind and floor ([`log_args`] of `$tb.log`).
macro_rules! mel_frames {
    (
        $K:ident { $($f:ident $(: $v:expr)?),* $(,)? },
        $tb:expr, $tables:expr, $t:expr, $frames:expr
    ) => {{
        let (log_kind, log_floor, _) = log_args($tb.log);
        framed!(
            $K {
                $($f $(: $v)?,)*
                window: &$tables.window,
                twiddles: &$tables.twiddles,
                fb: &$tables.fb,
                fb_range: &$tables.ranges,
                n_mels: $tb.n_mels as i32,
                log_kind,
                log_floor,
            },
            $tb,
            $t,
            $frames
        )
    }};
}

/// The radices packed 4 bits each, first stage lowest (the kernels' `radix_code`).
fn radix_code(radices: &[usize]) -> u64 {
    radices
        .iter()
        .enumerate()
        .fold(0u64, |c, (i, &r)| c | ((r as u64) << (4 * i)))
}

/// Forward: out [batch, n_mels, frames] from x [batch, t] with mel variant `variant` (1: a
/// block per frame pair, 2: tiles; [`crate::backend::variants`] holds the chosen one); each
/// planned launch (views of out and x, one per chunk of at most [`MAX_GRID_Y`] traces) goes to
/// `run`.
pub fn forward_launches(
    variant: u32,
    tb: &MelTables,
    tables: &MelTableTensors,
    out: &Tensor,
    x: &Tensor,
    dims: MelDims,
    run: &mut dyn FnMut(Launch) -> Result<()>,
) -> Result<()> {
    let MelDims { batch, t, frames } = dims;
    let (_, _, off) = log_args(tb.log);
    let n = tb.n_fft;
    let mut start = 0;
    while start < batch {
        let cnt = (batch - start).min(MAX_GRID_Y);
        let per = tb.n_mels * frames;
        let out = out.view(start * per, &[cnt * per])?;
        let x = x.view(start * t, &[cnt * t])?;
        let tile = tb
            .radices
            .as_ref()
            .filter(|_| variant == 2)
            .and_then(|r| Some((r, tile_pairs(n, tb.hop, frames)?)));
        let launch = if let Some((radices, pairs)) = tile {
            let k = mel_frames!(
                LogMelTileFft {
                    out: &out,
                    x: &x,
                    radix_code: radix_code(radices),
                    n_stages: radices.len() as i32,
                    pairs: pairs as i32,
                    log_offset: off,
                },
                tb,
                tables,
                t,
                frames
            );
            Launch {
                kernel: MelKernel::TileFft(k),
                cfg: cfg(
                    (frames.div_ceil(2 * pairs) as u32, cnt as u32),
                    MEL_TILE_THREADS,
                    tile_smem(n, pairs),
                ),
            }
        } else if let Some(radices) = &tb.radices {
            let code = radix_code(radices);
            let k = mel_frames!(
                LogMelFramesFft {
                    out: &out,
                    x: &x,
                    radix_code: code,
                    n_stages: radices.len() as i32,
                    log_offset: off,
                },
                tb,
                tables,
                t,
                frames
            );
            Launch {
                kernel: MelKernel::FramesFft(k),
                cfg: cfg((frames.div_ceil(2) as u32, cnt as u32), FRAME_BLOCK, 24 * n),
            }
        } else {
            let k = mel_frames!(
                LogMelFramesDft {
                    out: &out,
                    x: &x,
                    log_offset: off,
                },
                tb,
                tables,
                t,
                frames
            );
            Launch {
                kernel: MelKernel::FramesDft(k),
                cfg: cfg(
                    (frames as u32, cnt as u32),
                    FRAME_BLOCK,
                    4 * (n + n / 2 + 1),
                ),
            }
        };
        run(launch)?;
        start += cnt;
    }
    Ok(())
}

/// Traces per backward step: the frame-gradient scratch holds this many traces.
pub fn backward_chunk(batch: usize) -> usize {
    batch.clamp(1, 256)
}

/// The tensors of the backward pass.
pub struct MelBackward<'a> {
    /// Written: [batch, t].
    pub dx: &'a Tensor,
    pub x: &'a Tensor,
    /// [batch, n_mels, frames].
    pub dy: &'a Tensor,
    /// Scratch of `backward_chunk(batch) · frames · n_fft` floats, reused chunk after chunk.
    pub dframes: &'a Tensor,
}

/// Backward: dx [batch, t] (written) from x and dy [batch, n_mels, frames]; two launches per
/// chunk of [`backward_chunk`] traces go to `run`.
pub fn backward_launches(
    tb: &MelTables,
    tables: &MelTableTensors,
    a: MelBackward,
    dims: MelDims,
    run: &mut dyn FnMut(Launch) -> Result<()>,
) -> Result<()> {
    let MelDims { batch, t, frames } = dims;
    let n = tb.n_fft;
    if n > BACKWARD_MAX_N {
        bail!("the GPU log-mel backward supports n_fft up to {BACKWARD_MAX_N}, found {n}");
    }
    let nf = n / 2 + 1;
    let smem = 4 * (n + 3 * nf + tb.n_mels);
    check_shared("log_mel_frames_backward_dft", smem)?;
    let chunk = backward_chunk(batch);
    if a.dframes.numel() < chunk * frames * n {
        bail!(
            "log_mel_backward: the frame scratch holds {} values, {} are needed",
            a.dframes.numel(),
            chunk * frames * n
        );
    }
    let mut start = 0;
    while start < batch {
        let cnt = (batch - start).min(chunk);
        let per = tb.n_mels * frames;
        let x = a.x.view(start * t, &[cnt * t])?;
        let dy = a.dy.view(start * per, &[cnt * per])?;
        let dx = a.dx.view(start * t, &[cnt * t])?;
        let k = mel_frames!(
            LogMelFramesBackwardDft {
                dframes: a.dframes,
                x: &x,
                dy: &dy,
            },
            tb,
            tables,
            t,
            frames
        );
        run(Launch {
            kernel: MelKernel::FramesBackwardDft(k),
            cfg: cfg(
                (frames as u32, cnt as u32),
                FRAME_BLOCK,
                4 * (n + 3 * nf + tb.n_mels),
            ),
        })?;
        let total = cnt * t;
        run(Launch {
            kernel: MelKernel::OverlapAddBackward(framed!(
                LogMelOverlapAddBackward {
                    dx: &dx,
                    dframes: a.dframes,
                    total: total as i64,
                },
                tb,
                t,
                frames
            )),
            cfg: grid_stride(total),
        })?;
        start += cnt;
    }
    Ok(())
}

/// The normalisation code of the kernels (0 none, 1 min-max, 2 z-score).
pub fn normalize_code(n: Normalize) -> i32 {
    match n {
        Normalize::None => 0,
        Normalize::MinMax => 1,
        Normalize::ZScore => 2,
    }
}

/// out [images, h, w] from logmel [images, h, f]: top_db, resampling, normalisation
/// (the plan's height, width, frames and options).
pub fn finish_launch<'a>(
    out: &'a Tensor,
    logmel: &'a Tensor,
    plan: &MelImagePlan,
) -> Result<Launch<'a>> {
    let (h, w, f) = (plan.cfg.height, plan.cfg.width, plan.frames);
    let images = logmel.numel() / (h * f).max(1);
    if logmel.numel() != images * h * f || out.numel() != images * h * w {
        bail!(
            "mel_image_finish: {:?} log-mels of {h}×{f} into {:?} images of {h}×{w}",
            logmel.shape,
            out.shape
        );
    }
    if images > i32::MAX as usize {
        bail!("too many images ({images}) for one launch");
    }
    Ok(Launch {
        kernel: MelKernel::ImageFinish(MelImageFinish {
            out,
            logmel,
            h: h as i32,
            f: f as i32,
            w: w as i32,
            has_top_db: plan.cfg.top_db.is_some() as i32,
            top_db: plan.cfg.top_db.unwrap_or(0.0),
            normalize: normalize_code(plan.cfg.normalize),
        }),
        cfg: cfg((images as u32, 1), IMAGE_BLOCK, 0),
    })
}

/// out [n, hw] = mean over c of input [n, c, hw].
pub fn mean_launch<'a>(out: &'a Tensor, input: &'a Tensor, c: usize) -> Result<Launch<'a>> {
    let n_hw = out.numel();
    if input.numel() != n_hw * c {
        bail!(
            "mean_over_channels: {:?} is not {c} channels of {:?}",
            input.shape,
            out.shape
        );
    }
    let n = input.shape.first().copied().unwrap_or(1).max(1);
    let hw = n_hw / n;
    Ok(Launch {
        kernel: MelKernel::MeanOverChannels(MeanOverChannels {
            out,
            input,
            total: (n * hw) as i64,
            channels: c as i32,
            hw: hw as i64,
        }),
        cfg: grid_stride(n * hw),
    })
}

/// The tables of one log-mel transform, uploaded.
pub struct LogMelDevice {
    pub tables: MelTables,
    pub tensors: MelTableTensors,
}

impl LogMelDevice {
    pub fn new(b: &CudaBackend, lm: &LogMel<f32>) -> Result<Self> {
        let tables = MelTables::new(lm)?;
        let device = Device::Cuda(CudaBackend::get(b.ordinal)?);
        Ok(LogMelDevice {
            tensors: MelTableTensors::new(&tables, &device)?,
            tables,
        })
    }

    /// Whether the forward runs the shared-memory FFT (else the direct DFT).
    pub fn uses_fft(&self) -> bool {
        self.tables.radices.is_some()
    }
}

/// (batch, t) of waveforms [.., t].
fn traces(x: &Tensor) -> (usize, usize) {
    let t = x.shape.last().copied().unwrap_or(1).max(1);
    (x.numel() / t, t)
}

impl CudaBackend {
    /// out [.., n_mels, frames] = log-mel of x [.., t] with tables uploaded once.
    pub fn log_mel_frames(&self, d: &LogMelDevice, out: &mut Tensor, x: &Tensor) -> Result<()> {
        let (batch, t) = traces(x);
        let frames = out.shape.last().copied().unwrap_or(0);
        let dims = MelDims { batch, t, frames };
        let variant = crate::backend::variants::variant("mel")?;
        forward_launches(variant, &d.tables, &d.tensors, out, x, dims, &mut |l| {
            l.launch(self)
        })
    }
}

impl StftMelOps for CudaBackend {
    fn log_mel(&self, out: &mut Tensor, x: &Tensor, lm: &LogMel<f32>) -> Result<()> {
        let d = LogMelDevice::new(self, lm)?;
        self.log_mel_frames(&d, out, x)
    }

    fn log_mel_backward(&self, a: LogMelBackward, lm: &LogMel<f32>) -> Result<()> {
        let d = LogMelDevice::new(self, lm)?;
        let (batch, t) = traces(a.x);
        let frames = a.dy.shape.last().copied().unwrap_or(0);
        let scratch = backward_chunk(batch) * frames * d.tables.n_fft;
        let dframes = self.alloc(&[scratch], DType::F32)?;
        let plan = MelBackward {
            dx: a.dx,
            x: a.x,
            dy: a.dy,
            dframes: &dframes,
        };
        let dims = MelDims { batch, t, frames };
        backward_launches(&d.tables, &d.tensors, plan, dims, &mut |l| l.launch(self))
    }

    fn mel_image_finish(
        &self,
        images: &mut Tensor,
        logmel: &Tensor,
        plan: &MelImagePlan,
    ) -> Result<()> {
        finish_launch(images, logmel, plan)?.launch(self)
    }

    fn mean_over_channels(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        mean_launch(out, x, x.shape[1])?.launch(self)
    }
}
