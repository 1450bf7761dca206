//! The CPU backend's 1-D convolutions as matrix products (im2col + the gemm crate), the way
//! PyTorch's CPU convolutions work. The direct loops of `conv1d.rs` (f64 sums) stay as the
//! reference they are checked against (tests below) and that the kernel emulation tests use.
//!
//! Per sample b and group g, with C the im2col matrix [cig·k, lout] of the sample's group
//! (C[cl·k + j, t] = x[b, g·cig + cl, t·stride − pad + j], 0 in the padding) and W_g the
//! group's weights as [cog, cig·k]:
//! - forward: y_bg = W_g · C (+ bias);
//! - input gradient: dC = W_gᵀ · dy_bg, scattered back onto x's positions (col2im);
//! - weight gradient: dW_g += Σ_b dy_bg · Cᵀ, the samples summed in order first and added to
//!   dW once (as the direct loops do), so that micro-batches and ranks agree bit for bit.
//!
//! Sums are f32 inside the products (as the matmul twin's), in an order that does not depend
//! on the thread count: the gemm crate splits rows and columns among threads, never the sum,
//! and samples are added in order.

use super::conv1d::Conv1dShape;
use super::matmul::{matmul, MatmulShape};
use super::pool::Scratch;
use rayon::prelude::*;

/// C = op(A) · op(B) (+= with `acc`) for dense row-major blocks.
#[allow(clippy::too_many_arguments)]
fn mm(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    ta: bool,
    tb: bool,
    acc: bool,
) {
    let s = MatmulShape {
        batch: 1,
        m,
        n,
        k,
        ta,
        tb,
        a_stride: 0,
        b_stride: 0,
    };
    matmul(c, a, b, None, &s, acc);
}

/// The im2col matrix of sample `b`, group `g` into `col` ([cig·k, lout]).
fn im2col(col: &mut [f32], x: &[f32], s: &Conv1dShape, b: usize, g: usize, lout: usize) {
    let cig = s.cin_per_group();
    col.par_chunks_mut(lout).enumerate().for_each(|(r, row)| {
        let (cl, j) = (r / s.k, r % s.k);
        let xr = &x[(b * s.cin + g * cig + cl) * s.lin..][..s.lin];
        let t = s.reading_outputs(j, lout);
        row[..t.start].fill(0.0);
        row[t.end..].fill(0.0);
        if t.is_empty() {
            return;
        }
        let p0 = t.start * s.stride + j - s.padding;
        let dst = &mut row[t.clone()];
        if s.stride == 1 {
            dst.copy_from_slice(&xr[p0..p0 + t.len()]);
        } else {
            for (v, &xv) in dst.iter_mut().zip(xr[p0..].iter().step_by(s.stride)) {
                *v = xv;
            }
        }
    });
}

/// col2im of one input channel: `row` (the channel's input positions) gathers its k rows of
/// `dcol` ([k, lout]), taps in order.
fn col2im_row(row: &mut [f32], dcol: &[f32], s: &Conv1dShape, lout: usize) {
    for j in 0..s.k {
        let t = s.reading_outputs(j, lout);
        if t.is_empty() {
            continue;
        }
        let p0 = t.start * s.stride + j - s.padding;
        let src = &dcol[j * lout..][t.clone()];
        if s.stride == 1 {
            for (r, &v) in row[p0..p0 + t.len()].iter_mut().zip(src) {
                *r += v;
            }
        } else {
            for (r, &v) in row[p0..].iter_mut().step_by(s.stride).zip(src) {
                *r += v;
            }
        }
    }
}

/// y [batch, cout, lout] = conv(x, w) + bias.
pub fn conv1d(y: &mut [f32], x: &[f32], w: &[f32], bias: Option<&[f32]>, s: &Conv1dShape) {
    let lout = s.lout().unwrap_or(0);
    let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
    let kk = cig * s.k;
    if lout == 0 || kk == 0 {
        return;
    }
    // im2col writes every element; from the pool, so that a step allocates nothing after
    // the first (seislm-base's positional convolution needs 5.8 MB per call).
    let mut col = Scratch::unset(kk * lout);
    for b in 0..s.batch {
        for g in 0..s.groups {
            im2col(&mut col, x, s, b, g, lout);
            let yb = &mut y[(b * s.cout + g * cog) * lout..][..cog * lout];
            let wg = &w[g * cog * kk..][..cog * kk];
            mm(yb, wg, &col, (cog, lout, kk), false, false, false);
            if let Some(bv) = bias {
                yb.par_chunks_mut(lout).enumerate().for_each(|(co, row)| {
                    let v = bv[g * cog + co];
                    row.iter_mut().for_each(|y| *y += v);
                });
            }
        }
    }
}

/// dx [batch, cin, lin] (written) from dy [batch, cout, lout].
pub fn conv1d_backward_input(dx: &mut [f32], dy: &[f32], w: &[f32], s: &Conv1dShape) {
    let lout = s.lout().unwrap_or(0);
    let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
    let kk = cig * s.k;
    dx.fill(0.0);
    if lout == 0 || kk == 0 {
        return;
    }
    // Written by the product before col2im reads it.
    let mut dcol = Scratch::unset(kk * lout);
    for b in 0..s.batch {
        for g in 0..s.groups {
            let dyb = &dy[(b * s.cout + g * cog) * lout..][..cog * lout];
            let wg = &w[g * cog * kk..][..cog * kk];
            mm(&mut dcol, wg, dyb, (kk, lout, cog), true, false, false);
            // col2im: each input channel's row gathers its k rows of dC, taps in order.
            let dxb = &mut dx[(b * s.cin + g * cig) * s.lin..][..cig * s.lin];
            dxb.par_chunks_mut(s.lin)
                .zip(dcol.par_chunks(s.k * lout))
                .for_each(|(row, dc)| col2im_row(row, dc, s, lout));
        }
    }
}

