//! kernels/conv1d_tc.cu: conv1d variant 2, stride-1 grouped convolutions as implicit GEMMs on
//! bf16 tensor cores (see [`crate::backend::variants`]). [`supported`] decides whether a call
//! can take it; the planned launches ([`forward`], [`backward_input`], [`backward_weight`]) are
//! what the backend launches and what tests/conv1d_tc_emu.rs replays under the emulator.

use super::conv1d::{with_dims, Dims};
use super::launch::{kernels, Planned};
use super::reduce::colsum_finish;
use super::CudaBackend;
use crate::backend::api::conv1d::{Conv1dShape, ConvBackward, ConvInput};
use crate::backend::api::Backend;
use crate::tensor::{DType, Tensor};
use anyhow::Result;
use cudarc::driver::LaunchConfig;

kernels! { file "conv1d_tc";
    /// Grid (⌈lout/256⌉, groups · ⌈cout/groups/16⌉, batch), 256 threads; `cc` input channels
    /// staged per pass ([`forward_smem`]). `flip` 1 reads the weights flip-transposed (the
    /// input gradient, [`backward_input`]).
    Conv1dTcForward = conv1d_tc_forward(y: out bf16, x: inp bf16, w: inp bf16,
        bias: opt_inp bf16, cin: val i32, cout: val i32, lin: val i32, lout: val i32, k: val i32,
        pad: val i32, groups: val i32, cc: val i32, flip: val i32);
    /// fp32 partials part[split][co][c·k + j] of the weight gradient; grid
    /// (⌈tap tiles/32⌉, groups · ⌈cout/groups/16⌉, splits), 256 threads.
    Conv1dTcBackwardWeightPartial = conv1d_tc_backward_weight_partial(part: out f32,
        dy: inp bf16, x: inp bf16, batch: val i32, cin: val i32, cout: val i32, lin: val i32,
        lout: val i32, k: val i32, pad: val i32, groups: val i32, splits: val i32, per: val i32);
}

/// Threads per block (`CTC_THREADS`).
pub const THREADS: u32 = 256;
/// Output frames per forward block (`CTC_NT`).
pub const FRAMES: usize = 256;
/// Time steps per staged chunk of the weight gradient (`CTC_TT`).
pub const CHUNK: usize = 128;
/// n8 tap tiles per weight-gradient block (`CTC_TILES`).
const TAP_TILES: usize = 32;
/// Dynamic shared memory the forward kernel may use: the 48 KiB that need no opt-in.
const FORWARD_SMEM: usize = 48 * 1024;
/// Largest kernel size taken (the forward must stage one channel in [`FORWARD_SMEM`]).
pub const MAX_K: usize = 512;
/// The weight-gradient partials aim at about this many blocks; at most this many f32.
const WG_BLOCKS: usize = 1024;
const WG_MAX_PARTIAL: usize = 1 << 26;

/// Taps padded to a multiple of 16 (the k16 steps never cross a channel).
pub fn padded_taps(k: usize) -> usize {
    k.div_ceil(16) * 16
}

/// Whether variant 2 takes a convolution of shape `s` (the dtypes are checked by the caller):
/// stride 1, 0 ≤ padding < k ≤ [`MAX_K`], a non-empty output, grids and indices in range.
pub fn supported(s: &Conv1dShape) -> bool {
    let Some(lout) = s.lout() else { return false };
    let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
    let mtiles = cog.div_ceil(16);
    let small = |v: usize| v <= i32::MAX as usize;
    s.stride == 1
        && s.k >= 1
        && s.k <= MAX_K
        && s.padding < s.k
        && lout >= 1
        && s.lin >= 1
        && cig >= 1
        && cog >= 1
        && s.groups * mtiles <= 65535
        && s.batch <= 65535
        && s.batch >= 1
        && small(s.batch * s.cin * s.lin)
        && small(s.batch * s.cout * lout)
        && small(s.cout * cig * s.k)
}

