//! kernels/relu.cu: declarations and the CUDA implementation of [`ReluOps`].

use super::launch::kernels;
use super::{grid_stride, CudaBackend};
use crate::backend::api::ReluOps;
use crate::tensor::Tensor;
use anyhow::Result;

kernels! { file "relu";
    ReluForward = relu_forward<T>(y: out T, x: inp T, n: val i64);
    ReluBackward = relu_backward<T>(dx: out T, y: inp T, dy: inp T, n: val i64);
}

impl ReluOps for CudaBackend {
    fn relu(&self, y: &mut Tensor, x: &Tensor) -> Result<()> {
        let n = x.numel();
        ReluForward { y, x, n: n as i64 }.launch(self, grid_stride(n))
    }
    fn relu_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()> {
        let n = y.numel();
        ReluBackward {
            dx,
            y,
            dy,
            n: n as i64,
        }
        .launch(self, grid_stride(n))
    }
}
