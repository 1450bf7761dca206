//! The launches the CUDA backend would make for an op call, without a GPU: kernel name, grid,
//! block, dynamic shared memory, and the FLOPs and bytes counted from the shapes. `seisfuse
//! profile` records a training step on the CPU (`backend::record`) and maps each call here.
//!
//! The mapping stays next to the wrappers and is derived from them where they expose their
//! plan: kernel names come from the wrappers' declarations (`Struct::SIG`, checked against
//! `kernels/*.cu` by tests/kernel_signatures.rs), grids from the wrappers' own config functions
//! (`grid_stride`, `grid_1d`, `matmul_tc::plan`, `attention::cfg`, `layer_norm::row_cfg`, …),
//! and the matmul variant from `variants::variant` as the wrapper reads it. Where a wrapper
//! computes something inline (attention's shared-memory sizes) it is repeated here with a
//! pointer to the line. An op without a mapping yields one launch named `?op` with the bytes of
//! its tensors, so the report shows what is missing instead of hiding it (tests/profile.rs
//! asserts that the models' steps have none).
//!
//! FLOPs count multiply-adds as 2 and include what a kernel recomputes (attention's backward
//! recomputes the scores); bytes are each tensor read or written once (compulsory traffic:
//! re-reads that hit L2 are not counted), so a roofline time from them is a lower bound.

use super::launch::KernelSig;
use super::{
    adamw, attention, channels, conv1d, conv1d_tc, elementwise, layer_norm, matmul, matmul_tc,
    matmul_tf32,
};
use super::{dropout, loss, reduce, softmax, tokens};
use super::{grid_1d, grid_stride};
use crate::backend::api::matmul::MatmulShape;
use crate::backend::record::{Arg, Call, Detail};
use crate::tensor::DType;
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

/// What bounds a kernel's arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    /// bf16 tensor cores (mma.sync), fp32 accumulation.
    TensorBf16,
    /// TF32 tensor cores (mma.sync m16n8k8), f32 storage and accumulation.
    TensorTf32,
    /// fp32 FMA on the CUDA cores (every product of matmul variant 1, attention).
    Fp32,
    /// Little arithmetic per byte: bound by memory (elementwise, norms, reductions, copies).
    Memory,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::TensorBf16 => "bf16-tc",
            Unit::TensorTf32 => "tf32-tc",
            Unit::Fp32 => "fp32",
            Unit::Memory => "memory",
        }
    }
}

/// One planned launch.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// The instantiated kernel name (`matmul_nn_bf16`), `(memset)` / `(memcpy)` for the
    /// driver's own operations, `?op` for an op without a mapping.
    pub kernel: String,
    /// `kernels/{file}.cu`, empty for memset/memcpy and unmapped ops.
    pub file: &'static str,
    /// The op that launched it.
    pub op: &'static str,
    pub grid: [u32; 3],
    pub block: u32,
    pub dyn_smem: u32,
    pub flops: f64,
    pub bytes: f64,
    pub unit: Unit,
    /// The share of the lanes a SIMT kernel's arithmetic keeps busy (1 where every thread
    /// has work in every step; less where a stage leaves threads idle, as an FFT stage with
    /// fewer butterflies than threads). Compute time is divided by it.
    pub lanes: f64,
}

impl Planned {
    /// A kernel launch of `cfg` by `op` with every lane busy.
    pub fn kernel(
        kernel: String,
        file: &'static str,
        op: &'static str,
        cfg: LaunchConfig,
        (flops, bytes, unit): (f64, f64, Unit),
    ) -> Self {
        Planned {
            kernel,
            file,
            op,
            grid: [cfg.grid_dim.0, cfg.grid_dim.1, cfg.grid_dim.2],
            block: cfg.block_dim.0 * cfg.block_dim.1 * cfg.block_dim.2,
            dyn_smem: cfg.shared_mem_bytes,
            flops,
            bytes,
            unit,
            lanes: 1.0,
        }
    }
    pub fn blocks(&self) -> u64 {
        self.grid.iter().map(|&g| g as u64).product()
    }
    pub fn mapped(&self) -> bool {
        !self.kernel.starts_with('?')
    }
}

/// The instance of a declared kernel for dtype `dt`.
fn inst(sig: &KernelSig, dt: DType) -> String {
    if sig.generic {
        let suf = if dt == DType::BF16 { "bf16" } else { "f32" };
        format!("{}_{suf}", sig.name)
    } else {
        sig.name.to_string()
    }
}