/// Input channels the forward stages per pass for `cig` channels per group and `k` taps.
pub fn channels_per_pass(cig: usize, k: usize) -> usize {
    let kp = padded_taps(k);
    // 16 weight rows of cc·kp + 8 and cc windows of FRAMES + kp + 16, bf16
    let per = 2 * (16 * kp + FRAMES + kp + 16);
    let most = ((FORWARD_SMEM - 2 * 16 * 8) / per).clamp(1, cig.max(1));
    // as many passes as `most` needs, the channels spread evenly over them
    cig.max(1).div_ceil(cig.max(1).div_ceil(most))
}

/// The forward kernel's dynamic shared memory for `cc` channels per pass.
pub fn forward_smem(cc: usize, k: usize) -> u32 {
    let kp = padded_taps(k);
    (2 * (16 * (cc * kp + 8) + cc * (FRAMES + kp + 16))) as u32
}

/// The forward kernel's launch configuration (reduction channels `cig` per group, `cog`
/// outputs per group, output length `lout`).
fn forward_cfg(
    batch: usize,
    groups: usize,
    cig: usize,
    cog: usize,
    lout: usize,
    k: usize,
) -> (LaunchConfig, usize) {
    let cc = channels_per_pass(cig, k);
    let cfg = LaunchConfig {
        grid_dim: (
            lout.div_ceil(FRAMES) as u32,
            (groups * cog.div_ceil(16)) as u32,
            batch as u32,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: forward_smem(cc, k),
    };
    (cfg, cc)
}

/// y = conv1d(x, w) + bias, planned (the shape must be [`supported`]).
pub fn forward<'a>(
    y: &'a Tensor,
    x: &'a Tensor,
    w: &'a Tensor,
    bias: Option<&'a Tensor>,
    s: &Conv1dShape,
) -> Planned<'a> {
    forward_kernel(y, x, w, bias, s, false)
}

/// dx = the input gradient (written), planned: the forward kernel over dy with the weights
/// flip-transposed, padding k − 1 − padding and output length lin.
pub fn backward_input<'a>(
    dx: &'a Tensor,
    dy: &'a Tensor,
    w: &'a Tensor,
    s: &Conv1dShape,
) -> Planned<'a> {
    forward_kernel(dx, dy, w, None, s, true)
}

/// The forward kernel from `x` into `y`, planned; `flip` runs it as the input gradient (dy
/// into dx): channels and lengths swapped, weights flip-transposed, padding k − 1 − padding.
fn forward_kernel<'a>(
    y: &'a Tensor,
    x: &'a Tensor,
    w: &'a Tensor,
    bias: Option<&'a Tensor>,
    s: &Conv1dShape,
    flip: bool,
) -> Planned<'a> {
    let lout = s.lout().unwrap_or(0);
    let (cin, cout, lin, lout, pad) = if flip {
        (s.cout, s.cin, lout, s.lin, s.k - 1 - s.padding)
    } else {
        (s.cin, s.cout, s.lin, lout, s.padding)
    };
    let (cfg, cc) = forward_cfg(
        s.batch,
        s.groups,
        cin / s.groups,
        cout / s.groups,
        lout,
        s.k,
    );
    Conv1dTcForward {
        y,
        x,
        w,
        bias,
        cin: cin as i32,
        cout: cout as i32,
        lin: lin as i32,
        lout: lout as i32,
        k: s.k as i32,
        pad: pad as i32,
        groups: s.groups as i32,
        cc: cc as i32,
        flip: flip as i32,
    }
    .planned(cfg)
}

/// How the weight gradient's reduction over (waveform, chunk of [`CHUNK`] frames) units is
/// split: `splits` ranges of `per` units. A function of the shape only, so the order of the
/// additions, and the result, repeat on every run and card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightSplit {
    pub splits: usize,
    pub per: usize,
}

impl WeightSplit {
    /// f32 elements of the partials: one weight tensor per split.
    pub fn partials_len(&self, s: &Conv1dShape) -> usize {
        self.splits * s.cout * s.cin_per_group() * s.k
    }
}

/// The partial kernel's grid without the splits: (tap-tile blocks, groups × m tiles).
fn weight_grid(s: &Conv1dShape) -> (usize, usize) {
    let tiles = s.cin_per_group() * padded_taps(s.k) / 8;
    (
        tiles.div_ceil(TAP_TILES),
        s.groups * s.cout_per_group().div_ceil(16),
    )
}

