//! kernels/reduce.cu: deterministic two-pass sums, and the CUDA implementation of
//! [`ReduceOps`].

use super::launch::kernels;
use super::CudaBackend;
use crate::backend::api::{Backend, ReduceOps};
use crate::tensor::{DType, Tensor};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "reduce";
    /// One partial sum per block; the grid size depends only on n.
    SumPartials = sum_partials<T>(partials: out f32, x: inp T, n: val i64);
    SumsqPartials = sumsq_partials<T>(partials: out f32, x: inp T, n: val i64);
    /// One block sums the partials.
    SumFinal = sum_final(out: out f32, partials: inp f32, count: val i32, scale: val f32);
}

const THREADS: u32 = 256;

/// The number of partial sums for n elements (a function of n only, so results are
/// reproducible run to run).
pub(crate) fn blocks_for(n: usize) -> u32 {
    (n.div_ceil(THREADS as usize * 8)).clamp(1, 1024) as u32
}

impl ReduceOps for CudaBackend {
    fn sum(&self, out: &mut Tensor, x: &Tensor, square: bool, scale: f32) -> Result<()> {
        let n = x.numel();
        let g = blocks_for(n);
        let mut partials = self.alloc(&[g as usize], DType::F32)?;
        let cfg = LaunchConfig {
            grid_dim: (g, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let p = &mut partials;
        if square {
            SumsqPartials {
                partials: p,
                x,
                n: n as i64,
            }
            .launch(self, cfg)?;
        } else {
            SumPartials {
                partials: p,
                x,
                n: n as i64,
            }
            .launch(self, cfg)?;
        }
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        SumFinal {
            out,
            partials: &partials,
            count: g as i32,
            scale,
        }
        .launch(self, one)
    }
}
