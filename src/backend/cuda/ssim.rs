//! kernels/ssim.cu (fp32 planes; see that file for the conventions): declarations and the CUDA
//! implementation of [`SsimOps`]. The per-pixel work (filtering, maps, reductions, pooling and
//! their transposes) runs in fp32 kernels on images cast to fp32; only the per-plane scale terms
//! (2 numbers per plane and scale) go to the host, which combines them in f64 exactly as the
//! CPU reference does.

use super::launch::kernels;
use super::{block_per, grid_stride, CudaBackend};
use crate::backend::api::{Backend, ElementwiseOps, ImagePair, SsimOps};
use crate::backend::cpu::ssim as cpu;
use crate::tensor::{DType, Tensor};
use anyhow::Result;

kernels! { file "ssim";
    /// out [5][planes][filtered(h)][w]: x, y, x², y², xy filtered along H.
    SsimFilterRows = ssim_filter_rows(out: out f32, x: inp f32, y: inp f32, planes: val i64,
        h: val i32, w: val i32);
    /// out [maps][planes][h][filtered(w)] from input [maps][planes][h][w].
    SsimFilterCols = ssim_filter_cols(out: out f32, input: inp f32, maps: val i32,
        planes: val i64, h: val i32, w: val i32);
    /// The transpose of ssim_filter_cols.
    SsimFilterColsT = ssim_filter_cols_t(out: out f32, input: inp f32, maps: val i32,
        planes: val i64, h: val i32, w: val i32);
    /// One block per plane: mean cs and mean ssim from the five filtered maps.
    SsimPlaneMeans = ssim_plane_means(cs_mean: out f32, ssim_mean: out f32, f: inp f32,
        planes: val i64, plane: val i32, c1: val f32, c2: val f32);
    /// out [3][planes][plane]: gradients w.r.t. μx, E[x²], E[xy] of gs·mean(ssim) + gc·mean(cs).
    SsimGradMaps = ssim_grad_maps(out: out f32, f: inp f32, gs: inp f32, gc: inp f32,
        planes: val i64, plane: val i32, c1: val f32, c2: val f32);
    /// dx [planes][h][w] (= or += when `accumulate`) from the column-transposed maps.
    SsimFilterRowsTCombine = ssim_filter_rows_t_combine(dx: out f32, input: inp f32,
        x: inp f32, y: inp f32, planes: val i64, h: val i32, w: val i32, accumulate: val i32);
    /// out [planes][pooled(h)][pooled(w)].
    SsimAvgPool = ssim_avg_pool(out: out f32, x: inp f32, planes: val i64, h: val i32,
        w: val i32);
    /// dx [planes][h][w] += the transpose of ssim_avg_pool applied to d.
    SsimAvgPoolBackwardAdd = ssim_avg_pool_backward_add(dx: out f32, d: inp f32,
        planes: val i64, h: val i32, w: val i32);
}

/// The size of an axis after 'valid' 11-tap filtering (unchanged when shorter than 11).
pub fn filtered(len: usize) -> usize {
    if len >= 11 {
        len - 10
    } else {
        len
    }
}

/// The size of an axis after 2×2 average pooling with padding len % 2.
pub fn pooled(len: usize) -> usize {
    (len + 2 * (len % 2) - 2) / 2 + 1
}

/// An fp32 view of x: x itself when f32 (the kernels only read it), else a cast copy.
fn as_f32(b: &CudaBackend, x: &Tensor) -> Result<Tensor> {
    if x.dtype == DType::F32 {
        return Ok(x.clone());
    }
    let mut out = b.alloc(&x.shape, DType::F32)?;
    b.cast(&mut out, x)?;
    Ok(out)
}

