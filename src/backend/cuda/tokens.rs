//! Launch wrappers for kernels/tokens.cu.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

const FILE: &str = "tokens";

fn rows_cfg(rows: usize, c: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (if c >= 256 { 256 } else { 64 }, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `to_patches`: img → patches; else patches → img. dims = (B, C, H, W, P).
pub fn patch_map(
    b: &CudaBackend,
    patches: &CudaBuf,
    img: &CudaBuf,
    dims: [usize; 5],
    to_patches: bool,
) -> Result<()> {
    let n = patches.len();
    let mut cfg = grid_1d(n, 256);
    cfg.grid_dim.0 = cfg.grid_dim.0.min(65535 * 4);
    let dims = dims.map(|d| KArg::I32(d as i32));
    let (k, first, second) = if to_patches {
        (crate::kname!("patchify", img.dtype()), patches, img)
    } else {
        (crate::kname!("unpatchify", img.dtype()), img, patches)
    };
    let mut args = vec![KArg::Ptr(first.ptr(b)), KArg::Ptr(second.ptr(b))];
    args.extend(dims);
    b.launch(FILE, k, cfg, &args)
}

#[allow(clippy::too_many_arguments)]
pub fn gather_rows(
    b: &CudaBackend,
    out: &CudaBuf,
    src: &CudaBuf,
    idx: &CudaBuf,
    fill: Option<&CudaBuf>,
    ns: usize,
    nd: usize,
    c: usize,
) -> Result<()> {
    let rows = idx.len();
    b.launch(
        FILE,
        crate::kname!("gather_rows", out.dtype()),
        rows_cfg(rows, c),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(src.ptr(b)),
            KArg::Ptr(idx.ptr(b)),
            KArg::Ptr(fill.map_or(0, |f| f.ptr(b))),
            KArg::I32(ns as i32),
            KArg::I32(nd as i32),
            KArg::I32(c as i32),
        ],
    )
}

#[allow(clippy::too_many_arguments)]
pub fn gather_rows_backward(
    b: &CudaBackend,
    dsrc: &CudaBuf,
    dfill: Option<&CudaBuf>,
    dout: &CudaBuf,
    idx: &CudaBuf,
    ns: usize,
    nd: usize,
    c: usize,
) -> Result<()> {
    let batch = idx.len() / nd.max(1);
    let dt = dout.dtype();
    b.launch(
        FILE,
        crate::kname!("gather_rows_backward", dt),
        rows_cfg(batch * ns, c),
        &[
            KArg::Ptr(dsrc.ptr(b)),
            KArg::Ptr(dout.ptr(b)),
            KArg::Ptr(idx.ptr(b)),
            KArg::I32(ns as i32),
            KArg::I32(nd as i32),
            KArg::I32(c as i32),
        ],
    )?;
    if let Some(df) = dfill {
        b.launch(
            FILE,
            crate::kname!("gather_fill_backward", dt),
            grid_1d(c, 128),
            &[
                KArg::Ptr(df.ptr(b)),
                KArg::Ptr(dout.ptr(b)),
                KArg::Ptr(idx.ptr(b)),
                KArg::I64(idx.len() as i64),
                KArg::I32(c as i32),
            ],
        )?;
    }
    Ok(())
}
