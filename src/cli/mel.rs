//! `seisfuse mel`: waveforms (N×C×T f32 .npy) → mel images (N×C×H×W f32 .npy), optional PNGs.

use super::output::{Outputs, Staged};
use super::progress::Progress;
use crate::backend::{self, Device, DeviceRequest};
use crate::dsp::images::{MelImageConfig, MelImagePlan, Normalize};
use crate::dsp::mel::{MelNorm, MelScale};
use crate::dsp::stft::PadMode;
use crate::limits;
use crate::tensor::Tensor;
use crate::viz::image::{ColorMap, Rgb};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// Waveforms: a float32 .npy of shape N×C×T (or N×T for one component).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Output .npy: N×C×H×W float32 (N×1×H×W with --average-channels).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Image height = mel bins.
    #[arg(long, default_value_t = 224)]
    pub height: usize,
    /// Image width = time columns (frames are resampled to it).
    #[arg(long, default_value_t = 224)]
    pub width: usize,
    /// FFT size [default: 2·height].
    #[arg(long)]
    pub n_fft: Option<usize>,
    /// Hop in samples [default: round(T / width)].
    #[arg(long)]
    pub hop: Option<usize>,
    /// Mel scale: htk or slaney.
    #[arg(long, default_value = "htk")]
    pub scale: MelScale,
    /// Slaney area normalisation of the filters (librosa's default; torchaudio's is none).
    #[arg(long)]
    pub slaney_norm: bool,
    /// Sampling rate of the waveforms in Hz.
    #[arg(long, default_value_t = 100.0)]
    pub sample_rate: f64,
    /// Lowest filter edge in Hz.
    #[arg(long, default_value_t = 0.0)]
    pub f_min: f64,
    /// Highest filter edge in Hz [default: Nyquist].
    #[arg(long)]
    pub f_max: Option<f64>,
    /// Padding of the centred STFT: reflect or constant.
    #[arg(long, default_value = "reflect")]
    pub pad_mode: PadMode,
    /// dB (10·log10, clipped at max − top_db) instead of ln(max(M, 1e-10)).
    #[arg(long)]
    pub db: bool,
    /// top_db clipping with --db; 0 turns it off.
    #[arg(long, default_value_t = 80.0)]
    pub top_db: f32,
    /// Per-image normalisation: minmax ([0, 1]), zscore or none.
    #[arg(long, default_value = "minmax")]
    pub normalize: Normalize,
    /// Average the C components into one channel (the one-channel SFM input).
    #[arg(long)]
    pub average_channels: bool,
    /// Also write a few images as PNGs (viridis, low frequencies at the bottom) into DIR.
    #[arg(long, value_name = "DIR")]
    pub png: Option<PathBuf>,
    /// How many PNGs to write with --png.
    #[arg(long, default_value_t = 4)]
    pub png_count: usize,
    /// Waveforms converted per step (progress bar granularity, memory on the GPU).
    #[arg(long, default_value_t = 256)]
    pub chunk: usize,
    /// Overwrite --out and PNGs that exist.
    #[arg(long)]
    pub force: bool,
    /// Run the mel benchmark instead (same as `seisfuse bench mel`).
    #[arg(long)]
    pub bench: bool,
    /// With --bench on the CPU: traces to time (default 96).
    #[arg(long)]
    pub bench_traces: Option<usize>,
}

impl Args {
    pub fn image_config(&self) -> Result<MelImageConfig> {
        let mut cfg = MelImageConfig {
            height: self.height,
            width: self.width,
            n_fft: self.n_fft,
            hop: self.hop,
            sample_rate: self.sample_rate,
            f_min: self.f_min,
            f_max: self.f_max,
            scale: self.scale,
            norm: if self.slaney_norm {
                MelNorm::Slaney
            } else {
                MelNorm::None
            },
            pad_mode: self.pad_mode,
            normalize: self.normalize,
            average_channels: self.average_channels,
            ..Default::default()
        };
        if let Some(f) = self.f_max {
            let nyquist = self.sample_rate / 2.0;
            if !(f.is_finite() && f > 0.0 && f <= nyquist) {
                bail!(
                    "--f-max {f} Hz is outside (0, {nyquist}] (the Nyquist frequency of \
                     --sample-rate {}); filters above it would be empty",
                    self.sample_rate
                );
            }
        }
        if self.db {
            if !(self.top_db >= 0.0 && self.top_db.is_finite()) {
                bail!(
                    "--top-db must be a non-negative number of dB (0 = off), found {}",
                    self.top_db
                );
            }
            cfg = cfg.with_db((self.top_db > 0.0).then_some(self.top_db));
        }
        Ok(cfg)
    }
}

