//! 2-D convolution (NCHW, 1×1 or 3×3 kernels, stride 1, padding k/2, groups 1) with its
//! backward pass.

use super::*;
use crate::backend::cpu::conv2d::{self as cpu, Conv2dShape};
use crate::backend::cuda::conv2d as gpu;

/// Checks x [n, cin, h, w] against weight [cout, cin, k, k] (k = 1 or 3) and the optional bias
/// [cout]; returns the convolution's shape.
pub fn conv2d_shape(
    op: &str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Conv2dShape> {
    check_float(op, "x", x)?;
    check_same_dtype(op, x, w)?;
    if x.rank() != 4 {
        bail!("{op}: x must be NCHW (4-D), found shape {:?}", x.shape);
    }
    if w.rank() != 4 || w.shape[2] != w.shape[3] || !(w.shape[2] == 1 || w.shape[2] == 3) {
        bail!(
            "{op}: weight must be [cout, cin, k, k] with k = 1 or 3, found {:?}",
            w.shape
        );
    }
    if w.shape[1] != x.shape[1] {
        bail!(
            "{op}: weight {:?} expects {} input channels but x {:?} has {}",
            w.shape,
            w.shape[1],
            x.shape,
            x.shape[1]
        );
    }
    let s = Conv2dShape {
        n: x.shape[0],
        cin: x.shape[1],
        cout: w.shape[0],
        h: x.shape[2],
        w: x.shape[3],
        k: w.shape[2],
    };
    if let Some(b) = bias {
        check_same_dtype(op, x, b)?;
        if b.shape != [s.cout] {
            bail!(
                "{op}: bias must have shape [{}] (the output channels), found {:?}",
                s.cout,
                b.shape
            );
        }
    }
    Ok(s)
}

/// y = conv2d(x, w) + bias, same spatial size as x.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let s = conv2d_shape("conv2d", x, w, bias)?;
    let mut ts = vec![x, w];
    ts.extend(bias);
    let d = check_device("conv2d", &ts)?;
    let out_shape = [s.n, s.cout, s.h, s.w];
    if !d.is_cuda() {
        let mut y = vec![0.0; s.n * s.cout * s.hw()];
        let bv = bias.map(host).transpose()?;
        cpu::conv2d(&mut y, &host(x)?, &host(w)?, bv.as_deref(), &s);
        return from_host(&out_shape, y, x.dtype);
    }
    let y = output(&out_shape, x.dtype, &d)?;
    gpu::forward(
        backend(&d)?,
        dev(&y)?,
        dev(x)?,
        dev(w)?,
        bias.map(dev).transpose()?,
        &s,
    )?;
    Ok(y)
}

/// Returns dx (written); adds the weight gradient into `dw` and, when given, the bias gradient
/// into `dbias`.
pub fn conv2d_backward(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    dw: &mut Tensor,
    dbias: Option<&mut Tensor>,
) -> Result<Tensor> {
    let op = "conv2d_backward";
    let s = conv2d_shape(op, x, w, None)?;
    check_same_dtype(op, dy, x)?;
    if dy.shape != [s.n, s.cout, s.h, s.w] {
        bail!(
            "{op}: dy must have the output's shape {:?}, found {:?}",
            [s.n, s.cout, s.h, s.w],
            dy.shape
        );
    }
    check_same_shape(op, dw, w)?;
    check_same_dtype(op, dw, w)?;
    if let Some(db) = &dbias {
        check_same_dtype(op, db, w)?;
        if db.shape != [s.cout] {
            bail!(
                "{op}: dbias must have shape [{}], found {:?}",
                s.cout,
                db.shape
            );
        }
    }
    let mut ts: Vec<&Tensor> = vec![dy, x, w, dw];
    if let Some(db) = &dbias {
        ts.push(db);
    }
    let d = check_device(op, &ts)?;
    if !d.is_cuda() {
        let (dyv, xv, wv) = (host(dy)?, host(x)?, host(w)?);
        let mut dx = vec![0.0; x.numel()];
        cpu::conv2d_backward_input(&mut dx, &dyv, &wv, &s);
        let mut dwv = host(dw)?.into_owned();
        match dbias {
            Some(db) => {
                let mut dbv = host(db)?.into_owned();
                cpu::conv2d_backward_params(&mut dwv, Some(&mut dbv), &dyv, &xv, &s);
                *db = from_host(&[s.cout], dbv, db.dtype)?;
            }
            None => cpu::conv2d_backward_params(&mut dwv, None, &dyv, &xv, &s),
        }
        *dw = from_host(&w.shape, dwv, dw.dtype)?;
        return from_host(&x.shape, dx, x.dtype);
    }
    let b = backend(&d)?;
    let dx = output(&x.shape, x.dtype, &d)?;
    gpu::backward_input(b, dev(&dx)?, dev(dy)?, dev(w)?, &s)?;
    gpu::backward_params(
        b,
        dev(dw)?,
        dbias.map(|t| dev(t)).transpose()?,
        dev(dy)?,
        dev(x)?,
        &s,
    )?;
    Ok(dx)
}
