//! kernels/conv1d.cu: declarations and the CUDA implementation of [`Conv1dOps`].

use super::launch::kernels;
use super::{block_per, grid_stride, CudaBackend};
use crate::backend::api::conv1d::{
    Conv1dOps, Conv1dShape, ConvBackward, ConvInput, SliceDims, WeightNormBackward, WeightNormInput,
};
use crate::backend::api::Backend;
use crate::tensor::{DType, Tensor};
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

kernels! { file "conv1d";
    /// Block (tile of CONV_TILE outputs, co, b); `cc` input channels staged per pass in
    /// cc·(win + k) floats of dynamic shared memory.
    Conv1dForward = conv1d_forward<T>(y: out T, x: inp T, w: inp T, bias: opt_inp T,
        cin: val i32, cout: val i32, lin: val i32, lout: val i32, k: val i32, stride: val i32,
        pad: val i32, groups: val i32, cc: val i32);
    /// Block (tile of input positions, ci, b); `cc` output channels' weights staged per pass.
    Conv1dBackwardInput = conv1d_backward_input<T>(dx: out T, dy: inp T, w: inp T,
        cin: val i32, cout: val i32, lin: val i32, lout: val i32, k: val i32, stride: val i32,
        pad: val i32, groups: val i32, cc: val i32);
    /// fp32 partial weight gradients part[split][co][n], one split of the batch × time
    /// reduction per grid z (with the group).
    Conv1dBackwardWeightPartial = conv1d_backward_weight_partial<T>(part: out f32, dy: inp T,
        x: inp T, batch: val i32, cin: val i32, cout: val i32, lin: val i32, lout: val i32,
        k: val i32, stride: val i32, pad: val i32, groups: val i32, splits: val i32,
        per: val i64);
    /// dw += Σ over the splits of part, in order (grid-stride).
    Conv1dBackwardWeightReduce = conv1d_backward_weight_reduce<T>(dw: out T, part: inp f32,
        n: val i64, splits: val i32);
    /// One block per output channel, accumulating into db.
    Conv1dBackwardBias = conv1d_backward_bias<T>(db: out T, dy: inp T, batch: val i32,
        cout: val i32, lout: val i32);
    /// One block per index k of the kept axis.
    WeightNormNorms = weight_norm_norms<T>(norm: out f32, v: inp T, outer: val i32,
        kdim: val i32, inner: val i32);
    /// Grid-stride over the elements.
    WeightNormForward = weight_norm_forward<T>(w: out T, g: inp T, v: inp T, norm: inp f32,
        n: val i64, kdim: val i32, inner: val i32);
    /// One block per k: s[k] written, dg accumulated.
    WeightNormBackwardG = weight_norm_backward_g<T>(dg: out T, s: out f32, dw: inp T,
        v: inp T, norm: inp f32, outer: val i32, kdim: val i32, inner: val i32);
    /// Grid-stride, accumulating into dv.
    WeightNormBackwardV = weight_norm_backward_v<T>(dv: out T, dw: inp T, g: inp T, v: inp T,
        norm: inp f32, s: inp f32, n: val i64, kdim: val i32, inner: val i32);
    /// 32×32 tiles; block (32, 8), grid (⌈n/32⌉, ⌈m/32⌉, batch).
    TransposeLast2 = transpose_last2<T>(out: out T, x: inp T, m: val i32, n: val i32);
    /// Grid-stride over the output elements.
    SliceAxis = slice_axis<T>(out: out T, x: inp T, outer: val i64, len_in: val i32,
        inner: val i32, start: val i32, len: val i32);
    SliceAxisBackward = slice_axis_backward<T>(dx: out T, dy: inp T, outer: val i64,
        len_in: val i32, inner: val i32, start: val i32, len: val i32);
}

/// Output positions per forward block (`CONV_TILE` in the kernel).
pub const TILE: usize = 128;
/// Shared-memory budget per block for the staged tiles (floats), below the 48 KiB default.
const SMEM_FLOATS: usize = 8 * 1024;

