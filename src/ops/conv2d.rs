//! 2-D convolution (NCHW, 1×1 or 3×3 kernels, stride 1, padding k/2, groups 1) with its
//! backward pass.

use super::*;
use crate::backend::api::conv1d::{ConvBackward, ConvInput};
use crate::backend::api::conv2d::Conv2dShape;

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
    let mut y = alloc(&d, &[s.n, s.cout, s.h, s.w], x.dtype)?;
    d.run().conv2d(&mut y, ConvInput { x, w, bias }, &s)?;
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
    check_like(op, dw, w)?;
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
    let mut dx = alloc(&d, &x.shape, x.dtype)?;
    let a = ConvBackward {
        dx: Some(&mut dx),
        dw,
        db: dbias,
        dy,
        x,
        w,
    };
    d.run().conv2d_backward(a, &s)?;
    Ok(dx)
}
