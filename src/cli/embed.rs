//! `seisfuse embed`: encoder features for a batch of images or waveforms (.npy), on the CPU
//! or a GPU.

use super::estimate;
use super::output::Outputs;
use super::progress::Progress;
use crate::backend::{select, DeviceRequest};
use crate::limits;
use crate::models::sfm::{normalize_images, Vit, VitConfig};
use crate::nn::Parameters;
use crate::ops;
use crate::outln;
use crate::tensor::{DType, Tensor};
use crate::weights::{
    self, names::MAE_DECODER_PREFIXES, safetensors_io::SafetensorsFile, Family, LoadOptions,
};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Arithmetic of the forward pass.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// fp32 throughout.
    Fp32,
    /// bf16 weights and activations, fp32 accumulation (on the CPU emulated by rounding, so
    /// only slower there); the features are written as f32.
    Bf16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::Fp32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }

    /// The device `req` selects, `model`'s parameters packed on it ([`Precision::pack`]; keep
    /// the store while the model runs) and the compute dtype.
    pub fn place(
        self,
        model: &mut dyn crate::nn::Parameters,
        req: DeviceRequest,
    ) -> Result<(crate::Device, crate::nn::ParamStore, DType)> {
        let device = select(req)?;
        let store = self.pack(model, &device)?;
        Ok((device, store, self.dtype()))
    }

    /// `model`'s parameters packed on `device`, with a compute copy in this precision when it
    /// is not fp32.
    pub fn pack(
        self,
        model: &mut dyn crate::nn::Parameters,
        device: &crate::Device,
    ) -> Result<crate::nn::ParamStore> {
        let mut store = crate::nn::ParamStore::pack(model, device)?;
        if self.dtype() != DType::F32 {
            store.set_compute_dtype(model, self.dtype())?;
        }
        Ok(store)
    }
}

