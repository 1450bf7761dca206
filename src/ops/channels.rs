//! Layout ops on NCHW tensors: concatenation along C (backward: split) and the NCHW ↔ NHWC
//! permutation (each the other's backward).

use super::*;
use crate::backend::cpu::channels as cpu;
use crate::backend::cuda::channels as gpu;

/// Copies `src` (batch entries of `len` values) into `dst` at the given offsets/strides.
#[allow(clippy::too_many_arguments)]
fn copy_strided(
    dst: &mut Tensor,
    src: &Tensor,
    batch: usize,
    len: usize,
    dst_stride: usize,
    dst_off: usize,
    src_stride: usize,
    src_off: usize,
) -> Result<()> {
    if !dst.is_cpu() {
        let d = dst.device();
        return gpu::copy_strided(
            backend(&d)?,
            dev(dst)?,
            dev(src)?,
            batch,
            len,
            dst_stride,
            dst_off,
            src_stride,
            src_off,
        );
    }
    let dtype = dst.dtype;
    let sv = host(src)?.into_owned();
    let _ = dtype;
    let mut dv = dst.host_f32()?.into_owned();
    cpu::copy_strided(
        &mut dv, &sv, batch, len, dst_stride, dst_off, src_stride, src_off,
    );
    dst.write_f32(&dv)
}

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
    let mut out = output(&[n, ctot, first.shape[2], first.shape[3]], first.dtype, &d)?;
    let mut off = 0;
    for x in xs {
        let len = x.shape[1] * hw;
        copy_strided(&mut out, x, n, len, ctot * hw, off * hw, len, 0)?;
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
        let mut o = output(&[n, c, x.shape[2], x.shape[3]], x.dtype, &d)?;
        copy_strided(&mut o, x, n, c * hw, c * hw, 0, ctot * hw, off * hw)?;
        off += c;
        outs.push(o);
    }
    Ok(outs)
}

fn transpose_last2(x: &Tensor, rows: usize, cols: usize, shape: &[usize]) -> Result<Tensor> {
    let batch = x.numel() / (rows * cols).max(1);
    let d = x.device();
    if !d.is_cuda() {
        let mut out = vec![0.0; x.numel()];
        cpu::transpose_last2(&mut out, &host(x)?, rows, cols);
        return from_host(shape, out, x.dtype);
    }
    let out = output(shape, x.dtype, &d)?;
    gpu::transpose_last2(backend(&d)?, dev(&out)?, dev(x)?, batch, rows, cols)?;
    Ok(out)
}

/// [n, c, h, w] → [n, h, w, c]. Backward: `nhwc_to_nchw` of the gradient.
pub fn nchw_to_nhwc(x: &Tensor) -> Result<Tensor> {
    check_float("nchw_to_nhwc", "x", x)?;
    if x.rank() != 4 {
        bail!(
            "nchw_to_nhwc: expected a 4-D NCHW tensor, found {:?}",
            x.shape
        );
    }
    let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    transpose_last2(x, c, h * w, &[n, h, w, c])
}

/// [n, h, w, c] → [n, c, h, w]. Backward: `nchw_to_nhwc` of the gradient.
pub fn nhwc_to_nchw(x: &Tensor) -> Result<Tensor> {
    check_float("nhwc_to_nchw", "x", x)?;
    if x.rank() != 4 {
        bail!(
            "nhwc_to_nchw: expected a 4-D NHWC tensor, found {:?}",
            x.shape
        );
    }
    let [n, h, w, c] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    transpose_last2(x, h * w, c, &[n, c, h, w])
}
