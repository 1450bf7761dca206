//! Pooling a token sequence to one vector per sample, and joining two such vectors.

use crate::ops;
use crate::tensor::Tensor;
use anyhow::{bail, Result};

/// How a token sequence [B, N, C] becomes one vector [B, C].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Token 0: the ViT's cls token (for SeisLM, which has none, the first frame).
    Cls,
    /// The mean over the N tokens.
    Mean,
}

from_keywords!(Pool, |s| "unknown pooling '{s}': expected cls or mean",
    "cls" => Cls,
    "mean" => Mean,
);

/// What [`pool_backward`] needs.
pub struct PoolCache {
    kind: Pool,
    /// Tokens N.
    n: usize,
    /// Cls: the gather index [B, 1] (zeros); Mean: the averaging row [1, N] (1/N).
    aux: Tensor,
}

fn dims(x: &Tensor) -> Result<(usize, usize, usize)> {
    match x.shape[..] {
        [b, n, c] if n > 0 => Ok((b, n, c)),
        _ => bail!(
            "pool: tokens must be [batch, tokens, width] with at least one token, found {:?}",
            x.shape
        ),
    }
}

/// x [B, N, C] → [B, C].
pub fn pool(x: &Tensor, kind: Pool) -> Result<(Tensor, PoolCache)> {
    let (b, n, c) = dims(x)?;
    let dev = x.device();
    match kind {
        Pool::Cls => {
            let idx = Tensor::from_i32(&[b, 1], vec![0; b])?.to_device(&dev)?;
            let y = ops::gather_rows(x, &idx, None)?.reshape(&[b, c])?;
            Ok((y, PoolCache { kind, n, aux: idx }))
        }
        Pool::Mean => {
            let avg = Tensor::from_f32(&[1, n], vec![1.0 / n as f32; n])?
                .to_dtype(x.dtype)?
                .to_device(&dev)?;
            let y = ops::matmul(&avg, x, false, false, None)?.reshape(&[b, c])?;
            Ok((y, PoolCache { kind, n, aux: avg }))
        }
    }
}

/// dx [B, N, C] from dy [B, C].
pub fn pool_backward(c: &PoolCache, dy: &Tensor) -> Result<Tensor> {
    let [b, ch] = dy.shape[..] else {
        bail!(
            "pool backward: the gradient must be [batch, width], found {:?}",
            dy.shape
        );
    };
    let dy3 = dy.clone().reshape(&[b, 1, ch])?;
    match c.kind {
        Pool::Cls => ops::gather_rows_backward(&dy3, &c.aux, c.n, None),
        Pool::Mean => ops::matmul(&c.aux, &dy3, true, false, None),
    }
}

/// [B, da] and [B, db] → [B, da + db].
pub fn concat_features(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (Some(&n), Some(&da), Some(&db)) = (a.shape.first(), a.shape.get(1), b.shape.get(1)) else {
        bail!(
            "concat: expected [batch, width] features, found {:?} and {:?}",
            a.shape,
            b.shape
        );
    };
    if a.rank() != 2 || b.shape != [n, db] {
        bail!(
            "concat: expected [batch, width] features of one batch, found {:?} and {:?}",
            a.shape,
            b.shape
        );
    }
    let x = ops::concat_channels(&[
        &a.clone().reshape(&[n, da, 1, 1])?,
        &b.clone().reshape(&[n, db, 1, 1])?,
    ])?;
    x.reshape(&[n, da + db])
}

/// The backward pass of [`concat_features`]: [B, da + db] → ([B, da], [B, db]).
pub fn split_features(d: &Tensor, da: usize, db: usize) -> Result<(Tensor, Tensor)> {
    let n = d.shape[0];
    let mut parts = ops::split_channels(&d.clone().reshape(&[n, da + db, 1, 1])?, &[da, db])?;
    let b = parts.pop().expect("two parts").reshape(&[n, db])?;
    let a = parts.pop().expect("two parts").reshape(&[n, da])?;
    Ok((a, b))
}
