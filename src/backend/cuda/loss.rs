//! Launch wrappers for kernels/loss.cu.

use super::launch::KArg;
use super::softmax::row_cfg;
use super::{grid_1d, CudaBackend, CudaBuf};
use anyhow::Result;

const FILE: &str = "loss";

pub fn nll_forward(
    b: &CudaBackend,
    losses: &CudaBuf,
    valid: &CudaBuf,
    logits: &CudaBuf,
    targets: &CudaBuf,
    classes: usize,
) -> Result<()> {
    let rows = targets.len();
    let k = crate::kname!("nll_forward", logits.dtype());
    b.launch(
        FILE,
        k,
        row_cfg(rows, classes),
        &[
            KArg::Ptr(losses.ptr(b)),
            KArg::Ptr(valid.ptr(b)),
            KArg::Ptr(logits.ptr(b)),
            KArg::Ptr(targets.ptr(b)),
            KArg::I32(classes as i32),
        ],
    )
}

pub fn nll_backward(
    b: &CudaBackend,
    dlogits: &CudaBuf,
    logits: &CudaBuf,
    targets: &CudaBuf,
    classes: usize,
    scale: f32,
) -> Result<()> {
    let rows = targets.len();
    let k = crate::kname!("nll_backward", logits.dtype());
    b.launch(
        FILE,
        k,
        row_cfg(rows, classes),
        &[
            KArg::Ptr(dlogits.ptr(b)),
            KArg::Ptr(logits.ptr(b)),
            KArg::Ptr(targets.ptr(b)),
            KArg::I32(classes as i32),
            KArg::F32(scale),
        ],
    )
}

pub fn soft_ce_forward(
    b: &CudaBackend,
    losses: &CudaBuf,
    logits: &CudaBuf,
    targets: &CudaBuf,
    classes: usize,
) -> Result<()> {
    let rows = logits.len() / classes;
    let k = crate::kname!("soft_ce_forward", logits.dtype());
    b.launch(
        FILE,
        k,
        row_cfg(rows, classes),
        &[
            KArg::Ptr(losses.ptr(b)),
            KArg::Ptr(logits.ptr(b)),
            KArg::Ptr(targets.ptr(b)),
            KArg::I32(classes as i32),
        ],
    )
}

pub fn soft_ce_backward(
    b: &CudaBackend,
    dlogits: &CudaBuf,
    logits: &CudaBuf,
    targets: &CudaBuf,
    classes: usize,
    scale: f32,
) -> Result<()> {
    let rows = logits.len() / classes;
    let k = crate::kname!("soft_ce_backward", logits.dtype());
    b.launch(
        FILE,
        k,
        row_cfg(rows, classes),
        &[
            KArg::Ptr(dlogits.ptr(b)),
            KArg::Ptr(logits.ptr(b)),
            KArg::Ptr(targets.ptr(b)),
            KArg::I32(classes as i32),
            KArg::F32(scale),
        ],
    )
}

pub fn mse_forward(b: &CudaBackend, sq: &CudaBuf, x: &CudaBuf, y: &CudaBuf) -> Result<()> {
    let n = x.len();
    let k = crate::kname!("mse_forward", x.dtype());
    b.launch(
        FILE,
        k,
        grid_1d(n, 256),
        &[
            KArg::Ptr(sq.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(y.ptr(b)),
            KArg::I64(n as i64),
        ],
    )
}

pub fn mse_backward(
    b: &CudaBackend,
    dx: &CudaBuf,
    x: &CudaBuf,
    y: &CudaBuf,
    scale: f32,
) -> Result<()> {
    let n = x.len();
    let k = crate::kname!("mse_backward", x.dtype());
    b.launch(
        FILE,
        k,
        grid_1d(n, 256),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(y.ptr(b)),
            KArg::I64(n as i64),
            KArg::F32(scale),
        ],
    )
}

pub fn masked_row_mse_forward(
    b: &CudaBackend,
    row_loss: &CudaBuf,
    x: &CudaBuf,
    y: &CudaBuf,
    mask: &CudaBuf,
    cols: usize,
) -> Result<()> {
    let rows = mask.len();
    let k = crate::kname!("masked_row_mse_forward", x.dtype());
    b.launch(
        FILE,
        k,
        row_cfg(rows, cols),
        &[
            KArg::Ptr(row_loss.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(y.ptr(b)),
            KArg::Ptr(mask.ptr(b)),
            KArg::I32(cols as i32),
        ],
    )
}

pub fn masked_row_mse_backward(
    b: &CudaBackend,
    dx: &CudaBuf,
    x: &CudaBuf,
    y: &CudaBuf,
    mask: &CudaBuf,
    cols: usize,
    scale: f32,
) -> Result<()> {
    let rows = mask.len();
    let k = crate::kname!("masked_row_mse_backward", x.dtype());
    b.launch(
        FILE,
        k,
        row_cfg(rows, cols),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(y.ptr(b)),
            KArg::Ptr(mask.ptr(b)),
            KArg::I32(cols as i32),
            KArg::F32(scale),
        ],
    )
}