/// The split of `s`'s weight gradient (see [`WeightSplit`]).
pub fn weight_split(s: &Conv1dShape) -> WeightSplit {
    let lout = s.lout().unwrap_or(0);
    let units = (s.batch * lout.div_ceil(CHUNK)).max(1);
    let (gx, gy) = weight_grid(s);
    let weights = (s.cout * s.cin_per_group() * s.k).max(1);
    let want = WG_BLOCKS
        .div_ceil(gx * gy)
        .min(units)
        .min((WG_MAX_PARTIAL / weights).max(1))
        .clamp(1, 65535);
    let per = units.div_ceil(want);
    WeightSplit {
        splits: units.div_ceil(per),
        per,
    }
}

/// The partial kernel's dynamic shared memory: dY [16][CHUNK + 8] and the windows of the
/// channels one block's tap tiles touch.
pub fn weight_smem(s: &Conv1dShape) -> u32 {
    let kp = padded_taps(s.k);
    let nch = s.cin_per_group().min(31 / (kp / 8) + 2);
    (2 * (16 * (CHUNK + 8) + nch * (CHUNK + kp))) as u32
}

/// The partials' launch configuration.
pub fn weight_cfg(s: &Conv1dShape, ws: &WeightSplit) -> LaunchConfig {
    let (gx, gy) = weight_grid(s);
    LaunchConfig {
        grid_dim: (gx as u32, gy as u32, ws.splits as u32),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: weight_smem(s),
    }
}

/// dw += the weight gradient, planned: the partials into `part` (`ws.partials_len(s)` f32),
/// then their ordered sum into dw (colsum_final).
pub fn backward_weight<'a>(
    dw: &'a Tensor,
    part: &'a Tensor,
    dy: &'a Tensor,
    x: &'a Tensor,
    s: &Conv1dShape,
    ws: &WeightSplit,
) -> Vec<Planned<'a>> {
    let partial = with_dims!(
        @no_stride Conv1dTcBackwardWeightPartial {
            part,
            dy,
            x,
            batch: s.batch as i32,
            splits: ws.splits as i32,
            per: ws.per as i32,
        },
        Dims::of(s)
    );
    vec![
        partial.planned(weight_cfg(s, ws)),
        colsum_finish(
            dw,
            None,
            part,
            ws.splits,
            s.cout * s.cin_per_group() * s.k,
            true,
        ),
    ]
}

fn all_bf16(ts: &[Option<&Tensor>]) -> bool {
    ts.iter().flatten().all(|t| t.dtype == DType::BF16)
}

/// Runs the forward with variant 2 when the call is bf16 and [`supported`]; returns false
/// (nothing launched) otherwise.
pub fn try_conv1d(be: &CudaBackend, y: &mut Tensor, a: ConvInput, s: &Conv1dShape) -> Result<bool> {
    if !supported(s) || !all_bf16(&[Some(y), Some(a.x), Some(a.w), a.bias]) {
        return Ok(false);
    }
    forward(y, a.x, a.w, a.bias, s).launch(be)?;
    Ok(true)
}

/// The input and weight gradients with variant 2 when the call is bf16 and [`supported`]
/// (the bias gradient stays with the caller); returns false (nothing launched) otherwise.
pub fn try_conv1d_backward(be: &CudaBackend, a: &ConvBackward, s: &Conv1dShape) -> Result<bool> {
    let dx = a.dx.as_deref();
    if !supported(s) || !all_bf16(&[dx, Some(&*a.dw), Some(a.dy), Some(a.x), Some(a.w)]) {
        return Ok(false);
    }
    if let Some(dx) = a.dx.as_deref() {
        backward_input(dx, a.dy, a.w, s).launch(be)?;
    }
    let ws = weight_split(s);
    let part = be.alloc(&[ws.partials_len(s)], DType::F32)?;
    for p in backward_weight(a.dw, &part, a.dy, a.x, s, &ws) {
        p.launch(be)?;
    }
    Ok(true)
}
