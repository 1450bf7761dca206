//! Launch wrappers for kernels/conv1d.cu.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use crate::backend::cpu::conv1d::Conv1dShape;
use crate::tensor::DType;
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

const FILE: &str = "conv1d";
/// Output positions per forward block (`CONV_TILE` in the kernel).
const TILE: usize = 128;
/// Shared-memory budget per block for the staged tiles (floats), below the 48 KiB default.
const SMEM_FLOATS: usize = 8 * 1024;

fn stride_cfg(n: usize) -> LaunchConfig {
    let mut c = grid_1d(n, 256);
    c.grid_dim.0 = c.grid_dim.0.min(65535 * 4);
    c
}

fn dims(s: &Conv1dShape) -> Result<[KArg; 8]> {
    let lout = s.lout().unwrap_or(0);
    if s.cout > 65535 || s.cin > 65535 || s.batch > 65535 {
        bail!("conv1d: batch, channels must each be ≤ 65535 on CUDA, found {s:?}");
    }
    Ok([
        KArg::I32(s.cin as i32),
        KArg::I32(s.cout as i32),
        KArg::I32(s.lin as i32),
        KArg::I32(lout as i32),
        KArg::I32(s.k as i32),
        KArg::I32(s.stride as i32),
        KArg::I32(s.padding as i32),
        KArg::I32(s.groups as i32),
    ])
}

/// Channels staged per pass when one channel needs `per` floats of shared memory.
fn channels_per_pass(per: usize, total: usize) -> Result<usize> {
    if per > SMEM_FLOATS {
        bail!("conv1d: a kernel of this size needs {per} floats of shared memory per channel, more than the {SMEM_FLOATS} this kernel stages");
    }
    Ok((SMEM_FLOATS / per).clamp(1, 16).min(total.max(1)))
}

pub fn forward(
    b: &CudaBackend,
    y: &CudaBuf,
    x: &CudaBuf,
    w: &CudaBuf,
    bias: Option<&CudaBuf>,
    s: &Conv1dShape,
) -> Result<()> {
    let lout = s.lout().unwrap_or(0);
    let win = (TILE - 1) * s.stride + s.k;
    let cc = channels_per_pass(win + s.k, s.cin_per_group())?;
    let cfg = LaunchConfig {
        grid_dim: (lout.div_ceil(TILE) as u32, s.cout as u32, s.batch as u32),
        block_dim: (TILE as u32, 1, 1),
        shared_mem_bytes: (cc * (win + s.k) * 4) as u32,
    };
    let mut args = vec![
        KArg::Ptr(y.ptr(b)),
        KArg::Ptr(x.ptr(b)),
        KArg::Ptr(w.ptr(b)),
        KArg::Ptr(bias.map_or(0, |t| t.ptr(b))),
    ];
    args.extend(dims(s)?);
    args.push(KArg::I32(cc as i32));
    b.launch(FILE, crate::kname!("conv1d_forward", x.dtype()), cfg, &args)
}

/// Splits of the weight gradient's reduction over batch × time: enough blocks to fill a large
/// GPU (about 2048), each split at least `WG_MIN_STEPS` steps, the fp32 partials at most
/// `WG_MAX_PARTIAL` floats.
const WG_TILE: usize = 32;
const WG_MIN_STEPS: usize = 256;
const WG_MAX_PARTIAL: usize = 1 << 26;

/// (splits, steps per split) for `tiles` output tiles reducing over `r` steps into `weights`.
pub fn weight_grad_splits(tiles: usize, r: usize, weights: usize, groups: usize) -> (usize, usize) {
    let by_blocks = 2048usize.div_ceil(tiles.max(1));
    let by_steps = r.div_ceil(WG_MIN_STEPS).max(1);
    let by_memory = (WG_MAX_PARTIAL / weights.max(1)).max(1);
    let by_grid = (65535 / groups.max(1)).max(1);
    let s = by_blocks.min(by_steps).min(by_memory).min(by_grid).max(1);
    let per = r.div_ceil(s).div_ceil(WG_TILE) * WG_TILE;
    (r.div_ceil(per.max(1)).max(1), per.max(WG_TILE))
}