/// `t` in `dt` (moved, not copied, when it already is).
pub fn in_dtype(t: Tensor, dt: DType) -> Result<Tensor> {
    if t.dtype == dt {
        Ok(t)
    } else {
        ops::cast(&t, dt)
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// The cls token: [N, C].
    Cls,
    /// The mean of the patch tokens: [N, C].
    Mean,
    /// Every token, cls first: [N, 1 + patches, C].
    Tokens,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// sfm-tiny, sfm-base, sfm-large (images) or seislm-tiny, seislm-base, seislm-large
    /// (waveforms N×3×T, normalised per trace: demean + per-channel std).
    #[arg(long, default_value = "sfm-base")]
    pub model: String,
    /// Encoder weights (safetensors with timm names for SFM, HF wav2vec2 names for SeisLM,
    /// e.g. from tools/convert_checkpoint.py). MAE decoder tensors in the file are skipped.
    /// Every parameter must be found, with its shape, and nothing else (see --lenient).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Use randomly initialised weights instead of --weights (for trying the pipeline).
    #[arg(long, conflicts_with = "weights")]
    pub random_init: bool,
    /// Load what matches and warn about missing, unexpected or mis-shaped tensors instead of
    /// failing (a file that matches nothing still fails).
    #[arg(long)]
    pub lenient: bool,
    /// Strict loading (the default; kept for old scripts).
    #[arg(long, hide = true, conflicts_with = "lenient")]
    pub strict: bool,
    /// Input .npy: images N×H×W or N×1×H×W for sfm-* models (normalised per image here, as
    /// SFM does), or waveforms N×3×T for seislm-* models (normalised per trace).
    #[arg(long)]
    pub input: PathBuf,
    /// Output .npy (f32).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "cls")]
    pub pool: Pool,
    /// Images or waveforms per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// fp32 or bf16.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: Precision,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(req: DeviceRequest, a: Args) -> Result<()> {
    // The output first: nothing is read or computed for an output that cannot be written.
    let mut outs = Outputs::new(a.force);
    outs.input(&a.input);
    if let Some(w) = &a.weights {
        outs.input(w);
    }
    outs.file("--out", &a.out)?;
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if a.weights.is_none() && !a.random_init {
        bail!("give --weights FILE (see weights/README.md), or --random-init to try the pipeline");
    }
    if a.model.starts_with("seislm-") {
        return run_seislm(req, &a);
    }
    if !a.model.starts_with("sfm-") {
        bail!("unknown --model {}: expected sfm-tiny, sfm-base, sfm-large, seislm-tiny, seislm-base or seislm-large", a.model);
    }
    let input = &a.input;
    // The header alone first: shapes and sizes are checked before any data are read.
    let file = crate::data::npy::NpyFile::open(input)?;
    let (n, h, w) = match file.shape()[..] {
        [_, 3, _] => bail!(
            "{}: shape {:?} looks like 3-component waveforms N×3×T, not images; {} embeds \
             images N×H×W (use a seislm-* model for waveforms)",
            input.display(),
            file.shape(),
            a.model
        ),
        [n, h, w] | [n, 1, h, w] => (n, h, w),
        _ => bail!(
            "{}: expected images of shape N×H×W or N×1×H×W for {}, found {:?}",
            input.display(),
            a.model,
            file.shape()
        ),
    };
    if n == 0 || h == 0 || w == 0 {
        bail!(
            "{}: shape {:?} holds no images (a zero-length axis); nothing to embed",
            input.display(),
            file.shape()
        );
    }
    let cfg = VitConfig::preset(&a.model)?
        .with_image(h, w)
        .with_context(|| format!("{}: images of {h}×{w}", input.display()))?;
    let batch = a.batch.min(n);
    let np = cfg.num_patches();
    let c = cfg.dim;
    let per = match a.pool {
        Pool::Tokens => (1 + np) * c,
        _ => c,
    };
    limits::check(
        format_args!(
            "{}: {n} images of {h}×{w} through {} (--batch {batch}, --pool {:?})",
            input.display(),
            a.model,
            a.pool
        ),
        estimate::vit_bytes(&cfg, batch)
            + 2 * limits::bytes_of(&[n, h, w], 4)
            + limits::bytes_of(&[n, per], 4),
    )?;
    let mut vit = Vit::new(cfg.clone(), 0)?;
    match &a.weights {
        Some(path) => load_encoder(&mut vit, path, !a.lenient)?,
        None => eprintln!("warning: random weights (--random-init): the features mean nothing"),
    }
    let (device, _store, dt) = a.precision.place(&mut vit, req)?;
    let mut data = file.to_f32_vec()?;
    drop(file);
    normalize_images(&mut data, h * w);
    let progress = Progress::new("embed", n as u64, "images");
    let mut out = Vec::with_capacity(n * per);
    for start in (0..n).step_by(batch) {
        let b = batch.min(n - start);
        let x = Tensor::from_f32(
            &[b, 1, h, w],
            data[start * h * w..(start + b) * h * w].to_vec(),
        )?
        .to_device(&device)?;
        let (tokens, _) = vit.forward(&in_dtype(x, dt)?, None)?;
        let feats = match a.pool {
            Pool::Tokens => tokens,
            Pool::Cls => {
                let idx = Tensor::from_i32(&[b, 1], vec![0; b])?.to_device(&device)?;
                ops::gather_rows(&tokens, &idx, None)?
            }
            Pool::Mean => {
                let ones = Tensor::from_f32(
                    &[1, 1 + np],
                    (0..=np)
                        .map(|i| if i == 0 { 0.0 } else { 1.0 / np as f32 })
                        .collect(),
                )?
                .to_device(&device)?;
                ops::matmul(&in_dtype(ones, dt)?, &tokens, false, false, None)?
            }
        };
        let v = feats.to_vec_f32()?;
        check_features(&v, start, b, &a, "images")?;
        out.extend(v);
        progress.inc(b as u64);
    }
    progress.finish();
    let shape: Vec<usize> = match a.pool {
        Pool::Tokens => vec![n, 1 + np, c],
        _ => vec![n, c],
    };
    crate::data::npy::write(&a.out, &shape, &out)?;
    outln!(
        "{}: {} features {:?} from {} on {}",
        a.out.display(),
        format!("{:?}", a.pool).to_lowercase(),
        shape,
        a.model,
        device.name()
    )?;
    Ok(())
}

/// A model that turns finite inputs into NaN or infinite features is broken (diverged weights,
/// an overflow in bf16): an error naming the items, not a file of NaN.
fn check_features(v: &[f32], start: usize, b: usize, a: &Args, what: &str) -> Result<()> {
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        let per = v.len() / b.max(1);
        bail!(
            "{}: the features of {what} {}..{} hold {} (first at {what} {}); {} gives \
             non-finite outputs for these inputs{}",
            a.input.display(),
            start,
            start + b,
            v[i],
            start + i / per.max(1),
            a.model,
            match &a.weights {
                Some(w) => format!(" with the weights of {}", w.display()),
                None => String::new(),
            }
        );
    }
    Ok(())
}

