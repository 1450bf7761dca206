//! `seisfuse weights inspect FILE`: what a safetensors file holds and which preset it matches.

use crate::outln;
use crate::weights::{detect, dtype_name, Family, SafetensorsFile};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: WeightsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum WeightsCommand {
    /// List a safetensors file's tensors (name, dtype, shape), the parameter count, its
    /// metadata and the model preset the names and shapes match.
    Inspect {
        /// The .safetensors file (convert .pth/.ckpt with tools/convert_checkpoint.py).
        file: PathBuf,
        /// Print only the summary, not one line per tensor.
        #[arg(long)]
        summary: bool,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        WeightsCommand::Inspect { file, summary } => inspect(&file, summary),
    }
}

fn inspect(path: &std::path::Path, summary_only: bool) -> Result<()> {
    let file = SafetensorsFile::open(path)?;
    let infos = file.infos();
    outln!("file: {}", path.display())?;
    if !summary_only {
        let width = infos.iter().map(|i| i.name.len()).max().unwrap_or(4).max(4);
        outln!(
            "{:<width$}  {:<5}  {:>12}  shape",
            "name",
            "dtype",
            "elements"
        )?;
        for i in &infos {
            outln!(
                "{:<width$}  {:<5}  {:>12}  {:?}",
                i.name,
                dtype_name(i.dtype),
                i.numel(),
                i.shape
            )?;
        }
    }
    let mut by_dtype: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for i in &infos {
        let e = by_dtype.entry(dtype_name(i.dtype)).or_default();
        e.0 += 1;
        e.1 += i.numel();
    }
    let total: usize = infos.iter().map(|i| i.numel()).sum();
    outln!("tensors: {}", infos.len())?;
    outln!(
        "elements: {total} ({:.2}M, all tensors)",
        total as f64 / 1e6
    )?;
    for (d, (n, e)) in &by_dtype {
        outln!("  {d}: {n} tensors, {e} elements")?;
    }
    let mut meta: Vec<_> = file.metadata().iter().collect();
    meta.sort();
    for (k, v) in meta {
        outln!("metadata {k}: {v}")?;
    }
    let detection = detect(&infos);
    if detection.family != Family::Unknown {
        let under: usize = infos
            .iter()
            .filter(|i| i.name.starts_with(&detection.prefix))
            .map(|i| i.numel())
            .sum();
        let what = if detection.prefix.is_empty() {
            String::new()
        } else {
            format!(" (tensors named \"{}*\")", detection.prefix)
        };
        outln!("parameters: {under} ({:.2}M){what}", under as f64 / 1e6)?;
    }
    outln!("model: {}", detection.summary())?;
    Ok(())
}
