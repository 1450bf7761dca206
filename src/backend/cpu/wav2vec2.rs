//! CPU twins of kernels/wav2vec2.cu: the wav2vec2 objective's Gumbel product quantizer, the
//! codebook perplexity and the contrastive loss, in f32 with explicit backward passes. They
//! are the oracle for the kernels and what `ops::wav2vec2` runs on the CPU.

use super::philox::uniform;
use super::Cpu;
use crate::backend::api::wav2vec2::{
    Codebook, CodevectorBackward, ContrastiveArgs, ContrastiveOut, GumbelArgs, PerplexityArgs,
    Wav2vec2Ops,
};
use crate::tensor::Tensor;
use anyhow::{bail, Result};

/// The last axis of a tensor (`ops` checked it is non-zero).
fn last(t: &Tensor) -> usize {
    t.shape.last().copied().unwrap_or(1)
}

/// The hard choices as indices, each checked to be below `vars`.
fn hard_choices(hard: &Tensor, vars: usize) -> Result<Vec<usize>> {
    let h = hard.i32s()?;
    if h.iter().any(|&v| v < 0 || v as usize >= vars) {
        bail!("wav2vec2: a hard choice is out of range 0..{vars}");
    }
    Ok(h.iter().map(|&v| v as usize).collect())
}

impl Wav2vec2Ops for Cpu {
    fn gumbel_forward(&self, a: GumbelArgs) -> Result<()> {
        let vars = last(a.soft);
        let groups = last(a.logits) / vars;
        let z = a.logits.f32s()?;
        let ch = gumbel_choice(&z, groups, vars, a.tau, a.seed, a.step);
        for (o, &h) in a.hard.host_mut::<i32>()?.iter_mut().zip(&ch.hard) {
            *o = h as i32;
        }
        a.soft.f32s_mut()?.copy_from_slice(&ch.soft);
        Ok(())
    }
    fn codevector_gather(&self, q: &mut Tensor, book: Codebook) -> Result<()> {
        let d = last(book.code);
        let vars = book.code.numel() / (book.groups * d);
        let ch = GumbelChoice {
            groups: book.groups,
            vars,
            hard: hard_choices(book.hard, vars)?,
            soft: Vec::new(),
            tau: 1.0,
        };
        let v = gather_codevectors(&ch, &book.code.f32s()?, d);
        q.f32s_mut()?.copy_from_slice(&v);
        Ok(())
    }
    fn codevector_backward(&self, a: CodevectorBackward) -> Result<()> {
        let book = a.book;
        let (groups, vars, d) = (book.groups, last(a.soft), last(book.code));
        let ch = GumbelChoice {
            groups,
            vars,
            hard: hard_choices(book.hard, vars)?,
            soft: a.soft.f32s()?.to_vec(),
            tau: a.tau,
        };
        // summed from zero, then added once (as the kernel does)
        let mut dcode = vec![0.0f32; a.dcode.numel()];
        let mut dl = a.dlogits.f32s_mut()?;
        dl.fill(0.0);
        codevector_backward(
            &ch,
            &book.code.f32s()?,
            d,
            &a.dq.f32s()?,
            &mut dcode,
            &mut dl,
        );
        for (o, &x) in a.dcode.f32s_mut()?.iter_mut().zip(&dcode) {
            *o += x;
        }
        Ok(())
    }
    fn codebook_perplexity(&self, a: PerplexityArgs) -> Result<()> {
        let vars = last(a.logits) / a.groups;
        let mut dl = a.dlogits.f32s_mut()?;
        dl.fill(0.0);
        let (z, w) = (a.logits.f32s()?, a.weight.f32s()?);
        let e = perplexity_groups(&z, a.groups, vars, &w, Some((a.dppl, &mut dl)));
        a.ppl.f32s_mut()?.copy_from_slice(&e);
        Ok(())
    }
    fn contrastive(&self, out: ContrastiveOut, a: ContrastiveArgs) -> Result<()> {
        let (c, q, idx) = (a.c, a.q, a.idx);
        let (f, ncand) = (last(c), last(idx.cand));
        let cand = idx.cand.i32s()?;
        let pos: Vec<usize> = cand.chunks(ncand).map(|r| r[0] as usize).collect();
        let negs: Vec<Vec<usize>> = cand
            .chunks(ncand)
            .map(|r| r[1..].iter().map(|&j| j as usize).collect())
            .collect();
        let (mut dc, mut dq) = (out.dc.f32s_mut()?, out.dq.f32s_mut()?);
        dc.fill(0.0);
        dq.fill(0.0);
        contrastive_frames(
            &c.f32s()?,
            &q.f32s()?,
            f,
            (&pos, &negs),
            (a.kappa, a.dloss),
            (&mut dc, &mut dq),
            &mut out.loss.f32s_mut()?,
        );
        Ok(())
    }
}

/// The Philox stream id of the Gumbel noise (kernels/wav2vec2.cu uses the same).
pub const GUMBEL_STREAM: u32 = 0x4755_4d42;

