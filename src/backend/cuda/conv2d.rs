//! Launch wrappers for kernels/conv2d.cu.

use super::launch::KArg;
use super::{CudaBackend, CudaBuf};
use crate::backend::cpu::conv2d::Conv2dShape;
use crate::kname;
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

const FILE: &str = "conv2d";
/// Must match CONV_TILE, CONV_CO and CONV_THREADS in kernels/conv2d.cu.
const TILE: usize = 16;
const CO: usize = 8;
const THREADS: u32 = 256;

fn check(s: &Conv2dShape) -> Result<()> {
    if s.k != 1 && s.k != 3 {
        bail!(
            "conv2d: the CUDA kernels take 1×1 or 3×3 kernels, found {}×{}",
            s.k,
            s.k
        );
    }
    if s.n > 65535 {
        bail!("conv2d: batch {} exceeds the grid limit of 65535", s.n);
    }
    Ok(())
}

fn direct_cfg(s: &Conv2dShape, out_channels: usize) -> LaunchConfig {
    let tiles = s.h.div_ceil(TILE) * s.w.div_ceil(TILE);
    LaunchConfig {
        grid_dim: (tiles as u32, out_channels.div_ceil(CO) as u32, s.n as u32),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn dims(s: &Conv2dShape) -> [KArg; 5] {
    [
        KArg::I32(s.n as i32),
        KArg::I32(s.cin as i32),
        KArg::I32(s.cout as i32),
        KArg::I32(s.h as i32),
        KArg::I32(s.w as i32),
    ]
}

/// y = conv(x, w) + bias.
pub fn forward(
    b: &CudaBackend,
    y: &CudaBuf,
    x: &CudaBuf,
    w: &CudaBuf,
    bias: Option<&CudaBuf>,
    s: &Conv2dShape,
) -> Result<()> {
    check(s)?;
    let k = match s.k {
        1 => kname!("conv2d_forward_k1", x.dtype()),
        _ => kname!("conv2d_forward_k3", x.dtype()),
    };
    let mut args = vec![
        KArg::Ptr(y.ptr(b)),
        KArg::Ptr(x.ptr(b)),
        KArg::Ptr(w.ptr(b)),
        KArg::Ptr(bias.map_or(0, |t| t.ptr(b))),
        KArg::I32(bias.is_some() as i32),
    ];
    args.extend(dims(s));
    b.launch(FILE, k, direct_cfg(s, s.cout), &args)
}

/// dx (written) from dy and w.
pub fn backward_input(
    b: &CudaBackend,
    dx: &CudaBuf,
    dy: &CudaBuf,
    w: &CudaBuf,
    s: &Conv2dShape,
) -> Result<()> {
    check(s)?;
    let k = match s.k {
        1 => kname!("conv2d_backward_input_k1", dy.dtype()),
        _ => kname!("conv2d_backward_input_k3", dy.dtype()),
    };
    let mut args = vec![
        KArg::Ptr(dx.ptr(b)),
        KArg::Ptr(dy.ptr(b)),
        KArg::Ptr(w.ptr(b)),
    ];
    args.extend(dims(s));
    b.launch(FILE, k, direct_cfg(s, s.cin), &args)
}

/// dw += Σ dy ⊗ x and db += Σ dy (accumulated, deterministic).
pub fn backward_params(
    b: &CudaBackend,
    dw: &CudaBuf,
    dbias: Option<&CudaBuf>,
    dy: &CudaBuf,
    x: &CudaBuf,
    s: &Conv2dShape,
) -> Result<()> {
    check(s)?;
    let k = match s.k {
        1 => kname!("conv2d_backward_weight_k1", dy.dtype()),
        _ => kname!("conv2d_backward_weight_k3", dy.dtype()),
    };
    let mut args = vec![
        KArg::Ptr(dw.ptr(b)),
        KArg::Ptr(dy.ptr(b)),
        KArg::Ptr(x.ptr(b)),
    ];
    args.extend(dims(s));
    let cfg = LaunchConfig {
        grid_dim: ((s.cout * s.cin) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    b.launch(FILE, k, cfg, &args)?;
    if let Some(db) = dbias {
        let cfg = LaunchConfig {
            grid_dim: (s.cout as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        b.launch(
            FILE,
            kname!("conv2d_backward_bias", dy.dtype()),
            cfg,
            &[
                KArg::Ptr(db.ptr(b)),
                KArg::Ptr(dy.ptr(b)),
                KArg::I32(s.n as i32),
                KArg::I32(s.cout as i32),
                KArg::I64(s.hw() as i64),
            ],
        )?;
    }
    Ok(())
}