/// The column filter `SsimFilterCols` ([maps][planes][oh][w] → [maps][planes][oh][ow]) or its
/// transpose `SsimFilterColsT` ([maps][planes][oh][ow] → [maps][planes][oh][w]) of `input`,
/// launched on `b` into a new f32 tensor of `len` elements, one thread each; its errors return
/// from the calling function (`?`).
macro_rules! column_pass {
    ($K:ident, $b:expr, $input:expr, $maps:expr, ($p:expr, $oh:expr, $w:expr), $len:expr) => {{
        let len: usize = $len;
        let mut out = $b.alloc(&[len], DType::F32)?;
        $K {
            out: &mut out,
            input: $input,
            maps: $maps,
            planes: $p as i64,
            h: $oh as i32,
            w: $w as i32,
        }
        .launch($b, grid_stride(len))?;
        out
    }};
}

/// The fp32 image pyramid of x and y (levels 0..levels, ×2 average pooling between).
struct Levels<'a> {
    b: &'a CudaBackend,
    planes: usize,
    sizes: Vec<(usize, usize)>,
    xs: Vec<Tensor>,
    ys: Vec<Tensor>,
    c1: f32,
    c2: f32,
}

impl<'a> Levels<'a> {
    fn new(
        b: &'a CudaBackend,
        x: &Tensor,
        y: &Tensor,
        data_range: f32,
        levels: usize,
    ) -> Result<Self> {
        let (h, w) = (x.shape[2], x.shape[3]);
        let planes = x.numel() / (h * w);
        let mut xs = vec![as_f32(b, x)?];
        let mut ys = vec![as_f32(b, y)?];
        let mut sizes = vec![(h, w)];
        for l in 1..levels {
            let (hh, ww) = sizes[l - 1];
            let (oh, ow) = (pooled(hh), pooled(ww));
            let mut nx = b.alloc(&[planes * oh * ow], DType::F32)?;
            let mut ny = b.alloc(&[planes * oh * ow], DType::F32)?;
            for (out, x) in [(&mut nx, &xs[l - 1]), (&mut ny, &ys[l - 1])] {
                SsimAvgPool {
                    out,
                    x,
                    planes: planes as i64,
                    h: hh as i32,
                    w: ww as i32,
                }
                .launch(b, grid_stride(planes * oh * ow))?;
            }
            xs.push(nx);
            ys.push(ny);
            sizes.push((oh, ow));
        }
        let r = data_range as f64;
        Ok(Levels {
            b,
            planes,
            sizes,
            xs,
            ys,
            c1: ((cpu::K1 * r) * (cpu::K1 * r)) as f32,
            c2: ((cpu::K2 * r) * (cpu::K2 * r)) as f32,
        })
    }

    /// The five filtered maps [5][planes][oh][ow] of level l.
    fn filtered(&self, l: usize) -> Result<Tensor> {
        let b = self.b;
        let (h, w) = self.sizes[l];
        let (oh, ow) = (filtered(h), filtered(w));
        let p = self.planes;
        let mut rows = b.alloc(&[5 * p * oh * w], DType::F32)?;
        SsimFilterRows {
            out: &mut rows,
            x: &self.xs[l],
            y: &self.ys[l],
            planes: p as i64,
            h: h as i32,
            w: w as i32,
        }
        .launch(b, grid_stride(p * oh * w))?;
        let f = column_pass!(SsimFilterCols, b, &rows, 5, (p, oh, w), 5 * p * oh * ow);
        Ok(f)
    }

    /// Per-plane (mean cs, mean ssim) of level l.
    fn means(&self, l: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let b = self.b;
        let (h, w) = self.sizes[l];
        let f = self.filtered(l)?;
        let mut cs = b.alloc(&[self.planes], DType::F32)?;
        let mut ss = b.alloc(&[self.planes], DType::F32)?;
        let plane = filtered(h) * filtered(w);
        let one_per_plane = block_per(self.planes, 256, 0);
        SsimPlaneMeans {
            cs_mean: &mut cs,
            ssim_mean: &mut ss,
            f: &f,
            planes: self.planes as i64,
            plane: plane as i32,
            c1: self.c1,
            c2: self.c2,
        }
        .launch(b, one_per_plane)?;
        Ok((cs.to_vec_f32()?, ss.to_vec_f32()?))
    }