/// conv1d's bias gradient (both variants): one block per output channel.
fn conv_bias(
    o: &mut Out,
    c: &Call,
    s: &crate::backend::api::conv1d::Conv1dShape,
    dt: DType,
) -> Result<()> {
    let cfg = LaunchConfig {
        grid_dim: (s.cout as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let dy = arg(c, "dy")?;
    o.push(
        &conv1d::Conv1dBackwardBias::SIG,
        dt,
        cfg,
        dy.numel() as f64,
        dy.bytes() + 2.0 * bytes_of(c, &["db"]),
        Unit::Memory,
    );
    Ok(())
}

/// `colsum` variant 2 (src/backend/cuda/reduce.rs): the partial pass `sig` over x (`sums` sums
/// per column: 1 for a bias or fill gradient, 2 for LayerNorm's dw and db; it also reads
/// `extra_in` bytes), then the final pass writing `out_bytes`.
#[allow(clippy::too_many_arguments)]
fn colsum(
    o: &mut Out,
    sig: &KernelSig,
    x: &Arg,
    rows: usize,
    cols: usize,
    sums: usize,
    extra_in: f64,
    out_bytes: f64,
) -> Result<()> {
    let plan = reduce::colsum_plan(rows, cols)?;
    let partials = 4.0 * plan.partials_len(sums) as f64;
    let n = x.numel() as f64;
    o.push(
        sig,
        x.dtype,
        plan.partials_cfg(),
        2.0 * sums as f64 * n,
        x.bytes() + extra_in + partials,
        Unit::Memory,
    );
    o.push(
        &reduce::ColsumFinal::SIG,
        x.dtype,
        reduce::colsum_final_cfg(cols),
        partials / 4.0,
        partials + out_bytes,
        Unit::Memory,
    );
    Ok(())
}

struct Out<'c> {
    call: &'c Call,
    v: Vec<Planned>,
}

impl Out<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        sig: &KernelSig,
        dt: DType,
        cfg: LaunchConfig,
        flops: f64,
        bytes: f64,
        unit: Unit,
    ) {
        if cfg.grid_dim.0 == 0 || cfg.grid_dim.1 == 0 || cfg.grid_dim.2 == 0 {
            return; // the wrapper launches nothing (CudaBackend::launch)
        }
        let cost = (flops, bytes, unit);
        let p = Planned::kernel(inst(sig, dt), sig.file, self.call.op, cfg, cost);
        self.v.push(p);
    }
    fn driver(&mut self, kernel: &str, bytes: f64) {
        self.v.push(Planned {
            kernel: kernel.to_string(),
            file: "",
            op: self.call.op,
            grid: [1, 1, 1],
            block: 0,
            dyn_smem: 0,
            flops: 0.0,
            bytes,
            unit: Unit::Memory,
            lanes: 1.0,
        });
    }
}

/// A product's launches (src/backend/cuda/matmul.rs): variant 2 for bf16 operands whose layout
/// its plan accepts (split-K where it applies), else variant 1.
fn matmul_launches(
    o: &mut Out,
    s: &MatmulShape,
    a: &Arg,
    b: &Arg,
    out: &Arg,
    acc: bool,
    bias: Option<&Arg>,
) -> Result<()> {
    let s = *s;
    let bytes = a.bytes()
        + b.bytes()
        + out.bytes() * if acc { 2.0 } else { 1.0 }
        + bias.map_or(0.0, Arg::bytes);
    // src/backend/cuda/matmul.rs: variants 2 and 3 take bf16 operands whose layout
    // matmul_tc's plan accepts, variant 3 also f32 ones that matmul_tf32's plan accepts;
    // everything else runs variant 1.
    let v = crate::backend::variants::variant("matmul")?;
    let bf16 = a.dtype == DType::BF16 && b.dtype == DType::BF16;
    let tf32 = v == 3 && a.dtype == DType::F32 && b.dtype == DType::F32 && out.dtype == DType::F32;
    let tc = if v >= 2 && bf16 {
        matmul_tc::plan(&s, a.offset, b.offset)
    } else if tf32 {
        matmul_tf32::plan(&s, a.offset, b.offset)
    } else {
        None
    };
    let (unit, smem) = if tf32 {
        (Unit::TensorTf32, matmul_tf32::SMEM_BYTES)
    } else {
        (Unit::TensorBf16, matmul_tc::SMEM_BYTES)
    };
    let split = tc.and_then(|_| matmul_tc::split_k(&s, bias.is_some()));
    if let Some(sk) = split {
        // matmul_tc::SplitKViews::plans: the equal splits batched, the last split, the
        // ordered sum of the f32 slices into C
        let ws = 4.0 * (sk.splits * s.m * s.n) as f64;
        let k_last = s.k - (sk.splits - 1) * sk.k_split;
        for (k, z) in [(sk.k_split, sk.splits - 1), (k_last, 1)] {
            let part = MatmulShape { k, batch: z, ..s };
            let cfg = LaunchConfig {
                grid_dim: matmul::tile_grid(&part),
                block_dim: (matmul_tc::THREADS, 1, 1),
                shared_mem_bytes: smem,
            };
            let share = (k * z) as f64 / s.k as f64;
            let sig = if tf32 {
                matmul_tf32::MatmulTf32Tn::SIG
            } else {
                matmul_tc::MatmulTcTn::SIG
            };
            o.push(
                &sig,
                DType::F32,
                cfg,
                part.flops(),
                share * (a.bytes() + b.bytes() + ws),
                unit,
            );
        }
        o.push(
            &reduce::ColsumFinal::SIG,
            out.dtype,
            reduce::colsum_final_cfg(s.m * s.n),
            (sk.splits * s.m * s.n) as f64,
            ws + out.bytes() * if acc { 2.0 } else { 1.0 },
            Unit::Memory,
        );
    } else if let Some(cfg) = tc {
        let sig = match (tf32, s.ta, s.tb) {
            (false, false, false) => matmul_tc::MatmulTcNn::SIG,
            (false, false, true) => matmul_tc::MatmulTcNt::SIG,
            (false, true, false) => matmul_tc::MatmulTcTn::SIG,
            (false, true, true) => matmul_tc::MatmulTcTt::SIG,
            (true, false, false) => matmul_tf32::MatmulTf32Nn::SIG,
            (true, false, true) => matmul_tf32::MatmulTf32Nt::SIG,
            (true, true, false) => matmul_tf32::MatmulTf32Tn::SIG,
            (true, true, true) => matmul_tf32::MatmulTf32Tt::SIG,
        };
        o.push(&sig, out.dtype, cfg, s.flops(), bytes, unit);
    } else {
        let sig = match (s.ta, s.tb) {
            (false, false) => matmul::MatmulNn::SIG,
            (false, true) => matmul::MatmulNt::SIG,
            (true, false) => matmul::MatmulTn::SIG,
            (true, true) => matmul::MatmulTt::SIG,
        };
        let cfg = LaunchConfig {
            grid_dim: (
                s.n.div_ceil(128) as u32,
                s.m.div_ceil(128) as u32,
                s.batch as u32,
            ),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        o.push(&sig, out.dtype, cfg, s.flops(), bytes, Unit::Fp32);
    }
    Ok(())
}

fn arg<'c>(c: &'c Call, name: &str) -> Result<&'c Arg> {
    c.arg(name)
        .ok_or_else(|| anyhow::anyhow!("{}: no tensor argument `{name}` recorded", c.op))
}

