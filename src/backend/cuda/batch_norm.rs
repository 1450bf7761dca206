//! kernels/batch_norm.cu: declarations and the CUDA implementation of [`BatchNormOps`].

use super::launch::kernels;
use super::{block_per, grid_stride, CudaBackend};
use crate::backend::api::batch_norm::{BatchNormOps, BatchNormRunning, BatchNormTrainOut};
use crate::backend::api::layer_norm::{NormBackward, NormInput};
use crate::tensor::Tensor;
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "batch_norm";
    /// One block per channel: batch mean and rstd, running statistics updated.
    BatchNormStats = batch_norm_stats<T>(mean: out f32, rstd: out f32, run_mean: out f32,
        run_var: out f32, x: inp T, n: val i32, c: val i32, hw: val i64, eps: val f32,
        momentum: val f32);
    /// Grid-stride over the elements.
    BatchNormApply = batch_norm_apply<T>(y: out T, x: inp T, w: inp T, b: inp T,
        mean: inp f32, rstd: inp f32, c: val i32, hw: val i64, n: val i64);
    /// Grid-stride over the elements.
    BatchNormEval = batch_norm_eval<T>(y: out T, x: inp T, w: inp T, b: inp T,
        run_mean: inp f32, run_var: inp f32, c: val i32, hw: val i64, n: val i64, eps: val f32);
    /// One block per channel: dx written, dw and db accumulated.
    BatchNormBackwardKernel = batch_norm_backward<T>(dx: out T, dw: out T, db: out T, dy: inp T,
        x: inp T, w: inp T, mean: inp f32, rstd: inp f32, n: val i32, c: val i32, hw: val i64);
}

fn channel_cfg(c: usize) -> LaunchConfig {
    block_per(c, 256, 0)
}

/// (n, h·w) of an NCHW tensor.
fn n_hw(x: &Tensor) -> (usize, usize) {
    (x.shape[0], x.shape[2] * x.shape[3])
}

/// The launch struct `$K` with the sizes of the NCHW input `$x` of `$c` channels and the
/// others given by name: `c` (i32), `hw` (i64) and `n`, the batch (i32) for the `per_channel`
/// kernels (one block per channel), the element count (i64) for the `per_element` ones
/// (grid-stride).
macro_rules! with_nchw {
    (per_channel $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $x:expr, $c:expr) => {{
        let (n, hw) = n_hw($x);
        $K { $($f $(: $v)?,)* n: n as i32, c: $c as i32, hw: hw as i64 }
    }};
    (per_element $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $x:expr, $c:expr) => {{
        let (_, hw) = n_hw($x);
        $K { $($f $(: $v)?,)* n: $x.numel() as i64, c: $c as i32, hw: hw as i64 }
    }};
}

impl BatchNormOps for CudaBackend {
    fn batch_norm_train(&self, out: BatchNormTrainOut, a: NormInput, momentum: f32) -> Result<()> {
        let (x, c, eps) = (a.x, a.w.numel(), a.eps);
        let (mean, rstd) = (out.mean, out.rstd);
        let (run_mean, run_var) = (out.running_mean, out.running_var);
        with_nchw!(
            per_channel BatchNormStats { mean, rstd, run_mean, run_var, x, eps, momentum },
            x,
            c
        )
        .launch(self, channel_cfg(c))?;
        with_nchw!(per_element BatchNormApply { y: out.y, x, w: a.w, b: a.b, mean, rstd }, x, c)
            .launch(self, grid_stride(x.numel()))
    }
    fn batch_norm_eval(
        &self,
        y: &mut Tensor,
        a: NormInput,
        running: BatchNormRunning,
    ) -> Result<()> {
        let (x, c, eps) = (a.x, a.w.numel(), a.eps);
        let (run_mean, run_var) = (running.mean, running.var);
        with_nchw!(
            per_element BatchNormEval { y, x, w: a.w, b: a.b, run_mean, run_var, eps },
            x,
            c
        )
        .launch(self, grid_stride(x.numel()))
    }
    fn batch_norm_backward(&self, a: NormBackward) -> Result<()> {
        anyhow::ensure!(
            a.dres.is_none(),
            "batch_norm_backward: no residual gradient"
        );
        let c = a.w.numel();
        let (dx, dw, db) = (a.dx, a.dw, a.db);
        let (dy, x, w, mean, rstd) = (a.dy, a.x, a.w, a.mean, a.rstd);
        with_nchw!(
            per_channel BatchNormBackwardKernel { dx, dw, db, dy, x, w, mean, rstd },
            x,
            c
        )
        .launch(self, channel_cfg(c))
    }
}
