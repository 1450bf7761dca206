//! Launch wrappers for kernels/elementwise.cu.

use super::launch::KArg;
use super::{grid_1d, CudaBackend, CudaBuf};
use crate::kname;
use crate::tensor::DType;
use anyhow::{bail, Result};

const FILE: &str = "elementwise";
const BLOCK: u32 = 256;

fn cfg(n: usize) -> cudarc::driver::LaunchConfig {
    // Grid-stride kernels: cap the grid, the loop covers the rest.
    let mut c = grid_1d(n, BLOCK);
    c.grid_dim.0 = c.grid_dim.0.min(65535 * 4);
    c
}

pub fn add(b: &CudaBackend, out: &CudaBuf, x: &CudaBuf, y: &CudaBuf) -> Result<()> {
    let n = out.len();
    let k = kname!("add", out.dtype());
    b.launch(
        FILE,
        k,
        cfg(n),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(y.ptr(b)),
            KArg::I64(n as i64),
        ],
    )
}

pub fn bias_add(b: &CudaBackend, out: &CudaBuf, x: &CudaBuf, bias: &CudaBuf) -> Result<()> {
    let n = out.len();
    let k = kname!("bias_add", out.dtype());
    b.launch(
        FILE,
        k,
        cfg(n),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(bias.ptr(b)),
            KArg::I64(n as i64),
            KArg::I64(bias.len() as i64),
        ],
    )
}

pub fn gelu(b: &CudaBackend, out: &CudaBuf, x: &CudaBuf) -> Result<()> {
    let n = out.len();
    let k = kname!("gelu_forward", out.dtype());
    b.launch(
        FILE,
        k,
        cfg(n),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I64(n as i64),
        ],
    )
}

pub fn gelu_backward(b: &CudaBackend, dx: &CudaBuf, x: &CudaBuf, dy: &CudaBuf) -> Result<()> {
    let n = dx.len();
    let k = kname!("gelu_backward", dx.dtype());
    b.launch(
        FILE,
        k,
        cfg(n),
        &[
            KArg::Ptr(dx.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::Ptr(dy.ptr(b)),
            KArg::I64(n as i64),
        ],
    )
}

pub fn scale(b: &CudaBackend, x: &CudaBuf, s: f32) -> Result<()> {
    let n = x.len();
    let k = kname!("scale", x.dtype());
    b.launch(
        FILE,
        k,
        cfg(n),
        &[KArg::Ptr(x.ptr(b)), KArg::F32(s), KArg::I64(n as i64)],
    )
}

pub fn cast(b: &CudaBackend, out: &CudaBuf, x: &CudaBuf) -> Result<()> {
    let n = out.len();
    let k = match (x.dtype(), out.dtype()) {
        (DType::F32, DType::BF16) => "cast_f32_to_bf16",
        (DType::BF16, DType::F32) => "cast_bf16_to_f32",
        (a, o) => bail!("no cast kernel from {a} to {o}"),
    };
    b.launch(
        FILE,
        k,
        cfg(n),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I64(n as i64),
        ],
    )
}
