//! Launch wrappers for kernels/wav2vec2.cu (fp32 only). Shapes are checked by `ops::wav2vec2`;
//! these check the buffer lengths the kernels index, so a wrong call is an error, not a fault.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use crate::tensor::DType;
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

const FILE: &str = "wav2vec2";
/// W2V_THREADS in the kernel file.
const THREADS: u32 = 256;

fn blocks(n: usize, smem: usize) -> Result<LaunchConfig> {
    if n > i32::MAX as usize {
        bail!("wav2vec2 kernels: {n} blocks exceed the grid limit");
    }
    Ok(LaunchConfig {
        grid_dim: (n as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: smem as u32,
    })
}

fn want(what: &str, buf: &CudaBuf, dtype: DType, len: usize) -> Result<()> {
    if buf.dtype() != dtype || buf.len() != len {
        bail!(
            "wav2vec2 kernels: {what} must be {dtype} with {len} elements, found {} with {}",
            buf.dtype(),
            buf.len()
        );
    }
    Ok(())
}

fn i32_arg(what: &str, v: usize) -> Result<KArg> {
    match i32::try_from(v) {
        Ok(x) => Ok(KArg::I32(x)),
        Err(_) => bail!("wav2vec2 kernels: {what} = {v} does not fit in i32"),
    }
}

/// hard [rows·G] (i32), soft [rows·G·V] from logits [rows·G·V].
#[allow(clippy::too_many_arguments)]
pub fn gumbel_forward(
    b: &CudaBackend,
    hard: &CudaBuf,
    soft: &CudaBuf,
    logits: &CudaBuf,
    vars: usize,
    tau: f32,
    seed: u64,
    step: u32,
) -> Result<()> {
    let n = hard.len();
    want("hard", hard, DType::I32, n)?;
    want("soft", soft, DType::F32, n * vars)?;
    want("logits", logits, DType::F32, n * vars)?;
    b.launch(
        FILE,
        "gumbel_forward_f32",
        blocks(n, 0)?,
        &[
            KArg::Ptr(hard.ptr(b)),
            KArg::Ptr(soft.ptr(b)),
            KArg::Ptr(logits.ptr(b)),
            i32_arg("vars", vars)?,
            KArg::F32(tau),
            KArg::U64(seed),
            KArg::U32(step),
        ],
    )
}

/// q [rows·G·d] from code [G·V·d] and hard [rows·G].
pub fn codevector_gather(
    b: &CudaBackend,
    q: &CudaBuf,
    code: &CudaBuf,
    hard: &CudaBuf,
    groups: usize,
    vars: usize,
    d: usize,
) -> Result<()> {
    want("q", q, DType::F32, hard.len() * d)?;
    want("codevectors", code, DType::F32, groups * vars * d)?;
    let n = q.len();
    b.launch(
        FILE,
        "codevector_gather_f32",
        grid_1d(n, 256),
        &[
            KArg::Ptr(q.ptr(b)),
            KArg::Ptr(code.ptr(b)),
            KArg::Ptr(hard.ptr(b)),
            KArg::I64(n as i64),
            i32_arg("groups", groups)?,
            i32_arg("vars", vars)?,
            i32_arg("d", d)?,
        ],
    )
}

/// dlogits [rows·G·V] (written) and dcode [G·V·d] (accumulated) of the straight-through
/// quantizer, from dq [rows·G·d].
#[allow(clippy::too_many_arguments)]
pub fn codevector_backward(
    b: &CudaBackend,
    dlogits: &CudaBuf,
    dcode: &CudaBuf,
    soft: &CudaBuf,
    hard: &CudaBuf,
    code: &CudaBuf,
    dq: &CudaBuf,
    groups: usize,
    vars: usize,
    d: usize,
    tau: f32,
) -> Result<()> {
    let rg = hard.len();
    want("dlogits", dlogits, DType::F32, rg * vars)?;
    want("soft", soft, DType::F32, rg * vars)?;
    want("dq", dq, DType::F32, rg * d)?;
    want("codevectors", code, DType::F32, groups * vars * d)?;
    want("dcode", dcode, DType::F32, groups * vars * d)?;
    if vars * 4 > 48 * 1024 {
        bail!("codevector_backward: {vars} codevectors per group exceed the shared memory");
    }
    b.launch(
        FILE,
        "codevector_backward_logits_f32",
        blocks(rg, vars * 4)?,
        &[
            KArg::Ptr(dlogits.ptr(b)),
            KArg::Ptr(soft.ptr(b)),
            KArg::Ptr(code.ptr(b)),
            KArg::Ptr(dq.ptr(b)),
            i32_arg("groups", groups)?,
            i32_arg("vars", vars)?,
            i32_arg("d", d)?,
            KArg::F32(tau),
        ],
    )?;
    b.launch(
        FILE,
        "codevector_backward_code_f32",
        blocks(groups * vars, 0)?,
        &[
            KArg::Ptr(dcode.ptr(b)),
            KArg::Ptr(dq.ptr(b)),
            KArg::Ptr(hard.ptr(b)),
            i32_arg("rows", rg / groups)?,
            i32_arg("groups", groups)?,
            i32_arg("vars", vars)?,
            i32_arg("d", d)?,
        ],
    )
}

/// Per-group perplexities ppl [G] and the scaled marginal gradient dmarg [G·V] from the
/// probabilities [rows, G·V] and row weights [rows]; then dlogits [rows·G·V] (written).
#[allow(clippy::too_many_arguments)]
pub fn perplexity(
    b: &std::sync::Arc<CudaBackend>,
    ppl: &CudaBuf,
    dlogits: &CudaBuf,
    probs: &CudaBuf,
    weight: &CudaBuf,
    groups: usize,
    vars: usize,
    wsum: f32,
    dppl: f32,
) -> Result<()> {
    let rows = weight.len();
    let cols = groups * vars;
    want("probs", probs, DType::F32, rows * cols)?;
    want("weight", weight, DType::F32, rows)?;
    want("ppl", ppl, DType::F32, groups)?;
    want("dlogits", dlogits, DType::F32, rows * cols)?;
    let marg = b.zeros(DType::F32, cols)?;
    let dmarg = b.zeros(DType::F32, cols)?;
    b.launch(
        FILE,
        "perplexity_marginal_f32",
        blocks(cols.div_ceil(32), 0)?,
        &[
            KArg::Ptr(marg.buf.ptr(b)),
            KArg::Ptr(probs.ptr(b)),
            KArg::Ptr(weight.ptr(b)),
            i32_arg("rows", rows)?,
            i32_arg("cols", cols)?,
            KArg::F32(1.0 / wsum),
        ],
    )?;
    b.launch(
        FILE,
        "perplexity_finish_f32",
        blocks(groups, 0)?,
        &[
            KArg::Ptr(ppl.ptr(b)),
            KArg::Ptr(dmarg.buf.ptr(b)),
            KArg::Ptr(marg.buf.ptr(b)),
            i32_arg("vars", vars)?,
            KArg::F32(dppl / wsum),
        ],
    )?;
    b.launch(
        FILE,
        "perplexity_backward_f32",
        blocks(rows * groups, 0)?,
        &[
            KArg::Ptr(dlogits.ptr(b)),
            KArg::Ptr(probs.ptr(b)),
            KArg::Ptr(weight.ptr(b)),
            KArg::Ptr(dmarg.buf.ptr(b)),
            i32_arg("groups", groups)?,
            i32_arg("vars", vars)?,
        ],
    )
}

/// The contrastive loss per masked frame (loss [M]), dc (written on the positive rows; the
/// caller zeroes it) and dq (written) of c, q [rows·f] with candidates cand [M·(K+1)] and
/// their inverse (offsets [rows+1], entries [M·(K+1)]).
#[allow(clippy::too_many_arguments)]
pub fn contrastive(
    b: &std::sync::Arc<CudaBackend>,
    loss: &CudaBuf,
    dc: &CudaBuf,
    dq: &CudaBuf,
    c: &CudaBuf,
    q: &CudaBuf,
    cand: &CudaBuf,
    offsets: &CudaBuf,
    entries: &CudaBuf,
    f: usize,
    kappa: f32,
    dloss: f32,
) -> Result<()> {
    let m = loss.len();
    let rows = offsets.len().saturating_sub(1);
    let slots = cand.len();
    if m == 0 || !slots.is_multiple_of(m) {
        bail!("contrastive: {slots} candidate slots for {m} masked frames");
    }
    let ncand = slots / m;
    want("loss", loss, DType::F32, m)?;
    for (w, x) in [("c", c), ("q", q), ("dc", dc), ("dq", dq)] {
        want(w, x, DType::F32, rows * f)?;
    }
    want("cand", cand, DType::I32, slots)?;
    want("entries", entries, DType::I32, slots)?;
    let smem = (2 * f + 3 * ncand) * 4;
    if smem > 48 * 1024 {
        bail!("contrastive: width {f} with {ncand} candidates exceeds the shared memory");
    }
    let coef_a = b.zeros(DType::F32, slots)?;
    let coef_b = b.zeros(DType::F32, slots)?;
    b.launch(
        FILE,
        "contrastive_forward_f32",
        blocks(m, smem)?,
        &[
            KArg::Ptr(loss.ptr(b)),
            KArg::Ptr(dc.ptr(b)),
            KArg::Ptr(coef_a.buf.ptr(b)),
            KArg::Ptr(coef_b.buf.ptr(b)),
            KArg::Ptr(c.ptr(b)),
            KArg::Ptr(q.ptr(b)),
            KArg::Ptr(cand.ptr(b)),
            i32_arg("candidates", ncand)?,
            i32_arg("f", f)?,
            KArg::F32(kappa),
            KArg::F32(dloss),
        ],
    )?;
    b.launch(
        FILE,
        "contrastive_backward_q_f32",
        blocks(rows, 0)?,
        &[
            KArg::Ptr(dq.ptr(b)),
            KArg::Ptr(c.ptr(b)),
            KArg::Ptr(q.ptr(b)),
            KArg::Ptr(coef_a.buf.ptr(b)),
            KArg::Ptr(coef_b.buf.ptr(b)),
            KArg::Ptr(cand.ptr(b)),
            KArg::Ptr(offsets.ptr(b)),
            KArg::Ptr(entries.ptr(b)),
            i32_arg("candidates", ncand)?,
            i32_arg("f", f)?,
        ],
    )
}
