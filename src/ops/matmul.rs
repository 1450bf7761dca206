//! Matrix products with transposes, batching, broadcasting of a 2-D operand, optional bias and
//! accumulation, and their backward pass.

use super::*;
use crate::backend::api::matmul::MatmulInput;
use crate::backend::cpu::matmul::{self as cpu, MatmulShape};

/// Works out the product's shape: a is [..., M, K] ([..., K, M] when `ta`), b is [..., K, N]
/// ([..., N, K] when `tb`) or 2-D (shared by every batch entry), likewise a may be 2-D.
/// Returns the kernel shape and the output shape.
pub fn infer_shape(
    a: &[usize],
    b: &[usize],
    ta: bool,
    tb: bool,
) -> Result<(MatmulShape, Vec<usize>)> {
    if a.len() < 2 || b.len() < 2 {
        bail!(
            "matmul: both operands need at least 2 dimensions, found {:?} and {:?}",
            a,
            b
        );
    }
    let (ar, br) = (a.len(), b.len());
    let (m, ka) = if ta {
        (a[ar - 1], a[ar - 2])
    } else {
        (a[ar - 2], a[ar - 1])
    };
    let (kb, n) = if tb {
        (b[br - 1], b[br - 2])
    } else {
        (b[br - 2], b[br - 1])
    };
    if ka != kb {
        bail!(
            "matmul: inner dimensions differ: {:?}{} has K = {ka} but {:?}{} has K = {kb}",
            a,
            if ta { "ᵀ" } else { "" },
            b,
            if tb { "ᵀ" } else { "" }
        );
    }
    let (abatch, bbatch) = (&a[..ar - 2], &b[..br - 2]);
    let k = ka;
    let nb = |d: &[usize]| d.iter().product::<usize>();
    let kernel_shape = |batch, m, a_stride, b_stride| MatmulShape {
        batch,
        m,
        n,
        k,
        ta,
        tb,
        a_stride,
        b_stride,
    };
    let (batch_dims, shape) = if bbatch.is_empty() && !ta {
        // Fold a's batch into its rows: one big product.
        (abatch.to_vec(), kernel_shape(1, nb(abatch) * m, 0, 0))
    } else if bbatch.is_empty() {
        (abatch.to_vec(), kernel_shape(nb(abatch), m, m * k, 0))
    } else if abatch.is_empty() {
        (bbatch.to_vec(), kernel_shape(nb(bbatch), m, 0, k * n))
    } else if abatch == bbatch {
        (abatch.to_vec(), kernel_shape(nb(abatch), m, m * k, k * n))
    } else {
        bail!("matmul: batch dimensions differ: {:?} and {:?} (they must match, or one operand must be 2-D)", abatch, bbatch);
    };
    let mut out = batch_dims;
    out.push(m);
    out.push(n);
    Ok((shape, out))
}

/// Runs one product into `c` with an explicit kernel shape (no inference).
pub fn matmul_raw(
    c: &mut Tensor,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    s: &MatmulShape,
    accumulate: bool,
) -> Result<()> {
    let d = check_matmul(c, a, b, bias, s)?;
    let x = MatmulInput {
        a,
        b,
        bias,
        accumulate,
    };
    d.run().matmul(c, x, s)
}

/// The checks of every product writing `c` = op(a) · op(b) (+ bias) of shape `s`: float
/// dtypes alike, the bias as long as a row of c, buffers large enough, one device (returned).
fn check_matmul(
    c: &Tensor,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    s: &MatmulShape,
) -> Result<Device> {
    check_float("matmul", "a", a)?;
    check_same_dtype("matmul", a, b)?;
    check_same_dtype("matmul", a, c)?;
    if let Some(bias) = bias {
        check_same_dtype("matmul", a, bias)?;
        if bias.numel() != s.n {
            bail!(
                "matmul: bias has {} elements but the output has {} columns",
                bias.numel(),
                s.n
            );
        }
    }
    let need_a = if s.a_stride == 0 {
        s.m * s.k
    } else {
        s.a_stride * (s.batch - 1) + s.m * s.k
    };
    let need_b = if s.b_stride == 0 {
        s.k * s.n
    } else {
        s.b_stride * (s.batch - 1) + s.k * s.n
    };
    if a.numel() < need_a || b.numel() < need_b || c.numel() != s.batch * s.m * s.n {
        bail!(
            "matmul: buffers too small for {s:?} (a {}, b {}, c {})",
            a.numel(),
            b.numel(),
            c.numel()
        );
    }
    let d = check_device("matmul", &[c, a, b])?;
    if let Some(bias) = bias {
        check_device("matmul", &[a, bias])?;
    }
    Ok(d)
}

