//! Token bookkeeping: images ↔ patch rows, and gathering token rows by index (cls tokens,
//! MAE's visible subset and its unshuffle, pooling), with backward passes.

use super::{input, unary, Cpu, HostOut};
use crate::backend::api::tokens::{GatherGrads, GatherInput, TokenOps};
use crate::tensor::Tensor;
use anyhow::Result;

/// (B, C, H, W) of an NCHW image tensor (`ops` checked the rank).
fn nchw(t: &Tensor) -> (usize, usize, usize, usize) {
    (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
}

impl TokenOps for Cpu {
    fn patchify(&self, patches: &mut Tensor, img: &Tensor, p: usize) -> Result<()> {
        let (b, c, h, w) = nchw(img);
        unary(patches, img, |o, x| patchify(o, x, b, c, h, w, p))
    }
    fn unpatchify(&self, img: &mut Tensor, patches: &Tensor, p: usize) -> Result<()> {
        let (b, c, h, w) = nchw(img);
        unary(img, patches, |o, x| unpatchify(o, x, b, c, h, w, p))
    }
    fn gather_rows(&self, out: &mut Tensor, a: GatherInput) -> Result<()> {
        let (src, idx) = (a.src, a.idx);
        let (b, ns, c) = (src.shape[0], src.shape[1], src.shape[2]);
        let nd = idx.shape[1];
        let (s, i) = (input(src)?, idx.i32s()?);
        let f = a.fill.map(input).transpose()?;
        let mut o = HostOut::new(out)?;
        gather_rows(&mut o, &s, &i, f.as_deref(), b, ns, nd, c);
        o.finish()
    }
    fn gather_rows_backward(&self, g: GatherGrads, dout: &Tensor, idx: &Tensor) -> Result<()> {
        let (dsrc, dfill) = (g.dsrc, g.dfill);
        let (b, ns, c) = (dsrc.shape[0], dsrc.shape[1], dsrc.shape[2]);
        let nd = idx.shape[1];
        let (g, i) = (input(dout)?, idx.i32s()?);
        let mut o = HostOut::new(dsrc)?;
        match dfill {
            Some(df) => {
                let mut f = HostOut::update(df)?;
                gather_rows_backward(&mut o, Some(&mut f), &g, &i, b, ns, nd, c);
                f.finish()?;
            }
            None => gather_rows_backward(&mut o, None, &g, &i, b, ns, nd, c),
        }
        o.finish()
    }
}

/// Calls `f(image offset, patch offset)` for every run of P pixels that a patch vector shares
/// with the image [B, C, H, W], patches [B, (H/P)(W/P), C·P·P] in (c, py, px) order.
fn patch_runs(b: usize, c: usize, h: usize, w: usize, p: usize, mut f: impl FnMut(usize, usize)) {
    let (gh, gw) = (h / p, w / p);
    let pv = c * p * p;
    for bi in 0..b {
        for gy in 0..gh {
            for gx in 0..gw {
                let row = (bi * gh * gw + gy * gw + gx) * pv;
                for ci in 0..c {
                    for py in 0..p {
                        f(
                            ((bi * c + ci) * h + gy * p + py) * w + gx * p,
                            row + (ci * p + py) * p,
                        );
                    }
                }
            }
        }
    }
}

/// Images [B, C, H, W] → patches [B, (H/P)(W/P), C·P·P], each patch vector in (c, py, px)
/// order (the flattening of a stride-P convolution's weight [E, C, P, P]).
pub fn patchify(out: &mut [f32], img: &[f32], b: usize, c: usize, h: usize, w: usize, p: usize) {
    patch_runs(b, c, h, w, p, |src, dst| {
        out[dst..dst + p].copy_from_slice(&img[src..src + p])
    });
}

/// The inverse of [`patchify`] (also its backward pass).
pub fn unpatchify(
    img: &mut [f32],
    patches: &[f32],
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    p: usize,
) {
    patch_runs(b, c, h, w, p, |dst, src| {
        img[dst..dst + p].copy_from_slice(&patches[src..src + p])
    });
}

/// out[b, i] = src[b, idx[b, i]] for idx ≥ 0, else `fill` (zeros without one).
/// src [B, Ns, C], idx [B, Nd], out [B, Nd, C].
#[allow(clippy::too_many_arguments)]
pub fn gather_rows(
    out: &mut [f32],
    src: &[f32],
    idx: &[i32],
    fill: Option<&[f32]>,
    b: usize,
    ns: usize,
    nd: usize,
    c: usize,
) {
    for bi in 0..b {
        for i in 0..nd {
            let dst = &mut out[(bi * nd + i) * c..(bi * nd + i + 1) * c];
            let j = idx[bi * nd + i];
            if j >= 0 {
                let s = (bi * ns + j as usize) * c;
                dst.copy_from_slice(&src[s..s + c]);
            } else if let Some(f) = fill {
                dst.copy_from_slice(f);
            } else {
                dst.fill(0.0);
            }
        }
    }
}

/// Backward of [`gather_rows`]: dsrc[b, j] = Σ over i with idx[b, i] = j of dout[b, i]
/// (written), and dfill[c] += Σ over rows with idx < 0 (accumulated).
#[allow(clippy::too_many_arguments)]
pub fn gather_rows_backward(
    dsrc: &mut [f32],
    dfill: Option<&mut [f32]>,
    dout: &[f32],
    idx: &[i32],
    b: usize,
    ns: usize,
    nd: usize,
    c: usize,
) {
    dsrc.fill(0.0);
    let mut acc = vec![0.0f64; c];
    for bi in 0..b {
        for i in 0..nd {
            let g = &dout[(bi * nd + i) * c..(bi * nd + i + 1) * c];
            let j = idx[bi * nd + i];
            if j >= 0 {
                let d = &mut dsrc[(bi * ns + j as usize) * c..(bi * ns + j as usize + 1) * c];
                for (x, &y) in d.iter_mut().zip(g) {
                    *x += y;
                }
            } else {
                for (a, &y) in acc.iter_mut().zip(g) {
                    *a += y as f64;
                }
            }
        }
    }
    if let Some(df) = dfill {
        for (x, a) in df.iter_mut().zip(acc) {
            *x += a as f32;
        }
    }
}
