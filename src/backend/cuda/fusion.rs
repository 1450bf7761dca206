//! kernels/fusion.cu: declarations and the CUDA implementation of [`FusionOps`] (projection +
//! L2 normalisation, the scaled similarity matrix, the symmetric InfoNCE loss).
//!
//! Launches are planned ([`project_forward_launch`], [`project_backward_launches`], ...) as
//! typed kernel arguments over tensor views plus a grid ([`FusionLaunch`]); the plan does not
//! depend on CUDA, so tests run the same plans, on CPU tensors, through the CPU emulation of
//! the kernels (tests/fusion_kernel_emu.rs).

use super::launch::{kernels, launch_enum};
use super::{block_per, grid_1d, CudaBackend};
use crate::backend::api::fusion::{
    FusionOps, InfonceBackward as InfonceBackwardArgs, ProjectBackward, ProjectOut,
    SimilarityBackward, SimilarityInput,
};
use crate::tensor::Tensor;
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

kernels! { file "fusion";
    /// One block per row; (d_in + d_out) floats of dynamic shared memory.
    ProjectL2normForward = project_l2norm_forward<T>(e: out T, norm: out f32, x: inp T,
        w: inp T, d_in: val i32, d_out: val i32, eps: val f32);
    /// One block per row.
    L2normBackward = l2norm_backward<T>(dz: out f32, e: inp T, de: inp T, norm: inp f32,
        d_out: val i32, eps: val f32);
    /// One block per row; d_out floats of dynamic shared memory.
    ProjectBackwardDx = project_backward_dx<T>(dx: out T, dz: inp f32, w: inp T, d_in: val i32,
        d_out: val i32);
    /// Grid-stride over dw (accumulated).
    ProjectBackwardDw = project_backward_dw<T>(dw: out T, dz: inp f32, x: inp T, rows: val i32,
        d_in: val i32, d_out: val i32);
    /// One warp per (image, waveform) pair.
    SimilarityForward = similarity_forward<T>(logits: out f32, ei: inp T, ew: inp T,
        log_scale: inp f32, n_img: val i32, n_wave: val i32, dim: val i32,
        max_log_scale: val f32);
    /// One block per row and one per column of the square logits.
    InfonceLse = infonce_lse(lse: out f32, losses: out f32, logits: inp f32, n: val i32);
    /// Grid-stride over the logits.
    InfonceBackward = infonce_backward(dlogits: out f32, logits: inp f32, lse: inp f32,
        n: val i32, scale: val f32);
    /// Grid-stride over dei then dew.
    SimilarityBackwardKernel = similarity_backward<T>(dei: out T, dew: out T, dlogits: inp f32,
        ei: inp T, ew: inp T, log_scale: inp f32, n_img: val i32, n_wave: val i32,
        dim: val i32, max_log_scale: val f32);
    /// One block; accumulates into the one-element gradient.
    LogitScaleBackward = logit_scale_backward(dlog_scale: out f32, dlogits: inp f32,
        logits: inp f32, log_scale: inp f32, count: val i32, max_log_scale: val f32);
}

/// Threads per block of the per-row kernels (a multiple of 32 for the block reductions).
pub const ROW_BLOCK: u32 = 256;
/// Threads per block of the grid-stride and per-pair kernels.
pub const FLAT_BLOCK: u32 = 256;
/// Dynamic shared memory a launch may use without opting in (48 KiB).
pub const MAX_SHARED_BYTES: usize = 48 * 1024;
/// Largest grid of the grid-stride kernels (they loop past it).
const MAX_FLAT_BLOCKS: usize = 4096;

launch_enum! {
    /// The typed arguments of one kernel of kernels/fusion.cu.
    enum FusionKernel;
    /// One planned kernel launch.
    struct FusionLaunch;
    ProjectForward(ProjectL2normForward),
    L2normBackward(L2normBackward),
    ProjectDx(ProjectBackwardDx),
    ProjectDw(ProjectBackwardDw),
    Similarity(SimilarityForward),
    InfonceLse(InfonceLse),
    InfonceBackward(InfonceBackward),
    SimilarityBackward(SimilarityBackwardKernel),
    LogitScaleBackward(LogitScaleBackward),
}

