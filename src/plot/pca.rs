//! The two leading principal components of `n` points in `d` dimensions, for scatter plots of
//! embeddings.

use anyhow::{bail, Result};

/// Points projected on the first two principal components.
#[derive(Clone, Debug)]
pub struct Pca2 {
    /// Coordinates on the first component.
    pub x: Vec<f64>,
    /// Coordinates on the second component.
    pub y: Vec<f64>,
    /// The share of the total variance each component explains (0…1).
    pub explained: [f64; 2],
}

impl Pca2 {
    /// Axis names with the explained variance: "PC 1 (42.0% of variance)".
    pub fn axis_labels(&self) -> [String; 2] {
        [0, 1].map(|i| {
            format!(
                "PC {} ({:.1}% of variance)",
                i + 1,
                100.0 * self.explained[i]
            )
        })
    }
}

/// Projects the rows of `data` (`n × d`, row-major) onto their first two principal components
/// (subspace iteration on the centred data; deterministic, O(n·d) memory-free per iteration).
/// Errors on a shape mismatch, fewer than 2 points or dimensions, or non-finite values.
pub fn pca_2d(data: &[f32], n: usize, d: usize) -> Result<Pca2> {
    if n < 2 || d < 2 {
        bail!("PCA to 2-D needs at least 2 points of 2 dimensions, found {n} of {d}");
    }
    if n.checked_mul(d) != Some(data.len()) {
        bail!(
            "PCA: {} values for {n} points of {d} dimensions",
            data.len()
        );
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        bail!(
            "PCA: point {} has a non-finite value ({}) in dimension {}",
            i / d,
            data[i],
            i % d
        );
    }
    let mut mean = vec![0f64; d];
    for row in data.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    for m in &mut mean {
        *m /= n as f64;
    }
    let total: f64 = data
        .chunks_exact(d)
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(&v, m)| (v as f64 - m).powi(2))
                .sum::<f64>()
        })
        .sum();
    let project = |v: &[f64]| -> Vec<f64> {
        data.chunks_exact(d)
            .map(|r| {
                r.iter()
                    .zip(&mean)
                    .zip(v)
                    .map(|((&x, m), w)| (x as f64 - m) * w)
                    .sum()
            })
            .collect()
    };
    // w = Xcᵀ (Xc v)
    let apply = |v: &[f64]| -> Vec<f64> {
        let p = project(v);
        let mut w = vec![0f64; d];
        for (r, pi) in data.chunks_exact(d).zip(&p) {
            for ((wj, &x), m) in w.iter_mut().zip(r).zip(&mean) {
                *wj += (x as f64 - m) * pi;
            }
        }
        w
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let normalise = |v: &mut Vec<f64>| {
        let n = dot(v, v).sqrt();
        if n > 0.0 {
            v.iter_mut().for_each(|x| *x /= n);
        }
        n
    };
    // Deterministic start vectors that are not orthogonal to typical components.
    let mut v1: Vec<f64> = (0..d).map(|j| 1.0 + (j % 7) as f64 * 0.13).collect();
    let mut v2: Vec<f64> = (0..d)
        .map(|j| {
            if j % 2 == 0 {
                1.0
            } else {
                -0.7 - (j % 5) as f64 * 0.1
            }
        })
        .collect();
    normalise(&mut v1);
    let (mut l1, mut l2) = (0.0, 0.0);
    for _ in 0..500 {
        let mut a = apply(&v1);
        let mut b = apply(&v2);
        l1 = normalise(&mut a);
        let proj = dot(&b, &a);
        b.iter_mut().zip(&a).for_each(|(x, y)| *x -= proj * y);
        l2 = normalise(&mut b);
        let done = dot(&a, &v1).abs() > 1.0 - 1e-12 && dot(&b, &v2).abs() > 1.0 - 1e-12;
        v1 = a;
        v2 = b;
        if done {
            break;
        }
    }
    // A deterministic sign: the largest entry positive.
    for v in [&mut v1, &mut v2] {
        let big = v
            .iter()
            .cloned()
            .fold(0f64, |a, x| if x.abs() > a.abs() { x } else { a });
        if big < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
    }
    let explained = if total > 0.0 {
        [l1 / total, l2 / total]
    } else {
        [0.0, 0.0]
    };
    Ok(Pca2 {
        x: project(&v1),
        y: project(&v2),
        explained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn finds_the_leading_directions() {
        // Points spread 10× along (1, 1, 0)/√2 and 3× along (0, 0, 1), little elsewhere.
        let mut data = Vec::new();
        for i in 0..200 {
            let a = ((i * 37) % 200) as f32 / 100.0 - 1.0;
            let b = ((i * 91) % 200) as f32 / 100.0 - 1.0;
            let c = ((i * 13) % 200) as f32 / 1000.0;
            data.extend([10.0 * a + c, 10.0 * a - c, 3.0 * b + 5.0]);
        }
        let p = pca_2d(&data, 200, 3).unwrap();
        // Variances ≈ 200/3 along PC 1 and 3 along PC 2 (uniform a, b in [-1, 1]).
        assert!(
            p.explained[0] > 0.9 && p.explained[1] > 0.03,
            "{:?}",
            p.explained
        );
        assert!((p.explained[0] + p.explained[1]) <= 1.0 + 1e-9);
        // PC 1 is ±√2·10·a.
        let a5 = 0.85; // point 5: (5 · 37) % 200 / 100 − 1
        let ratio = p.x[5] / (10.0 * a5);
        assert!((ratio.abs() - 2f64.sqrt()).abs() < 1e-2, "{ratio}");
        assert!(pca_2d(&data, 100, 3).is_err());
        let mut bad = data.clone();
        bad[4] = f32::NAN;
        assert!(pca_2d(&bad, 200, 3)
            .unwrap_err()
            .to_string()
            .contains("point 1"));
    }
}
