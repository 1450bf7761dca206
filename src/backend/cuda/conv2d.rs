//! kernels/conv2d.cu: declarations and the CUDA implementation of [`Conv2dOps`].

use super::launch::kernels;
use super::CudaBackend;
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

impl Conv2dOps for CudaBackend {
    fn conv2d(
        &self,
        y: &mut Tensor,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        s: &Conv2dShape,
    ) -> Result<()> {
        check(s)?;
        let cfg = direct_cfg(s, s.cout);
        let (has_bias, n, cin, cout) = (
            bias.is_some() as i32,
            s.n as i32,
            s.cin as i32,
            s.cout as i32,
        );
        let (height, width) = (s.h as i32, s.w as i32);
        match s.k {
            1 => Conv2dForwardK1 {
                y,
                x,
                w,
                bias,
                has_bias,
                n,
                cin,
                cout,
                height,
                width,
            }
            .launch(self, cfg),
            _ => Conv2dForwardK3 {
                y,
                x,
                w,
                bias,
                has_bias,
                n,
                cin,
                cout,
                height,
                width,
            }
            .launch(self, cfg),
        }
    }
    fn conv2d_backward_input(
        &self,
        dx: &mut Tensor,
        dy: &Tensor,
        w: &Tensor,
        s: &Conv2dShape,
    ) -> Result<()> {
        check(s)?;
        let cfg = direct_cfg(s, s.cin);
        let (n, cin, cout, height, width) = (
            s.n as i32,
            s.cin as i32,
            s.cout as i32,
            s.h as i32,
            s.w as i32,
        );
        match s.k {
            1 => Conv2dBackwardInputK1 {
                dx,
                dy,
                w,
                n,
                cin,
                cout,
                height,
                width,
            }
            .launch(self, cfg),
            _ => Conv2dBackwardInputK3 {
                dx,
                dy,
                w,
                n,
                cin,
                cout,
                height,
                width,
            }
            .launch(self, cfg),
        }
    }
    fn conv2d_backward_params(
        &self,
        dw: &mut Tensor,
        dbias: Option<&mut Tensor>,
        dy: &Tensor,
        x: &Tensor,
        s: &Conv2dShape,
    ) -> Result<()> {
        check(s)?;
        let cfg = LaunchConfig {
            grid_dim: ((s.cout * s.cin) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let (n, cin, cout, height, width) = (
            s.n as i32,
            s.cin as i32,
            s.cout as i32,
            s.h as i32,
            s.w as i32,
        );
        match s.k {
            1 => Conv2dBackwardWeightK1 {
                dw,
                dy,
                x,
                n,
                cin,
                cout,
                height,
                width,
            }
            .launch(self, cfg)?,
            _ => Conv2dBackwardWeightK3 {
                dw,
                dy,
                x,
                n,
                cin,
                cout,
                height,
                width,
            }
            .launch(self, cfg)?,
        }
        if let Some(db) = dbias {
            let cfg = LaunchConfig {
                grid_dim: (s.cout as u32, 1, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            Conv2dBackwardBias {
                db,
                dy,
                n,
                cout,
                hw: s.hw() as i64,
            }
            .launch(self, cfg)?;
        }
        Ok(())
    }
}
