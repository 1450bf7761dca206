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

impl BatchNormOps for CudaBackend {
    fn batch_norm_train(&self, out: BatchNormTrainOut, a: NormInput, momentum: f32) -> Result<()> {
        let x = a.x;
        let (n, hw) = n_hw(x);
        let c = a.w.numel();
        BatchNormStats {
            mean: out.mean,
            rstd: out.rstd,
            run_mean: out.running_mean,
            run_var: out.running_var,
            x,
            n: n as i32,
            c: c as i32,
            hw: hw as i64,
            eps: a.eps,
            momentum,
        }
        .launch(self, channel_cfg(c))?;
        BatchNormApply {
            y: out.y,
            x,
            w: a.w,
            b: a.b,
            mean: out.mean,
            rstd: out.rstd,
            c: c as i32,
            hw: hw as i64,
            n: x.numel() as i64,
        }
        .launch(self, grid_stride(x.numel()))
    }
    fn batch_norm_eval(
        &self,
        y: &mut Tensor,
        a: NormInput,
        running: BatchNormRunning,
    ) -> Result<()> {
        let (_, hw) = n_hw(a.x);
        let c = a.w.numel();
        BatchNormEval {
            y,
            x: a.x,
            w: a.w,
            b: a.b,
            run_mean: running.mean,
            run_var: running.var,
            c: c as i32,
            hw: hw as i64,
            n: a.x.numel() as i64,
            eps: a.eps,
        }
        .launch(self, grid_stride(a.x.numel()))
    }
    fn batch_norm_backward(&self, a: NormBackward) -> Result<()> {
        let (n, hw) = n_hw(a.x);
        let c = a.w.numel();
        BatchNormBackwardKernel {
            dx: a.dx,
            dw: a.dw,
            db: a.db,
            dy: a.dy,
            x: a.x,
            w: a.w,
            mean: a.mean,
            rstd: a.rstd,
            n: n as i32,
            c: c as i32,
            hw: hw as i64,
        }
        .launch(self, channel_cfg(c))
    }
}
