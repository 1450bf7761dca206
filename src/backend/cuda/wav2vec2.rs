//! kernels/wav2vec2.cu (fp32 only): declarations and the CUDA implementation of
//! [`Wav2vec2Ops`]. Shapes are checked by `ops::wav2vec2`; the sizes the kernels take as `int`
//! are checked to fit.

use super::launch::kernels;
use super::{block_per, grid_1d, CudaBackend};
use crate::backend::api::wav2vec2::{
    Codebook, CodevectorBackward, ContrastiveArgs, ContrastiveOut, GumbelArgs, PerplexityArgs,
    Wav2vec2Ops,
};
use crate::backend::api::{Backend, ReduceOps, SoftmaxOps};
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

kernels! { file "wav2vec2";
    /// One block per (row, group).
    GumbelForward = gumbel_forward_f32(hard: out i32, soft: out f32, logits: inp f32,
        vars: val i32, tau: val f32, seed: val u64, step: val u32);
    /// One thread per element of q.
    CodevectorGather = codevector_gather_f32(q: out f32, code: inp f32, hard: inp i32,
        n: val i64, groups: val i32, vars: val i32, d: val i32);
    /// One block per (row, group); `vars` floats of dynamic shared memory.
    CodevectorBackwardLogits = codevector_backward_logits_f32(dlogits: out f32, soft: inp f32,
        code: inp f32, dq: inp f32, groups: val i32, vars: val i32, d: val i32, tau: val f32);
    /// One block per codevector, accumulating into dcode.
    CodevectorBackwardCode = codevector_backward_code_f32(dcode: out f32, dq: inp f32,
        hard: inp i32, rows: val i32, groups: val i32, vars: val i32, d: val i32);
    /// One block per 32 columns.
    PerplexityMarginal = perplexity_marginal_f32(marg: out f32, probs: inp f32,
        weight: inp f32, rows: val i32, cols: val i32, inv_wsum: val f32);
    /// One block per group.
    PerplexityFinish = perplexity_finish_f32(ppl: out f32, dmarg: out f32, marg: inp f32,
        vars: val i32, dscale: val f32);
    /// One block per (row, group).
    PerplexityBackward = perplexity_backward_f32(dlogits: out f32, probs: inp f32,
        weight: inp f32, dmarg: inp f32, groups: val i32, vars: val i32);
    /// One block per masked frame; (2f + 3·ncand) floats of dynamic shared memory.
    ContrastiveForward = contrastive_forward_f32(loss: out f32, dc: out f32, coef_a: out f32,
        coef_b: out f32, c: inp f32, q: inp f32, cand: inp i32, ncand: val i32, f: val i32,
        kappa: val f32, dloss: val f32);
    /// One block per row of q.
    ContrastiveBackwardQ = contrastive_backward_q_f32(dq: out f32, c: inp f32, q: inp f32,
        coef_a: inp f32, coef_b: inp f32, cand: inp i32, offsets: inp i32, entries: inp i32,
        ncand: val i32, f: val i32);
}

/// W2V_THREADS in the kernel file.
const THREADS: u32 = 256;

fn blocks(n: usize, smem: usize) -> Result<LaunchConfig> {
    if n > i32::MAX as usize {
        bail!("wav2vec2 kernels: {n} blocks exceed the grid limit");
    }
    Ok(block_per(n, THREADS, smem))
}

fn i32_arg(what: &str, v: usize) -> Result<i32> {
    match i32::try_from(v) {
        Ok(x) => Ok(x),
        Err(_) => bail!("wav2vec2 kernels: {what} = {v} does not fit in i32"),
    }
}

/// The last axis of a tensor (`ops` checked it is non-zero).
fn last(t: &Tensor) -> usize {
    t.shape.last().copied().unwrap_or(1)
}

impl Wav2vec2Ops for CudaBackend {
    fn gumbel_forward(&self, a: GumbelArgs) -> Result<()> {
        let (n, vars) = (a.hard.numel(), last(a.soft));
        GumbelForward {
            hard: a.hard,
            soft: a.soft,
            logits: a.logits,
            vars: i32_arg("vars", vars)?,
            tau: a.tau,
            seed: a.seed,
            step: a.step,
        }
        .launch(self, blocks(n, 0)?)
    }

    fn codevector_gather(&self, q: &mut Tensor, book: Codebook) -> Result<()> {
        let d = last(book.code);
        let vars = book.code.numel() / (book.groups * d);
        let n = q.numel();
        CodevectorGather {
            q,
            code: book.code,
            hard: book.hard,
            n: n as i64,
            groups: i32_arg("groups", book.groups)?,
            vars: i32_arg("vars", vars)?,
            d: i32_arg("d", d)?,
        }
        .launch(self, grid_1d(n, 256))
    }

