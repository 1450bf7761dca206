//! `seisfuse embed`: encoder features for a batch of images or waveforms (.npy), on the CPU
//! or a GPU.

use crate::backend::{select, DeviceRequest};
use crate::models::sfm::{normalize_images, Vit, VitConfig};
use crate::nn::Parameters;
use crate::ops;
use crate::tensor::{DType, Tensor};
use crate::weights::{
    self, names::MAE_DECODER_PREFIXES, safetensors_io::SafetensorsFile, LoadOptions,
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
    /// sfm-tiny, sfm-base, sfm-large (images) or seislm-tiny, seislm-base, seislm-large
    /// (waveforms N×3×T, normalised per trace: demean + per-channel std).
    #[arg(long, default_value = "sfm-base")]
    pub model: String,
    /// Encoder weights (safetensors with timm names, e.g. from tools/convert_checkpoint.py).
    /// MAE decoder tensors in the file are skipped.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Use randomly initialised weights instead of --weights (for trying the pipeline).
    #[arg(long, conflicts_with = "weights")]
    pub random_init: bool,
    /// Missing, unexpected or mis-shaped tensors are fatal.
    #[arg(long)]
    pub strict: bool,
    /// Images, float .npy of shape N×H×W or N×1×H×W (normalised per image here, as SFM does).
    #[arg(long)]
    pub input: PathBuf,
    /// Output .npy (f32).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "cls")]
    pub pool: Pool,
    /// Images per forward pass.
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
    if a.out.exists() && !a.force {
        bail!("{} exists; pass --force to overwrite it", a.out.display());
    }
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if a.model.starts_with("seislm-") {
        return run_seislm(req, &a);
    }
    if !a.model.starts_with("sfm-") {
        bail!("unknown --model {}: expected sfm-tiny, sfm-base, sfm-large, seislm-tiny, seislm-base or seislm-large", a.model);
    }
    let images = crate::data::npy::read_f32_tensor(&a.input)?;
    let (n, h, w) = match images.shape[..] {
        [n, h, w] | [n, 1, h, w] => (n, h, w),
        _ => bail!(
            "{}: expected images of shape N×H×W or N×1×H×W, found {:?}",
            a.input.display(),
            images.shape
        ),
    };
    let cfg = VitConfig::preset(&a.model)?.with_image(h, w)?;
    let device = select(req)?;
    let mut vit = Vit::new(cfg.clone(), 0)?;
    match (&a.weights, a.random_init) {
        (Some(path), _) => load_encoder(&mut vit, path, a.strict)?,
        (None, true) => {
            eprintln!("warning: random weights (--random-init): the features mean nothing")
        }
        (None, false) => bail!(
            "give --weights FILE (see weights/README.md), or --random-init to try the pipeline"
        ),
    }
    let mut store = crate::nn::ParamStore::pack(&mut vit, &device)?;
    let dt = a.precision.dtype();
    if dt != DType::F32 {
        store.set_compute_dtype(&mut vit, dt)?;
    }
    let mut data = images.to_vec_f32()?;
    normalize_images(&mut data, h * w);
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("embedding {bar:40} {pos}/{len} images ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let np = cfg.num_patches();
    let c = cfg.dim;
    let per = match a.pool {
        Pool::Tokens => (1 + np) * c,
        _ => c,
    };
    let mut out = Vec::with_capacity(n * per);
    for start in (0..n).step_by(a.batch) {
        let b = a.batch.min(n - start);
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
        out.extend(feats.to_vec_f32()?);
        bar.inc(b as u64);
    }
    bar.finish_and_clear();
    let shape: Vec<usize> = match a.pool {
        Pool::Tokens => vec![n, 1 + np, c],
        _ => vec![n, c],
    };
    crate::data::npy::write(&a.out, &shape, &out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{}: {} features {:?} from {} on {}",
        a.out.display(),
        format!("{:?}", a.pool).to_lowercase(),
        shape,
        a.model,
        device.name()
    );
    Ok(())
}

/// Waveforms [N, 3, T] → SeisLM features: the cls-free encoders pool by the mean over frames
/// (`--pool cls` is refused), or keep every frame (`--pool tokens`).
fn run_seislm(req: DeviceRequest, a: &Args) -> Result<()> {
    use crate::models::seislm::{Seislm, SeislmConfig};
    if a.pool == Pool::Cls {
        bail!("SeisLM has no cls token: use --pool mean or --pool tokens");
    }
    let waves = crate::data::npy::read_f32_tensor(&a.input)?;
    let [n, c, t] = waves.shape[..] else {
        bail!(
            "{}: expected waveforms of shape N×3×T, found {:?}",
            a.input.display(),
            waves.shape
        );
    };
    let cfg = SeislmConfig::preset(&a.model)?;
    if c != cfg.in_chans {
        bail!(
            "{}: {} expects {} components (Z, N, E), found {c}",
            a.input.display(),
            a.model,
            cfg.in_chans
        );
    }
    let Some(frames) = cfg.frames(t) else {
        bail!(
            "{}: {t} samples are too few for {}",
            a.input.display(),
            a.model
        );
    };
    let device = select(req)?;
    let mut model = Seislm::new(cfg.clone(), 0)?;
    match (&a.weights, a.random_init) {
        (Some(path), _) => {
            // SeisLM Lightning checkpoints keep the encoder under `model.wav2vec2.`; plain HF
            // files have no prefix. Use whichever the file holds.
            let file = SafetensorsFile::open(path)?;
            let prefix = ["model.wav2vec2.", "wav2vec2."]
                .into_iter()
                .find(|p| file.names().iter().any(|n| n.starts_with(p)));
            let report = weights::load_from_file(
                &mut model,
                &file,
                &LoadOptions {
                    strict: a.strict,
                    strip_prefix: prefix.map(String::from),
                    ignore: vec![],
                    ignore_suffixes: vec![],
                },
            )?;
            for p in report.problems() {
                eprintln!("warning: {p}");
            }
            eprintln!(
                "loaded {} tensors from {}",
                report.loaded.len(),
                path.display()
            );
        }
        (None, true) => {
            eprintln!("warning: random weights (--random-init): the features mean nothing")
        }
        (None, false) => bail!(
            "give --weights FILE (see weights/README.md), or --random-init to try the pipeline"
        ),
    }
    let mut store = crate::nn::ParamStore::pack(&mut model, &device)?;
    let dt = a.precision.dtype();
    if dt != DType::F32 {
        store.set_compute_dtype(&mut model, dt)?;
    }
    let mut data = waves.to_vec_f32()?;
    for ch in data.chunks_mut(t) {
        crate::data::transforms::zscore_in_place(ch, 1e-6);
    }
    let hdim = cfg.hidden;
    let mut out = Vec::new();
    for start in (0..n).step_by(a.batch) {
        let b = a.batch.min(n - start);
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
        out.extend(feats.to_vec_f32()?);
    }
    let shape = if a.pool == Pool::Tokens {
        vec![n, frames, hdim]
    } else {
        vec![n, hdim]
    };
    crate::data::npy::write(&a.out, &shape, &out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{}: {:?} features {:?} from {} on {}",
        a.out.display(),
        a.pool,
        shape,
        a.model,
        device.name()
    );
    Ok(())
}

/// Loads an SFM encoder checkpoint; MAE decoder tensors are skipped, and a position table for
/// another image size is interpolated (bicubic) to this size's grid, as SFM-Finetune does.
pub fn load_encoder(vit: &mut Vit, path: &std::path::Path, strict: bool) -> Result<()> {
    let file = SafetensorsFile::open(path)?;
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
    for p in report.problems() {
        eprintln!("warning: {p}");
    }
    let n = vit.num_params()?;
    eprintln!(
        "loaded {} tensors ({:.1}M parameters) from {}",
        report.loaded.len(),
        n as f64 / 1e6,
        path.display()
    );
    Ok(())
}
