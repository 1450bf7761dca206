//! Kernel variants (llm.c's dev/cuda habit): an op keeps its earlier kernels as numbered
//! variants, and one is chosen per op with `SEISFUSE_KERNELS=matmul=2` or the global CLI flag
//! `--kernel matmul=2` (the flag wins over the variable). Every variant of an op computes the
//! same thing and is checked against the op's CPU twin.
//!
//! | op | variant | kernel |
//! |---|---|---|
//! | matmul | 1 (default) | kernels/matmul.cu: fp32 FMA, 128×128 tiles, f32 and bf16 storage |
//! | matmul | 2 | kernels/matmul_tc.cu: bf16 tensor cores (mma.sync m16n8k16, ldmatrix, 3-stage cp.async) for bf16 products whose layout it supports; any other product falls back to variant 1 |
//! | matmul | 3 | variant 2 for bf16 products, and f32 products on TF32 tensor cores (kernels/matmul_tf32.cu: mma.sync m16n8k8, operands rounded to tf32 as PyTorch's `allow_tf32`, f32 accumulation and storage): the `tf32` precision |
//! | attention | 1 (default) | kernels/attention.cu: fp32 SIMT flash-style forward (16 query rows per block) and backward, f32 and bf16 storage |
//! | attention | 2 | kernels/attention_tc.cu: forward and backward on bf16 tensor cores, FlashAttention-2 style (64 queries per block, mma.sync m16n8k16, ldmatrix, double-buffered cp.async, online softmax in registers) for bf16 tensors with head dim 16, 20 (computed padded to 32), 32, 64, 80 or 128 on layouts aligned for its copies (16 bytes; 8 at head dim 20); any other call falls back to variant 1. The backward pass too (a delta pre-pass, a dK/dV kernel per key tile and a separate dQ pass, no atomics) |
//! | conv1d | 1 (default) | kernels/conv1d.cu: fp32 SIMT direct convolution (grouped, strided, padded), f32 and bf16 storage; weight gradient as split partials and an ordered sum |
//! | conv1d | 2 | kernels/conv1d_tc.cu: stride-1 convolutions (padding < k ≤ 512) as implicit GEMMs on bf16 tensor cores (mma.sync m16n8k16; the B operand a Toeplitz view of a staged input window, built from 16-bit shared loads): forward, input gradient (the forward kernel on flip-transposed weights) and weight gradient (fp32 partials per split of batch × time, summed in order by `colsum_final`; no atomics) for bf16 calls; strided convolutions (the feature extractor's) and other dtypes fall back to variant 1. The bias gradient is variant 1's |
//! | colsum | 1 | column sums over rows (`sum_rows`: bias gradients; LayerNorm's dw, db): one thread per column walks every row (kernels/matmul.cu `sum_rows`, kernels/layer_norm.cu `layer_norm_backward_dwdb`) |
//! | colsum | 2 (default) | the same sums in two deterministic passes: partial sums per (64-column tile, row split) from ~1024 blocks, then the splits in order (kernels/common.cuh `colsum_partials_block`, kernels/reduce.cu `colsum_final`) |
//! | mel | 1 | log-mel spectrograms through the shared-memory FFT (7-smooth n_fft ≤ 2048): one block per pair of frames (kernels/stft_mel.cu `log_mel_frames_fft`) |
//! | mel | 2 (default) | the same FFT on tiles of up to 16 frames per block: the tile's signal staged once, the tile's FFTs side by side in every stage, mel rows written in runs (`log_mel_tile_fft`). Other n_fft (the direct DFT) are the same in both variants |
//!
//! An op's default is variant 1 unless [`DEFAULTS`] says otherwise. matmul's, attention's and conv1d's stay
//! variant 1 until variant 2 has been measured on a GPU; colsum's and mel's are 2, whose kernels are plain
//! SIMT code checked under the emulator (tests/colsum_kernel_emu.rs, tests/dsp_kernel_emu.rs),
//! with the first kept to compare.

use anyhow::{anyhow, bail, Result};
use std::sync::RwLock;

/// Ops that have variants, with how many each has.
pub const OPS: &[(&str, u32)] = &[
    ("matmul", 3),
    ("attention", 2),
    ("colsum", 2),
    ("conv1d", 2),
    ("mel", 2),
];

/// Ops whose default is not variant 1.
pub const DEFAULTS: &[(&str, u32)] = &[("colsum", 2), ("mel", 2)];

/// The environment variable read when no explicit choice was made.
pub const ENV: &str = "SEISFUSE_KERNELS";

