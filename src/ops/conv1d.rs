//! 1-D convolution (NCW, grouped, strided, padded), weight norm, the last-two-axes transpose
//! (NCW ↔ NWC) and a slice along one axis, each with its backward pass
//! (see backend/cpu/conv1d.rs).

use super::*;
pub use crate::backend::api::conv1d::Conv1dShape;
use crate::backend::api::conv1d::{
    ConvBackward, ConvInput, SliceDims, WeightNormBackward, WeightNormInput,
};

/// Checks x [B, Cin, L], w [Cout, Cin/groups, K] and the bias [Cout], and returns the shape.
fn conv_shape(
    op: &str,
    a: ConvInput,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Conv1dShape> {
    let ConvInput { x, w, bias } = a;
    check_float(op, "x", x)?;
    check_same_dtype(op, x, w)?;
    let [batch, cin, lin] = x.shape[..] else {
        bail!(
            "{op}: input must be [batch, channels, length], found {:?}",
            x.shape
        );
    };
    let [cout, cig, k] = w.shape[..] else {
        bail!(
            "{op}: weight must be [out_channels, in_channels/groups, kernel], found {:?}",
            w.shape
        );
    };
    if groups == 0 || !cin.is_multiple_of(groups) || !cout.is_multiple_of(groups) {
        bail!("{op}: {groups} groups must divide the input channels {cin} and the output channels {cout}");
    }
    if cig != cin / groups {
        bail!(
            "{op}: weight {:?} must have {} input channels per group ({cin} channels in {groups} groups)",
            w.shape,
            cin / groups
        );
    }
    if stride == 0 || k == 0 {
        bail!("{op}: stride and kernel size must be positive (stride {stride}, kernel {k})");
    }
    if let Some(b) = bias {
        check_same_dtype(op, x, b)?;
        if b.shape != [cout] {
            bail!("{op}: bias must be [{cout}], found {:?}", b.shape);
        }
    }
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
    if s.lout().is_none() {
        bail!("{op}: kernel {k} is longer than the padded input ({lin} + 2×{padding})");
    }
    Ok(s)
}

/// y [B, Cout, Lout] = conv1d(x [B, Cin, L], w [Cout, Cin/groups, K]) + bias, PyTorch's
/// `F.conv1d` with zero padding; Lout = (L + 2·padding − K) / stride + 1.
pub fn conv1d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    let a = ConvInput { x, w, bias };
    let s = conv_shape("conv1d", a, stride, padding, groups)?;
    let mut ts = vec![x, w];
    ts.extend(bias);
    let d = check_device("conv1d", &ts)?;
    let mut y = alloc(&d, &[s.batch, s.cout, s.lout().unwrap_or(0)], x.dtype)?;
    d.run().conv1d(&mut y, a, &s)?;
    Ok(y)
}

/// Backward of [`conv1d`]: adds the weight gradient into `dw` and the bias gradient into `db`;
/// returns dx when `want_dx`.
#[allow(clippy::too_many_arguments)]
pub fn conv1d_backward(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
    dw: &mut Tensor,
    db: Option<&mut Tensor>,
    want_dx: bool,
) -> Result<Option<Tensor>> {
    let op = "conv1d_backward";
    let s = conv_shape(op, ConvInput { x, w, bias: None }, stride, padding, groups)?;
    let yshape = [s.batch, s.cout, s.lout().unwrap_or(0)];
    if dy.shape != yshape {
        bail!("{op}: dy must be {yshape:?}, found {:?}", dy.shape);
    }
    check_same_dtype(op, dy, x)?;
    check_like(op, dw, w)?;
    if let Some(db) = db.as_deref() {
        if db.shape != [s.cout] || db.dtype != w.dtype {
            bail!(
                "{op}: db must be {} [{}], found {} {:?}",
                w.dtype,
                s.cout,
                db.dtype,
                db.shape
            );
        }
    }
    let d = check_device(op, &[dy, x, w, dw])?;
    if let Some(db) = db.as_deref() {
        check_device(op, &[dy, db])?;
    }
    let mut dx = if want_dx {
        Some(alloc(&d, &x.shape, x.dtype)?)
    } else {
        None
    };
    let a = ConvBackward {
        dx: dx.as_mut(),
        dw,
        db,
        dy,
        x,
        w,
    };
    d.run().conv1d_backward(a, &s)?;
    Ok(dx)
}

/// What the weight-norm backward pass needs: ‖v‖ per index of the kept axis (f32).
pub struct WeightNormCache {
    pub norm: Tensor,
}

/// (outer, kdim, inner) of `v` around axis `dim`, after checking g.
fn wn_dims(op: &str, g: &Tensor, v: &Tensor, dim: usize) -> Result<(usize, usize, usize)> {
    check_float(op, "v", v)?;
    check_same_dtype(op, g, v)?;
    if dim >= v.rank() {
        bail!("{op}: dim {dim} is out of range for v {:?}", v.shape);
    }
    let kdim = v.shape[dim];
    let want: Vec<usize> = (0..v.rank())
        .map(|i| if i == dim { kdim } else { 1 })
        .collect();
    if g.shape != want {
        bail!(
            "{op}: g must be {want:?} (v {:?}, dim {dim}), found {:?}",
            v.shape,
            g.shape
        );
    }
    let outer = v.shape[..dim].iter().product();
    let inner = v.shape[dim + 1..].iter().product();
    Ok((outer, kdim, inner))
}