/// The shape arguments every convolution kernel takes (cin, cout, lin, lout, k, stride, pad,
/// groups).
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub(crate) cin: i32,
    pub(crate) cout: i32,
    pub(crate) lin: i32,
    pub(crate) lout: i32,
    pub(crate) k: i32,
    pub(crate) stride: i32,
    pub(crate) pad: i32,
    pub(crate) groups: i32,
}

impl Dims {
    /// The shape arguments of `s`, unchecked.
    pub(crate) fn of(s: &Conv1dShape) -> Dims {
        Dims {
            cin: s.cin as i32,
            cout: s.cout as i32,
            lin: s.lin as i32,
            lout: s.lout().unwrap_or(0) as i32,
            k: s.k as i32,
            stride: s.stride as i32,
            pad: s.padding as i32,
            groups: s.groups as i32,
        }
    }
}

/// The shape arguments of `s`, checked against the grid limits.
fn dims(s: &Conv1dShape) -> Result<Dims> {
    if s.cout > 65535 || s.cin > 65535 || s.batch > 65535 {
        bail!("conv1d: batch, channels must each be ≤ 65535 on CUDA, found {s:?}");
    }
    Ok(Dims::of(s))
}

/// The launch struct `$K` with the shape arguments (cin, cout, lin, lout, k, stride, pad,
/// groups) taken from the [`Dims`] `$d` and the others given by name; `@no_stride` leaves the
/// stride out (the tensor-core kernels take stride 1 only). The order of fields in a struct
/// literal does not change the launch's argument order, which `kernels!` fixes.
macro_rules! with_dims {
    ($K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $d:expr) => {{
        let d: $crate::backend::cuda::conv1d::Dims = $d;
        $crate::backend::cuda::conv1d::with_dims!(
            @no_stride $K { $($f $(: $v)?,)* stride: d.stride },
            d
        )
    }};
    (@no_stride $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $d:expr) => {{
        let d: $crate::backend::cuda::conv1d::Dims = $d;
        $K {
            $($f $(: $v)?,)*
            cin: d.cin,
            cout: d.cout,
            lin: d.lin,
            lout: d.lout,
            k: d.k,
            pad: d.pad,
            groups: d.groups,
        }
    }};
}
pub(crate) use with_dims;

/// The launch struct `$K` of a weight-norm kernel with the slicing of the weights taken from
/// `$a` (a `WeightNormInput` or `WeightNormBackward`; kdim = g's length) and the others given by
/// name: `per_k` kernels (one block per index k of the kept axis) take outer, kdim and inner,
/// `per_element` ones (grid-stride over v's n elements) n, kdim and inner.
macro_rules! with_slicing {
    (per_k $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $a:expr) => {
        $K {
            $($f $(: $v)?,)*
            outer: $a.outer as i32,
            kdim: $a.g.numel() as i32,
            inner: $a.inner as i32,
        }
    };
    (per_element $K:ident { $($f:ident $(: $v:expr)?),* $(,)? }, $a:expr) => {
        $K {
            $($f $(: $v)?,)*
            n: $a.v.numel() as i64,
            kdim: $a.g.numel() as i32,
            inner: $a.inner as i32,
        }
    };
}

/// The launch struct `$K` (SliceAxis or SliceAxisBackward) with the slice's dimensions taken
/// from the [`SliceDims`] `$d` and the tensors given by name.
macro_rules! with_slice {
    ($K:ident { $($f:ident),* $(,)? }, $d:expr) => {{
        let d: &SliceDims = $d;
        $K {
            $($f,)*
            outer: d.outer as i64,
            len_in: d.len_in as i32,
            inner: d.inner as i32,
            start: d.start as i32,
            len: d.len as i32,
        }
    }};
}

/// Channels staged per pass when one channel needs `per` floats of shared memory.
pub fn channels_per_pass(per: usize, total: usize) -> Result<usize> {
    if per > SMEM_FLOATS {
        bail!("conv1d: a kernel of this size needs {per} floats of shared memory per channel, more than the {SMEM_FLOATS} this kernel stages");
    }
    Ok((SMEM_FLOATS / per).clamp(1, 16).min(total.max(1)))
}