pub fn run(req: DeviceRequest, args: Args) -> Result<()> {
    if args.bench {
        let device = backend::select(req)?;
        return super::bench_mel::run_mel_bench_with(&device, args.bench_traces);
    }
    let input = args
        .input
        .as_deref()
        .context("--input is required: a float32 .npy of waveforms N×C×T")?;
    let out = args
        .out
        .as_deref()
        .context("--out is required: where to write the N×C×H×W images (.npy)")?;
    // Outputs first: nothing is read or computed for an output that cannot be written.
    let mut outs = Outputs::new(args.force);
    outs.input(input);
    outs.file("--out", out)?;
    if let Some(dir) = &args.png {
        outs.dir("--png", dir)?;
    }
    if args.chunk == 0 {
        bail!("--chunk must be at least 1");
    }
    let cfg = args.image_config()?;
    // The header alone: sizes are checked before the data are read.
    let file = crate::data::npy::NpyFile::open(input)?;
    let shape = file.shape().to_vec();
    let (n, c, t) = match shape.as_slice() {
        [n, c, t] => (*n, *c, *t),
        [n, t] => (*n, 1, *t),
        s => bail!(
            "{}: expected waveforms N×C×T (or N×T), found shape {s:?}",
            input.display()
        ),
    };
    if n == 0 || c == 0 || t == 0 {
        bail!("{}: the batch is empty (shape {shape:?})", input.display());
    }
    // The flags alone first (the plan multiplies them): the images and the filterbank.
    let n_fft = args.n_fft.map_or(2 * args.height as u128, |f| f as u128);
    limits::check(
        format_args!(
            "{}: {n}×{c} waveforms → images of --height {} × --width {} (n_fft {n_fft})",
            input.display(),
            args.height,
            args.width
        ),
        limits::bytes_of(
            &[
                n,
                if args.average_channels { 1 } else { c },
                args.height,
                args.width,
            ],
            4,
        )
        .saturating_add((n_fft / 2 + 1).saturating_mul(args.height as u128 * 4 + 16)),
    )?;
    let plan = MelImagePlan::new(&cfg, t).with_context(|| {
        format!(
            "{}: traces of {t} samples with --height {} --width {}{}{}",
            input.display(),
            args.height,
            args.width,
            args.n_fft
                .map(|f| format!(" --n-fft {f}"))
                .unwrap_or_else(|| format!(" (n_fft 2·height = {})", 2 * args.height as u128)),
            args.hop.map(|h| format!(" --hop {h}")).unwrap_or_default()
        )
    })?;
    let oc = plan.out_channels(c);
    check_memory(&args, input, &shape, n, c, t, oc, &plan)?;
    if let Some(dir) = &args.png {
        // PNGs that would be replaced are refused now, not after the work.
        for (i, ch) in png_items(n, oc, args.png_count) {
            let p = dir.join(png_name(i, ch));
            if p.exists() && !args.force {
                bail!(
                    "--png {}: {} exists; pass --force to overwrite it",
                    dir.display(),
                    p.display()
                );
            }
        }
    }
    let data = file.to_f32_vec()?;
    drop(file);
    check_amplitudes(&data, input, c, t, plan.n_fft)?;
    let device = backend::select(req)?;
    eprintln!(
        "mel: {n}×{c}×{t} → {n}×{oc}×{}×{} (n_fft {}, hop {}, {} frames → {} columns) on {}",
        cfg.height,
        cfg.width,
        plan.n_fft,
        plan.hop,
        plan.frames,
        cfg.width,
        device.name()
    );
    let images = convert(&data, n, c, t, &cfg, &device, args.chunk)?;
    drop(data);
    let per = oc * cfg.height * cfg.width;
    if let Some(bad) = images.iter().position(|v| !v.is_finite()) {
        bail!(
            "{}: the mel image of waveform {} (channel {}) holds {} at pixel {}; the waveform \
             gives no usable spectrum (try --normalize none, or check the data)",
            input.display(),
            bad / per,
            (bad % per) / (cfg.height * cfg.width),
            images[bad],
            bad % (cfg.height * cfg.width)
        );
    }
    let oshape = [n, oc, cfg.height, cfg.width];
    let mut created = Vec::new();
    let written = (|| -> Result<usize> {
        let mut staged = Staged::new();
        staged.add(crate::data::npy::create(out, &oshape, &images)?);
        let pngs = match &args.png {
            Some(dir) => {
                created = crate::atomic::create_dir_all_tracked(dir)?;
                png_files(dir, &images, &oshape, args.png_count, &mut staged)?
            }
            None => 0,
        };
        staged.commit()?;
        Ok(pngs)
    })();
    let pngs = match written {
        Ok(p) => p,
        Err(e) => {
            crate::atomic::remove_created(&created);
            return Err(e);
        }
    };
    eprintln!("wrote {} ({:?})", out.display(), oshape);
    if let Some(dir) = &args.png {
        eprintln!("wrote {pngs} PNG(s) to {}", dir.display());
    }
    Ok(())
}

