//! SSIM and MS-SSIM (Wang, Simoncelli, Bovik 2003) with the conventions of the
//! `pytorch_msssim` package, and the MS-SSIM gradient with respect to the first image.
//!
//! Per [h, w] plane (one image channel): Gaussian window (11 taps, σ 1.5, normalised), applied
//! separably with 'valid' filtering, first along H then along W; an axis shorter than the
//! window is left unfiltered. With C1 = (K1·range)², C2 = (K2·range)²:
//! μ = G∗x, σ² = G∗x² − μ², σ12 = G∗(xy) − μxμy, cs = (2σ12 + C2)/(σx² + σy² + C2),
//! ssim = (2μxμy + C1)/(μx² + μy² + C1)·cs, each averaged over the filtered map.
//! MS-SSIM: 5 scales, average pooling 2×2 (stride 2, padding h%2 and w%2 with the padding
//! counted, as `F.avg_pool2d`) between scales; value = Π_{l<4} relu(cs_l)^{w_l} ·
//! relu(ssim_4)^{w_4}, averaged over planes. Everything is computed in f64.

use super::{input, Cpu, HostOut};
use crate::backend::api::{ImagePair, SsimOps};
use crate::tensor::Tensor;
use anyhow::Result;
use rayon::prelude::*;

impl SsimOps for Cpu {
    fn ssim(&self, p: ImagePair) -> Result<f32> {
        let (h, w) = (p.x.shape[2], p.x.shape[3]);
        Ok(ssim(&input(p.x)?, &input(p.y)?, h, w, p.data_range as f64) as f32)
    }
    fn ms_ssim(&self, p: ImagePair, grad: Option<(&mut Tensor, f32)>) -> Result<f32> {
        let (h, w, range) = (p.x.shape[2], p.x.shape[3], p.data_range as f64);
        let (xv, yv) = (input(p.x)?, input(p.y)?);
        let Some((dx, dvalue)) = grad else {
            return Ok(ms_ssim(&xv, &yv, h, w, range) as f32);
        };
        let mut o = HostOut::new(dx)?;
        let v = ms_ssim_backward(&mut o, &xv, &yv, h, w, range, dvalue as f64);
        o.finish()?;
        Ok(v as f32)
    }
}

pub const WIN_SIZE: usize = 11;
pub const WIN_SIGMA: f64 = 1.5;
pub const K1: f64 = 0.01;
pub const K2: f64 = 0.03;
pub const MS_SSIM_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

/// The smallest side MS-SSIM accepts: larger than (win − 1)·2⁴ = 160, as `pytorch_msssim`.
pub const MS_SSIM_MIN_SIDE: usize = (WIN_SIZE - 1) * 16 + 1;

