//! kernels/adamw.cu: declarations and the CUDA implementation of [`OptimOps`].

use super::launch::kernels;
use super::reduce::SumFinal;
use super::{block_per, CudaBackend};
use crate::backend::api::optim::{AdamWStep, OptimOps};
use crate::backend::cpu::adamw::bias_corrections;
use crate::ops::ChunkTable;
use crate::tensor::Tensor;
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "adamw";
    /// One block per chunk.
    GradNormPartials = grad_norm_partials(partials: out f32, grads: inp f32,
        chunk_offset: inp i32, chunk_len: inp i32);
    /// One block per chunk; reads the norm on the device.
    AdamwChunks = adamw_chunks(values: out f32, m: out f32, v: out f32, compute: opt_out bf16,
        grads: inp f32, chunk_offset: inp i32, chunk_len: inp i32, chunk_lr_scale: inp f32,
        chunk_decay: inp f32, norm_sq: inp f32, lr: val f32, beta1: val f32, beta2: val f32,
        eps: val f32, weight_decay: val f32, bc1: val f32, bc2_sqrt: val f32, max_norm: val f32);
}

pub(crate) fn per_chunk(count: usize) -> LaunchConfig {
    block_per(count, 256, 0)
}

impl OptimOps for CudaBackend {
    fn grad_norm_sq(
        &self,
        norm_sq: &mut Tensor,
        grads: &Tensor,
        chunks: &ChunkTable,
    ) -> Result<()> {
        GradNormPartials {
            partials: &chunks.partials,
            grads,
            chunk_offset: &chunks.offsets,
            chunk_len: &chunks.lens,
        }
        .launch(self, per_chunk(chunks.count))?;
        SumFinal {
            out: norm_sq,
            partials: &chunks.partials,
            count: chunks.count as i32,
            scale: 1.0,
        }
        .launch(
            self,
            LaunchConfig {
                grid_dim: (1, 1, 1),
                block_dim: (1024, 1, 1),
                shared_mem_bytes: 0,
            },
        )
    }

    fn adamw(&self, a: AdamWStep) -> Result<()> {
        let (bc1, bc2_sqrt) = bias_corrections(&a.cfg, a.t);
        AdamwChunks {
            values: a.values,
            m: a.m,
            v: a.v,
            compute: a.compute.map(|c| &*c),
            grads: a.grads,
            chunk_offset: &a.chunks.offsets,
            chunk_len: &a.chunks.lens,
            chunk_lr_scale: &a.chunks.lr_scale,
            chunk_decay: &a.chunks.decay,
            norm_sq: a.norm_sq,
            lr: a.cfg.lr,
            beta1: a.cfg.beta1,
            beta2: a.cfg.beta2,
            eps: a.cfg.eps,
            weight_decay: a.cfg.weight_decay,
            bc1,
            bc2_sqrt,
            max_norm: a.max_norm,
        }
        .launch(self, per_chunk(a.chunks.count))
    }
}