fn rows_cfg(rows: usize, smem_floats: usize) -> LaunchConfig {
    block_per(rows, ROW_BLOCK, smem_floats * 4)
}

fn flat_cfg(n: usize) -> LaunchConfig {
    let mut c = grid_1d(n, FLAT_BLOCK);
    c.grid_dim.0 = c.grid_dim.0.min(MAX_FLAT_BLOCKS as u32);
    c
}

fn i32_of(what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| anyhow::anyhow!("fusion kernels: {what} = {v} exceeds i32"))
}

/// The launch struct `$K` (SimilarityForward or SimilarityBackwardKernel) with the fields given
/// by name and the similarity's operands `$e` (a [`SimilarityInput`]) with the sizes they imply
/// (n_img, dim of ei; n_wave of ew); an overflowing size returns its error from the calling
/// function (`?`).
macro_rules! with_embeddings {
    ($K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $e:expr) => {{
        let SimilarityInput { ei, ew, log_scale, max_log_scale } = $e;
        $K {
            $($f $(: $v)?,)*
            ei,
            ew,
            log_scale,
            n_img: i32_of("n_img", ei.shape[0])?,
            n_wave: i32_of("n_wave", ew.shape[0])?,
            dim: i32_of("dim", ei.shape[1])?,
            max_log_scale,
        }
    }};
}

fn check_shared(kernel: &str, floats: usize) -> Result<()> {
    if floats * 4 > MAX_SHARED_BYTES {
        bail!(
            "{kernel} would need {} bytes of shared memory (limit {MAX_SHARED_BYTES}); use a narrower projection or --device cpu",
            floats * 4
        );
    }
    Ok(())
}

/// e = normalise(x wᵀ) per row, and the row norms.
pub fn project_forward_launch<'a>(
    e: &'a Tensor,
    norm: &'a Tensor,
    x: &'a Tensor,
    w: &'a Tensor,
    eps: f32,
) -> Result<FusionLaunch<'a>> {
    let (d_out, d_in) = (w.shape[0], w.shape[1]);
    let rows = x.numel() / d_in.max(1);
    check_shared("project_l2norm_forward", d_in + d_out)?;
    Ok(FusionLaunch {
        kernel: FusionKernel::ProjectForward(ProjectL2normForward {
            e,
            norm,
            x,
            w,
            d_in: i32_of("d_in", d_in)?,
            d_out: i32_of("d_out", d_out)?,
            eps,
        }),
        cfg: rows_cfg(rows, d_in + d_out),
    })
}

/// The projection's backward: dz (normalisation), dx, then dw (accumulated).
pub fn project_backward_launches<'b>(a: &'b ProjectBackward<'_>) -> Result<Vec<FusionLaunch<'b>>> {
    let (d_out, d_in) = (a.w.shape[0], a.w.shape[1]);
    let rows = a.x.numel() / d_in.max(1);
    check_shared("project_backward_dx", d_out)?;
    let (di, dout) = (i32_of("d_in", d_in)?, i32_of("d_out", d_out)?);
    Ok(vec![
        FusionLaunch {
            kernel: FusionKernel::L2normBackward(L2normBackward {
                dz: &*a.dz,
                e: a.e,
                de: a.de,
                norm: a.norm,
                d_out: dout,
                eps: a.eps,
            }),
            cfg: rows_cfg(rows, 0),
        },
        FusionLaunch {
            kernel: FusionKernel::ProjectDx(ProjectBackwardDx {
                dx: &*a.dx,
                dz: &*a.dz,
                w: a.w,
                d_in: di,
                d_out: dout,
            }),
            cfg: rows_cfg(rows, d_out),
        },
        FusionLaunch {
            kernel: FusionKernel::ProjectDw(ProjectBackwardDw {
                dw: &*a.dw,
                dz: &*a.dz,
                x: a.x,
                rows: i32_of("rows", rows)?,
                d_in: di,
                d_out: dout,
            }),
            cfg: flat_cfg(d_out * d_in),
        },
    ])
}

