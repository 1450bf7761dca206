//! Launch wrappers for kernels/matmul.cu.

use super::launch::KArg;
use super::{CudaBackend, CudaBuf};
use crate::backend::cpu::matmul::MatmulShape;
use crate::tensor::DType;
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

const FILE: &str = "matmul";

fn kernel(ta: bool, tb: bool, dtype: DType) -> Result<&'static str> {
    Ok(match (ta, tb, dtype) {
        (false, false, DType::F32) => "matmul_nn_f32",
        (false, true, DType::F32) => "matmul_nt_f32",
        (true, false, DType::F32) => "matmul_tn_f32",
        (true, true, DType::F32) => "matmul_tt_f32",
        (false, false, DType::BF16) => "matmul_nn_bf16",
        (false, true, DType::BF16) => "matmul_nt_bf16",
        (true, false, DType::BF16) => "matmul_tn_bf16",
        (true, true, DType::BF16) => "matmul_tt_bf16",
        (_, _, d) => bail!("matmul has no {d} kernel"),
    })
}

pub fn matmul(
    b: &CudaBackend,
    c: &CudaBuf,
    a: &CudaBuf,
    bm: &CudaBuf,
    bias: Option<&CudaBuf>,
    s: &MatmulShape,
    accumulate: bool,
) -> Result<()> {
    if s.m > i32::MAX as usize || s.n > i32::MAX as usize || s.k > i32::MAX as usize {
        bail!("matmul: dimensions {s:?} exceed the kernel's 32-bit index range");
    }
    let k = kernel(s.ta, s.tb, c.dtype())?;
    let cfg = LaunchConfig {
        grid_dim: (
            s.n.div_ceil(128) as u32,
            s.m.div_ceil(128) as u32,
            s.batch as u32,
        ),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    b.launch(
        FILE,
        k,
        cfg,
        &[
            KArg::Ptr(c.ptr(b)),
            KArg::Ptr(a.ptr(b)),
            KArg::Ptr(bm.ptr(b)),
            KArg::Ptr(bias.map_or(0, |x| x.ptr(b))),
            KArg::I32(s.m as i32),
            KArg::I32(s.n as i32),
            KArg::I32(s.k as i32),
            KArg::I64(s.a_stride as i64),
            KArg::I64(s.b_stride as i64),
            KArg::I32(accumulate as i32),
        ],
    )
}

pub fn sum_rows(b: &CudaBackend, out: &CudaBuf, x: &CudaBuf, accumulate: bool) -> Result<()> {
    let cols = out.len();
    let rows = x.len() / cols.max(1);
    let k = crate::kname!("sum_rows", out.dtype());
    b.launch(
        FILE,
        k,
        super::grid_1d(cols, 128),
        &[
            KArg::Ptr(out.ptr(b)),
            KArg::Ptr(x.ptr(b)),
            KArg::I32(rows as i32),
            KArg::I32(cols as i32),
            KArg::I32(accumulate as i32),
        ],
    )
}