/// The normalised 1-D Gaussian window (taps at −size/2 ..= size/2).
pub fn gaussian_window(size: usize, sigma: f64) -> Vec<f64> {
    let half = (size / 2) as f64;
    let g: Vec<f64> = (0..size)
        .map(|i| {
            let c = i as f64 - half;
            (-(c * c) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let s: f64 = g.iter().sum();
    g.into_iter().map(|v| v / s).collect()
}

/// A plane of f64 values.
#[derive(Clone)]
struct Plane {
    h: usize,
    w: usize,
    v: Vec<f64>,
}

/// Valid separable filtering: along H when h ≥ taps, then along W when w ≥ taps.
fn filter(p: &Plane, g: &[f64]) -> Plane {
    let t = g.len();
    let mut cur = p.clone();
    if cur.h >= t {
        let oh = cur.h - t + 1;
        let mut v = vec![0.0; oh * cur.w];
        for oy in 0..oh {
            for (j, &gj) in g.iter().enumerate() {
                let src = &cur.v[(oy + j) * cur.w..][..cur.w];
                let dst = &mut v[oy * cur.w..][..cur.w];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d += gj * s;
                }
            }
        }
        cur = Plane { h: oh, w: cur.w, v };
    }
    if cur.w >= t {
        let ow = cur.w - t + 1;
        let mut v = vec![0.0; cur.h * ow];
        for y in 0..cur.h {
            let src = &cur.v[y * cur.w..][..cur.w];
            for ox in 0..ow {
                v[y * ow + ox] = g.iter().zip(&src[ox..ox + t]).map(|(a, b)| a * b).sum();
            }
        }
        cur = Plane { h: cur.h, w: ow, v };
    }
    cur
}

/// The transpose of `filter` (from a gradient on the filtered map to the [h, w] plane).
fn filter_t(d: &Plane, h: usize, w: usize, g: &[f64]) -> Plane {
    let t = g.len();
    let mut cur = d.clone();
    if w >= t {
        let mut v = vec![0.0; cur.h * w];
        for y in 0..cur.h {
            for ox in 0..cur.w {
                let gv = cur.v[y * cur.w + ox];
                for (j, &gj) in g.iter().enumerate() {
                    v[y * w + ox + j] += gj * gv;
                }
            }
        }
        cur = Plane { h: cur.h, w, v };
    }
    if h >= t {
        let mut v = vec![0.0; h * cur.w];
        for oy in 0..cur.h {
            for (j, &gj) in g.iter().enumerate() {
                let src = &cur.v[oy * cur.w..][..cur.w];
                let dst = &mut v[(oy + j) * cur.w..][..cur.w];
                for (dd, &s) in dst.iter_mut().zip(src) {
                    *dd += gj * s;
                }
            }
        }
        cur = Plane { h, w: cur.w, v };
    }
    cur
}

/// 2×2 average pooling, stride 2, padding (h%2, w%2) on both sides, divisor always 4.
fn avg_pool(p: &Plane) -> Plane {
    let (ph, pw) = (p.h % 2, p.w % 2);
    let (oh, ow) = ((p.h + 2 * ph - 2) / 2 + 1, (p.w + 2 * pw - 2) / 2 + 1);
    let mut v = vec![0.0; oh * ow];
    for oy in 0..oh {
        for ox in 0..ow {
            let mut s = 0.0;
            for a in 0..2 {
                for b in 0..2 {
                    let (iy, ix) = (
                        (2 * oy + a) as isize - ph as isize,
                        (2 * ox + b) as isize - pw as isize,
                    );
                    if iy >= 0 && ix >= 0 && (iy as usize) < p.h && (ix as usize) < p.w {
                        s += p.v[iy as usize * p.w + ix as usize];
                    }
                }
            }
            v[oy * ow + ox] = s / 4.0;
        }
    }
    Plane { h: oh, w: ow, v }
}

/// The transpose of `avg_pool` back onto an [h, w] plane.
fn avg_pool_t(d: &Plane, h: usize, w: usize) -> Plane {
    let (ph, pw) = (h % 2, w % 2);
    let mut v = vec![0.0; h * w];
    for oy in 0..d.h {
        for ox in 0..d.w {
            let g = d.v[oy * d.w + ox] / 4.0;
            for a in 0..2 {
                for b in 0..2 {
                    let (iy, ix) = (
                        (2 * oy + a) as isize - ph as isize,
                        (2 * ox + b) as isize - pw as isize,
                    );
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                        v[iy as usize * w + ix as usize] += g;
                    }
                }
            }
        }
    }
    Plane { h, w, v }
}

/// Mean SSIM and mean cs of one plane pair at one scale; with `grad = Some((gs, gc))` also
/// the gradient w.r.t. x of gs·mean(ssim) + gc·mean(cs).
fn ssim_level(
    x: &Plane,
    y: &Plane,
    g: &[f64],
    c1: f64,
    c2: f64,
    grad: Option<(f64, f64)>,
) -> (f64, f64, Option<Plane>) {
    let sq = |a: &Plane, b: &Plane| Plane {
        h: a.h,
        w: a.w,
        v: a.v.iter().zip(&b.v).map(|(p, q)| p * q).collect(),
    };
    let mu1 = filter(x, g);
    let mu2 = filter(y, g);
    let s11 = filter(&sq(x, x), g);
    let s22 = filter(&sq(y, y), g);
    let s12 = filter(&sq(x, y), g);
    let np = mu1.v.len();
    let (mut ssim_sum, mut cs_sum) = (0.0, 0.0);
    let mut gmu1 = vec![0.0; if grad.is_some() { np } else { 0 }];
    let mut gs11 = gmu1.clone();
    let mut gs12 = gmu1.clone();
    for i in 0..np {
        let (m1, m2) = (mu1.v[i], mu2.v[i]);
        let sig1 = s11.v[i] - m1 * m1;
        let sig2 = s22.v[i] - m2 * m2;
        let sig12 = s12.v[i] - m1 * m2;
        let (a, b) = (2.0 * sig12 + c2, sig1 + sig2 + c2);
        let (p, q) = (2.0 * m1 * m2 + c1, m1 * m1 + m2 * m2 + c1);
        let (cs, l) = (a / b, p / q);
        cs_sum += cs;
        ssim_sum += l * cs;
        if let Some((gs, gc)) = grad {
            let (gs, gc) = (gs / np as f64, gc / np as f64);
            let g_l = gs * cs;
            let g_cs = gc + gs * l;
            let g12 = g_cs * 2.0 / b;
            let g11 = -g_cs * cs / b;
            gs12[i] = g12;
            gs11[i] = g11;
            gmu1[i] = g_l * 2.0 * (m2 - l * m1) / q - g12 * m2 - 2.0 * g11 * m1;
        }
    }
    let dx = grad.map(|_| {
        let shape = |v| Plane {
            h: mu1.h,
            w: mu1.w,
            v,
        };
        let a = filter_t(&shape(gmu1), x.h, x.w, g);
        let b = filter_t(&shape(gs11), x.h, x.w, g);
        let c = filter_t(&shape(gs12), x.h, x.w, g);
        Plane {
            h: x.h,
            w: x.w,
            v: (0..x.v.len())
                .map(|i| a.v[i] + 2.0 * x.v[i] * b.v[i] + y.v[i] * c.v[i])
                .collect(),
        }
    });
    (ssim_sum / np as f64, cs_sum / np as f64, dx)
}

fn planes(x: &[f32], h: usize, w: usize) -> Vec<Plane> {
    x.chunks(h * w)
        .map(|c| Plane {
            h,
            w,
            v: c.iter().map(|&v| v as f64).collect(),
        })
        .collect()
}

fn constants(data_range: f64) -> (Vec<f64>, f64, f64) {
    (
        gaussian_window(WIN_SIZE, WIN_SIGMA),
        (K1 * data_range).powi(2),
        (K2 * data_range).powi(2),
    )
}

/// Mean SSIM over planes of x and y (each [planes, h, w]), as `pytorch_msssim.ssim`
/// (no clamping of negative values).
pub fn ssim(x: &[f32], y: &[f32], h: usize, w: usize, data_range: f64) -> f64 {
    plane_mean(x, y, (h, w), data_range, |a, b, g, c1, c2| {
        ssim_level(a, b, g, c1, c2, None).0
    })
}

/// The mean over the planes of x and y (each [planes, h, w]) of `value(x plane, y plane,
/// window, c1, c2)`.
fn plane_mean(
    x: &[f32],
    y: &[f32],
    (h, w): (usize, usize),
    data_range: f64,
    value: impl Fn(&Plane, &Plane, &[f64], f64, f64) -> f64 + Sync,
) -> f64 {
    let (g, c1, c2) = constants(data_range);
    let (px, py) = (planes(x, h, w), planes(y, h, w));
    let n = px.len().max(1) as f64;
    px.par_iter()
        .zip(py.par_iter())
        .map(|(a, b)| value(a, b, &g, c1, c2))
        .sum::<f64>()
        / n
}

/// The MS-SSIM value of one plane from its 5 per-scale terms (cs at scales 1–4, ssim at
/// scale 5): Π relu(t_l)^{w_l}; and d·(∂value/∂t_l), zero where a term was clamped.
pub fn ms_ssim_combine(terms: &[f64; 5], d: f64) -> (f64, [f64; 5]) {
    let clamped: Vec<f64> = terms.iter().map(|&t| t.max(0.0)).collect();
    let value: f64 = clamped
        .iter()
        .zip(MS_SSIM_WEIGHTS)
        .map(|(t, wt)| t.powf(wt))
        .product();
    let mut dterm = [0.0; 5];
    for l in 0..5 {
        if terms[l] <= 0.0 {
            continue;
        }
        let others: f64 = (0..5)
            .filter(|&j| j != l)
            .map(|j| clamped[j].powf(MS_SSIM_WEIGHTS[j]))
            .product();
        dterm[l] = d * MS_SSIM_WEIGHTS[l] * clamped[l].powf(MS_SSIM_WEIGHTS[l] - 1.0) * others;
    }
    (value, dterm)
}

/// Per plane: the 5 per-scale terms (cs at scales 1–4, ssim at scale 5) before clamping, and
/// with `dvalue = Some(d)` the gradient w.r.t. x of d · (that plane's MS-SSIM value).
fn ms_ssim_plane(
    x: &Plane,
    y: &Plane,
    g: &[f64],
    c1: f64,
    c2: f64,
    dvalue: Option<f64>,
) -> (f64, Option<Vec<f64>>) {
    let mut xs = vec![x.clone()];
    let mut ys = vec![y.clone()];
    let mut terms = [0.0f64; 5];
    for l in 0..5 {
        let (s, cs, _) = ssim_level(&xs[l], &ys[l], g, c1, c2, None);
        terms[l] = if l < 4 { cs } else { s };
        if l < 4 {
            let (nx, ny) = (avg_pool(&xs[l]), avg_pool(&ys[l]));
            xs.push(nx);
            ys.push(ny);
        }
    }
    let (value, dterm) = ms_ssim_combine(&terms, dvalue.unwrap_or(0.0));
    if dvalue.is_none() {
        return (value, None);
    }
    let mut gx: Option<Plane> = None;
    for l in (0..5).rev() {
        let grad = if l < 4 {
            (0.0, dterm[l])
        } else {
            (dterm[l], 0.0)
        };
        let (_, _, dl) = ssim_level(&xs[l], &ys[l], g, c1, c2, Some(grad));
        let mut dl = dl.expect("gradient requested");
        if let Some(up) = gx.take() {
            let back = avg_pool_t(&up, xs[l].h, xs[l].w);
            for (a, b) in dl.v.iter_mut().zip(&back.v) {
                *a += b;
            }
        }
        gx = Some(dl);
    }
    (value, gx.map(|p| p.v))
}

/// Mean MS-SSIM over planes of x and y (each [planes, h, w]; min(h, w) ≥ 161).
pub fn ms_ssim(x: &[f32], y: &[f32], h: usize, w: usize, data_range: f64) -> f64 {
    plane_mean(x, y, (h, w), data_range, |a, b, g, c1, c2| {
        ms_ssim_plane(a, b, g, c1, c2, None).0
    })
}

/// dx of `dloss · ms_ssim(x, y)` (written into `dx`); returns the MS-SSIM value.
pub fn ms_ssim_backward(
    dx: &mut [f32],
    x: &[f32],
    y: &[f32],
    h: usize,
    w: usize,
    data_range: f64,
    dloss: f64,
) -> f64 {
    let (g, c1, c2) = constants(data_range);
    let (px, py) = (planes(x, h, w), planes(y, h, w));
    let n = px.len().max(1) as f64;
    let results: Vec<(f64, Vec<f64>)> = px
        .par_iter()
        .zip(py.par_iter())
        .map(|(a, b)| {
            let (v, gx) = ms_ssim_plane(a, b, &g, c1, c2, Some(dloss / n));
            (v, gx.expect("gradient requested"))
        })
        .collect();
    let mut total = 0.0;
    for (i, (v, gx)) in results.iter().enumerate() {
        total += v;
        for (o, &gv) in dx[i * h * w..][..h * w].iter_mut().zip(gx) {
            *o = gv as f32;
        }
    }
    total / n
}

/// PSNR = 10·log10(range² / MSE) over all elements (+∞ when the images are equal).
pub fn psnr(x: &[f32], y: &[f32], data_range: f64) -> f64 {
    let mse = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum::<f64>()
        / x.len().max(1) as f64;
    10.0 * (data_range * data_range / mse).log10()
}
