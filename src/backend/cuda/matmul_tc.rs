//! kernels/matmul_tc.cu: matmul variant 2, bf16 tensor cores (see [`crate::backend::variants`]).
//! [`plan`] decides whether a product can take it and with which launch; the emulator test
//! (tests/tc_kernel_emu.rs) runs the kernel with the same plan.

use super::launch::kernels;
use super::matmul::launch_by_layout;
use super::CudaBackend;
use crate::backend::api::matmul::{MatmulInput, MatmulShape};
use crate::tensor::{DType, Tensor};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "matmul_tc";
    /// 128×128×32 tiles, 256 threads, 48 KiB dynamic shared memory; grid (n tiles, m tiles,
    /// batch). `T` is C's (and the bias's) type; A and B are bf16.
    MatmulTcNn = matmul_tc_nn<T>(c: out T, a: inp bf16, b: inp bf16, bias: opt_inp T, m: val i32,
        n: val i32, k: val i32, a_stride: val i64, b_stride: val i64, accumulate: val i32,
        gelu: val i32);
    MatmulTcNt = matmul_tc_nt<T>(c: out T, a: inp bf16, b: inp bf16, bias: opt_inp T, m: val i32,
        n: val i32, k: val i32, a_stride: val i64, b_stride: val i64, accumulate: val i32,
        gelu: val i32);
    MatmulTcTn = matmul_tc_tn<T>(c: out T, a: inp bf16, b: inp bf16, bias: opt_inp T, m: val i32,
        n: val i32, k: val i32, a_stride: val i64, b_stride: val i64, accumulate: val i32,
        gelu: val i32);
    MatmulTcTt = matmul_tc_tt<T>(c: out T, a: inp bf16, b: inp bf16, bias: opt_inp T, m: val i32,
        n: val i32, k: val i32, a_stride: val i64, b_stride: val i64, accumulate: val i32,
        gelu: val i32);
}

/// Threads per block (the kernel's `__launch_bounds__`, TC_THREADS).
pub const THREADS: u32 = 256;
/// Dynamic shared memory per block: 3 stages of a 128×32 A tile and a 32×128 B tile, bf16.
pub const SMEM_BYTES: u32 = 3 * 2 * 128 * 32 * 2;

/// The launch of variant 2 for a product of shape `s` whose A and B views start at element
/// offsets `a_offset` and `b_offset` of 256-byte aligned buffers, or None when the kernel cannot
/// take it: each operand's contiguous dimension (K for A, M when A is transposed; N for B, K
/// when B is transposed) and batch stride must be multiples of 8 elements and its start 16-byte
/// aligned, for the 16-byte cp.async copies.
pub fn plan(s: &MatmulShape, a_offset: usize, b_offset: usize) -> Option<LaunchConfig> {
    let a_row = if s.ta { s.m } else { s.k };
    let b_row = if s.tb { s.k } else { s.n };
    let ok = a_row.is_multiple_of(8)
        && b_row.is_multiple_of(8)
        && a_offset.is_multiple_of(8)
        && b_offset.is_multiple_of(8)
        && (s.batch <= 1 || (s.a_stride.is_multiple_of(8) && s.b_stride.is_multiple_of(8)))
        && s.m > 0
        && s.n > 0
        && s.k > 0
        && s.m <= i32::MAX as usize
        && s.n <= i32::MAX as usize
        && s.k <= i32::MAX as usize
        && s.batch <= 65535
        && s.m.div_ceil(128) <= 65535;
    ok.then(|| LaunchConfig {
        grid_dim: super::matmul::tile_grid(s),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: SMEM_BYTES,
    })
}

/// Runs `c = op(a) op(b) (+ bias) (+ c)` with variant 2 when `a` and `b` are bf16 and [`plan`]
/// accepts the shape; returns false (nothing launched) otherwise.
pub fn try_matmul(
    be: &CudaBackend,
    c: &mut Tensor,
    x: MatmulInput,
    s: &MatmulShape,
) -> Result<bool> {
    if x.a.dtype != DType::BF16 || x.b.dtype != DType::BF16 {
        return Ok(false);
    }
    let Some(cfg) = plan(s, x.a.offset(), x.b.offset()) else {
        return Ok(false);
    };
    launch_by_layout!(be, cfg, s, c, x, [MatmulTcNn, MatmulTcNt, MatmulTcTn, MatmulTcTt], gelu: 0)?;
    Ok(true)
}
