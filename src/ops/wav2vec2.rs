//! The wav2vec2 pretraining objective as tensor ops (fp32): the Gumbel product quantizer with
//! its straight-through backward, the codebook perplexity with its gradient, and the
//! contrastive loss with its gradients. On the CPU each runs the twin in
//! `backend::cpu::wav2vec2`; on CUDA the kernels of kernels/wav2vec2.cu, so a training step
//! keeps its activations on the device and only scalars and sampled indices cross.
//!
//! The perplexity and contrastive ops are forward and backward fused: the objective knows its
//! loss weights before it runs, and the backward reuses everything the forward computed.

use super::*;
use crate::backend::api::wav2vec2::{
    Codebook, CodevectorBackward, ContrastiveArgs, ContrastiveIndex, ContrastiveOut, GumbelArgs,
    PerplexityArgs,
};

fn check_f32(op: &str, what: &str, t: &Tensor) -> Result<()> {
    if t.dtype != DType::F32 {
        bail!(
            "{op}: {what} must be f32 (the objective runs in fp32), found {}; convert it with to_dtype",
            t.dtype
        );
    }
    Ok(())
}

/// (rows, vars) of logits [.., groups·vars].
fn logit_rows(op: &str, logits: &Tensor, groups: usize, vars: usize) -> Result<usize> {
    check_f32(op, "logits", logits)?;
    if groups == 0 || vars == 0 {
        bail!("{op}: groups ({groups}) and codevectors per group ({vars}) must be positive");
    }
    match logits.shape.last() {
        Some(&c) if c == groups * vars && logits.rank() >= 2 => Ok(logits.numel() / c),
        _ => bail!(
            "{op}: logits must be [.., groups·vars = {}], found {:?}",
            groups * vars,
            logits.shape
        ),
    }
}

/// The quantizer's forward: the quantized vectors and what the backward needs.
#[derive(Debug)]
pub struct GumbelOutput {
    /// [.., groups·d]: per group the chosen codevector, concatenated.
    pub q: Tensor,
    hard: Tensor,
    soft: Tensor,
    groups: usize,
    vars: usize,
    tau: f32,
}

impl GumbelOutput {
    /// The chosen codevector per (row, group), i32 [rows·groups].
    pub fn hard(&self) -> &Tensor {
        &self.hard
    }
    /// softmax((logits + g)/τ), the probabilities of the straight-through gradient, [rows·groups, vars].
    pub fn soft(&self) -> &Tensor {
        &self.soft
    }
}

/// Gumbel-softmax product quantizer: logits [.., G·V], codevectors (any shape holding
/// [G·V, d]); per (row, group) the hard argmax of (logits + g)/τ with Gumbel noise
/// g = −log(−log u), u from Philox (seed, step) — the same noise on the CPU and the GPU.
pub fn gumbel_quantize(
    logits: &Tensor,
    codevectors: &Tensor,
    groups: usize,
    tau: f32,
    seed: u64,
    step: u32,
) -> Result<GumbelOutput> {
    const OP: &str = "gumbel_quantize";
    check_f32(OP, "codevectors", codevectors)?;
    let gv = logits.shape.last().copied().unwrap_or(0);
    if groups == 0 || !gv.is_multiple_of(groups) {
        bail!(
            "{OP}: the logits' last axis ({gv}) must split into {groups} groups; shape {:?}",
            logits.shape
        );
    }
    let vars = gv / groups;
    let rows = logit_rows(OP, logits, groups, vars)?;
    let d = codevectors.shape.last().copied().unwrap_or(0);
    if d == 0 || codevectors.numel() != gv * d {
        bail!(
            "{OP}: codevectors must hold [{gv}, d] (groups·vars rows), found {:?}",
            codevectors.shape
        );
    }
    if !(tau.is_finite() && tau > 0.0) {
        bail!("{OP}: the temperature must be positive and finite, found {tau}");
    }
    let dev_ = check_device(OP, &[logits, codevectors])?;
    let mut qshape = logits.shape.clone();
    *qshape.last_mut().unwrap_or(&mut 0) = groups * d;
    let mut hard = alloc(&dev_, &[rows * groups], DType::I32)?;
    let mut soft = alloc(&dev_, &[rows * groups, vars], DType::F32)?;
    dev_.run().gumbel_forward(GumbelArgs {
        hard: &mut hard,
        soft: &mut soft,
        logits,
        tau,
        seed,
        step,
    })?;
    let mut q = alloc(&dev_, &qshape, DType::F32)?;
    let book = Codebook {
        code: codevectors,
        hard: &hard,
        groups,
    };
    dev_.run().codevector_gather(&mut q, book)?;
    Ok(GumbelOutput {
        q,
        hard,
        soft,
        groups,
        vars,
        tau,
    })
}

