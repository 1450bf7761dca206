//! kernels/elementwise.cu: declarations and the CUDA implementation of [`ElementwiseOps`].

use super::launch::kernels;
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
        let n = out.numel();
        Add {
            out,
            a,
            b,
            n: n as i64,
        }
        .launch(self, grid_stride(n))
    }
    fn bias_add(&self, out: &mut Tensor, x: &Tensor, bias: &Tensor) -> Result<()> {
        let (n, cols) = (out.numel() as i64, bias.numel() as i64);
        BiasAdd {
            out,
            x,
            bias,
            n,
            cols,
        }
        .launch(self, grid_stride(out.numel()))
    }
    fn gelu(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        let n = out.numel();
        GeluForward {
            out,
            x,
            n: n as i64,
        }
        .launch(self, grid_stride(n))
    }
    fn gelu_backward(&self, dx: &mut Tensor, x: &Tensor, dy: &Tensor) -> Result<()> {
        let n = dx.numel();
        GeluBackward {
            dx,
            x,
            dy,
            n: n as i64,
        }
        .launch(self, grid_stride(n))
    }
    fn scale(&self, x: &mut Tensor, s: f32) -> Result<()> {
        let n = x.numel();
        Scale { x, s, n: n as i64 }.launch(self, grid_stride(n))
    }
    fn cast(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        let n = out.numel();
        match (x.dtype, out.dtype) {
            (DType::F32, DType::BF16) => CastF32ToBf16 {
                out,
                x,
                n: n as i64,
            }
            .launch(self, grid_stride(n)),
            (DType::BF16, DType::F32) => CastBf16ToF32 {
                out,
                x,
                n: n as i64,
            }
            .launch(self, grid_stride(n)),
            (a, o) => bail!("no cast kernel from {a} to {o}"),
        }
    }
    fn drain_add(&self, acc: &mut Tensor, x: &mut Tensor) -> Result<()> {
        let n = acc.numel();
        if (acc.dtype, x.dtype) != (DType::F32, DType::BF16) {
            bail!("drain_add: no kernel for {} += {}", acc.dtype, x.dtype);
        }
        DrainAddBf16 {
            acc,
            x,
            n: n as i64,
        }
        .launch(self, grid_stride(n))
    }
}