/// Splits of the weight gradient's reduction over batch × time: enough blocks to fill a large
/// GPU (about 2048), each split at least `WG_MIN_STEPS` steps, the fp32 partials at most
/// `WG_MAX_PARTIAL` floats.
pub const WG_TILE: usize = 32;
const WG_MIN_STEPS: usize = 256;
const WG_MAX_PARTIAL: usize = 1 << 26;

/// The weight-gradient partials' grid: WG_TILE × WG_TILE tiles of (`n` = cin/group × k,
/// output channels of a group), per group and split.
pub fn weight_grad_cfg(n: usize, cog: usize, groups: usize, splits: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            n.div_ceil(WG_TILE) as u32,
            cog.div_ceil(WG_TILE) as u32,
            (groups * splits) as u32,
        ),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// (splits, steps per split) for `tiles` output tiles reducing over `r` steps into `weights`.
pub fn weight_grad_splits(tiles: usize, r: usize, weights: usize, groups: usize) -> (usize, usize) {
    let by_blocks = 2048usize.div_ceil(tiles.max(1));
    let by_steps = r.div_ceil(WG_MIN_STEPS).max(1);
    let by_memory = (WG_MAX_PARTIAL / weights.max(1)).max(1);
    let by_grid = (65535 / groups.max(1)).max(1);
    let s = by_blocks.min(by_steps).min(by_memory).min(by_grid).max(1);
    let per = r.div_ceil(s).div_ceil(WG_TILE) * WG_TILE;
    (r.div_ceil(per.max(1)).max(1), per.max(WG_TILE))
}

impl CudaBackend {
    /// dw += the weight gradient (tiled partial products over splits of the batch × time
    /// reduction, then an in-order sum of the splits).
    fn conv1d_weight_gradient(
        &self,
        dw: &mut Tensor,
        dy: &Tensor,
        x: &Tensor,
        s: &Conv1dShape,
    ) -> Result<()> {
        let lout = s.lout().unwrap_or(0);
        let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
        let n = cig * s.k;
        let r = s.batch * lout;
        let tiles = n.div_ceil(WG_TILE) * cog.div_ceil(WG_TILE) * s.groups;
        let (splits, per) = weight_grad_splits(tiles, r, s.cout * n, s.groups);
        if cog.div_ceil(WG_TILE) > 65535 {
            bail!(
                "conv1d: {cog} output channels per group are too many for the weight-gradient grid"
            );
        }
        // Every partial is written: split sp covers its (group, co, n) entries.
        let mut part = self.alloc(&[splits * s.cout * n], DType::F32)?;
        let cfg = weight_grad_cfg(n, cog, s.groups, splits);
        let partial = with_dims!(
            Conv1dBackwardWeightPartial {
                part: &mut part,
                dy,
                x,
                batch: s.batch as i32,
                splits: splits as i32,
                per: per as i64,
            },
            dims(s)?
        );
        partial.launch(self, cfg)?;
        let total = s.cout * n;
        Conv1dBackwardWeightReduce {
            dw,
            part: &part,
            n: total as i64,
            splits: splits as i32,
        }
        .launch(self, grid_stride(total))
    }
}

pub(crate) fn per_k_cfg(kdim: usize) -> LaunchConfig {
    block_per(kdim, 256, 0)
}