/// dw [cout, cig, k] and db [cout] accumulated from dy and x.
pub fn conv1d_backward_params(
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    s: &Conv1dShape,
) {
    let lout = s.lout().unwrap_or(0);
    let (cig, cog) = (s.cin_per_group(), s.cout_per_group());
    let kk = cig * s.k;
    if lout > 0 && kk > 0 && s.batch > 0 {
        // This call's sum first, then one addition onto dw: a gradient accumulated over
        // micro-batches, or summed over ranks, then gets the same bits either way.
        // The first sample's product writes each group's block of `sum` (b > 0 adds).
        let (mut sum, mut col) = (Scratch::unset(dw.len()), Scratch::unset(kk * lout));
        for b in 0..s.batch {
            for g in 0..s.groups {
                im2col(&mut col, x, s, b, g, lout);
                let dyb = &dy[(b * s.cout + g * cog) * lout..][..cog * lout];
                let sg = &mut sum[g * cog * kk..][..cog * kk];
                mm(sg, dyb, &col, (cog, kk, lout), false, true, b > 0);
            }
        }
        dw.iter_mut().zip(sum.iter()).for_each(|(d, s)| *d += s);
    }
    if let Some(db) = db {
        super::conv1d::conv1d_bias_grad(db, dy, s);
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv1d as direct;
    use super::*;

    fn rand(n: usize, seed: u64) -> Vec<f32> {
        let mut s = super::super::philox::PhiloxStream::new(seed, 0, 0);
        (0..n).map(|_| s.next_f32() - 0.5).collect()
    }

    fn rel(a: &[f32], b: &[f32]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        (num / den.max(1e-30)).sqrt()
    }

    #[test]
    fn reading_outputs_are_where_input_pos_is_some() {
        for (lin, k, stride, padding) in [(10, 3, 1, 1), (7, 9, 2, 4), (3, 8, 3, 6), (20, 5, 4, 0)]
        {
            let s = Conv1dShape {
                batch: 1,
                cin: 1,
                cout: 1,
                lin,
                k,
                stride,
                padding,
                groups: 1,
            };
            let lout = s.lout().unwrap();
            for j in 0..k {
                let r = s.reading_outputs(j, lout);
                for t in 0..lout {
                    assert_eq!(
                        r.contains(&t),
                        s.input_pos(t, j).is_some(),
                        "{s:?} j={j} t={t}"
                    );
                }
            }
        }
    }

    /// The products against the direct f64 loops, over strides, paddings, groups and a
    /// kernel wider than the input's padding (the positional convolution's shape).
    #[test]
    fn products_match_the_direct_loops() {
        let shapes = [
            (2, 3, 8, 50, 3, 2, 0, 1),
            (3, 12, 12, 40, 16, 1, 8, 4),
            (2, 6, 4, 33, 5, 3, 2, 2),
            (1, 4, 8, 7, 7, 1, 3, 1),
            (2, 4, 4, 10, 2, 2, 0, 4),
        ];
        for (i, &(batch, cin, cout, lin, k, stride, padding, groups)) in shapes.iter().enumerate() {
            let s = Conv1dShape {
                batch,
                cin,
                cout,
                lin,
                k,
                stride,
                padding,
                groups,
            };
            let lout = s.lout().unwrap();
            let x = rand(batch * cin * lin, 1 + i as u64);
            let w = rand(cout * s.cin_per_group() * k, 2 + i as u64);
            let bias = rand(cout, 3 + i as u64);
            let dy = rand(batch * cout * lout, 4 + i as u64);
            let (mut y1, mut y2) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
            direct::conv1d(&mut y1, &x, &w, Some(&bias), &s);
            conv1d(&mut y2, &x, &w, Some(&bias), &s);
            assert!(rel(&y2, &y1) < 1e-6, "forward {s:?}: {}", rel(&y2, &y1));
            let (mut d1, mut d2) = (vec![0.0; x.len()], vec![7.0; x.len()]);
            direct::conv1d_backward_input(&mut d1, &dy, &w, &s);
            conv1d_backward_input(&mut d2, &dy, &w, &s);
            assert!(rel(&d2, &d1) < 1e-6, "input grad {s:?}: {}", rel(&d2, &d1));
            // accumulated onto what is there
            let start = rand(w.len(), 9);
            let (mut w1, mut w2) = (start.clone(), start.clone());
            let (mut b1, mut b2) = (bias.clone(), bias.clone());
            direct::conv1d_backward_params(&mut w1, Some(&mut b1), &dy, &x, &s);
            conv1d_backward_params(&mut w2, Some(&mut b2), &dy, &x, &s);
            assert!(rel(&w2, &w1) < 1e-6, "weight grad {s:?}: {}", rel(&w2, &w1));
            assert_eq!(b1, b2, "bias grad {s:?}");
        }
    }
}
