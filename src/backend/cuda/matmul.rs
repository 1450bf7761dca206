//! kernels/matmul.cu: declarations and the CUDA implementation of [`MatmulOps`] (matmul
//! variant 1; variant 2, bf16 tensor cores, is in `matmul_tc.rs`, and variant 3 adds the TF32
//! kernels of `matmul_tf32.rs`).

use super::matmul_tc::Epilogue;
use super::{grid_1d, CudaBackend};
use crate::backend::api::matmul::{MatmulInput, MatmulOps, MatmulShape};
use crate::backend::api::{Backend, ElementwiseOps};
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

/// Declares a matmul kernel family's four layouts, which take the same arguments, through
/// [`kernels!`]: `args (arguments) => Nn = kernel_nn, Nt = ..., Tn = ..., Tt = ...` (nn, nt, tn, tt
/// in that order); further declarations of the file may follow after a `;`.
macro_rules! per_layout {
    (
        file $file:literal; $(#[$meta:meta])* args $args:tt =>
        $S0:ident = $k0:ident $(<$g0:ident>)?, $($S:ident = $k:ident $(<$g:ident>)?),+
        $(; $($rest:tt)*)?
    ) => {
        $crate::backend::cuda::launch::kernels! { file $file;
            $(#[$meta])* $S0 = $k0 $(<$g0>)? $args;
            $(
                #[doc = "The same kernel for another layout (see the family's first)."]
                $S = $k $(<$g>)? $args;
            )+
            $($($rest)*)?
        }
    };
}
pub(super) use per_layout;

per_layout! { file "matmul";
    /// 128×128 tiles, 256 threads; grid (n tiles, m tiles, batch).
    args (c: out T, a: inp T, b: inp T, bias: opt_inp T, m: val i32, n: val i32, k: val i32,
        a_stride: val i64, b_stride: val i64, accumulate: val i32) =>
    MatmulNn = matmul_nn<T>, MatmulNt = matmul_nt<T>, MatmulTn = matmul_tn<T>,
    MatmulTt = matmul_tt<T>;
    /// One thread per column, rows in order.
    SumRows = sum_rows<T>(out: out T, x: inp T, rows: val i32, cols: val i32, accumulate: val i32);
}

/// Launches the one of four kernels (nn, nt, tn, tt: which operands are transposed) that
/// matches (s.ta, s.tb). The four take the same arguments, in the order of kernels/matmul.cu
/// and matmul_tc.cu: c, a, b, bias, m, n, k, a_stride, b_stride, accumulate, then the ones
/// given by name (the order of fields in a struct literal does not change the argument order).
macro_rules! launch_by_layout {
    (
        $be:expr, $cfg:expr, $s:expr, $c:expr, $x:expr,
        [$nn:ident, $nt:ident, $tn:ident, $tt:ident] $(, $f:ident: $v:expr)* $(,)?
    ) => {{
        let (c, a, b, bias) = ($c, $x.a, $x.b, $x.bias);
        let (m, n, k) = ($s.m as i32, $s.n as i32, $s.k as i32);
        let (a_stride, b_stride) = ($s.a_stride as i64, $s.b_stride as i64);
        let accumulate = $x.accumulate as i32;
        match ($s.ta, $s.tb) {
            (false, false) => $nn { c, a, b, bias, m, n, k, a_stride, b_stride, accumulate $(, $f: $v)* }.launch($be, $cfg),
            (false, true) => $nt { c, a, b, bias, m, n, k, a_stride, b_stride, accumulate $(, $f: $v)* }.launch($be, $cfg),
            (true, false) => $tn { c, a, b, bias, m, n, k, a_stride, b_stride, accumulate $(, $f: $v)* }.launch($be, $cfg),
            (true, true) => $tt { c, a, b, bias, m, n, k, a_stride, b_stride, accumulate $(, $f: $v)* }.launch($be, $cfg),
        }
    }};
}
pub(super) use launch_by_layout;

/// The grid of the 128×128-tile kernels (both variants): (n tiles, m tiles, batch).
pub(crate) fn tile_grid(s: &MatmulShape) -> (u32, u32, u32) {
    (
        s.n.div_ceil(128) as u32,
        s.m.div_ceil(128) as u32,
        s.batch as u32,
    )
}

impl MatmulOps for CudaBackend {
    fn matmul(&self, c: &mut Tensor, x: MatmulInput, s: &MatmulShape) -> Result<()> {
        if s.m > i32::MAX as usize || s.n > i32::MAX as usize || s.k > i32::MAX as usize {
            bail!("matmul: dimensions {s:?} exceed the kernel's 32-bit index range");
        }
        // Variants 2 and 3 (tensor cores: bf16 products; with 3 also f32 products in TF32)
        // where chosen and where they can take the product.
        let v = crate::backend::variants::variant("matmul")?;
        if v >= 2 && super::matmul_tc::try_matmul(self, c, x, s, v == 3)? {
            return Ok(());
        }
        let cfg = LaunchConfig {
            grid_dim: tile_grid(s),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        launch_by_layout!(self, cfg, s, c, x, [MatmulNn, MatmulNt, MatmulTn, MatmulTt])
    }
    fn matmul_gelu(
        &self,
        h: &mut Tensor,
        act: &mut Tensor,
        x: MatmulInput,
        s: &MatmulShape,
    ) -> Result<()> {
        if crate::backend::variants::variant("matmul")? >= 2
            && super::matmul_tc::try_matmul_epi(self, h, x, s, Epilogue::Gelu, Some(act))?
        {
            return Ok(());
        }
        self.matmul(h, x, s)?;
        self.gelu(act, h)
    }
    fn matmul_dgelu(
        &self,
        dh: &mut Tensor,
        x: MatmulInput,
        s: &MatmulShape,
        h: &Tensor,
    ) -> Result<()> {
        if crate::backend::variants::variant("matmul")? >= 2
            && super::matmul_tc::try_matmul_epi(self, dh, x, s, Epilogue::DGelu, Some(h))?
        {
            return Ok(());
        }
        let mut da = self.alloc(&dh.shape, dh.dtype)?;
        self.matmul(&mut da, x, s)?;
        self.gelu_backward(dh, h, &da)
    }
    fn sum_rows(&self, out: &mut Tensor, x: &Tensor, accumulate: bool) -> Result<()> {
        let cols = out.numel();
        let rows = x.numel() / cols.max(1);
        if crate::backend::variants::variant("colsum")? == 2 {
            let plan = super::reduce::colsum_plan(rows, cols)?;
            let partials = self.alloc(&[plan.partials_len(1)], DType::F32)?;
            for p in super::reduce::sum_rows_plans(&plan, out, x, &partials, accumulate) {
                p.launch(self)?;
            }
            return Ok(());
        }
        SumRows {
            out,
            x,
            rows: rows as i32,
            cols: cols as i32,
            accumulate: accumulate as i32,
        }
        .launch(self, grid_1d(cols, 128))
    }
}
