//! kernels/matmul_tc.cu: matmul variant 2, bf16 tensor cores (see [`crate::backend::variants`]).
//! [`plan`] decides whether a product can take it and with which launch; the emulator test
//! (tests/tc_kernel_emu.rs) runs the kernel with the same plan.

use super::launch::Planned;
use super::matmul::{launch_by_layout, per_layout};
use super::reduce::colsum_finish;
use super::CudaBackend;
use crate::backend::api::matmul::{MatmulInput, MatmulShape};
use crate::backend::api::Backend;
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

per_layout! { file "matmul_tc";
    /// 128×128×32 tiles, 256 threads, 48 KiB dynamic shared memory; grid (n tiles, m tiles,
    /// batch). `T` is C's (and the bias's and aux's) type; A and B are bf16. `epi`: an
    /// [`Epilogue`] (with `aux` for the GELU ones).
    args (c: out T, a: inp bf16, b: inp bf16, bias: opt_inp T, aux: opt_out T, m: val i32,
        n: val i32, k: val i32, a_stride: val i64, b_stride: val i64, accumulate: val i32,
        epi: val i32) =>
    MatmulTcNn = matmul_tc_nn<T>, MatmulTcNt = matmul_tc_nt<T>, MatmulTcTn = matmul_tc_tn<T>,
    MatmulTcTt = matmul_tc_tt<T>
}

/// What the kernel's epilogue does after the product (+ bias), `TC_EPI_*` in
/// kernels/matmul_tc.cu.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    /// C = x.
    None = 0,
    /// C = h = x (as stored), aux = gelu(h): fc1 of an MLP.
    Gelu = 1,
    /// C = x (as stored) · gelu'(aux), aux = h: fc2's input gradient through the GELU.
    DGelu = 2,
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
    tile_plan(s, a_offset, b_offset, 8, SMEM_BYTES)
}

/// The launch of a 128×128-tile tensor-core kernel ([`THREADS`] threads, `smem` bytes of
/// dynamic shared memory) whose 16-byte copies need each operand's contiguous dimension,
/// start and batch stride to be multiples of `align` elements, or None when `s` does not
/// meet that or the grid and index limits.
pub(crate) fn tile_plan(
    s: &MatmulShape,
    a_offset: usize,
    b_offset: usize,
    align: usize,
    smem: u32,
) -> Option<LaunchConfig> {
    let a_row = if s.ta { s.m } else { s.k };
    let b_row = if s.tb { s.k } else { s.n };
    let ok = a_row.is_multiple_of(align)
        && b_row.is_multiple_of(align)
        && a_offset.is_multiple_of(align)
        && b_offset.is_multiple_of(align)
        && (s.batch <= 1 || (s.a_stride.is_multiple_of(align) && s.b_stride.is_multiple_of(align)))
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
        shared_mem_bytes: smem,
    })
}

/// Blocks that fill a 132-SM card twice at two blocks per SM: a grid of fewer tiles than one
/// such pair of waves is worth splitting along K.
const SPLIT_TARGET_BLOCKS: usize = 2 * 2 * 132;
/// No split is shallower than this (8 k-tiles of the 3-stage pipeline).
const SPLIT_MIN_K: usize = 256;

/// Deterministic split-K for the weight gradients: `splits` ranges of `k_split` rows of K (the
/// last shorter), each multiplied into its own f32 slice of a workspace, then summed in split
/// order into C by `colsum_final` (kernels/reduce.cu). Taken by transposed-A products
/// (dW = dYᵀ·X, K = batch × tokens) of one batch without bias whose grid of 128×128 tiles is
/// smaller than [`SPLIT_TARGET_BLOCKS`]: sfm-base's dW products have 36–144 tiles for K =
/// 12,608 rows at batch 64, seislm-base's 4–48. A function of the shape only, so results
/// repeat on every card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitK {
    pub splits: usize,
    pub k_split: usize,
}

/// The split of `s` (see [`SplitK`]), or None to run it whole.
pub fn split_k(s: &MatmulShape, has_bias: bool) -> Option<SplitK> {
    if !s.ta || s.tb || s.batch != 1 || has_bias {
        return None;
    }
    let tiles = s.m.div_ceil(128) * s.n.div_ceil(128);
    if tiles >= SPLIT_TARGET_BLOCKS / 2 {
        return None;
    }
    let splits = SPLIT_TARGET_BLOCKS.div_ceil(tiles).min(s.k / SPLIT_MIN_K);
    if splits < 2 {
        return None;
    }
    let k_split = s.k.div_ceil(splits).next_multiple_of(32);
    let splits = s.k.div_ceil(k_split);
    (splits >= 2).then_some(SplitK { splits, k_split })
}

/// The views the last (shorter) split reads and writes, made once so that the planned
/// launches can borrow them.
pub struct SplitKViews {
    pub sk: SplitK,
    /// f32 operands on the TF32 kernels (kernels/matmul_tf32.cu) instead of bf16 ones.
    tf32: bool,
    a_last: Tensor,
    b_last: Tensor,
    ws_last: Tensor,
}

impl SplitKViews {
    /// `ws` holds `splits · m · n` f32.
    pub fn new(s: &MatmulShape, sk: SplitK, a: &Tensor, b: &Tensor, ws: &Tensor) -> Result<Self> {
        let k0 = (sk.splits - 1) * sk.k_split;
        let k_last = s.k - k0;
        Ok(SplitKViews {
            sk,
            tf32: false,
            a_last: a.view(k0 * s.m, &[k_last * s.m])?,
            b_last: b.view(k0 * s.n, &[k_last * s.n])?,
            ws_last: ws.view((sk.splits - 1) * s.m * s.n, &[s.m * s.n])?,
        })
    }

