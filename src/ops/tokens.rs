//! Patches and token gathers (see backend/cpu/tokens.rs).

use super::*;
use crate::backend::api::tokens::{GatherGrads, GatherInput};

fn image_dims(op: &str, img: &Tensor, p: usize) -> Result<[usize; 5]> {
    check_float(op, "images", img)?;
    let [b, c, h, w] = img.shape[..] else {
        bail!(
            "{op}: images must be [batch, channels, height, width], found {:?}",
            img.shape
        );
    };
    if p == 0 || h % p != 0 || w % p != 0 {
        bail!("{op}: image size {h}×{w} is not a multiple of the patch size {p}");
    }
    Ok([b, c, h, w, p])
}

/// Images [B, C, H, W] → [B, (H/P)(W/P), C·P·P].
pub fn patchify(img: &Tensor, p: usize) -> Result<Tensor> {
    let [b, c, h, w, _] = image_dims("patchify", img, p)?;
    let shape = [b, (h / p) * (w / p), c * p * p];
    let d = img.device();
    let mut out = alloc(&d, &shape, img.dtype)?;
    d.run().patchify(&mut out, img, p)?;
    Ok(out)
}

/// Patches [B, N, C·P·P] → images [B, C, H, W] (the backward pass of `patchify`).
pub fn unpatchify(patches: &Tensor, c: usize, h: usize, w: usize, p: usize) -> Result<Tensor> {
    check_float("unpatchify", "patches", patches)?;
    let b = patches.shape.first().copied().unwrap_or(0);
    if p == 0
        || !h.is_multiple_of(p)
        || !w.is_multiple_of(p)
        || patches.shape != [b, (h / p) * (w / p), c * p * p]
    {
        bail!(
            "unpatchify: patches {:?} do not tile a {c}×{h}×{w} image with patch {p}",
            patches.shape
        );
    }
    let shape = [b, c, h, w];
    let d = patches.device();
    let mut out = alloc(&d, &shape, patches.dtype)?;
    d.run().unpatchify(&mut out, patches, p)?;
    Ok(out)
}

fn gather_check(
    src: &Tensor,
    idx: &Tensor,
    fill: Option<&Tensor>,
) -> Result<(usize, usize, usize, usize)> {
    check_float("gather_rows", "src", src)?;
    let [b, ns, c] = src.shape[..] else {
        bail!(
            "gather_rows: src must be [batch, rows, width], found {:?}",
            src.shape
        );
    };
    if idx.dtype != DType::I32 || idx.rank() != 2 || idx.shape[0] != b {
        bail!(
            "gather_rows: idx must be i32 [{b}, rows], found {} {:?}",
            idx.dtype,
            idx.shape
        );
    }
    if let Some(f) = fill {
        check_same_dtype("gather_rows", src, f)?;
        if f.numel() != c {
            bail!(
                "gather_rows: fill must have {c} elements, found {:?}",
                f.shape
            );
        }
    }
    if idx.is_cpu() {
        if let Some(bad) = idx.i32s()?.iter().find(|&&j| j >= ns as i32) {
            bail!("gather_rows: index {bad} is out of range for {ns} rows");
        }
    }
    Ok((b, ns, idx.shape[1], c))
}

/// out[b, i] = src[b, idx[b, i]], or `fill` where idx < 0.
pub fn gather_rows(src: &Tensor, idx: &Tensor, fill: Option<&Tensor>) -> Result<Tensor> {
    let (b, _ns, nd, c) = gather_check(src, idx, fill)?;
    let d = check_device("gather_rows", &[src, idx])?;
    if let Some(f) = fill {
        check_device("gather_rows", &[src, f])?;
    }
    let mut out = alloc(&d, &[b, nd, c], src.dtype)?;
    d.run()
        .gather_rows(&mut out, GatherInput { src, idx, fill })?;
    Ok(out)
}

/// dsrc [B, Ns, C] of `gather_rows`; the fill vector's gradient is added into `dfill` (in place).
pub fn gather_rows_backward(
    dout: &Tensor,
    idx: &Tensor,
    ns: usize,
    dfill: Option<&mut Tensor>,
) -> Result<Tensor> {
    let [b, nd, c] = dout.shape[..] else {
        bail!(
            "gather_rows_backward: dout must be [batch, rows, width], found {:?}",
            dout.shape
        );
    };
    if idx.shape != [b, nd] {
        bail!(
            "gather_rows_backward: idx must be [{b}, {nd}], found {:?}",
            idx.shape
        );
    }
    let d = check_device("gather_rows_backward", &[dout, idx])?;
    if let Some(df) = &dfill {
        check_same_dtype("gather_rows_backward", dout, df)?;
        check_device("gather_rows_backward", &[dout, df])?;
        if df.numel() != c {
            bail!(
                "gather_rows_backward: dfill must have {c} elements, found {:?}",
                df.shape
            );
        }
    }
    let mut ds = alloc(&d, &[b, ns, c], dout.dtype)?;
    let grads = GatherGrads {
        dsrc: &mut ds,
        dfill,
    };
    d.run().gather_rows_backward(grads, dout, idx)?;
    Ok(ds)
}