/// dw += the weight gradient (kernels/conv1d.cu: tiled partial products over splits of the
/// batch × time reduction, then an in-order sum of the splits).
fn weight_gradient(
    b: &CudaBackend,
    dw: &CudaBuf,
    dy: &CudaBuf,
    x: &CudaBuf,
    s: &Conv1dShape,
) -> Result<()> {
    let dt = dy.dtype();
    let lout = s.lout().unwrap_or(0);
    let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
    let n = cig * s.k;
    let r = s.batch * lout;
    let tiles = n.div_ceil(WG_TILE) * cog.div_ceil(WG_TILE) * s.groups;
    let (splits, per) = weight_grad_splits(tiles, r, s.cout * n, s.groups);
    if cog.div_ceil(WG_TILE) > 65535 {
        bail!("conv1d: {cog} output channels per group are too many for the weight-gradient grid");
    }
    let part = CudaBuf::F32(b.stream.alloc_zeros::<f32>(splits * s.cout * n)?);
    let mut args = vec![
        KArg::Ptr(part.ptr(b)),
        KArg::Ptr(dy.ptr(b)),
        KArg::Ptr(x.ptr(b)),
        KArg::I32(s.batch as i32),
    ];
    args.extend(dims(s)?);
    args.push(KArg::I32(splits as i32));
    args.push(KArg::I64(per as i64));
    let cfg = LaunchConfig {
        grid_dim: (
            n.div_ceil(WG_TILE) as u32,
            cog.div_ceil(WG_TILE) as u32,
            (s.groups * splits) as u32,
        ),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    b.launch(
        FILE,
        crate::kname!("conv1d_backward_weight_partial", dt),
        cfg,
        &args,
    )?;
    let total = s.cout * n;
    b.launch(
        FILE,
        crate::kname!("conv1d_backward_weight_reduce", dt),
        stride_cfg(total),
        &[
            KArg::Ptr(dw.ptr(b)),
            KArg::Ptr(part.ptr(b)),
            KArg::I64(total as i64),
            KArg::I32(splits as i32),
        ],
    )
}

/// dx (written), then dw and db (accumulated); `dx` None skips the input gradient.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    b: &CudaBackend,
    dx: Option<&CudaBuf>,
    dw: &CudaBuf,
    db: Option<&CudaBuf>,
    dy: &CudaBuf,
    x: &CudaBuf,
    w: &CudaBuf,
    s: &Conv1dShape,
) -> Result<()> {
    let dt = dy.dtype();
    let lout = s.lout().unwrap_or(0);
    if let Some(dx) = dx {
        let cc = channels_per_pass(s.k, s.cout_per_group())?;
        let cfg = LaunchConfig {
            grid_dim: (s.lin.div_ceil(TILE) as u32, s.cin as u32, s.batch as u32),
            block_dim: (TILE as u32, 1, 1),
            shared_mem_bytes: (cc * s.k * 4) as u32,
        };
        let mut args = vec![
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(dy.ptr(b)),
            KArg::Ptr(w.ptr(b)),
        ];
        args.extend(dims(s)?);
        args.push(KArg::I32(cc as i32));
        b.launch(FILE, crate::kname!("conv1d_backward_input", dt), cfg, &args)?;
    }
    let rows_cfg = |rows: usize| LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    weight_gradient(b, dw, dy, x, s)?;
    if let Some(db) = db {
        b.launch(
            FILE,
            crate::kname!("conv1d_backward_bias", dt),
            rows_cfg(s.cout),
            &[
                KArg::Ptr(db.ptr(b)),
                KArg::Ptr(dy.ptr(b)),
                KArg::I32(s.batch as i32),
                KArg::I32(s.cout as i32),
                KArg::I32(lout as i32),
            ],
        )?;
    }
    Ok(())
}