/// One Gumbel-softmax choice per (row, group): the hard index (forward) and the soft
/// probabilities softmax((logits + g)/τ) that carry the straight-through gradient.
pub struct GumbelChoice {
    pub groups: usize,
    pub vars: usize,
    pub hard: Vec<usize>,
    pub soft: Vec<f32>,
    pub tau: f32,
}

/// logits [rows, groups·vars]; Gumbel noise g = −log(−log u), u from Philox (seed, step).
pub fn gumbel_choice(
    logits: &[f32],
    groups: usize,
    vars: usize,
    tau: f32,
    seed: u64,
    step: u32,
) -> GumbelChoice {
    let mut soft = vec![0.0f32; logits.len()];
    let mut hard = Vec::with_capacity(logits.len() / vars);
    for (r, (row, s)) in logits.chunks(vars).zip(soft.chunks_mut(vars)).enumerate() {
        for (i, (o, &z)) in s.iter_mut().zip(row).enumerate() {
            let u =
                uniform(seed, step, GUMBEL_STREAM, (r * vars + i) as u64).clamp(1e-10, 1.0 - 1e-7);
            *o = (z - (-u.ln()).ln()) / tau;
        }
        let (mut best, mut m) = (0, f32::NEG_INFINITY);
        for (i, &v) in s.iter().enumerate() {
            if v > m {
                m = v;
                best = i;
            }
        }
        let sum: f32 = s.iter().map(|v| (v - m).exp()).sum();
        s.iter_mut().for_each(|v| *v = (*v - m).exp() / sum);
        hard.push(best);
    }
    GumbelChoice {
        groups,
        vars,
        hard,
        soft,
        tau,
    }
}

/// Quantized vectors [rows, groups·d] from the hard choices and codevectors [groups·vars, d].
pub fn gather_codevectors(ch: &GumbelChoice, code: &[f32], d: usize) -> Vec<f32> {
    let rows = ch.hard.len() / ch.groups;
    let mut q = vec![0.0f32; rows * ch.groups * d];
    for r in 0..rows {
        for g in 0..ch.groups {
            let v = ch.hard[r * ch.groups + g];
            let src = &code[(g * ch.vars + v) * d..(g * ch.vars + v + 1) * d];
            q[(r * ch.groups + g) * d..(r * ch.groups + g + 1) * d].copy_from_slice(src);
        }
    }
    q
}

/// Straight-through backward: dcode[g·V + v] += Σ rows choosing v of dq, and
/// dlogits = softmax′(soft) · (dq · codevector) / τ.
pub fn codevector_backward(
    ch: &GumbelChoice,
    code: &[f32],
    d: usize,
    dq: &[f32],
    dcode: &mut [f32],
    dlogits: &mut [f32],
) {
    let (gr, vars) = (ch.groups, ch.vars);
    let rows = ch.hard.len() / gr;
    for r in 0..rows {
        for g in 0..gr {
            let dqs = &dq[(r * gr + g) * d..(r * gr + g + 1) * d];
            let v = ch.hard[r * gr + g];
            for (o, &x) in dcode[(g * vars + v) * d..(g * vars + v + 1) * d]
                .iter_mut()
                .zip(dqs)
            {
                *o += x;
            }
            let base = (r * gr + g) * vars;
            let s = &ch.soft[base..base + vars];
            let dp: Vec<f32> = (0..vars)
                .map(|u| {
                    code[(g * vars + u) * d..(g * vars + u + 1) * d]
                        .iter()
                        .zip(dqs)
                        .map(|(a, b)| a * b)
                        .sum()
                })
                .collect();
            let dot: f32 = s.iter().zip(&dp).map(|(a, b)| a * b).sum();
            for u in 0..vars {
                dlogits[base + u] += s[u] * (dp[u] - dot) / ch.tau;
            }
        }
    }
}

/// Codebook perplexity Σ_g exp(−Σ_v p̄ log(p̄ + 1e-7)) of softmax(logits) averaged over the rows
/// with `weight` 1, and (with `dppl`) the gradient of dppl · perplexity added into `dlogits`.
pub fn perplexity(
    logits: &[f32],
    groups: usize,
    vars: usize,
    weight: &[f32],
    dppl: Option<(f32, &mut [f32])>,
) -> f32 {
    let mut ppl = 0.0f32;
    for e in perplexity_groups(logits, groups, vars, weight, dppl) {
        ppl += e;
    }
    ppl
}

