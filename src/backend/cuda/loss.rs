//! kernels/loss.cu: declarations and the CUDA implementation of [`LossOps`].

use super::launch::{kernels, launch_n, launch_rows};
use super::softmax::{last_axis, row_cfg, rows_cols};
use super::{grid_1d, CudaBackend};
use crate::backend::api::loss::{CrossEntropyBackward, LossOps, MaskedRows, NllOut};
use crate::tensor::Tensor;
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "loss";
    /// One block per row.
    NllForward = nll_forward<T>(losses: out f32, valid: out f32, logits: inp T,
        targets: inp i32, classes: val i32);
    /// One block per row.
    NllBackward = nll_backward<T>(dlogits: out T, logits: inp T, targets: inp i32,
        classes: val i32, scale: val f32);
    /// One block per row.
    SoftCeForward = soft_ce_forward<T>(losses: out f32, logits: inp T, targets: inp T,
        classes: val i32);
    /// One block per row.
    SoftCeBackward = soft_ce_backward<T>(dlogits: out T, logits: inp T, targets: inp T,
        classes: val i32, scale: val f32);
    /// Grid-stride over the elements.
    MseForward = mse_forward<T>(sq: out f32, x: inp T, y: inp T, n: val i64);
    /// Grid-stride over the elements.
    MseBackward = mse_backward<T>(dx: out T, x: inp T, y: inp T, n: val i64, scale: val f32);
    /// One block per row.
    MaskedRowMseForward = masked_row_mse_forward<T>(row_loss: out f32, x: inp T, y: inp T,
        mask: inp f32, cols: val i32);
    /// One block per row.
    MaskedRowMseBackward = masked_row_mse_backward<T>(dx: out T, x: inp T, y: inp T,
        mask: inp f32, cols: val i32, scale: val f32);
}

/// Launches `$K`, NllBackward or SoftCeBackward (the same arguments), one block per row of
/// the logits.
macro_rules! cross_entropy_backward {
    ($K:ident, $b:expr, $a:expr) => {{
        let a: CrossEntropyBackward = $a;
        let (dlogits, logits, targets, scale) = (a.dlogits, a.logits, a.targets, a.scale);
        let rc = rows_cols(logits);
        launch_rows!(
            $b,
            row_cfg,
            rc,
            classes,
            $K {
                dlogits,
                logits,
                targets,
                scale
            }
        )
    }};
}

/// The grid of the element-wise loss kernels: 256 threads per block, one thread per element.
fn flat_cfg(n: usize) -> LaunchConfig {
    grid_1d(n, 256)
}

impl LossOps for CudaBackend {
    fn nll(&self, out: NllOut, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let classes = last_axis(logits);
        let rows = targets.numel();
        NllForward {
            losses: out.losses,
            valid: out.valid,
            logits,
            targets,
            classes: classes as i32,
        }
        .launch(self, row_cfg(rows, classes))
    }
    fn nll_backward(&self, a: CrossEntropyBackward) -> Result<()> {
        cross_entropy_backward!(NllBackward, self, a)
    }
    fn soft_ce(&self, losses: &mut Tensor, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let rc = rows_cols(logits);
        launch_rows!(
            self,
            row_cfg,
            rc,
            classes,
            SoftCeForward {
                losses,
                logits,
                targets
            }
        )
    }
    fn soft_ce_backward(&self, a: CrossEntropyBackward) -> Result<()> {
        cross_entropy_backward!(SoftCeBackward, self, a)
    }
    fn mse(&self, sq: &mut Tensor, x: &Tensor, y: &Tensor) -> Result<()> {
        launch_n!(self, flat_cfg, x.numel(), MseForward { sq, x, y })
    }
    fn mse_backward(&self, dx: &mut Tensor, x: &Tensor, y: &Tensor, scale: f32) -> Result<()> {
        launch_n!(self, flat_cfg, x.numel(), MseBackward { dx, x, y, scale })
    }
    fn masked_row_mse(&self, row_loss: &mut Tensor, a: MaskedRows) -> Result<()> {
        let (rows, cols) = (a.mask.numel(), last_axis(a.x));
        MaskedRowMseForward {
            row_loss,
            x: a.x,
            y: a.y,
            mask: a.mask,
            cols: cols as i32,
        }
        .launch(self, row_cfg(rows, cols))
    }
    fn masked_row_mse_backward(&self, dx: &mut Tensor, a: MaskedRows, scale: f32) -> Result<()> {
        let (rows, cols) = (a.mask.numel(), last_axis(a.x));
        MaskedRowMseBackward {
            dx,
            x: a.x,
            y: a.y,
            mask: a.mask,
            cols: cols as i32,
            scale,
        }
        .launch(self, row_cfg(rows, cols))
    }
}