fn per_k_cfg(kdim: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (kdim as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// w = g · v / ‖v‖ per index of the kept axis; writes `norm` (f32, [kdim]).
pub fn weight_norm(
    b: &CudaBackend,
    w: &CudaBuf,
    norm: &CudaBuf,
    g: &CudaBuf,
    v: &CudaBuf,
    outer: usize,
    inner: usize,
) -> Result<()> {
    let kdim = g.len();
    let dt = v.dtype();
    b.launch(
        FILE,
        crate::kname!("weight_norm_norms", dt),
        per_k_cfg(kdim),
        &[
            KArg::Ptr(norm.ptr(b)),
            KArg::Ptr(v.ptr(b)),
            KArg::I32(outer as i32),
            KArg::I32(kdim as i32),
            KArg::I32(inner as i32),
        ],
    )?;
    b.launch(
        FILE,
        crate::kname!("weight_norm_forward", dt),
        stride_cfg(v.len()),
        &[
            KArg::Ptr(w.ptr(b)),
            KArg::Ptr(g.ptr(b)),
            KArg::Ptr(v.ptr(b)),
            KArg::Ptr(norm.ptr(b)),
            KArg::I64(v.len() as i64),
            KArg::I32(kdim as i32),
            KArg::I32(inner as i32),
        ],
    )
}

/// dg and dv accumulated; `scratch` is an f32 buffer of kdim elements.
#[allow(clippy::too_many_arguments)]
pub fn weight_norm_backward(
    b: &CudaBackend,
    dg: &CudaBuf,
    dv: &CudaBuf,
    scratch: &CudaBuf,
    dw: &CudaBuf,
    g: &CudaBuf,
    v: &CudaBuf,
    norm: &CudaBuf,
    outer: usize,
    inner: usize,
) -> Result<()> {
    let kdim = g.len();
    let dt = v.dtype();
    if scratch.dtype() != DType::F32 || scratch.len() != kdim {
        bail!("weight_norm_backward: scratch must be f32 [{kdim}]");
    }
    b.launch(
        FILE,
        crate::kname!("weight_norm_backward_g", dt),
        per_k_cfg(kdim),
        &[
            KArg::Ptr(dg.ptr(b)),
            KArg::Ptr(scratch.ptr(b)),
            KArg::Ptr(dw.ptr(b)),
            KArg::Ptr(v.ptr(b)),
            KArg::Ptr(norm.ptr(b)),
            KArg::I32(outer as i32),
            KArg::I32(kdim as i32),
            KArg::I32(inner as i32),
        ],
    )?;
    b.launch(
        FILE,
        crate::kname!("weight_norm_backward_v", dt),
        stride_cfg(v.len()),
        &[
            KArg::Ptr(dv.ptr(b)),
            KArg::Ptr(dw.ptr(b)),
            KArg::Ptr(g.ptr(b)),
            KArg::Ptr(v.ptr(b)),
            KArg::Ptr(norm.ptr(b)),
            KArg::Ptr(scratch.ptr(b)),
            KArg::I64(v.len() as i64),
            KArg::I32(kdim as i32),
            KArg::I32(inner as i32),
        ],
    )
}

/// out [B, N, M] = x [B, M, N] transposed.
pub fn transpose_last2(
    b: &CudaBackend,
    out: &CudaBuf,
    x: &CudaBuf,
    batch: usize,
    m: usize,
    n: usize,
) -> Result<()> {
    let cfg = LaunchConfig {
        grid_dim: (n.div_ceil(32) as u32, m.div_ceil(32) as u32, batch as u32),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    };
    b.launch(
        FILE,
        crate::kname!("transpose_last2", x.dtype()),
        cfg,
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I32(m as i32),
            KArg::I32(n as i32),
        ],
    )
}

/// Forward (`backward` false): out = x[:, start..start+len, :]; backward: out = dx with the
/// slice filled from `x` (= dy) and zeros elsewhere. dims = (outer, len_in, inner, start, len).
pub fn slice_axis(
    b: &CudaBackend,
    out: &CudaBuf,
    x: &CudaBuf,
    dims: [usize; 5],
    backward: bool,
) -> Result<()> {
    let [outer, len_in, inner, start, len] = dims;
    let args = [
        KArg::Ptr(out.ptr(b)),
        KArg::Ptr(x.ptr(b)),
        KArg::I64(outer as i64),
        KArg::I32(len_in as i32),
        KArg::I32(inner as i32),
        KArg::I32(start as i32),
        KArg::I32(len as i32),
    ];
    let k = if backward {
        crate::kname!("slice_axis_backward", x.dtype())
    } else {
        crate::kname!("slice_axis", x.dtype())
    };
    b.launch(FILE, k, stride_cfg(out.len()), &args)
}