impl Conv1dOps for CudaBackend {
    fn conv1d(&self, y: &mut Tensor, a: ConvInput, s: &Conv1dShape) -> Result<()> {
        // Variant 2 (bf16 tensor cores) where chosen and where it can take the call.
        if crate::backend::variants::variant("conv1d")? == 2
            && super::conv1d_tc::try_conv1d(self, y, a, s)?
        {
            return Ok(());
        }
        let lout = s.lout().unwrap_or(0);
        let win = (TILE - 1) * s.stride + s.k;
        let cc = channels_per_pass(win + s.k, s.cin_per_group())?;
        let cfg = LaunchConfig {
            grid_dim: (lout.div_ceil(TILE) as u32, s.cout as u32, s.batch as u32),
            block_dim: (TILE as u32, 1, 1),
            shared_mem_bytes: (cc * (win + s.k) * 4) as u32,
        };
        let forward = with_dims!(
            Conv1dForward {
                y,
                x: a.x,
                w: a.w,
                bias: a.bias,
                cc: cc as i32,
            },
            dims(s)?
        );
        forward.launch(self, cfg)
    }
    fn conv1d_backward(&self, a: ConvBackward, s: &Conv1dShape) -> Result<()> {
        let lout = s.lout().unwrap_or(0);
        // Variant 2 (bf16 tensor cores) takes dx and dw where chosen and where it can take
        // the call; the bias gradient below is the same for both.
        let tc = crate::backend::variants::variant("conv1d")? == 2
            && super::conv1d_tc::try_conv1d_backward(self, &a, s)?;
        if !tc {
            if let Some(dx) = a.dx {
                let cc = channels_per_pass(s.k, s.cout_per_group())?;
                let cfg = LaunchConfig {
                    grid_dim: (s.lin.div_ceil(TILE) as u32, s.cin as u32, s.batch as u32),
                    block_dim: (TILE as u32, 1, 1),
                    shared_mem_bytes: (cc * s.k * 4) as u32,
                };
                let backward = with_dims!(
                    Conv1dBackwardInput {
                        dx,
                        dy: a.dy,
                        w: a.w,
                        cc: cc as i32,
                    },
                    dims(s)?
                );
                backward.launch(self, cfg)?;
            }
            self.conv1d_weight_gradient(a.dw, a.dy, a.x, s)?;
        }
        if let Some(db) = a.db {
            let cfg = block_per(s.cout, 256, 0);
            Conv1dBackwardBias {
                db,
                dy: a.dy,
                batch: s.batch as i32,
                cout: s.cout as i32,
                lout: lout as i32,
            }
            .launch(self, cfg)?;
        }
        Ok(())
    }
    fn weight_norm(&self, w: &mut Tensor, norm: &mut Tensor, a: WeightNormInput) -> Result<()> {
        let (kdim, n) = (a.g.numel(), a.v.numel());
        with_slicing!(per_k WeightNormNorms { norm, v: a.v }, a).launch(self, per_k_cfg(kdim))?;
        with_slicing!(per_element WeightNormForward { w, g: a.g, v: a.v, norm }, a)
            .launch(self, grid_stride(n))
    }
    fn weight_norm_backward(&self, a: WeightNormBackward) -> Result<()> {
        let p = a.input;
        let (kdim, n) = (p.g.numel(), p.v.numel());
        // s[k] = Σ dw·v over the slice, written by the first kernel for the second.
        let mut s = self.alloc(&[kdim], DType::F32)?;
        let (dw, g, v, norm) = (a.dw, p.g, p.v, a.norm);
        with_slicing!(per_k WeightNormBackwardG { dg: &*a.dg, s: &mut s, dw, v, norm }, p)
            .launch(self, per_k_cfg(kdim))?;
        with_slicing!(per_element WeightNormBackwardV { dv: &*a.dv, dw, g, v, norm, s: &s }, p)
            .launch(self, grid_stride(n))
    }
    fn transpose_last2(&self, out: &mut Tensor, x: &Tensor, m: usize, n: usize) -> Result<()> {
        let batch = x.numel() / (m * n).max(1);
        if batch > 65535 || m.div_ceil(32) > 65535 {
            bail!(
                "transpose_last2: {:?} exceeds the CUDA grid limits",
                x.shape
            );
        }
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(32) as u32, m.div_ceil(32) as u32, batch as u32),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        TransposeLast2 {
            out,
            x,
            m: m as i32,
            n: n as i32,
        }
        .launch(self, cfg)
    }
    fn slice_axis(&self, out: &mut Tensor, x: &Tensor, d: &SliceDims) -> Result<()> {
        let cfg = grid_stride(out.numel());
        with_slice!(SliceAxis { out, x }, d).launch(self, cfg)
    }
    fn slice_axis_backward(&self, dx: &mut Tensor, dy: &Tensor, d: &SliceDims) -> Result<()> {
        let cfg = grid_stride(dx.numel());
        with_slice!(SliceAxisBackward { dx, dy }, d).launch(self, cfg)
    }
}