    fn codevector_backward(&self, a: CodevectorBackward) -> Result<()> {
        let book = a.book;
        let (groups, vars, d) = (book.groups, last(a.soft), last(book.code));
        let rg = book.hard.numel();
        if vars * 4 > 48 * 1024 {
            bail!("codevector_backward: {vars} codevectors per group exceed the shared memory");
        }
        CodevectorBackwardLogits {
            dlogits: a.dlogits,
            soft: a.soft,
            code: book.code,
            dq: a.dq,
            groups: i32_arg("groups", groups)?,
            vars: i32_arg("vars", vars)?,
            d: i32_arg("d", d)?,
            tau: a.tau,
        }
        .launch(self, blocks(rg, vars * 4)?)?;
        CodevectorBackwardCode {
            dcode: a.dcode,
            dq: a.dq,
            hard: book.hard,
            rows: i32_arg("rows", rg / groups)?,
            groups: i32_arg("groups", groups)?,
            vars: i32_arg("vars", vars)?,
            d: i32_arg("d", d)?,
        }
        .launch(self, blocks(groups * vars, 0)?)
    }

    fn codebook_perplexity(&self, a: PerplexityArgs) -> Result<()> {
        let (logits, weight, groups) = (a.logits, a.weight, a.groups);
        let cols = last(logits);
        let vars = cols / groups;
        let rows = weight.numel();
        // Σ weight, read back: the kernels take 1 / Σ as a scalar.
        let mut ws = self.alloc(&[], DType::F32)?;
        self.sum(&mut ws, weight, false, 1.0)?;
        let wsum = ws.to_vec_f32()?[0].max(1e-6);
        // softmax over each group's codevectors: rows of `vars`
        let mut probs = self.alloc(&[rows * groups, vars], DType::F32)?;
        self.softmax(&mut probs, &logits.clone().reshape(&[rows * groups, vars])?)?;
        let mut marg = self.alloc(&[cols], DType::F32)?;
        let mut dmarg = self.alloc(&[cols], DType::F32)?;
        PerplexityMarginal {
            marg: &mut marg,
            probs: &probs,
            weight,
            rows: i32_arg("rows", rows)?,
            cols: i32_arg("cols", cols)?,
            inv_wsum: 1.0 / wsum,
        }
        .launch(self, blocks(cols.div_ceil(32), 0)?)?;
        PerplexityFinish {
            ppl: a.ppl,
            dmarg: &mut dmarg,
            marg: &marg,
            vars: i32_arg("vars", vars)?,
            dscale: a.dppl / wsum,
        }
        .launch(self, blocks(groups, 0)?)?;
        PerplexityBackward {
            dlogits: a.dlogits,
            probs: &probs,
            weight,
            dmarg: &dmarg,
            groups: i32_arg("groups", groups)?,
            vars: i32_arg("vars", vars)?,
        }
        .launch(self, blocks(rows * groups, 0)?)
    }

    fn contrastive(&self, out: ContrastiveOut, a: ContrastiveArgs) -> Result<()> {
        let (c, q, idx) = (a.c, a.q, a.idx);
        let m = out.loss.numel();
        let rows = idx.offsets.numel().saturating_sub(1);
        let slots = idx.cand.numel();
        if m == 0 || !slots.is_multiple_of(m) {
            bail!("contrastive: {slots} candidate slots for {m} masked frames");
        }
        let ncand = slots / m;
        let f = last(c);
        if c.numel() != rows * f || idx.entries.numel() != slots {
            bail!(
                "contrastive: c {:?} must have {rows} rows and the inverse map {slots} slots",
                c.shape
            );
        }
        let smem = (2 * f + 3 * ncand) * 4;
        if smem > 48 * 1024 {
            bail!("contrastive: width {f} with {ncand} candidates exceeds the shared memory");
        }
        // The forward writes dc on the positive rows only.
        self.fill_zero(out.dc)?;
        let mut coef_a = self.alloc(&[slots], DType::F32)?;
        let mut coef_b = self.alloc(&[slots], DType::F32)?;
        ContrastiveForward {
            loss: out.loss,
            dc: out.dc,
            coef_a: &mut coef_a,
            coef_b: &mut coef_b,
            c,
            q,
            cand: idx.cand,
            ncand: i32_arg("candidates", ncand)?,
            f: i32_arg("f", f)?,
            kappa: a.kappa,
            dloss: a.dloss,
        }
        .launch(self, blocks(m, smem)?)?;
        ContrastiveBackwardQ {
            dq: out.dq,
            c,
            q,
            coef_a: &coef_a,
            coef_b: &coef_b,
            cand: idx.cand,
            offsets: idx.offsets,
            entries: idx.entries,
            ncand: i32_arg("candidates", ncand)?,
            f: i32_arg("f", f)?,
        }
        .launch(self, blocks(rows, 0)?)
    }
}
