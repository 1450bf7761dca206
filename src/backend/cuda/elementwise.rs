//! kernels/elementwise.cu: declarations and the CUDA implementation of [`ElementwiseOps`].

use super::launch::{kernels, launch_n};
use super::{grid_stride, CudaBackend};
use crate::backend::api::ElementwiseOps;
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};

kernels! { file "elementwise";
    Add = add<T>(out: out T, a: inp T, b: inp T, n: val i64);
    BiasAdd = bias_add<T>(out: out T, x: inp T, bias: inp T, n: val i64, cols: val i64);
    GeluForward = gelu_forward<T>(out: out T, x: inp T, n: val i64);
    GeluBackward = gelu_backward<T>(dx: out T, x: inp T, dy: inp T, n: val i64);
    Scale = scale<T>(x: out T, s: val f32, n: val i64);
    CastF32ToBf16 = cast_f32_to_bf16(out: out bf16, x: inp f32, n: val i64);
    CastBf16ToF32 = cast_bf16_to_f32(out: out f32, x: inp bf16, n: val i64);
    /// acc += widen(x), then x = 0; grid-stride.
    DrainAddBf16 = drain_add_bf16(acc: out f32, x: out bf16, n: val i64);
}

impl ElementwiseOps for CudaBackend {
    fn add(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
        launch_n!(self, grid_stride, out.numel(), Add { out, a, b })
    }
    fn bias_add(&self, out: &mut Tensor, x: &Tensor, bias: &Tensor) -> Result<()> {
        let cols = bias.numel() as i64;
        launch_n!(
            self,
            grid_stride,
            out.numel(),
            BiasAdd { out, x, bias, cols }
        )
    }
    fn gelu(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        launch_n!(self, grid_stride, out.numel(), GeluForward { out, x })
    }
    fn gelu_backward(&self, dx: &mut Tensor, x: &Tensor, dy: &Tensor) -> Result<()> {
        launch_n!(self, grid_stride, dx.numel(), GeluBackward { dx, x, dy })
    }
    fn scale(&self, x: &mut Tensor, s: f32) -> Result<()> {
        launch_n!(self, grid_stride, x.numel(), Scale { x, s })
    }
    fn cast(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        let n = out.numel();
        match (x.dtype, out.dtype) {
            (DType::F32, DType::BF16) => launch_n!(self, grid_stride, n, CastF32ToBf16 { out, x }),
            (DType::BF16, DType::F32) => launch_n!(self, grid_stride, n, CastBf16ToF32 { out, x }),
            (a, o) => bail!("no cast kernel from {a} to {o}"),
        }
    }
    fn drain_add(&self, acc: &mut Tensor, x: &mut Tensor) -> Result<()> {
        if (acc.dtype, x.dtype) != (DType::F32, DType::BF16) {
            bail!("drain_add: no kernel for {} += {}", acc.dtype, x.dtype);
        }
        launch_n!(self, grid_stride, acc.numel(), DrainAddBf16 { acc, x })
    }
}
