//! kernels/dropout.cu: declarations and the CUDA implementation of [`DropoutOps`].

use super::launch::kernels;
use super::{grid_stride, CudaBackend};
use crate::backend::api::{DropoutKey, DropoutOps};
use crate::tensor::Tensor;
use anyhow::Result;

kernels! { file "dropout";
    /// Grid-stride; the mask is Philox(seed, step, stream_id, i) ≥ p.
    Dropout = dropout<T>(out: out T, x: inp T, n: val i64, p: val f32, seed: val u64,
        step: val u32, stream_id: val u32);
}

impl DropoutOps for CudaBackend {
    fn dropout(&self, out: &mut Tensor, x: &Tensor, p: f32, key: DropoutKey) -> Result<()> {
        let n = x.numel();
        Dropout {
            out,
            x,
            n: n as i64,
            p,
            seed: key.seed,
            step: key.step,
            stream_id: key.stream_id,
        }
        .launch(self, grid_stride(n))
    }
}