/// (h, gelu(h)) with h = op(a) · op(b) (+ bias): an MLP's first product and its activation,
/// computed in one pass where the backend fuses them (the tensor-core product's epilogue),
/// else as the product and the GELU op. h is what the backward pass needs.
pub fn matmul_gelu(
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
    bias: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (s, out_shape) = infer_shape(&a.shape, &b.shape, ta, tb)?;
    let mut h = alloc(&a.device(), &out_shape, a.dtype)?;
    let mut act = alloc(&a.device(), &out_shape, a.dtype)?;
    let d = check_matmul(&h, a, b, bias, &s)?;
    let x = MatmulInput {
        a,
        b,
        bias,
        accumulate: false,
    };
    d.run().matmul_gelu(&mut h, &mut act, x, &s)?;
    Ok((h, act))
}

/// (op(a) · op(b)) · gelu'(h): the input gradient of a product whose input was gelu(h),
/// carried back through the GELU (h shaped like the product). One pass where the backend
/// fuses it, else the product and the GELU's backward op.
pub fn matmul_dgelu(a: &Tensor, b: &Tensor, ta: bool, tb: bool, h: &Tensor) -> Result<Tensor> {
    let (s, out_shape) = infer_shape(&a.shape, &b.shape, ta, tb)?;
    if h.numel() != s.batch * s.m * s.n {
        bail!(
            "matmul_dgelu: the pre-activation {:?} does not match the product's shape {:?}",
            h.shape,
            out_shape
        );
    }
    check_same_dtype("matmul_dgelu", a, h)?;
    let mut dh = alloc(&a.device(), &out_shape, a.dtype)?;
    let d = check_matmul(&dh, a, b, None, &s)?;
    check_device("matmul_dgelu", &[a, h])?;
    let x = MatmulInput {
        a,
        b,
        bias: None,
        accumulate: false,
    };
    d.run().matmul_dgelu(&mut dh, x, &s, h)?;
    Ok(dh)
}

/// op(a) · op(b) (+ bias over the last axis).
pub fn matmul(a: &Tensor, b: &Tensor, ta: bool, tb: bool, bias: Option<&Tensor>) -> Result<Tensor> {
    let (s, out_shape) = infer_shape(&a.shape, &b.shape, ta, tb)?;
    let mut c = alloc(&a.device(), &out_shape, a.dtype)?;
    matmul_raw(&mut c, a, b, bias, &s, false)?;
    Ok(c)
}

/// Gradients of `matmul(a, b, ta, tb, bias)` given the output gradient `dc`.
pub struct MatmulGrads {
    pub da: Tensor,
    pub db: Tensor,
    /// Present when the forward pass had a bias.
    pub dbias: Option<Tensor>,
}

/// Sums a [batch, rest...] gradient over its batch entries when the operand was shared.
fn reduce_batch(g: Tensor, batch: usize, shape: &[usize]) -> Result<Tensor> {
    if batch == 1 {
        return g.reshape(shape);
    }
    let cols = g.numel() / batch;
    let g2 = g.reshape(&[batch, cols])?;
    sum_rows(&g2)?.reshape(shape)
}