fn bytes_of(c: &Call, names: &[&str]) -> f64 {
    names.iter().filter_map(|n| c.arg(n)).map(Arg::bytes).sum()
}

fn numel(c: &Call, name: &str) -> Result<usize> {
    Ok(arg(c, name)?.numel())
}

/// The launches the CUDA backend would make for `call` (with the matmul variant chosen now).
pub fn plan(call: &Call) -> Result<Vec<Planned>> {
    let mut o = Out {
        call,
        v: Vec::new(),
    };
    let c = call;
    let mm = c.details.iter().find_map(|d| match d {
        Detail::Matmul(s) => Some(*s),
        _ => None,
    });
    let attn = c.details.iter().find_map(|d| match d {
        Detail::Attn(s) => Some(*s),
        _ => None,
    });
    let conv = c.details.iter().find_map(|d| match d {
        Detail::Conv1d(s) => Some(*s),
        _ => None,
    });
    let chunks = c.details.iter().find_map(|d| match d {
        Detail::Chunks(n) => Some(*n),
        _ => None,
    });
    let f32b = 4.0;
    match c.op {
        "matmul" => {
            let Some(s) = mm else {
                bail!("matmul: no MatmulShape recorded")
            };
            let (a, b, out) = (arg(c, "a")?, arg(c, "b")?, arg(c, "c")?);
            let acc = c.num("accumulate").unwrap_or(0) == 1;
            matmul_launches(&mut o, &s, a, b, out, acc, c.arg("bias"))?;
        }
        "matmul_gelu" | "matmul_dgelu" => {
            // src/backend/cuda/matmul.rs: one tensor-core launch with the GELU epilogue where
            // variant 2 takes the product, else the product and the GELU kernel
            let Some(s) = mm else {
                bail!("{}: no MatmulShape recorded", c.op)
            };
            let (a, b) = (arg(c, "a")?, arg(c, "b")?);
            let gelu = c.op == "matmul_gelu";
            let (out, aux) = if gelu {
                (arg(c, "h")?, arg(c, "act")?)
            } else {
                (arg(c, "dh")?, arg(c, "h")?)
            };
            let tc = (crate::backend::variants::variant("matmul")? >= 2
                && a.dtype == DType::BF16
                && b.dtype == DType::BF16)
                .then(|| matmul_tc::plan(&s, a.offset, b.offset))
                .flatten();
            let n = out.numel() as f64;
            if let Some(cfg) = tc {
                let sig = match (s.ta, s.tb) {
                    (false, false) => matmul_tc::MatmulTcNn::SIG,
                    (false, true) => matmul_tc::MatmulTcNt::SIG,
                    (true, false) => matmul_tc::MatmulTcTn::SIG,
                    (true, true) => matmul_tc::MatmulTcTt::SIG,
                };
                let bytes =
                    a.bytes() + b.bytes() + out.bytes() + aux.bytes() + bytes_of(c, &["bias"]);
                // the GELU's few flops per element ride in the epilogue: only the product's
                // count against the tensor ceiling
                o.push(&sig, out.dtype, cfg, s.flops(), bytes, Unit::TensorBf16);
            } else {
                matmul_launches(&mut o, &s, a, b, out, false, c.arg("bias"))?;
                let (sig, flops_per, passes) = if gelu {
                    (elementwise::GeluForward::SIG, 20.0, 2.0)
                } else {
                    (elementwise::GeluBackward::SIG, 25.0, 3.0)
                };
                o.push(
                    &sig,
                    out.dtype,
                    grid_stride(out.numel()),
                    flops_per * n,
                    passes * out.bytes(),
                    Unit::Memory,
                );
            }
        }
        "sum_rows" => {
            let (x, out) = (arg(c, "x")?, arg(c, "out")?);
            let cols = out.numel();
            let acc = c.num("accumulate").unwrap_or(0) == 1;
            let out_bytes = out.bytes() * if acc { 2.0 } else { 1.0 };
            if crate::backend::variants::variant("colsum")? == 2 {
                let sig = reduce::ColsumPartials::SIG;
                colsum(
                    &mut o,
                    &sig,
                    x,
                    x.numel() / cols.max(1),
                    cols,
                    1,
                    0.0,
                    out_bytes,
                )?;
            } else {
                o.push(
                    &matmul::SumRows::SIG,
                    x.dtype,
                    grid_1d(cols, 128),
                    x.numel() as f64,
                    x.bytes() + out_bytes,
                    Unit::Memory,
                );
            }
        }
        "attention" | "attention_backward" => {
            let Some(s) = attn else {
                bail!("{}: no AttnShape recorded", c.op)
            };
            let dt = arg(c, "q")?.dtype;
            let es = dt.size_bytes() as f64;
            let (bh, d) = ((s.batch * s.heads) as f64, s.head_dim as f64);
            let (nq, nk) = (s.seq_q as f64, s.seq_k as f64);
            // one N_q × N_k × D product
            let prod = 2.0 * bh * nq * nk * d;
            let (qb, kb) = (bh * nq * d * es, bh * nk * d * es);
            let lse = bh * nq * f32b;
            let (kt, rows, dd) = (attention::KT, attention::ROWS, s.head_dim);
            // src/backend/cuda/attention.rs: variant 2 (tensor cores) takes the forward of bf16
            // calls whose shape and layout attention_tc::plan accepts; the rest runs variant 1.
            let tc = if c.op == "attention" && crate::backend::variants::variant("attention")? == 2
            {
                let (q, k, v, out) = (arg(c, "q")?, arg(c, "k")?, arg(c, "v")?, arg(c, "out")?);
                let bf16 = [q, k, v, out].iter().all(|t| t.dtype == DType::BF16);
                let plan =
                    super::attention_tc::plan(&s, [q.offset, k.offset, v.offset, out.offset]);
                bf16.then_some(plan)
                    .flatten()
                    .zip(super::attention_tc::sig(s.head_dim))
            } else {
                None
            };
            // The same for the backward (attention_tc::try_attention_backward): delta, dK/dV, dQ.
            let tc_bwd = if c.op == "attention_backward"
                && crate::backend::variants::variant("attention")? == 2
            {
                let g: [&str; 3] = if c.arg("dqkv").is_some() {
                    ["dqkv"; 3]
                } else {
                    ["dq", "dk", "dv"]
                };
                let names = ["q", "k", "v", "out", "dout", g[0], g[1], g[2]];
                let ts = names.map(|n| arg(c, n));
                let mut offsets = [0; 8];
                let mut bf16 = true;
                for (o, t) in offsets.iter_mut().zip(ts) {
                    let t = t?;
                    *o = t.offset;
                    bf16 &= t.dtype == DType::BF16;
                }
                let plan = super::attention_tc::plan_backward(&s, offsets);
                bf16.then_some(plan)
                    .flatten()
                    .zip(super::attention_tc::backward_sigs(s.head_dim))
            } else {
                None
            };
            if let Some((p, (dkdv, dq))) = tc_bwd {
                // delta = rowsum(dO ∘ O): its FLOPs are not counted (nor are they in variant 1's
                // dq kernel, which computes the same)
                o.push(
                    &super::attention_tc::AttentionTcBackwardDelta::SIG,
                    dt,
                    p.delta,
                    0.0,
                    2.0 * qb + lse,
                    Unit::Memory,
                );
                // dK/dV: S and dP again, dV = Pᵀ·dO, dK = dSᵀ·Q; reads q k v dO lse delta
                o.push(
                    &dkdv,
                    dt,
                    p.dkdv,
                    4.0 * prod,
                    2.0 * qb + 4.0 * kb + 2.0 * lse,
                    Unit::TensorBf16,
                );
                // dQ: S and dP again, dQ = dS·K; reads q k v dO lse delta, writes dq
                o.push(
                    &dq,
                    dt,
                    p.dq,
                    3.0 * prod,
                    3.0 * qb + 2.0 * kb + 2.0 * lse,
                    Unit::TensorBf16,
                );
            } else if let Some((cfg, sig)) = tc {
                o.push(
                    &sig,
                    dt,
                    cfg,
                    2.0 * prod,
                    2.0 * qb + 2.0 * kb + lse,
                    Unit::TensorBf16,
                );
            } else if c.op == "attention" {
                // shared memory as in AttentionOps::attention (src/backend/cuda/attention.rs)
                let smem = kt * (dd + 1) + kt * dd + rows * dd;
                o.push(
                    &attention::AttentionForward::SIG,
                    dt,
                    attention::cfg(s.seq_q, &s, smem),
                    2.0 * prod,
                    2.0 * qb + 2.0 * kb + lse,
                    Unit::Fp32,
                );
            } else {
                // dq: S = QKᵀ again, dP = dO·Vᵀ, dQ = dS·K; reads q k v o dO lse, writes dq, D
                let smem = 2 * kt * (dd + 1) + 2 * rows * dd;
                o.push(
                    &attention::AttentionBackwardDq::SIG,
                    dt,
                    attention::cfg(s.seq_q, &s, smem),
                    3.0 * prod,
                    4.0 * qb + 2.0 * kb + 2.0 * lse,
                    Unit::Fp32,
                );
                // dk/dv: S and dP again, dV = Pᵀ·dO, dK = dSᵀ·Q; reads q k v dO lse D, writes dk dv
                let smem = 2 * kt * (dd + 1) + 2 * kt + 2 * rows * dd;
                o.push(
                    &attention::AttentionBackwardDkdv::SIG,
                    dt,
                    attention::cfg(s.seq_k, &s, smem),
                    4.0 * prod,
                    2.0 * qb + 4.0 * kb + 2.0 * lse,
                    Unit::Fp32,
                );
            }
        }
        "layer_norm" | "add_layer_norm" => {
            let (x, w) = (arg(c, "x")?, arg(c, "w")?);
            let cols = w.numel().max(1);
            let rows = x.numel() / cols;
            let n = x.numel() as f64;
            // layer_norm::warp_norm_plan: a warp per row up to ADD_NORM_MAX_COLS columns (ops
            // sends wider fused calls to the unfused pair, which records `add` and `layer_norm`)
            let all = ["x", "r", "sum", "y", "w", "b", "mean", "rstd"];
            let threads = 32 * layer_norm::ADD_LN_ROWS;
            let (sig, cfg) = if cols <= crate::backend::api::layer_norm::ADD_NORM_MAX_COLS {
                let lanes = rows.div_ceil(layer_norm::ADD_LN_ROWS) * threads;
                (
                    layer_norm::AddLayerNorm::SIG,
                    grid_1d(lanes, threads as u32),
                )
            } else {
                (
                    layer_norm::LayerNormForward::SIG,
                    layer_norm::row_cfg(rows, cols),
                )
            };
            o.push(&sig, x.dtype, cfg, 9.0 * n, bytes_of(c, &all), Unit::Memory);
        }
        "layer_norm_backward" => {
            let (x, w) = (arg(c, "x")?, arg(c, "w")?);
            let cols = w.numel().max(1);
            let rows = x.numel() / cols;
            o.push(
                &layer_norm::LayerNormBackwardDx::SIG,
                x.dtype,
                layer_norm::row_cfg(rows, cols),
                10.0 * x.numel() as f64,
                bytes_of(c, &["dx", "dy", "x", "w", "mean", "rstd", "dres"]),
                Unit::Memory,
            );
            let dwdb = 2.0 * bytes_of(c, &["dw", "db"]); // accumulated: read and written
            if crate::backend::variants::variant("colsum")? == 2 {
                let extra = bytes_of(c, &["dy", "mean", "rstd"]);
                let sig = layer_norm::LayerNormDwdbPartials::SIG;
                colsum(&mut o, &sig, x, rows, cols, 2, extra, dwdb)?;
            } else {
                // one thread per column walks every row
                o.push(
                    &layer_norm::LayerNormBackwardDwdb::SIG,
                    x.dtype,
                    grid_1d(cols, 128),
                    4.0 * x.numel() as f64,
                    bytes_of(c, &["dy", "x", "mean", "rstd"]) + dwdb,
                    Unit::Memory,
                );
            }
        }
        "add" | "bias_add" | "gelu" | "gelu_backward" | "scale" | "cast" | "dropout" | "relu"
        | "relu_backward" => {
            let (sig, out, flops_per) = match c.op {
                "add" => (elementwise::Add::SIG, "out", 1.0),
                "bias_add" => (elementwise::BiasAdd::SIG, "out", 1.0),
                "gelu" => (elementwise::GeluForward::SIG, "out", 20.0),
                "gelu_backward" => (elementwise::GeluBackward::SIG, "dx", 25.0),
                "scale" => (elementwise::Scale::SIG, "x", 1.0),
                "dropout" => (dropout::Dropout::SIG, "out", 10.0),
                "cast" => {
                    let x = arg(c, "x")?;
                    let sig = if x.dtype == DType::F32 {
                        elementwise::CastF32ToBf16::SIG
                    } else {
                        elementwise::CastBf16ToF32::SIG
                    };
                    (sig, "out", 1.0)
                }
                _ => return Ok(unmapped(c)),
            };
            let o_arg = arg(c, out)?;
            let n = o_arg.numel();
            // scale is in place: x read and written
            let bytes = if c.op == "scale" {
                2.0 * o_arg.bytes()
            } else {
                c.args.iter().map(Arg::bytes).sum()
            };
            o.push(
                &sig,
                o_arg.dtype,
                grid_stride(n),
                flops_per * n as f64,
                bytes,
                Unit::Memory,
            );
        }
        "drain_add" => {
            let acc = arg(c, "acc")?;
            let n = acc.numel();
            // acc read and written, x read and zeroed
            let bytes = 2.0 * (acc.bytes() + arg(c, "x")?.bytes());
            o.push(
                &elementwise::DrainAddBf16::SIG,
                acc.dtype,
                grid_stride(n),
                n as f64,
                bytes,
                Unit::Memory,
            );
        }
        "softmax" | "softmax_backward" => {
            let y = arg(c, "y")?;
            let cols = *y.shape.last().unwrap_or(&1);
            let rows = y.numel() / cols.max(1);
            let sig = if c.op == "softmax" {
                softmax::SoftmaxForward::SIG
            } else {
                softmax::SoftmaxBackward::SIG
            };
            o.push(
                &sig,
                y.dtype,
                softmax::row_cfg(rows, cols),
                5.0 * y.numel() as f64,
                c.args.iter().map(Arg::bytes).sum(),
                Unit::Memory,
            );
        }
        "patchify" | "unpatchify" => {
            let (sig, n) = if c.op == "patchify" {
                (tokens::Patchify::SIG, numel(c, "patches")?)
            } else {
                (tokens::Unpatchify::SIG, numel(c, "patches")?)
            };
            o.push(
                &sig,
                arg(c, "patches")?.dtype,
                grid_stride(n),
                0.0,
                c.args.iter().map(Arg::bytes).sum(),
                Unit::Memory,
            );
        }
        "gather_rows" => {
            let (out, src, idx) = (arg(c, "out")?, arg(c, "src")?, arg(c, "idx")?);
            let cols = *src.shape.last().unwrap_or(&1);
            o.push(
                &tokens::GatherRows::SIG,
                out.dtype,
                tokens::rows_cfg(idx.numel(), cols),
                0.0,
                2.0 * out.bytes() + idx.bytes() + bytes_of(c, &["fill"]),
                Unit::Memory,
            );
        }
        "gather_rows_backward" => {
            let (dsrc, dout, idx) = (arg(c, "dsrc")?, arg(c, "dout")?, arg(c, "idx")?);
            let (ns, cols) = (dsrc.shape[1], dsrc.shape[2]);
            let nd = idx.shape.get(1).copied().unwrap_or(1).max(1);
            let batch = idx.numel() / nd;
            o.push(
                &tokens::GatherRowsBackward::SIG,
                dsrc.dtype,
                tokens::rows_cfg(batch * ns, cols),
                dout.numel() as f64,
                dsrc.bytes() + dout.bytes() + idx.bytes(),
                Unit::Memory,
            );
            if let Some(dfill) = c.arg("dfill") {
                if crate::backend::variants::variant("colsum")? == 2 {
                    let sig = tokens::GatherFillPartials::SIG;
                    let out_bytes = 2.0 * dfill.bytes();
                    colsum(
                        &mut o,
                        &sig,
                        dout,
                        idx.numel(),
                        cols,
                        1,
                        idx.bytes(),
                        out_bytes,
                    )?;
                } else {
                    o.push(
                        &tokens::GatherFillBackward::SIG,
                        dsrc.dtype,
                        grid_1d(cols, 128),
                        dout.numel() as f64,
                        dout.bytes() + idx.bytes() + 2.0 * dfill.bytes(),
                        Unit::Memory,
                    );
                }
            }
        }
        "masked_row_mse" | "masked_row_mse_backward" => {
            let (x, mask) = (arg(c, "x")?, arg(c, "mask")?);
            let cols = *x.shape.last().unwrap_or(&1);
            let sig = if c.op == "masked_row_mse" {
                loss::MaskedRowMseForward::SIG
            } else {
                loss::MaskedRowMseBackward::SIG
            };
            o.push(
                &sig,
                x.dtype,
                softmax::row_cfg(mask.numel(), cols),
                3.0 * x.numel() as f64,
                c.args.iter().map(Arg::bytes).sum(),
                Unit::Memory,
            );
        }
        "sum" => {
            let x = arg(c, "x")?;
            let n = x.numel();
            let sig = if c.num("square").unwrap_or(0) == 1 {
                reduce::SumsqPartials::SIG
            } else {
                reduce::SumPartials::SIG
            };
            let cfg = LaunchConfig {
                grid_dim: (reduce::blocks_for(n), 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            let g = reduce::blocks_for(n) as f64;
            o.push(
                &sig,
                x.dtype,
                cfg,
                2.0 * n as f64,
                x.bytes() + g * f32b,
                Unit::Memory,
            );
            o.push(
                &reduce::SumFinal::SIG,
                DType::F32,
                one_block(),
                g,
                g * f32b,
                Unit::Memory,
            );
        }
        "grad_norm_sq" => {
            let g = arg(c, "grads")?;
            let count = chunks.unwrap_or(1);
            o.push(
                &adamw::GradNormPartials::SIG,
                DType::F32,
                adamw::per_chunk(count),
                2.0 * g.numel() as f64,
                g.bytes() + count as f64 * f32b,
                Unit::Memory,
            );
            o.push(
                &reduce::SumFinal::SIG,
                DType::F32,
                one_block(),
                count as f64,
                count as f64 * f32b,
                Unit::Memory,
            );
        }
        "adamw" => {
            let count = chunks.unwrap_or(1);
            let n = numel(c, "values")? as f64;
            // values, m and v read and written; gradients read; the bf16 copy written
            let bytes =
                2.0 * bytes_of(c, &["values", "m", "v"]) + bytes_of(c, &["grads", "compute"]);
            o.push(
                &adamw::AdamwChunks::SIG,
                DType::F32,
                adamw::per_chunk(count),
                15.0 * n,
                bytes,
                Unit::Memory,
            );
        }
        "fill_zero" => o.driver("(memset)", arg(c, "t")?.bytes()),
        "copy" => o.driver("(memcpy)", 2.0 * arg(c, "src")?.bytes()),
        "conv1d" | "conv1d_backward" => {
            let Some(s) = conv else {
                bail!("{}: no Conv1dShape recorded", c.op)
            };
            let lout = s.lout().unwrap_or(0);
            let x = arg(c, "x")?;
            let dt = x.dtype;
            let flops = 2.0
                * s.batch as f64
                * s.cout as f64
                * lout as f64
                * s.cin_per_group() as f64
                * s.k as f64;
            let tile = conv1d::TILE;
            // src/backend/cuda/conv1d_tc.rs: variant 2 takes bf16 calls its `supported` accepts
            // (the input gradient, the weight gradient's partials and their ordered sum; the
            // bias gradient stays variant 1's); the rest runs variant 1.
            let names: &[&str] = if c.op == "conv1d" {
                &["y", "x", "w", "bias"]
            } else {
                &["dx", "dw", "dy", "x", "w"]
            };
            let tc = crate::backend::variants::variant("conv1d")? == 2
                && conv1d_tc::supported(&s)
                && names
                    .iter()
                    .all(|n| c.arg(n).is_none_or(|t| t.dtype == DType::BF16));
            let tc_cfg = |cig: usize, cog: usize, len: usize| {
                let cc = conv1d_tc::channels_per_pass(cig, s.k);
                LaunchConfig {
                    grid_dim: (
                        len.div_ceil(conv1d_tc::FRAMES) as u32,
                        (s.groups * cog.div_ceil(16)) as u32,
                        s.batch as u32,
                    ),
                    block_dim: (conv1d_tc::THREADS, 1, 1),
                    shared_mem_bytes: conv1d_tc::forward_smem(cc, s.k),
                }
            };
            if tc && c.op == "conv1d" {
                let cfg = tc_cfg(s.cin_per_group(), s.cout_per_group(), lout);
                let bytes = bytes_of(c, &["y", "x", "w", "bias"]);
                o.push(
                    &conv1d_tc::Conv1dTcForward::SIG,
                    dt,
                    cfg,
                    flops,
                    bytes,
                    Unit::TensorBf16,
                );
            } else if tc {
                if let Some(dx) = c.arg("dx") {
                    let cfg = tc_cfg(s.cout_per_group(), s.cin_per_group(), s.lin);
                    let bytes = dx.bytes() + bytes_of(c, &["dy", "w"]);
                    o.push(
                        &conv1d_tc::Conv1dTcForward::SIG,
                        dt,
                        cfg,
                        flops,
                        bytes,
                        Unit::TensorBf16,
                    );
                }
                let ws = conv1d_tc::weight_split(&s);
                let part = ws.partials_len(&s) as f64 * f32b;
                o.push(
                    &conv1d_tc::Conv1dTcBackwardWeightPartial::SIG,
                    dt,
                    conv1d_tc::weight_cfg(&s, &ws),
                    flops,
                    bytes_of(c, &["dy", "x"]) + part,
                    Unit::TensorBf16,
                );
                let total = s.cout * s.cin_per_group() * s.k;
                o.push(
                    &reduce::ColsumFinal::SIG,
                    dt,
                    reduce::colsum_final_cfg(total),
                    (ws.splits * total) as f64,
                    part + 2.0 * bytes_of(c, &["dw"]),
                    Unit::Memory,
                );
                if c.arg("db").is_some() {
                    conv_bias(&mut o, c, &s, dt)?;
                }
            } else if c.op == "conv1d" {
                let win = (tile - 1) * s.stride + s.k;
                let cc = conv1d::channels_per_pass(win + s.k, s.cin_per_group())?;
                let cfg = LaunchConfig {
                    grid_dim: (lout.div_ceil(tile) as u32, s.cout as u32, s.batch as u32),
                    block_dim: (tile as u32, 1, 1),
                    shared_mem_bytes: (cc * (win + s.k) * 4) as u32,
                };
                let bytes = bytes_of(c, &["y", "x", "w", "bias"]);
                o.push(
                    &conv1d::Conv1dForward::SIG,
                    dt,
                    cfg,
                    flops,
                    bytes,
                    Unit::Fp32,
                );
            } else {
                if let Some(dx) = c.arg("dx") {
                    let cc = conv1d::channels_per_pass(s.k, s.cout_per_group())?;
                    let cfg = LaunchConfig {
                        grid_dim: (s.lin.div_ceil(tile) as u32, s.cin as u32, s.batch as u32),
                        block_dim: (tile as u32, 1, 1),
                        shared_mem_bytes: (cc * s.k * 4) as u32,
                    };
                    let bytes = dx.bytes() + bytes_of(c, &["dy", "w"]);
                    o.push(
                        &conv1d::Conv1dBackwardInput::SIG,
                        dt,
                        cfg,
                        flops,
                        bytes,
                        Unit::Fp32,
                    );
                }
                // the weight gradient: split-K partials, then their ordered sum
                // (CudaBackend::conv1d_weight_gradient)
                let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
                let n = cig * s.k;
                let r = s.batch * lout;
                let wt = conv1d::WG_TILE;
                let tiles = n.div_ceil(wt) * cog.div_ceil(wt) * s.groups;
                let (splits, _) = conv1d::weight_grad_splits(tiles, r, s.cout * n, s.groups);
                let part = (splits * s.cout * n) as f64 * f32b;
                let cfg = conv1d::weight_grad_cfg(n, cog, s.groups, splits);
                let bytes = bytes_of(c, &["dy", "x"]) + part;
                o.push(
                    &conv1d::Conv1dBackwardWeightPartial::SIG,
                    dt,
                    cfg,
                    flops,
                    bytes,
                    Unit::Fp32,
                );
                let total = s.cout * n;
                o.push(
                    &conv1d::Conv1dBackwardWeightReduce::SIG,
                    dt,
                    grid_stride(total),
                    (splits * total) as f64,
                    part + 2.0 * bytes_of(c, &["dw"]),
                    Unit::Memory,
                );
                if c.arg("db").is_some() {
                    conv_bias(&mut o, c, &s, dt)?;
                }
            }
        }
        "weight_norm" => {
            let (g, v) = (arg(c, "g")?, arg(c, "v")?);
            let kdim = g.numel();
            o.push(
                &conv1d::WeightNormNorms::SIG,
                v.dtype,
                conv1d::per_k_cfg(kdim),
                2.0 * v.numel() as f64,
                v.bytes() + kdim as f64 * f32b,
                Unit::Memory,
            );
            o.push(
                &conv1d::WeightNormForward::SIG,
                v.dtype,
                grid_stride(v.numel()),
                v.numel() as f64,
                2.0 * v.bytes() + g.bytes() + kdim as f64 * f32b,
                Unit::Memory,
            );
        }
        "weight_norm_backward" => {
            let (g, v) = (arg(c, "g")?, arg(c, "v")?);
            let kdim = g.numel();
            o.push(
                &conv1d::WeightNormBackwardG::SIG,
                v.dtype,
                conv1d::per_k_cfg(kdim),
                2.0 * v.numel() as f64,
                2.0 * v.bytes() + 2.0 * g.bytes() + 2.0 * kdim as f64 * f32b,
                Unit::Memory,
            );
            o.push(
                &conv1d::WeightNormBackwardV::SIG,
                v.dtype,
                grid_stride(v.numel()),
                4.0 * v.numel() as f64,
                4.0 * v.bytes() + g.bytes() + 2.0 * kdim as f64 * f32b,
                Unit::Memory,
            );
        }
        "transpose_last2" => {
            let (x, out) = (arg(c, "x")?, arg(c, "out")?);
            let (m, n) = (c.num("m").unwrap_or(1), c.num("n").unwrap_or(1));
            let batch = x.numel() / (m * n).max(1);
            let cfg = LaunchConfig {
                grid_dim: (n.div_ceil(32) as u32, m.div_ceil(32) as u32, batch as u32),
                block_dim: (32, 8, 1),
                shared_mem_bytes: 0,
            };
            let bytes = x.bytes() + out.bytes();
            o.push(
                &conv1d::TransposeLast2::SIG,
                x.dtype,
                cfg,
                0.0,
                bytes,
                Unit::Memory,
            );
        }
        "slice_axis" | "slice_axis_backward" => {
            let (sig, out) = if c.op == "slice_axis" {
                (conv1d::SliceAxis::SIG, arg(c, "out")?)
            } else {
                (conv1d::SliceAxisBackward::SIG, arg(c, "dx")?)
            };
            let bytes = c.args.iter().map(Arg::bytes).sum();
            o.push(
                &sig,
                out.dtype,
                grid_stride(out.numel()),
                0.0,
                bytes,
                Unit::Memory,
            );
        }
        "copy_strided" | "permute_last2" => {
            let (sig, out) = if c.op == "copy_strided" {
                (channels::CopyStrided::SIG, arg(c, "dst")?)
            } else {
                (channels::TransposeLast2::SIG, arg(c, "out")?)
            };
            let n = match c.details.first() {
                Some(Detail::Strided(s)) => s.batch * s.len,
                _ => out.numel(),
            };
            let bytes = 2.0 * n as f64 * out.dtype.size_bytes() as f64;
            o.push(&sig, out.dtype, grid_stride(n), 0.0, bytes, Unit::Memory);
        }
        _ => return Ok(unmapped(c)),
    }
    Ok(o.v)
}

fn one_block() -> LaunchConfig {
    LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (1024, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// An op this file has no mapping for: one launch of unknown shape moving its tensors' bytes.
fn unmapped(c: &Call) -> Vec<Planned> {
    let n = c.args.iter().map(Arg::numel).max().unwrap_or(0);
    let cfg = grid_stride(n);
    vec![Planned {
        kernel: format!("?{}", c.op),
        file: "",
        op: c.op,
        grid: [cfg.grid_dim.0, 1, 1],
        block: 256,
        dyn_smem: 0,
        flops: 0.0,
        bytes: c.args.iter().map(Arg::bytes).sum(),
        unit: Unit::Memory,
        lanes: 1.0,
    }]
}