/// The straight-through backward of `gumbel_quantize`: dq (shaped like `out.q`) adds into
/// `dcodevectors` (Σ of dq over the rows that chose each codevector) and gives the logits'
/// gradient through the soft probabilities, softmax′ · (dq · codevector) / τ (returned, written).
pub fn gumbel_quantize_backward(
    out: &GumbelOutput,
    codevectors: &Tensor,
    dq: &Tensor,
    dcodevectors: &mut Tensor,
) -> Result<Tensor> {
    const OP: &str = "gumbel_quantize_backward";
    check_f32(OP, "dq", dq)?;
    check_f32(OP, "codevectors", codevectors)?;
    check_f32(OP, "the codevector gradient", dcodevectors)?;
    check_same_shape(OP, &out.q, dq)?;
    check_same_shape(OP, codevectors, dcodevectors)?;
    let (g, v) = (out.groups, out.vars);
    let d = codevectors.shape.last().copied().unwrap_or(0);
    if d == 0 || codevectors.numel() != g * v * d || out.q.numel() != out.hard.numel() * d {
        bail!(
            "{OP}: codevectors {:?} do not match the forward's ({} groups × {} codevectors of width {})",
            codevectors.shape,
            g,
            v,
            out.q.numel() / out.hard.numel().max(1)
        );
    }
    let dev_ = check_device(OP, &[dq, codevectors, &out.q])?;
    if dcodevectors.device() != dev_ {
        bail!("{OP}: the codevector gradient is on another device than dq");
    }
    let mut lshape = out.q.shape.clone();
    *lshape.last_mut().unwrap_or(&mut 0) = g * v;
    let mut dl = alloc(&dev_, &lshape, DType::F32)?;
    dev_.run().codevector_backward(CodevectorBackward {
        dlogits: &mut dl,
        dcode: dcodevectors,
        soft: &out.soft,
        book: Codebook {
            code: codevectors,
            hard: &out.hard,
            groups: g,
        },
        dq,
        tau: out.tau,
    })?;
    Ok(dl)
}

/// Codebook perplexity Σ_g exp(H(p̄_g)) of p = softmax(logits) per group (no noise), p̄ the
/// mean over the rows weighted by `weight` [rows] (f32; the masked frames have 1), and the
/// gradient of `dppl · perplexity` with respect to the logits (written).
pub fn codebook_perplexity(
    logits: &Tensor,
    groups: usize,
    weight: &Tensor,
    dppl: f32,
) -> Result<(f32, Tensor)> {
    const OP: &str = "codebook_perplexity";
    let gv = logits.shape.last().copied().unwrap_or(0);
    if groups == 0 || !gv.is_multiple_of(groups) {
        bail!("{OP}: the logits' last axis ({gv}) must split into {groups} groups");
    }
    let vars = gv / groups;
    let rows = logit_rows(OP, logits, groups, vars)?;
    check_f32(OP, "weight", weight)?;
    if weight.numel() != rows {
        bail!(
            "{OP}: weight must have one value per row ({rows}), found {:?}",
            weight.shape
        );
    }
    let dev_ = check_device(OP, &[logits, weight])?;
    let mut ppl = alloc(&dev_, &[groups], DType::F32)?;
    let mut dl = alloc(&dev_, &logits.shape, DType::F32)?;
    dev_.run().codebook_perplexity(PerplexityArgs {
        ppl: &mut ppl,
        dlogits: &mut dl,
        logits,
        weight,
        groups,
        dppl,
    })?;
    let ppl: f32 = ppl.to_vec_f32()?.iter().sum();
    Ok((ppl, dl))
}

/// The candidates of the contrastive loss, on the device that will use them: per masked
/// frame m its positive row and K negative rows (rows of the [rows, f] inputs), and the
/// inverse map the deterministic target-gradient kernel reads.
#[derive(Debug)]
pub struct ContrastiveTargets {
    rows: usize,
    frames: usize,
    /// i32 [M, K+1]: column 0 the positive.
    cand: Tensor,
    /// i32 [rows+1] and [M·(K+1)]: the slots m·(K+1)+k naming row j, increasing.
    offsets: Tensor,
    entries: Tensor,
}