/// Waveforms [N, 3, T] → SeisLM features: the cls-free encoders pool by the mean over frames
/// (`--pool cls` is refused), or keep every frame (`--pool tokens`).
fn run_seislm(req: DeviceRequest, a: &Args) -> Result<()> {
    use crate::models::seislm::{Seislm, SeislmConfig};
    if a.pool == Pool::Cls {
        bail!("SeisLM has no cls token: use --pool mean or --pool tokens");
    }
    let input = &a.input;
    let cfg = SeislmConfig::preset(&a.model)?;
    let file = crate::data::npy::NpyFile::open(input)?;
    let [n, c, t] = file.shape()[..] else {
        bail!(
            "{}: expected waveforms of shape N×3×T for {}, found {:?}{}",
            input.display(),
            a.model,
            file.shape(),
            if file.shape().len() == 2 || file.shape().len() == 4 {
                " (images? use an sfm-* model for images)"
            } else {
                ""
            }
        );
    };
    if c != cfg.in_chans {
        bail!(
            "{}: {} expects {} components (Z, N, E), found {c} in shape {:?}{}",
            input.display(),
            a.model,
            cfg.in_chans,
            file.shape(),
            if c > 3 {
                " (images N×H×W? use an sfm-* model for images)"
            } else {
                ""
            }
        );
    }
    if n == 0 || t == 0 {
        bail!(
            "{}: shape {:?} holds no waveforms (a zero-length axis); nothing to embed",
            input.display(),
            file.shape()
        );
    }
    let Some(frames) = cfg.frames(t).filter(|&f| f > 0) else {
        bail!(
            "{}: {t} samples are too few for {}",
            input.display(),
            a.model
        );
    };
    let batch = a.batch.min(n);
    let hdim = cfg.hidden;
    let per = if a.pool == Pool::Tokens {
        frames * hdim
    } else {
        hdim
    };
    limits::check(
        format_args!(
            "{}: {n} waveforms of {t} samples through {} (--batch {batch}, --pool {:?})",
            input.display(),
            a.model,
            a.pool
        ),
        estimate::seislm_bytes(&cfg, batch, t, 0)
            + 2 * limits::bytes_of(&[n, c, t], 4)
            + limits::bytes_of(&[n, per], 4),
    )?;
    let mut model = Seislm::new(cfg.clone(), 0)?;
    match &a.weights {
        Some(path) => {
            // SeisLM Lightning checkpoints keep the encoder under `model.wav2vec2.`; plain HF
            // files have no prefix. Use whichever the file holds.
            let file = SafetensorsFile::open(path)?;
            check_family(&file, Family::Seislm, &a.model)?;
            let prefix = ["model.wav2vec2.", "wav2vec2."]
                .into_iter()
                .find(|p| file.names().iter().any(|n| n.starts_with(p)));
            let report = weights::load_from_file(
                &mut model,
                &file,
                &LoadOptions {
                    strict: !a.lenient,
                    strip_prefix: prefix.map(String::from),
                    ignore: vec![],
                    ignore_suffixes: vec![],
                },
            )?;
            finish_load(&report, path, model.num_params()?)?;
        }
        None => eprintln!("warning: random weights (--random-init): the features mean nothing"),
    }
    let (device, _store, dt) = a.precision.place(&mut model, req)?;
    let mut data = file.to_f32_vec()?;
    drop(file);
    for ch in data.chunks_mut(t) {
        crate::data::transforms::zscore_in_place(ch, 1e-6);
    }
    let progress = Progress::new("embed", n as u64, "waveforms");
    let mut out = Vec::with_capacity(n * per);
    for start in (0..n).step_by(batch) {
        let b = batch.min(n - start);
        let x = Tensor::from_f32(
            &[b, c, t],
            data[start * c * t..(start + b) * c * t].to_vec(),
        )?
        .to_device(&device)?;
        let (o, _) = model.forward(&in_dtype(x, dt)?, None)?;
        let h = o.last_hidden_state;
        let feats = match a.pool {
            Pool::Tokens => h,
            _ => {
                let ones = Tensor::from_f32(&[1, frames], vec![1.0 / frames as f32; frames])?
                    .to_device(&device)?;
                ops::matmul(&in_dtype(ones, dt)?, &h, false, false, None)?
            }
        };
        let v = feats.to_vec_f32()?;
        check_features(&v, start, b, a, "waveforms")?;
        out.extend(v);
        progress.inc(b as u64);
    }
    progress.finish();
    let shape = if a.pool == Pool::Tokens {
        vec![n, frames, hdim]
    } else {
        vec![n, hdim]
    };
    crate::data::npy::write(&a.out, &shape, &out)?;
    outln!(
        "{}: {:?} features {:?} from {} on {}",
        a.out.display(),
        a.pool,
        shape,
        a.model,
        device.name()
    )?;
    Ok(())
}

