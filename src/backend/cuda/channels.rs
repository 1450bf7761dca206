//! kernels/channels.cu: declarations and the CUDA implementation of [`ChannelsOps`].

use super::launch::kernels;
use super::{grid_stride, CudaBackend};
use crate::backend::api::{ChannelsOps, StridedCopy};
use crate::tensor::Tensor;
use anyhow::Result;

kernels! { file "channels";
    /// Grid-stride over the batch · len copied elements.
    CopyStrided = copy_strided<T>(dst: out T, src: inp T, batch: val i64, len: val i64,
        dst_stride: val i64, dst_off: val i64, src_stride: val i64, src_off: val i64);
    /// Grid-stride over the output elements.
    TransposeLast2 = transpose_last2<T>(out: out T, x: inp T, batch: val i64, rows: val i64,
        cols: val i64);
}

impl ChannelsOps for CudaBackend {
    fn copy_strided(&self, dst: &mut Tensor, src: &Tensor, c: &StridedCopy) -> Result<()> {
        CopyStrided {
            dst,
            src,
            batch: c.batch as i64,
            len: c.len as i64,
            dst_stride: c.dst_stride as i64,
            dst_off: c.dst_off as i64,
            src_stride: c.src_stride as i64,
            src_off: c.src_off as i64,
        }
        .launch(self, grid_stride(c.batch * c.len))
    }
    fn permute_last2(&self, out: &mut Tensor, x: &Tensor, rows: usize, cols: usize) -> Result<()> {
        let batch = x.numel() / (rows * cols).max(1);
        TransposeLast2 {
            out,
            x,
            batch: batch as i64,
            rows: rows as i64,
            cols: cols as i64,
        }
        .launch(self, grid_stride(x.numel()))
    }
}
