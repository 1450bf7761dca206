//! The wav2vec2 pretraining objective used by SeisLM (HF `Wav2Vec2ForPreTraining` semantics):
//! span masking of frames, negatives drawn from other masked frames of the same trace, the
//! Gumbel-softmax codevector choice with its straight-through gradient, the contrastive loss on
//! cosine similarities at temperature κ, and the codebook diversity loss.
//!
//! Masking and negative sampling run on the host (their results are small index sets); the
//! quantizer, perplexity and contrastive pieces are CPU twins in `backend::cpu::wav2vec2`
//! (re-exported here) with CUDA kernels behind the tensor ops in `ops::wav2vec2`.

use crate::backend::cpu::philox::uniform;
use anyhow::{bail, Result};
use rayon::prelude::*;

/// Span masking as HF's `_compute_mask_indices`: per trace ⌊p·T/span + u⌋ spans (u uniform,
/// at least `min_spans`) of `span` frames at distinct random starts; overlapping spans merge.
pub fn span_mask(
    batch: usize,
    frames: usize,
    p: f32,
    span: usize,
    min_spans: usize,
    seed: u64,
    step: u32,
) -> Result<Vec<bool>> {
    if span == 0 || span > frames {
        bail!("the mask span {span} must be in 1..={frames} (the number of frames)");
    }
    let mut out = vec![false; batch * frames];
    let mut k = 0u64;
    let mut draw = || {
        k += 1;
        uniform(seed, step, 0x5350_414e, k) as f64
    };
    for b in 0..batch {
        let n = ((p as f64 * frames as f64 / span as f64 + draw()) as usize).max(min_spans);
        let mut starts: Vec<usize> = (0..=frames - span).collect();
        let n = n.min(starts.len());
        for i in 0..n {
            let j = i + ((draw() * (starts.len() - i) as f64) as usize).min(starts.len() - i - 1);
            starts.swap(i, j);
            for f in &mut out[b * frames + starts[i]..b * frames + starts[i] + span] {
                *f = true;
            }
        }
    }
    Ok(out)
}

/// For each masked frame (trace order), `k` negatives: other masked frames of the same trace,
/// uniformly, never the frame itself. Returns (positive rows, negative rows), rows = b·T + t.
/// Draw c (counted from 1 over the whole batch, trace by trace) uses Philox element c, so the
/// traces are sampled in parallel with the same result as one sequential pass.
pub fn sample_negatives(
    mask: &[bool],
    batch: usize,
    frames: usize,
    k: usize,
    seed: u64,
    step: u32,
) -> Result<(Vec<usize>, Vec<Vec<usize>>)> {
    let masked: Vec<Vec<usize>> = (0..batch)
        .map(|b| (0..frames).filter(|&t| mask[b * frames + t]).collect())
        .collect();
    if let Some((b, m)) = masked.iter().enumerate().find(|(_, m)| m.len() < 2) {
        bail!(
            "trace {b} has {} masked frames; negatives need at least 2",
            m.len()
        );
    }
    // the draw counter before each trace
    let mut first = Vec::with_capacity(batch);
    let mut c = 0u64;
    for m in &masked {
        first.push(c);
        c += (m.len() * k) as u64;
    }
    let per_trace: Vec<Vec<Vec<usize>>> = masked
        .par_iter()
        .zip(&first)
        .enumerate()
        .map(|(b, (masked, &c0))| {
            (0..masked.len())
                .map(|i| {
                    (0..k)
                        .map(|r| {
                            let c = c0 + (i * k + r) as u64 + 1;
                            let mut j = ((uniform(seed, step, 0x004e_4547, c) as f64
                                * (masked.len() - 1) as f64)
                                as usize)
                                .min(masked.len() - 2);
                            if j >= i {
                                j += 1;
                            }
                            b * frames + masked[j]
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let pos = masked
        .iter()
        .enumerate()
        .flat_map(|(b, m)| m.iter().map(move |&t| b * frames + t))
        .collect();
    Ok((pos, per_trace.into_iter().flatten().collect()))
}

pub use crate::backend::cpu::wav2vec2::{
    codevector_backward, contrastive, gather_codevectors, gumbel_choice, perplexity, GumbelChoice,
};
