//! kernels/relu.cu: declarations and the CUDA implementation of [`ReluOps`].

use super::launch::{kernels, launch_n};
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
        launch_n!(self, grid_stride, x.numel(), ReluForward { y, x })
    }
    fn relu_backward(&self, dx: &mut Tensor, y: &Tensor, dy: &Tensor) -> Result<()> {
        launch_n!(self, grid_stride, y.numel(), ReluBackward { dx, y, dy })
    }
}
