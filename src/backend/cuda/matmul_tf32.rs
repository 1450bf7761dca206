//! kernels/matmul_tf32.cu: matmul variant 3's f32 products on TF32 tensor cores (bf16 products
//! take variant 2's kernels; see [`crate::backend::variants`]). [`plan`] decides whether a
//! product can take it and with which launch; the emulator test (tests/tc_kernel_emu.rs) runs
//! the kernel with the same plan.

use super::matmul::{launch_by_layout, per_layout};
use super::matmul_tc::{split_k, SplitKViews};
use super::CudaBackend;
use crate::backend::api::matmul::{MatmulInput, MatmulShape};
use crate::backend::api::Backend;
use crate::tensor::{DType, Tensor};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

per_layout! { file "matmul_tf32";
    /// 128×128×16 tiles, 256 threads, 48 KiB dynamic shared memory; grid (n tiles, m tiles,
    /// batch). A, B, C and the bias are f32; the products are rounded to tf32.
    args (c: out f32, a: inp f32, b: inp f32, bias: opt_inp f32, m: val i32, n: val i32, k: val i32,
        a_stride: val i64, b_stride: val i64, accumulate: val i32) =>
    MatmulTf32Nn = matmul_tf32_nn, MatmulTf32Nt = matmul_tf32_nt, MatmulTf32Tn = matmul_tf32_tn,
    MatmulTf32Tt = matmul_tf32_tt
}

/// Threads per block (the kernel's `__launch_bounds__`, TF_THREADS).
pub const THREADS: u32 = 256;
/// Dynamic shared memory per block: 3 stages of a 128×16 A tile and a 16×128 B tile, f32.
pub const SMEM_BYTES: u32 = 3 * 2 * 128 * 16 * 4;

/// The launch of the TF32 kernels for a product of shape `s` whose A and B views start at
/// element offsets `a_offset` and `b_offset` of 256-byte aligned buffers, or None when the
/// kernel cannot take it: each operand's contiguous dimension (K for A, M when A is
/// transposed; N for B, K when B is transposed) and batch stride must be multiples of 4
/// elements and its start 16-byte aligned, for the 16-byte cp.async copies.
pub fn plan(s: &MatmulShape, a_offset: usize, b_offset: usize) -> Option<LaunchConfig> {
    super::matmul_tc::tile_plan(s, a_offset, b_offset, 4, SMEM_BYTES)
}

/// Launches the TF32 kernel for `s` with the launch [`plan`] gave (variant 2's split-K for
/// the weight gradients, [`split_k`]); the caller checked that `a`, `b` and `c` are f32.
pub(crate) fn launch(
    be: &CudaBackend,
    cfg: LaunchConfig,
    c: &mut Tensor,
    x: MatmulInput,
    s: &MatmulShape,
) -> Result<()> {
    if let Some(sk) = split_k(s, x.bias.is_some()) {
        let ws = be.alloc(&[sk.splits * s.m * s.n], DType::F32)?;
        let views = SplitKViews::new(s, sk, x.a, x.b, &ws)?.tf32();
        for p in views.plans(s, c, x.a, x.b, &ws, x.accumulate)? {
            p.launch(be)?;
        }
        return Ok(());
    }
    launch_by_layout!(
        be,
        cfg,
        s,
        c,
        x,
        [MatmulTf32Nn, MatmulTf32Nt, MatmulTf32Tn, MatmulTf32Tt]
    )
}
