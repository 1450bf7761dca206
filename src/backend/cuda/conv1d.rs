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
    let mut args = vec![
        KArg::Ptr(dw.ptr(b)),
        KArg::Ptr(dy.ptr(b)),
        KArg::Ptr(x.ptr(b)),
        KArg::I32(s.batch as i32),
    ];
    args.extend(dims(s)?);
    b.launch(
        FILE,
        crate::kname!("conv1d_backward_weight", dt),
        rows_cfg(s.cout * s.cin_per_group()),
        &args,
    )?;
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
