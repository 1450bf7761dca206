//! Layout ops on NCHW tensors: concatenation along C (backward: split) and the NCHW ↔ NHWC
//! permutation (each the other's backward).

use super::*;
use crate::backend::api::StridedCopy;

/// Concatenates NCHW tensors along C: they must agree in N, H, W, dtype and device.
pub fn concat_channels(xs: &[&Tensor]) -> Result<Tensor> {
    let op = "concat_channels";
    let Some(first) = xs.first() else {
        bail!("{op}: needs at least one tensor");
    };
    check_float(op, "inputs", first)?;
    let d = check_device(op, xs)?;
    for (i, x) in xs.iter().enumerate() {
        check_same_dtype(op, first, x)?;
        if x.rank() != 4 || x.shape[0] != first.shape[0] || x.shape[2..] != first.shape[2..] {
            bail!(
                "{op}: input {i} has shape {:?}; every input must be NCHW with N, H, W of input 0 {:?}",
                x.shape,
                first.shape
            );
        }
    }
    let (n, hw) = (first.shape[0], first.shape[2] * first.shape[3]);
    let ctot: usize = xs.iter().map(|x| x.shape[1]).sum();
    let mut out = alloc(&d, &[n, ctot, first.shape[2], first.shape[3]], first.dtype)?;
    let mut off = 0;
    for x in xs {
        let len = x.shape[1] * hw;
        let c = StridedCopy {
            batch: n,
            len,
            dst_stride: ctot * hw,
            dst_off: off * hw,
            src_stride: len,
            src_off: 0,
        };
        d.run().copy_strided(&mut out, x, &c)?;
        off += x.shape[1];
    }
    Ok(out)
}

/// Splits an NCHW tensor along C into pieces of `channels[i]` channels (the backward pass of
/// `concat_channels`).
pub fn split_channels(x: &Tensor, channels: &[usize]) -> Result<Vec<Tensor>> {
    let op = "split_channels";
    check_float(op, "x", x)?;
    if x.rank() != 4 || channels.iter().sum::<usize>() != x.shape[1] {
        bail!(
            "{op}: x must be NCHW with Σ channels = C; found shape {:?} and channels {:?}",
            x.shape,
            channels
        );
    }
    let d = x.device();
    let (n, ctot, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3]);
    let mut outs = Vec::with_capacity(channels.len());
    let mut off = 0;
    for &c in channels {
        let mut o = alloc(&d, &[n, c, x.shape[2], x.shape[3]], x.dtype)?;
        let cp = StridedCopy {
            batch: n,
            len: c * hw,
            dst_stride: c * hw,
            dst_off: 0,
            src_stride: ctot * hw,
            src_off: off * hw,
        };
        d.run().copy_strided(&mut o, x, &cp)?;
        off += c;
        outs.push(o);
    }
    Ok(outs)
}

/// out[b, c, r] = x[b, r, c] for x viewed as [batch, rows, cols], shaped `shape`.
fn transpose_last2(x: &Tensor, rows: usize, cols: usize, shape: &[usize]) -> Result<Tensor> {
    let d = x.device();
    let mut out = alloc(&d, shape, x.dtype)?;
    d.run().permute_last2(&mut out, x, rows, cols)?;
    Ok(out)
}

/// [n, c, h, w] → [n, h, w, c]. Backward: `nhwc_to_nchw` of the gradient.
pub fn nchw_to_nhwc(x: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = dims4("nchw_to_nhwc", "NCHW", x)?;
    transpose_last2(x, c, h * w, &[n, h, w, c])
}

/// [n, h, w, c] → [n, c, h, w]. Backward: `nchw_to_nhwc` of the gradient.
pub fn nhwc_to_nchw(x: &Tensor) -> Result<Tensor> {
    let [n, h, w, c] = dims4("nhwc_to_nchw", "NHWC", x)?;
    transpose_last2(x, h * w, c, &[n, c, h, w])
}

/// The four dimensions of a float tensor in `layout`.
fn dims4(op: &str, layout: &str, x: &Tensor) -> Result<[usize; 4]> {
    check_float(op, "x", x)?;
    if x.rank() != 4 {
        bail!("{op}: expected a 4-D {layout} tensor, found {:?}", x.shape);
    }
    Ok([x.shape[0], x.shape[1], x.shape[2], x.shape[3]])
}