static CHOICE: RwLock<Option<Vec<(&'static str, u32)>>> = RwLock::new(None);

/// Parses `op=N[,op=N...]` (spaces around items allowed; an empty string chooses nothing).
pub fn parse(spec: &str) -> Result<Vec<(&'static str, u32)>> {
    let mut out: Vec<(&'static str, u32)> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (op, n) = item.split_once('=').ok_or_else(|| {
            anyhow!(
                "kernel choice `{item}`: expected OP=N, e.g. matmul=2 (ops: {})",
                known()
            )
        })?;
        let (op, n) = (op.trim(), n.trim());
        let &(name, count) = OPS.iter().find(|(o, _)| *o == op).ok_or_else(|| {
            anyhow!(
                "kernel choice `{item}`: no op `{op}` has variants; known: {}",
                known()
            )
        })?;
        let v: u32 = n.parse().map_err(|_| {
            anyhow!("kernel choice `{item}`: the variant must be a number from 1 to {count}")
        })?;
        if v == 0 || v > count {
            bail!("kernel choice `{item}`: {op} has variants 1 to {count}");
        }
        if let Some(prev) = out.iter().find(|(o, _)| *o == name) {
            if prev.1 != v {
                bail!("kernel choice: {op} given twice ({} and {v})", prev.1);
            }
        }
        out.push((name, v));
    }
    Ok(out)
}

fn known() -> String {
    OPS.iter()
        .map(|(o, n)| format!("{o} (1-{n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets the choice (the `--kernel` flag; tests). Ops not named get their default.
pub fn set(spec: &str) -> Result<()> {
    let v = parse(spec)?;
    *CHOICE.write().unwrap_or_else(|e| e.into_inner()) = Some(v);
    Ok(())
}

/// Reads `SEISFUSE_KERNELS` unless a choice was set; a malformed value is an error that names
/// the variable.
pub fn init_from_env() -> Result<()> {
    if CHOICE.read().unwrap_or_else(|e| e.into_inner()).is_some() {
        return Ok(());
    }
    let spec = std::env::var(ENV).unwrap_or_default();
    let v = parse(&spec).map_err(|e| anyhow!("{ENV}={spec:?}: {e:#}"))?;
    let mut w = CHOICE.write().unwrap_or_else(|e| e.into_inner());
    if w.is_none() {
        *w = Some(v);
    }
    Ok(())
}

/// The variant chosen for `op` (its default when none was chosen).
pub fn variant(op: &str) -> Result<u32> {
    init_from_env()?;
    let r = CHOICE.read().unwrap_or_else(|e| e.into_inner());
    Ok(r.as_ref()
        .and_then(|v| v.iter().find(|(o, _)| *o == op))
        .map_or_else(|| default_of(op), |&(_, n)| n))
}

/// The `tf32` precision: f32 storage with the products on TF32 tensor cores, which is matmul
/// variant 3. Chooses it unless matmul's variant was chosen explicitly (`--kernel`,
/// `SEISFUSE_KERNELS`), where anything but 3 is an error rather than a silent fp32 run.
pub fn choose_tf32() -> Result<()> {
    init_from_env()?;
    let mut w = CHOICE.write().unwrap_or_else(|e| e.into_inner());
    let choice = w.get_or_insert_with(Vec::new);
    match choice.iter().find(|(o, _)| *o == "matmul") {
        Some(&(_, 3)) => Ok(()),
        Some(&(_, n)) => bail!(
            "precision tf32 runs the f32 products on TF32 tensor cores (matmul variant 3), but              matmul={n} was chosen; drop the choice or give matmul=3"
        ),
        None => {
            choice.push(("matmul", 3));
            Ok(())
        }
    }
}

/// Every op's variant as it runs now, e.g. `matmul=2,attention=1,colsum=2`.
pub fn describe() -> Result<String> {
    let mut v = Vec::new();
    for (op, _) in OPS {
        v.push(format!("{op}={}", variant(op)?));
    }
    Ok(v.join(","))
}

/// The variant `op` runs when none is chosen.
pub fn default_of(op: &str) -> u32 {
    DEFAULTS
        .iter()
        .find(|(o, _)| *o == op)
        .map_or(1, |&(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_choices_and_rejects_bad_ones() {
        assert_eq!(parse("matmul=2").unwrap(), vec![("matmul", 2)]);
        assert_eq!(parse(" matmul = 1 ,").unwrap(), vec![("matmul", 1)]);
        assert!(parse("").unwrap().is_empty());
        assert_eq!(
            parse("matmul=2,attention=2").unwrap(),
            vec![("matmul", 2), ("attention", 2)]
        );
        for bad in [
            "matmul",
            "matmul=4",
            "matmul=0",
            "matmul=x",
            "conv=1",
            "matmul=1,matmul=2",
            "attention=3",
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains("kernel choice"), "{bad}: {e}");
        }
    }
}