/// [`perplexity`] per group: exp(H(p̄_g)) for each g (their sum is the perplexity).
pub fn perplexity_groups(
    logits: &[f32],
    groups: usize,
    vars: usize,
    weight: &[f32],
    dppl: Option<(f32, &mut [f32])>,
) -> Vec<f32> {
    let rows = logits.len() / (groups * vars);
    let wsum: f32 = weight.iter().sum::<f32>().max(1e-6);
    let mut probs = vec![0.0f32; logits.len()];
    for (row, p) in logits.chunks(vars).zip(probs.chunks_mut(vars)) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let s: f32 = row.iter().map(|v| (v - m).exp()).sum();
        for (o, &v) in p.iter_mut().zip(row) {
            *o = (v - m).exp() / s;
        }
    }
    let mut ppl = Vec::with_capacity(groups);
    let mut dmarg = vec![0.0f32; groups * vars];
    for g in 0..groups {
        let mut marg = vec![0.0f32; vars];
        for r in 0..rows {
            let w = weight[r];
            if w != 0.0 {
                for v in 0..vars {
                    marg[v] += w * probs[(r * groups + g) * vars + v];
                }
            }
        }
        marg.iter_mut().for_each(|m| *m /= wsum);
        let h: f32 = -marg.iter().map(|&p| p * (p + 1e-7).ln()).sum::<f32>();
        let e = h.exp();
        ppl.push(e);
        for v in 0..vars {
            let p = marg[v];
            dmarg[g * vars + v] = -e * ((p + 1e-7).ln() + p / (p + 1e-7));
        }
    }
    if let Some((dp, dlogits)) = dppl {
        for (r, &w) in weight.iter().enumerate().take(rows) {
            if w == 0.0 {
                continue;
            }
            for g in 0..groups {
                let base = (r * groups + g) * vars;
                let p = &probs[base..base + vars];
                let gp: Vec<f32> = (0..vars)
                    .map(|v| dp * w / wsum * dmarg[g * vars + v])
                    .collect();
                let dot: f32 = p.iter().zip(&gp).map(|(a, b)| a * b).sum();
                for v in 0..vars {
                    dlogits[base + v] += p[v] * (gp[v] - dot);
                }
            }
        }
    }
    ppl
}

/// The contrastive loss summed over masked frames: for frame m, logits_k = cos(c_m, cand_k)/κ
/// over cand = [q_pos, q_neg…] (negatives identical to the positive are excluded, as HF), loss
/// −log softmax(logits)_0. c and q are [rows, f]. Returns the sum, and adds dloss · its gradient
/// into dc and dq.
#[allow(clippy::too_many_arguments)]
pub fn contrastive(
    c: &[f32],
    q: &[f32],
    f: usize,
    pos: &[usize],
    negs: &[Vec<usize>],
    kappa: f32,
    dloss: f32,
    dc: &mut [f32],
    dq: &mut [f32],
) -> f32 {
    let mut loss = vec![0.0f32; pos.len()];
    contrastive_frames(c, q, f, (pos, negs), (kappa, dloss), (dc, dq), &mut loss);
    let mut total = 0.0f64;
    for &l in &loss {
        total += l as f64;
    }
    total as f32
}

/// [`contrastive`] per masked frame: loss[m] is frame m's loss (written); the gradients are
/// added into dc and dq. Takes (positives, negatives), (κ, dloss) and (dc, dq).
pub fn contrastive_frames(
    c: &[f32],
    q: &[f32],
    f: usize,
    (pos, negs): (&[usize], &[Vec<usize>]),
    (kappa, dloss): (f32, f32),
    (dc, dq): (&mut [f32], &mut [f32]),
    loss: &mut [f32],
) {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for (m, &p) in pos.iter().enumerate() {
        let cm = &c[p * f..(p + 1) * f];
        let cn = norm(cm);
        let qp = &q[p * f..(p + 1) * f];
        let cands: Vec<usize> = std::iter::once(p).chain(negs[m].iter().copied()).collect();
        let mut logits = Vec::with_capacity(cands.len());
        let mut cos = Vec::with_capacity(cands.len());
        for (k, &j) in cands.iter().enumerate() {
            let qj = &q[j * f..(j + 1) * f];
            if k > 0 && qj == qp {
                logits.push(f32::NEG_INFINITY);
                cos.push(0.0);
                continue;
            }
            let den = (cn * norm(qj)).max(1e-8);
            let cs = cm.iter().zip(qj).map(|(a, b)| a * b).sum::<f32>() / den;
            cos.push(cs);
            logits.push(cs / kappa);
        }
        let mx = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let z: f32 = logits.iter().map(|l| (l - mx).exp()).sum();
        loss[m] = mx + z.ln() - logits[0];
        for (k, &j) in cands.iter().enumerate() {
            if logits[k] == f32::NEG_INFINITY {
                continue;
            }
            let g = dloss * ((logits[k] - mx).exp() / z - if k == 0 { 1.0 } else { 0.0 }) / kappa;
            let qj = &q[j * f..(j + 1) * f];
            let qn = norm(qj);
            let den = (cn * qn).max(1e-8);
            for i in 0..f {
                dc[p * f + i] += g * (qj[i] / den - cos[k] * cm[i] / (cn * cn).max(1e-16));
                dq[j * f + i] += g * (cm[i] / den - cos[k] * qj[i] / (qn * qn).max(1e-16));
            }
        }
    }
}
