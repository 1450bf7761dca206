//! kernels/conv2d.cu: declarations and the CUDA implementation of [`Conv2dOps`].

use super::launch::kernels;
use super::{block_per, CudaBackend};
use crate::backend::api::conv1d::{ConvBackward, ConvInput};
use crate::backend::api::conv2d::{Conv2dOps, Conv2dShape};
use crate::tensor::Tensor;
use anyhow::{bail, Result};
use cudarc::driver::LaunchConfig;

kernels! { file "conv2d";
    /// 16×16 output pixels × CONV_CO output channels per block of 256 threads; grid
    /// (tiles, ⌈cout / CONV_CO⌉, n).
    Conv2dForwardK1 = conv2d_forward_k1<T>(y: out T, x: inp T, w: inp T, bias: opt_inp T,
        has_bias: val i32, n: val i32, cin: val i32, cout: val i32, height: val i32,
        width: val i32);
    Conv2dForwardK3 = conv2d_forward_k3<T>(y: out T, x: inp T, w: inp T, bias: opt_inp T,
        has_bias: val i32, n: val i32, cin: val i32, cout: val i32, height: val i32,
        width: val i32);
    /// The forward kernel on dy with the weights transposed and flipped; grid over cin.
    Conv2dBackwardInputK1 = conv2d_backward_input_k1<T>(dx: out T, dy: inp T, w: inp T,
        n: val i32, cin: val i32, cout: val i32, height: val i32, width: val i32);
    Conv2dBackwardInputK3 = conv2d_backward_input_k3<T>(dx: out T, dy: inp T, w: inp T,
        n: val i32, cin: val i32, cout: val i32, height: val i32, width: val i32);
    /// One block per (co, ci) weight slice, accumulating into dw.
    Conv2dBackwardWeightK1 = conv2d_backward_weight_k1<T>(dw: out T, dy: inp T, x: inp T,
        n: val i32, cin: val i32, cout: val i32, height: val i32, width: val i32);
    Conv2dBackwardWeightK3 = conv2d_backward_weight_k3<T>(dw: out T, dy: inp T, x: inp T,
        n: val i32, cin: val i32, cout: val i32, height: val i32, width: val i32);
    /// One block per output channel, accumulating into db.
    Conv2dBackwardBias = conv2d_backward_bias<T>(db: out T, dy: inp T, n: val i32,
        cout: val i32, hw: val i64);
}

/// Must match CONV_TILE, CONV_CO and CONV_THREADS in kernels/conv2d.cu.
const TILE: usize = 16;
const CO: usize = 8;
const THREADS: u32 = 256;

fn check(s: &Conv2dShape) -> Result<()> {
    if s.k != 1 && s.k != 3 {
        bail!(
            "conv2d: the CUDA kernels take 1×1 or 3×3 kernels, found {}×{}",
            s.k,
            s.k
        );
    }
    if s.n > 65535 {
        bail!("conv2d: batch {} exceeds the grid limit of 65535", s.n);
    }
    Ok(())
}

fn direct_cfg(s: &Conv2dShape, out_channels: usize) -> LaunchConfig {
    let tiles = s.h.div_ceil(TILE) * s.w.div_ceil(TILE);
    LaunchConfig {
        grid_dim: (tiles as u32, out_channels.div_ceil(CO) as u32, s.n as u32),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The geometry arguments every conv2d kernel takes, as i32.
struct Dims {
    n: i32,
    cin: i32,
    cout: i32,
    height: i32,
    width: i32,
}

fn dims(s: &Conv2dShape) -> Dims {
    Dims {
        n: s.n as i32,
        cin: s.cin as i32,
        cout: s.cout as i32,
        height: s.h as i32,
        width: s.w as i32,
    }
}

/// Launches the 1×1 or the 3×3 instance (per `s.k`) of a kernel pair declared with the same
/// arguments; the geometry arguments come from `dims(s)`.
macro_rules! launch_k1_k3 {
    (
        [$k1:ident, $k3:ident], $b:expr, $s:expr, $cfg:expr,
        { $($f:ident $(: $v:expr)?),* $(,)? }
    ) => {{
        let Dims { n, cin, cout, height, width } = dims($s);
        match $s.k {
            1 => $k1 { $($f $(: $v)?,)* n, cin, cout, height, width }.launch($b, $cfg),
            _ => $k3 { $($f $(: $v)?,)* n, cin, cout, height, width }.launch($b, $cfg),
        }
    }};
}

fn channel_cfg(blocks: usize) -> LaunchConfig {
    block_per(blocks, THREADS, 0)
}

impl Conv2dOps for CudaBackend {
    fn conv2d(&self, y: &mut Tensor, a: ConvInput, s: &Conv2dShape) -> Result<()> {
        check(s)?;
        let cfg = direct_cfg(s, s.cout);
        let has_bias = a.bias.is_some() as i32;
        launch_k1_k3!([Conv2dForwardK1, Conv2dForwardK3], self, s, cfg, {
            y, x: a.x, w: a.w, bias: a.bias, has_bias,
        })
    }
    fn conv2d_backward(&self, a: ConvBackward, s: &Conv2dShape) -> Result<()> {
        check(s)?;
        if let Some(dx) = a.dx {
            let cfg = direct_cfg(s, s.cin);
            launch_k1_k3!([Conv2dBackwardInputK1, Conv2dBackwardInputK3], self, s, cfg, {
                dx, dy: a.dy, w: a.w,
            })?;
        }
        let cfg = channel_cfg(s.cout * s.cin);
        launch_k1_k3!([Conv2dBackwardWeightK1, Conv2dBackwardWeightK3], self, s, cfg, {
            dw: a.dw, dy: a.dy, x: a.x,
        })?;
        if let Some(db) = a.db {
            Conv2dBackwardBias {
                db,
                dy: a.dy,
                n: s.n as i32,
                cout: s.cout as i32,
                hw: s.hw() as i64,
            }
            .launch(self, channel_cfg(s.cout))?;
        }
        Ok(())
    }
}