/// logits = exp(min(s, max)) ei ewᵀ.
pub fn similarity_launch<'a>(
    logits: &'a Tensor,
    embeddings: SimilarityInput<'a>,
) -> Result<FusionLaunch<'a>> {
    let (ni, nw) = (embeddings.ei.shape[0], embeddings.ew.shape[0]);
    let warps = (FLAT_BLOCK / 32) as usize;
    let pairs = ni * nw;
    Ok(FusionLaunch {
        kernel: FusionKernel::Similarity(with_embeddings!(
            SimilarityForward { logits },
            embeddings
        )),
        cfg: block_per(pairs.div_ceil(warps).max(1), FLAT_BLOCK, 0),
    })
}

/// Row and column log-sum-exps and losses of square logits [n, n].
pub fn infonce_launch<'a>(
    lse: &'a Tensor,
    losses: &'a Tensor,
    logits: &'a Tensor,
) -> Result<FusionLaunch<'a>> {
    let n = logits.shape[0];
    Ok(FusionLaunch {
        kernel: FusionKernel::InfonceLse(InfonceLse {
            lse,
            losses,
            logits,
            n: i32_of("n", n)?,
        }),
        cfg: rows_cfg(2 * n, 0),
    })
}

/// dlogits of the symmetric InfoNCE loss.
pub fn infonce_backward_launch<'b>(a: &'b InfonceBackwardArgs<'_>) -> Result<FusionLaunch<'b>> {
    let n = a.logits.shape[0];
    Ok(FusionLaunch {
        kernel: FusionKernel::InfonceBackward(InfonceBackward {
            dlogits: &*a.dlogits,
            logits: a.logits,
            lse: a.lse,
            n: i32_of("n", n)?,
            scale: a.scale,
        }),
        cfg: flat_cfg(n * n),
    })
}

/// dei, dew (written) and d s (accumulated).
pub fn similarity_backward_launches<'b>(
    a: &'b SimilarityBackward<'_>,
) -> Result<Vec<FusionLaunch<'b>>> {
    let embeddings = a.input;
    let (ni, dim, nw) = (
        embeddings.ei.shape[0],
        embeddings.ei.shape[1],
        embeddings.ew.shape[0],
    );
    Ok(vec![
        FusionLaunch {
            kernel: FusionKernel::SimilarityBackward(with_embeddings!(
                SimilarityBackwardKernel {
                    dei: &*a.dei,
                    dew: &*a.dew,
                    dlogits: a.dlogits
                },
                embeddings
            )),
            cfg: flat_cfg((ni + nw) * dim),
        },
        FusionLaunch {
            kernel: FusionKernel::LogitScaleBackward(LogitScaleBackward {
                dlog_scale: &*a.dlog_scale,
                dlogits: a.dlogits,
                logits: a.logits,
                log_scale: embeddings.log_scale,
                count: i32_of("n_img·n_wave", ni * nw)?,
                max_log_scale: embeddings.max_log_scale,
            }),
            cfg: rows_cfg(1, 0),
        },
    ])
}

impl FusionOps for CudaBackend {
    fn project_l2norm(&self, out: ProjectOut, x: &Tensor, w: &Tensor, eps: f32) -> Result<()> {
        project_forward_launch(out.e, out.norm, x, w, eps)?.launch(self)
    }
    fn project_l2norm_backward(&self, a: ProjectBackward) -> Result<()> {
        for l in project_backward_launches(&a)? {
            l.launch(self)?;
        }
        Ok(())
    }
    fn similarity(&self, logits: &mut Tensor, a: SimilarityInput) -> Result<()> {
        similarity_launch(logits, a)?.launch(self)
    }
    fn infonce(&self, lse: &mut Tensor, losses: &mut Tensor, logits: &Tensor) -> Result<()> {
        infonce_launch(lse, losses, logits)?.launch(self)
    }
    fn infonce_backward(&self, a: InfonceBackwardArgs) -> Result<()> {
        infonce_backward_launch(&a)?.launch(self)
    }
    fn similarity_backward(&self, a: SimilarityBackward) -> Result<()> {
        for l in similarity_backward_launches(&a)? {
            l.launch(self)?;
        }
        Ok(())
    }
}