impl ContrastiveTargets {
    /// Checks the indices (every row < `rows`, K equal for all frames, positives distinct)
    /// and uploads them to `device`.
    pub fn new(pos: &[usize], negs: &[Vec<usize>], rows: usize, device: &Device) -> Result<Self> {
        let m = pos.len();
        if m == 0 || negs.len() != m {
            bail!(
                "contrastive targets: {m} positives and {} negative lists; need the same, at least one",
                negs.len()
            );
        }
        let k = negs[0].len();
        if rows > i32::MAX as usize || m.saturating_mul(k + 1) > i32::MAX as usize {
            bail!(
                "contrastive targets: {rows} rows × {m}·{} slots exceed i32",
                k + 1
            );
        }
        let mut seen = vec![false; rows];
        let mut cand = Vec::with_capacity(m * (k + 1));
        for (i, (&p, ns)) in pos.iter().zip(negs).enumerate() {
            if ns.len() != k {
                bail!(
                    "contrastive targets: frame {i} has {} negatives, frame 0 has {k}",
                    ns.len()
                );
            }
            if p >= rows || ns.iter().any(|&n| n >= rows) {
                bail!("contrastive targets: frame {i} names a row outside 0..{rows}");
            }
            if std::mem::replace(&mut seen[p], true) {
                bail!("contrastive targets: row {p} is the positive of two frames");
            }
            cand.push(p as i32);
            cand.extend(ns.iter().map(|&n| n as i32));
        }
        // counting sort of the slots by row: stable, so each row's slots stay increasing
        let mut offsets = vec![0i32; rows + 1];
        for &j in &cand {
            offsets[j as usize + 1] += 1;
        }
        for j in 0..rows {
            offsets[j + 1] += offsets[j];
        }
        let mut fill: Vec<i32> = offsets[..rows].to_vec();
        let mut entries = vec![0i32; cand.len()];
        for (s, &j) in cand.iter().enumerate() {
            entries[fill[j as usize] as usize] = s as i32;
            fill[j as usize] += 1;
        }
        let up = |shape: &[usize], v: Vec<i32>| Tensor::from_i32(shape, v)?.to_device(device);
        Ok(ContrastiveTargets {
            rows,
            frames: m,
            cand: up(&[m, k + 1], cand)?,
            offsets: up(&[rows + 1], offsets)?,
            entries: up(&[m * (k + 1)], entries)?,
        })
    }
    pub fn masked_frames(&self) -> usize {
        self.frames
    }
    pub fn device(&self) -> Device {
        self.cand.device()
    }
}

/// The contrastive loss summed over the masked frames (HF `Wav2Vec2ForPreTraining`): for frame
/// m, logits_k = cos(c_p, q_cand_k)/κ over [positive, negatives…] (a negative equal to the
/// positive gets −∞), loss −log softmax(logits)_0. c and q are [.., f] with `targets.rows`
/// rows. Returns (Σ loss, dc, dq) with the gradients of `dloss · Σ loss` (written).
pub fn contrastive_loss(
    c: &Tensor,
    q: &Tensor,
    targets: &ContrastiveTargets,
    kappa: f32,
    dloss: f32,
) -> Result<(f32, Tensor, Tensor)> {
    const OP: &str = "contrastive_loss";
    check_f32(OP, "c", c)?;
    check_f32(OP, "q", q)?;
    check_same_shape(OP, c, q)?;
    let f = c.shape.last().copied().unwrap_or(0);
    if f == 0 || c.numel() != targets.rows * f {
        bail!(
            "{OP}: c and q must be [.., f] with {} rows, found {:?}",
            targets.rows,
            c.shape
        );
    }
    if !(kappa.is_finite() && kappa > 0.0) {
        bail!("{OP}: the temperature κ must be positive and finite, found {kappa}");
    }
    let dev_ = check_device(OP, &[c, q, &targets.cand])?;
    let mut loss = alloc(&dev_, &[targets.masked_frames()], DType::F32)?;
    let mut dc = alloc(&dev_, &c.shape, DType::F32)?;
    let mut dq = alloc(&dev_, &q.shape, DType::F32)?;
    let out = ContrastiveOut {
        loss: &mut loss,
        dc: &mut dc,
        dq: &mut dq,
    };
    let idx = ContrastiveIndex {
        cand: &targets.cand,
        offsets: &targets.offsets,
        entries: &targets.entries,
    };
    let args = ContrastiveArgs {
        c,
        q,
        idx,
        kappa,
        dloss,
    };
    dev_.run().contrastive(out, args)?;
    let total = super::reduce::item(&super::reduce::sum(&loss)?)?;
    Ok((total, dc, dq))
}