pub fn matmul_backward(
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
    with_bias: bool,
    dc: &Tensor,
) -> Result<MatmulGrads> {
    let (s, out_shape) = infer_shape(&a.shape, &b.shape, ta, tb)?;
    if dc.shape != out_shape {
        bail!(
            "matmul_backward: dc has shape {:?}, expected {:?}",
            dc.shape,
            out_shape
        );
    }
    let (m, n, k) = (s.m, s.n, s.k);
    let dcs = m * n;
    // Gradient shapes follow the stored layout of each operand.
    let shape = |(m, n, k), (ta, tb), (a_stride, b_stride)| MatmulShape {
        batch: s.batch,
        m,
        n,
        k,
        ta,
        tb,
        a_stride,
        b_stride,
    };
    // (m, n, k), (ta, tb), (a_stride, b_stride) of each gradient product
    let da_s = match (ta, tb) {
        (false, false) => shape((m, k, n), (false, true), (dcs, s.b_stride)),
        (false, true) => shape((m, k, n), (false, false), (dcs, s.b_stride)),
        (true, false) => shape((k, m, n), (false, true), (s.b_stride, dcs)),
        (true, true) => shape((k, m, n), (true, true), (s.b_stride, dcs)),
    };
    let db_s = match (ta, tb) {
        (false, false) => shape((k, n, m), (true, false), (s.a_stride, dcs)),
        (false, true) => shape((n, k, m), (true, false), (dcs, s.a_stride)),
        (true, false) => shape((k, n, m), (false, false), (s.a_stride, dcs)),
        (true, true) => shape((n, k, m), (true, true), (dcs, s.a_stride)),
    };
    let dev_ = a.device();
    // Which operand comes first in each gradient product (see the shapes above).
    let (dc_first_a, dc_first_b) = (!ta, tb);
    let mut da = alloc(&dev_, &[da_s.batch * da_s.m * da_s.n], a.dtype)?;
    if dc_first_a {
        matmul_raw(&mut da, dc, b, None, &da_s, false)?;
    } else {
        matmul_raw(&mut da, b, dc, None, &da_s, false)?;
    }
    let mut db = alloc(&dev_, &[db_s.batch * db_s.m * db_s.n], a.dtype)?;
    if dc_first_b {
        matmul_raw(&mut db, dc, a, None, &db_s, false)?;
    } else {
        matmul_raw(&mut db, a, dc, None, &db_s, false)?;
    }
    let da = if s.a_stride == 0 && s.batch > 1 {
        reduce_batch(da, s.batch, &a.shape)?
    } else {
        da.reshape(&a.shape)?
    };
    let db = if s.b_stride == 0 && s.batch > 1 {
        reduce_batch(db, s.batch, &b.shape)?
    } else {
        db.reshape(&b.shape)?
    };
    let dbias = if with_bias {
        let rows = dc.numel() / n.max(1);
        Some(sum_rows(&dc.try_clone()?.reshape(&[rows, n])?)?)
    } else {
        None
    };
    Ok(MatmulGrads { da, db, dbias })
}

/// out (+)= Σ over rows of a [rows, cols] tensor (bias gradients accumulate into `out`, a
/// [cols] view that may be part of a larger buffer).
pub fn sum_rows_into(out: &mut Tensor, x: &Tensor, accumulate: bool) -> Result<()> {
    check_float("sum_rows", "x", x)?;
    check_same_dtype("sum_rows", out, x)?;
    let cols = out.numel();
    if cols == 0 || !x.numel().is_multiple_of(cols) {
        bail!(
            "sum_rows: {:?} is not made of rows of {cols} columns",
            x.shape
        );
    }
    let d = check_device("sum_rows", &[out, x])?;
    d.run().sum_rows(out, x, accumulate)
}

/// Σ over rows of a [rows, cols] tensor → [cols] (bias gradients).
pub fn sum_rows(x: &Tensor) -> Result<Tensor> {
    check_float("sum_rows", "x", x)?;
    if x.rank() != 2 {
        bail!("sum_rows: expected a 2-D tensor, found {:?}", x.shape);
    }
    let cols = x.shape[1];
    let d = x.device();
    let mut out = alloc(&d, &[cols], x.dtype)?;
    d.run().sum_rows(&mut out, x, false)?;
    Ok(out)
}

/// f64 oracle for tests: the same product by a plain loop.
pub fn matmul_reference(
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
    bias: Option<&Tensor>,
) -> Result<Vec<f64>> {
    let (s, _) = infer_shape(&a.shape, &b.shape, ta, tb)?;
    let biasv = bias.map(|t| t.to_vec_f32()).transpose()?;
    Ok(cpu::matmul_f64_reference(
        &a.to_vec_f32()?,
        &b.to_vec_f32()?,
        biasv.as_deref(),
        &s,
    ))
}