    /// Writes into dx [planes·h·w] (fp32) the gradient of Σ_p gs[p]·ssim_p + gc[p]·cs_p at
    /// level l w.r.t. x_l.
    fn backward(&self, dx: &mut Tensor, l: usize, gs: Vec<f32>, gc: Vec<f32>) -> Result<()> {
        let b = self.b;
        let (h, w) = self.sizes[l];
        let (oh, ow) = (filtered(h), filtered(w));
        let p = self.planes;
        let f = self.filtered(l)?;
        let device = self.xs[l].device();
        let gs = Tensor::from_f32(&[p], gs)?.to_device(&device)?;
        let gc = Tensor::from_f32(&[p], gc)?.to_device(&device)?;
        let mut maps = b.alloc(&[3 * p * oh * ow], DType::F32)?;
        SsimGradMaps {
            out: &mut maps,
            f: &f,
            gs: &gs,
            gc: &gc,
            planes: p as i64,
            plane: (oh * ow) as i32,
            c1: self.c1,
            c2: self.c2,
        }
        .launch(b, grid_stride(p * oh * ow))?;
        let cols = column_pass!(SsimFilterColsT, b, &maps, 3, (p, oh, w), 3 * p * oh * w);
        SsimFilterRowsTCombine {
            dx,
            input: &cols,
            x: &self.xs[l],
            y: &self.ys[l],
            planes: p as i64,
            h: h as i32,
            w: w as i32,
            accumulate: false as i32,
        }
        .launch(b, grid_stride(p * h * w))
    }
}

impl SsimOps for CudaBackend {
    fn ssim(&self, p: ImagePair) -> Result<f32> {
        let lv = Levels::new(self, p.x, p.y, p.data_range, 1)?;
        let (_, ss) = lv.means(0)?;
        Ok((ss.iter().map(|&v| v as f64).sum::<f64>() / ss.len() as f64) as f32)
    }

    fn ms_ssim(&self, pair: ImagePair, grad: Option<(&mut Tensor, f32)>) -> Result<f32> {
        let lv = Levels::new(self, pair.x, pair.y, pair.data_range, 5)?;
        let p = lv.planes;
        let mut terms = vec![[0.0f64; 5]; p];
        for l in 0..5 {
            let (cs, ss) = lv.means(l)?;
            for (i, t) in terms.iter_mut().enumerate() {
                t[l] = if l < 4 { cs[i] } else { ss[i] } as f64;
            }
        }
        let d = grad.as_ref().map_or(0.0, |g| g.1) as f64 / p as f64;
        let combined: Vec<(f64, [f64; 5])> =
            terms.iter().map(|t| cpu::ms_ssim_combine(t, d)).collect();
        let value = (combined.iter().map(|c| c.0).sum::<f64>() / p as f64) as f32;
        let Some((dx, _)) = grad else {
            return Ok(value);
        };
        let mut upper: Option<Tensor> = None;
        for l in (0..5).rev() {
            let dl: Vec<f32> = combined.iter().map(|c| c.1[l] as f32).collect();
            let zero = vec![0.0f32; p];
            let (hh, ww) = lv.sizes[l];
            let mut g = self.alloc(&[p * hh * ww], DType::F32)?;
            if l < 4 {
                lv.backward(&mut g, l, zero, dl)?;
            } else {
                lv.backward(&mut g, l, dl, zero)?;
            }
            if let Some(u) = &upper {
                SsimAvgPoolBackwardAdd {
                    dx: &mut g,
                    d: u,
                    planes: p as i64,
                    h: hh as i32,
                    w: ww as i32,
                }
                .launch(self, grid_stride(p * hh * ww))?;
            }
            upper = Some(g);
        }
        let g = upper.expect("five levels");
        if dx.dtype == DType::F32 {
            self.copy(dx, &g)?;
        } else {
            self.cast(dx, &g)?;
        }
        Ok(value)
    }
}
