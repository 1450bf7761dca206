//! `seisfuse mel`: waveforms (N×C×T f32 .npy) → mel images (N×C×H×W f32 .npy), optional PNGs.

use crate::backend::{self, Device, DeviceRequest};
use crate::dsp::images::{MelImageConfig, MelImagePlan, Normalize};
use crate::dsp::mel::{MelNorm, MelScale};
use crate::dsp::stft::PadMode;
use crate::tensor::Tensor;
use crate::viz::image::{ColorMap, Rgb};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
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
    if out.exists() && !args.force {
        bail!(
            "{} exists; pass --force to overwrite it or choose another --out",
            out.display()
        );
    }
    if args.chunk == 0 {
        bail!("--chunk must be at least 1");
    }
    let cfg = args.image_config()?;
    let t = crate::data::npy::read_f32_tensor(input)?;
    let (shape, data) = (t.shape.clone(), t.to_vec_f32()?);
    let (n, c, t) = match shape.as_slice() {
        [n, c, t] => (*n, *c, *t),
        [n, t] => (*n, 1, *t),
        s => bail!(
            "{}: expected waveforms N×C×T (or N×T), found shape {s:?}",
            input.display()
        ),
    };
    if n == 0 || c == 0 {
        bail!("{}: the batch is empty (shape {shape:?})", input.display());
    }
    if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
        bail!(
            "{}: sample {bad} (waveform {}, component {}) is not finite",
            input.display(),
            bad / (c * t),
            (bad / t) % c
        );
    }
    let plan = MelImagePlan::new(&cfg, t).with_context(|| format!("traces of {t} samples"))?;
    let device = backend::select(req)?;
    eprintln!(
        "mel: {n}×{c}×{t} → {n}×{}×{}×{} (n_fft {}, hop {}, {} frames → {} columns) on {}",
        plan.out_channels(c),
        cfg.height,
        cfg.width,
        plan.n_fft,
        plan.hop,
        plan.frames,
        cfg.width,
        device.name()
    );
    let images = convert(&data, n, c, t, &cfg, &device, args.chunk)?;
    let oc = plan.out_channels(c);
    let oshape = [n, oc, cfg.height, cfg.width];
    crate::data::npy::write(out, &oshape, &images)?;
    eprintln!("wrote {} ({:?})", out.display(), oshape);
    if let Some(dir) = &args.png {
        write_pngs(dir, &images, &oshape, args.png_count, args.force)?;
    }
    Ok(())
}

/// Converts in chunks of `chunk` waveforms, with a progress bar when there are many.
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
    let bar = if n * c >= 512 {
        let b = indicatif::ProgressBar::new(n as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} waveforms  {elapsed} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
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
        bar.set_position(start as u64);
    }
    bar.finish_and_clear();
    Ok(images)
}

/// The first `count` images as PNGs, low frequencies at the bottom.
fn write_pngs(
    dir: &Path,
    images: &[f32],
    shape: &[usize; 4],
    count: usize,
    force: bool,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let [n, c, h, w] = *shape;
    let mut written = 0;
    'outer: for i in 0..n {
        for ch in 0..c {
            if written >= count {
                break 'outer;
            }
            let img = &images[((i * c + ch) * h) * w..((i * c + ch + 1) * h) * w];
            let flipped: Vec<f32> = (0..h)
                .rev()
                .flat_map(|r| img[r * w..(r + 1) * w].iter().copied())
                .collect();
            let rgb = Rgb::from_grid(&flipped, h, w, ColorMap::Viridis, None)?;
            let rgb = if h.max(w) < 128 { rgb.upscale(4) } else { rgb };
            let path = dir.join(format!("mel_{i:05}_c{ch}.png"));
            if path.exists() && !force {
                bail!("{} exists; pass --force to overwrite it", path.display());
            }
            rgb.write_png(&path)?;
            written += 1;
        }
    }
    eprintln!("wrote {written} PNG(s) to {}", dir.display());
    Ok(())
}