/// Refuses a weights file of another model family (an SFM checkpoint given to a SeisLM model,
/// or a file of neither), naming what it holds.
pub fn check_family(file: &SafetensorsFile, want: Family, model: &str) -> Result<()> {
    let d = weights::detect(&file.infos());
    let ok = match want {
        Family::SfmVit | Family::SfmMae => matches!(d.family, Family::SfmVit | Family::SfmMae),
        f => d.family == f,
    };
    if !ok {
        bail!(
            "{}: holds {} ({} tensors), not weights for {model}; give a checkpoint of that \
             model (`seisfuse weights inspect FILE` shows what a file holds)",
            file.path().display(),
            d.summary(),
            file.len()
        );
    }
    Ok(())
}

/// Warnings of a lenient load, and the error when nothing was loaded at all.
fn finish_load(report: &weights::LoadReport, path: &std::path::Path, params: usize) -> Result<()> {
    for p in report.problems() {
        eprintln!("warning: {}: {p}", path.display());
    }
    if report.loaded.is_empty() {
        bail!(
            "{}: no tensor of the file matches the model ({} missing); the features would be \
             those of random weights",
            path.display(),
            report.missing.len()
        );
    }
    eprintln!(
        "loaded {} tensors ({:.1}M parameters) from {}",
        report.loaded.len(),
        params as f64 / 1e6,
        path.display()
    );
    Ok(())
}

/// Loads an SFM encoder checkpoint; MAE decoder tensors are skipped, and a position table for
/// another image size is interpolated (bicubic) to this size's grid, as SFM-Finetune does.
/// `strict`: any missing, unexpected or mis-shaped tensor is an error; otherwise they are
/// warnings, but a file that matches nothing is still an error.
pub fn load_encoder(vit: &mut Vit, path: &std::path::Path, strict: bool) -> Result<()> {
    let file = SafetensorsFile::open(path)?;
    check_family(&file, Family::SfmVit, "an SFM encoder")?;
    let ignore: Vec<String> = MAE_DECODER_PREFIXES.iter().map(|s| s.to_string()).collect();
    let tables = vit.pos_tables();
    let report = weights::load_from_file_interpolating(
        vit,
        &file,
        &LoadOptions {
            strict,
            strip_prefix: None,
            ignore,
            ignore_suffixes: vec![],
        },
        &tables,
    )?;
    for i in &report.interpolated {
        eprintln!("note: {}: {i}", path.display());
    }
    finish_load(&report, path, vit.num_params()?)
}
