//! Resampling of NCHW tensors with PyTorch's `F.interpolate` semantics: nearest by an integer
//! factor, bilinear to a given size. Bilinear takes PyTorch's `align_corners` flag:
//! False (`F.interpolate`'s default; source scale = input/output size, which equals
//! 1/scale_factor for the integer factors the heads use) or True (`nn.UpsamplingBilinear2d`,
//! scale = (input − 1)/(output − 1), the corner pixels of input and output coincide).

use super::*;

fn nchw(op: &str, x: &Tensor) -> Result<(usize, usize)> {
    check_float(op, "x", x)?;
    if x.rank() != 4 {
        bail!(
            "{op}: expected an NCHW (4-D) tensor, found shape {:?}",
            x.shape
        );
    }
    Ok((x.shape[2], x.shape[3]))
}

/// The result of a resampling of the NCHW `t`: [n, c, h, w] of `t`'s dtype, allocated on its
/// device and written by `run`.
fn resampled(
    t: &Tensor,
    (h, w): (usize, usize),
    run: impl FnOnce(&dyn Backend, &mut Tensor) -> Result<()>,
) -> Result<Tensor> {
    let d = t.device();
    let mut out = alloc(&d, &[t.shape[0], t.shape[1], h, w], t.dtype)?;
    run(d.run(), &mut out)?;
    Ok(out)
}

/// Nearest neighbour ×k: [n, c, h, w] → [n, c, h·k, w·k].
pub fn upsample_nearest(x: &Tensor, k: usize) -> Result<Tensor> {
    let (h, w) = nchw("upsample_nearest", x)?;
    if k == 0 {
        bail!("upsample_nearest: the factor must be at least 1");
    }
    resampled(x, (h * k, w * k), |b, out| b.upsample_nearest(out, x, k))
}

/// dx of `upsample_nearest(x, k)` from dy [n, c, h·k, w·k].
pub fn upsample_nearest_backward(dy: &Tensor, k: usize) -> Result<Tensor> {
    let op = "upsample_nearest_backward";
    let (ho, wo) = nchw(op, dy)?;
    if k == 0 || ho % k != 0 || wo % k != 0 {
        bail!("{op}: dy's spatial size {ho}×{wo} must be a multiple of the factor {k}");
    }
    resampled(dy, (ho / k, wo / k), |b, dx| {
        b.upsample_nearest_backward(dx, dy, k)
    })
}

/// Checks that neither size of a resize from h×w to ho×wo is empty.
fn check_resize(op: &str, (h, w): (usize, usize), (ho, wo): (usize, usize)) -> Result<()> {
    if h == 0 || w == 0 || ho == 0 || wo == 0 {
        bail!("{op}: sizes must be non-zero, found {h}×{w} → {ho}×{wo}");
    }
    Ok(())
}

/// Bilinear resize to `size` = (height, width), with PyTorch's `align_corners`.
pub fn upsample_bilinear(x: &Tensor, size: (usize, usize), align_corners: bool) -> Result<Tensor> {
    let op = "upsample_bilinear";
    let (h, w) = nchw(op, x)?;
    let (ho, wo) = size;
    check_resize(op, (h, w), (ho, wo))?;
    resampled(x, size, |b, out| b.upsample_bilinear(out, x, align_corners))
}

/// dx of `upsample_bilinear(x, dy's size, align_corners)` where x had spatial size
/// `input_size`.
pub fn upsample_bilinear_backward(
    dy: &Tensor,
    input_size: (usize, usize),
    align_corners: bool,
) -> Result<Tensor> {
    let op = "upsample_bilinear_backward";
    let (ho, wo) = nchw(op, dy)?;
    let (h, w) = input_size;
    check_resize(op, (h, w), (ho, wo))?;
    resampled(dy, input_size, |b, dx| {
        b.upsample_bilinear_backward(dx, dy, align_corners)
    })
}
