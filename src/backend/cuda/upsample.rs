//! kernels/upsample.cu: declarations and the CUDA implementation of [`UpsampleOps`].

use super::launch::kernels;
use super::{grid_stride, CudaBackend};
use crate::backend::api::UpsampleOps;
use crate::tensor::Tensor;
use anyhow::Result;

kernels! { file "upsample";
    /// Grid-stride over the output; `planes` = n·c of [h, w] inputs.
    UpsampleNearestForward = upsample_nearest_forward<T>(out: out T, x: inp T, planes: val i64,
        h: val i32, w: val i32, k: val i32);
    /// Grid-stride over the input gradient (a gather of each k×k block).
    UpsampleNearestBackward = upsample_nearest_backward<T>(dx: out T, dy: inp T,
        planes: val i64, h: val i32, w: val i32, k: val i32);
    /// Grid-stride over the output; `ac` = align_corners (0 or 1).
    UpsampleBilinearForward = upsample_bilinear_forward<T>(out: out T, x: inp T,
        planes: val i64, h: val i32, w: val i32, ho: val i32, wo: val i32, ac: val i32);
    /// Grid-stride over the input gradient (a gather, no atomics).
    UpsampleBilinearBackward = upsample_bilinear_backward<T>(dx: out T, dy: inp T,
        planes: val i64, h: val i32, w: val i32, ho: val i32, wo: val i32, ac: val i32);
}

/// (planes = n·c, h, w) of an NCHW tensor (`ops` checked the rank).
fn planes_hw(t: &Tensor) -> (i64, i32, i32) {
    (
        (t.shape[0] * t.shape[1]) as i64,
        t.shape[2] as i32,
        t.shape[3] as i32,
    )
}

/// Launches the kernel struct `$K` grid-stride over the elements of `$over`, with the
/// listed fields plus (planes, h, w) of the input-side NCHW tensor `$input`.
macro_rules! launch_planes {
    ($b:expr, $over:expr, $input:expr, $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }) => {{
        let cfg = grid_stride($over.numel());
        let (planes, h, w) = planes_hw($input);
        $K { $($f $(: $v)?,)* planes, h, w }.launch($b, cfg)
    }};
}

impl UpsampleOps for CudaBackend {
    fn upsample_nearest(&self, out: &mut Tensor, x: &Tensor, k: usize) -> Result<()> {
        let k = k as i32;
        launch_planes!(self, out, x, UpsampleNearestForward { out, x, k })
    }
    fn upsample_nearest_backward(&self, dx: &mut Tensor, dy: &Tensor, k: usize) -> Result<()> {
        let k = k as i32;
        launch_planes!(self, dx, dx, UpsampleNearestBackward { dx, dy, k })
    }
    fn upsample_bilinear(&self, out: &mut Tensor, x: &Tensor, align_corners: bool) -> Result<()> {
        let ((_, ho, wo), ac) = (planes_hw(out), align_corners as i32);
        launch_planes!(self, out, x, UpsampleBilinearForward { out, x, ho, wo, ac })
    }
    fn upsample_bilinear_backward(
        &self,
        dx: &mut Tensor,
        dy: &Tensor,
        align_corners: bool,
    ) -> Result<()> {
        let ((_, ho, wo), ac) = (planes_hw(dy), align_corners as i32);
        launch_planes!(
            self,
            dx,
            dx,
            UpsampleBilinearBackward { dx, dy, ho, wo, ac }
        )
    }
}