/// PyTorch's weight norm: w = g · v / ‖v‖, the norm over every axis of v but `dim`
/// (`weight_norm(conv, dim=2)` in HF wav2vec2: v [Cout, Cin/groups, K], g [1, 1, K]).
pub fn weight_norm(g: &Tensor, v: &Tensor, dim: usize) -> Result<(Tensor, WeightNormCache)> {
    let (outer, kdim, inner) = wn_dims("weight_norm", g, v, dim)?;
    let d = check_device("weight_norm", &[g, v])?;
    let mut w = alloc(&d, &v.shape, v.dtype)?;
    let mut norm = alloc(&d, &[kdim], DType::F32)?;
    let a = WeightNormInput { g, v, outer, inner };
    d.run().weight_norm(&mut w, &mut norm, a)?;
    Ok((w, WeightNormCache { norm }))
}

/// Backward of [`weight_norm`] from the gradient of w: adds into `dg` and `dv`.
#[allow(clippy::too_many_arguments)]
pub fn weight_norm_backward(
    dw: &Tensor,
    g: &Tensor,
    v: &Tensor,
    dim: usize,
    cache: &WeightNormCache,
    dg: &mut Tensor,
    dv: &mut Tensor,
) -> Result<()> {
    let op = "weight_norm_backward";
    let (outer, kdim, inner) = wn_dims(op, g, v, dim)?;
    check_like(op, dw, v)?;
    check_like(op, dg, g)?;
    check_like(op, dv, v)?;
    if cache.norm.shape != [kdim] {
        bail!(
            "{op}: the cache holds {:?} norms, expected [{kdim}]",
            cache.norm.shape
        );
    }
    let d = check_device(op, &[dw, g, v, dg, dv, &cache.norm])?;
    d.run().weight_norm_backward(WeightNormBackward {
        dg,
        dv,
        dw,
        input: WeightNormInput { g, v, outer, inner },
        norm: &cache.norm,
    })
}

/// [B, M, N] → [B, N, M] (NCW ↔ NWC; a rank-2 tensor is one batch). Its backward pass is the
/// same op on the output gradient.
pub fn transpose_last2(x: &Tensor) -> Result<Tensor> {
    check_float("transpose_last2", "x", x)?;
    let (m, n) = match x.shape[..] {
        [m, n] | [_, m, n] => (m, n),
        _ => bail!(
            "transpose_last2: x must be [batch, rows, cols] or [rows, cols], found {:?}",
            x.shape
        ),
    };
    let mut shape = x.shape.clone();
    let r = shape.len();
    shape.swap(r - 2, r - 1);
    let d = x.device();
    let mut out = alloc(&d, &shape, x.dtype)?;
    d.run().transpose_last2(&mut out, x, m, n)?;
    Ok(out)
}

/// Backward of [`transpose_last2`]: the output gradient transposed back.
pub fn transpose_last2_backward(dy: &Tensor) -> Result<Tensor> {
    transpose_last2(dy)
}

fn slice_dims(op: &str, shape: &[usize], axis: usize) -> Result<(usize, usize, usize)> {
    if axis >= shape.len() {
        bail!("{op}: axis {axis} is out of range for shape {shape:?}");
    }
    Ok((
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    ))
}

/// The dims of a slice `start .. start + len` of an axis of length `len_in`, and the output
/// shape: `shape` is the input's (the whole axis in the forward pass, the slice in the
/// backward), `other` the output's length along `axis` (the slice, or the whole axis).
fn slice_plan(
    op: &str,
    shape: &[usize],
    axis: usize,
    start: usize,
    other: usize,
    forward: bool,
) -> Result<(SliceDims, Vec<usize>)> {
    let (outer, here, inner) = slice_dims(op, shape, axis)?;
    let (len_in, len) = if forward {
        (here, other)
    } else {
        (other, here)
    };
    if start + len > len_in {
        bail!(
            "{op}: {start}..{} is out of range for axis {axis} of length {len_in}",
            start + len
        );
    }
    let mut out = shape.to_vec();
    out[axis] = other;
    let dims = SliceDims {
        outer,
        len_in,
        inner,
        start,
        len,
    };
    Ok((dims, out))
}

/// x[..., start..start + len, ...] along `axis` (e.g. dropping the last frame of the positional
/// convolution's output when its kernel is even: axis 2 of [B, C, T+1], start 0, len T).
pub fn slice_axis(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    sliced(
        ("slice_axis", "x"),
        x,
        (axis, start, len),
        true,
        |b, out, x, dims| b.slice_axis(out, x, dims),
    )
}

/// Backward of [`slice_axis`]: dx of length `len_in` along `axis`, dy in the slice, zeros
/// elsewhere.
pub fn slice_axis_backward(
    dy: &Tensor,
    axis: usize,
    start: usize,
    len_in: usize,
) -> Result<Tensor> {
    let op = ("slice_axis_backward", "dy");
    sliced(op, dy, (axis, start, len_in), false, |b, dx, dy, dims| {
        b.slice_axis_backward(dx, dy, dims)
    })
}

/// What [`slice_axis`] and its backward share: checks the input `x` (`(op, name)` for the
/// errors), plans the slice ([`slice_plan`] with `(axis, start, len)`, `forward` as there),
/// allocates the output on x's device and lets `run` call the device's op.
fn sliced(
    (op, name): (&str, &str),
    x: &Tensor,
    (axis, start, len): (usize, usize, usize),
    forward: bool,
    run: fn(&dyn Backend, &mut Tensor, &Tensor, &SliceDims) -> Result<()>,
) -> Result<Tensor> {
    check_float(op, name, x)?;
    let (dims, shape) = slice_plan(op, &x.shape, axis, start, len, forward)?;
    let d = x.device();
    let mut out = alloc(&d, &shape, x.dtype)?;
    run(d.run(), &mut out, x, &dims)?;
    Ok(out)
}