/// Refuses sizes (from the file's header and the flags) whose arrays would not fit in the
/// memory budget, before anything is allocated.
#[allow(clippy::too_many_arguments)]
fn check_memory(
    args: &Args,
    input: &Path,
    shape: &[usize],
    n: usize,
    c: usize,
    t: usize,
    oc: usize,
    plan: &MelImagePlan,
) -> Result<()> {
    let (h, w) = (args.height as u128, args.width as u128);
    let (n, c, t, oc) = (n as u128, c as u128, t as u128, oc as u128);
    let cnt = (args.chunk as u128).min(n);
    let bins = plan.n_fft as u128 / 2 + 1;
    let frames = plan.frames as u128;
    // The waveforms (read, and a chunk's copy), the images (and a chunk's), the filterbank and
    // DFT tables, and a chunk's spectra.
    let bytes = n * c * t * 4
        + cnt * c * t * 4
        + n * oc * h * w * 4
        + cnt * c * h * w * 4
        + h * bins * 4
        + plan.n_fft as u128 * 16
        + cnt * c * frames * (bins * 8 + h * 4);
    limits::check(
        format_args!(
            "{} ({shape:?}) → mel images with --height {} --width {} (n_fft {}, hop {}, {} \
             frames; --chunk {})",
            input.display(),
            args.height,
            args.width,
            plan.n_fft,
            plan.hop,
            plan.frames,
            args.chunk
        ),
        bytes,
    )
}

/// Largest |x| whose spectrum stays finite in f32: a bin of n_fft samples is at most
/// n_fft·max|x|, its power the square, summed over up to n_fft/2 + 1 bins by a filter.
pub fn max_amplitude(n_fft: usize) -> f64 {
    let bins = (n_fft / 2 + 1) as f64;
    (f32::MAX as f64 / bins).sqrt() / n_fft.max(1) as f64 / 4.0
}

/// Errors on a sample too large for the spectrum (its power would overflow f32 to infinity
/// and the image would be NaN), naming the waveform.
fn check_amplitudes(data: &[f32], input: &Path, c: usize, t: usize, n_fft: usize) -> Result<()> {
    let limit = max_amplitude(n_fft);
    if let Some(i) = data.iter().position(|v| (v.abs() as f64) > limit) {
        bail!(
            "{}: sample {} of waveform {} (component {}) is {:e}, too large for a spectrum in \
             single precision (|x| must stay below {limit:.2e} with n_fft {n_fft}); scale the \
             waveforms down first (the images are normalised per image, so a constant factor \
             does not change them)",
            input.display(),
            i % t,
            i / (c * t),
            (i / t) % c,
            data[i]
        );
    }
    Ok(())
}

/// Converts in chunks of `chunk` waveforms, with progress when there are many.
pub fn convert(
    data: &[f32],
    n: usize,
    c: usize,
    t: usize,
    cfg: &MelImageConfig,
    device: &Device,
    chunk: usize,
) -> Result<Vec<f32>> {
    let oc = if cfg.average_channels { 1 } else { c };
    let per = oc * cfg.height * cfg.width;
    let progress = Progress::new("mel", n as u64, "waveforms");
    let mut images = Vec::with_capacity(n * per);
    let mut start = 0;
    while start < n {
        let cnt = chunk.min(n - start);
        let x = Tensor::from_f32(
            &[cnt, c, t],
            data[start * c * t..(start + cnt) * c * t].to_vec(),
        )?
        .to_device(device)?;
        let y = crate::ops::mel::mel_images(&x, cfg)?;
        images.extend(y.to_vec_f32()?);
        start += cnt;
        progress.set(start as u64);
    }
    progress.finish();
    Ok(images)
}

/// (image, channel) of the first `count` images.
fn png_items(n: usize, c: usize, count: usize) -> Vec<(usize, usize)> {
    (0..n)
        .flat_map(|i| (0..c).map(move |ch| (i, ch)))
        .take(count)
        .collect()
}

fn png_name(i: usize, ch: usize) -> String {
    format!("mel_{i:05}_c{ch}.png")
}

/// The first `count` images as PNGs (low frequencies at the bottom), staged; returns how many.
fn png_files(
    dir: &Path,
    images: &[f32],
    shape: &[usize; 4],
    count: usize,
    staged: &mut Staged,
) -> Result<usize> {
    let [n, c, h, w] = *shape;
    let items = png_items(n, c, count);
    for &(i, ch) in &items {
        let img = &images[((i * c + ch) * h) * w..((i * c + ch + 1) * h) * w];
        let flipped: Vec<f32> = (0..h)
            .rev()
            .flat_map(|r| img[r * w..(r + 1) * w].iter().copied())
            .collect();
        let rgb = Rgb::from_grid(&flipped, h, w, ColorMap::Viridis, None)?;
        let rgb = if h.max(w) < 128 { rgb.upscale(4) } else { rgb };
        staged.add(rgb.png_file(&dir.join(png_name(i, ch)))?);
    }
    Ok(items.len())
}