    /// The same splits of f32 operands, multiplied by the TF32 kernels.
    pub fn tf32(self) -> Self {
        SplitKViews { tf32: true, ..self }
    }

    /// The three launches: splits 0..S−1 as a batch of equal depth, the last split, and the
    /// ordered sum into `c` (added to it when `accumulate`).
    pub fn plans<'a>(
        &'a self,
        s: &MatmulShape,
        c: &'a Tensor,
        a: &'a Tensor,
        b: &'a Tensor,
        ws: &'a Tensor,
        accumulate: bool,
    ) -> Result<Vec<Planned<'a>>> {
        let (m, n) = (s.m as i32, s.n as i32);
        let smem = if self.tf32 {
            super::matmul_tf32::SMEM_BYTES
        } else {
            SMEM_BYTES
        };
        let grid = |z: usize| LaunchConfig {
            grid_dim: (s.n.div_ceil(128) as u32, s.m.div_ceil(128) as u32, z as u32),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: smem,
        };
        let ks = self.sk.k_split;
        let (a_stride, b_stride) = ((ks * s.m) as i64, (ks * s.n) as i64);
        let product = |c, a, b, k: usize, z: usize| {
            let k = k as i32;
            if self.tf32 {
                let p = super::matmul_tf32::MatmulTf32Tn {
                    c,
                    a,
                    b,
                    bias: None,
                    m,
                    n,
                    k,
                    a_stride,
                    b_stride,
                    accumulate: 0,
                };
                return p.planned(grid(z));
            }
            MatmulTcTn {
                c,
                a,
                b,
                bias: None,
                m,
                n,
                k,
                a_stride,
                b_stride,
                accumulate: 0,
                aux: None,
                epi: Epilogue::None as i32,
            }
            .planned(grid(z))
        };
        let k_last = s.k - (self.sk.splits - 1) * ks;
        if s.m * s.n > i32::MAX as usize {
            bail!(
                "split-K: {} × {} outputs exceed the 32-bit index range",
                s.m,
                s.n
            );
        }
        Ok(vec![
            product(ws, a, b, ks, self.sk.splits - 1),
            product(&self.ws_last, &self.a_last, &self.b_last, k_last, 1),
            colsum_finish(c, None, ws, self.sk.splits, s.m * s.n, accumulate),
        ])
    }
}

/// Runs `c = op(a) op(b) (+ bias) (+ c)` on tensor cores when `a` and `b` are bf16 and [`plan`]
/// accepts the shape (variant 2), or, with `tf32`, when `a`, `b` and `c` are f32 and
/// `matmul_tf32::plan` accepts it (variant 3); returns false (nothing launched) otherwise.
pub fn try_matmul(
    be: &CudaBackend,
    c: &mut Tensor,
    x: MatmulInput,
    s: &MatmulShape,
    tf32: bool,
) -> Result<bool> {
    let f32 = |t: &Tensor| t.dtype == DType::F32;
    if tf32 && f32(x.a) && f32(x.b) && f32(c) {
        let Some(cfg) = super::matmul_tf32::plan(s, x.a.offset(), x.b.offset()) else {
            return Ok(false);
        };
        super::matmul_tf32::launch(be, cfg, c, x, s)?;
        return Ok(true);
    }
    try_matmul_epi(be, c, x, s, Epilogue::None, None)
}

/// [`try_matmul`] with an epilogue: `aux` is the GELU's output ([`Epilogue::Gelu`]) or the
/// pre-activation it reads ([`Epilogue::DGelu`]), shaped like C. The GELU epilogues take no
/// accumulation and no split-K (false: the caller composes the unfused ops).
pub fn try_matmul_epi(
    be: &CudaBackend,
    c: &mut Tensor,
    x: MatmulInput,
    s: &MatmulShape,
    epi: Epilogue,
    aux: Option<&Tensor>,
) -> Result<bool> {
    if x.a.dtype != DType::BF16 || x.b.dtype != DType::BF16 {
        return Ok(false);
    }
    let Some(cfg) = plan(s, x.a.offset(), x.b.offset()) else {
        return Ok(false);
    };
    if epi != Epilogue::None {
        let fits = aux.is_some_and(|t| t.dtype == c.dtype && t.numel() == c.numel());
        if x.accumulate || !fits {
            return Ok(false);
        }
        let epi = epi as i32;
        launch_by_layout!(be, cfg, s, c, x, [MatmulTcNn, MatmulTcNt, MatmulTcTn, MatmulTcTt], aux: aux, epi: epi)?;
        return Ok(true);
    }
    if let Some(sk) = split_k(s, x.bias.is_some()) {
        let ws = be.alloc(&[sk.splits * s.m * s.n], DType::F32)?;
        let views = SplitKViews::new(s, sk, x.a, x.b, &ws)?;
        for p in views.plans(s, c, x.a, x.b, &ws, x.accumulate)? {
            p.launch(be)?;
        }
        return Ok(true);
    }
    launch_by_layout!(be, cfg, s, c, x, [MatmulTcNn, MatmulTcNt, MatmulTcTn, MatmulTcTt], aux: None, epi: Epilogue::None as i32)?;
    Ok(true)
}
