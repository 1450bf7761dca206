//! Windows over a continuous piece of data, as SeisBench cuts them: starts every
//! `window − overlap` samples from 0 while a whole window fits, plus one window aligned to the
//! end when the last regular one stops short of it, so every sample is covered.

use anyhow::{bail, Result};

/// The overlap in samples: a value below 1 is a fraction of the window (rounded down, as
/// SeisBench does), 1 or more a number of samples. It must leave a stride of at least one
/// sample.
pub fn overlap_samples(overlap: f64, window: usize) -> Result<usize> {
    if !(overlap.is_finite() && overlap >= 0.0) {
        bail!("--overlap must be a fraction in [0, 1) or a number of samples, found {overlap}");
    }
    let o = if overlap < 1.0 {
        (overlap * window as f64).floor() as usize
    } else {
        if overlap.fract() != 0.0 {
            bail!("--overlap {overlap}: a value of 1 or more is a number of samples and must be whole");
        }
        overlap as usize
    };
    if window > 0 && o >= window {
        bail!(
            "--overlap {overlap} is {o} samples, not less than the window of {window}: \
             windows would not advance"
        );
    }
    Ok(o)
}

/// Start samples of the windows of `window` samples over `n` samples with `overlap` samples
/// shared between neighbours. Empty when `n < window` (the caller pads or skips such a piece).
pub fn window_starts(n: usize, window: usize, overlap: usize) -> Vec<usize> {
    if window == 0 || n < window {
        return Vec::new();
    }
    let stride = (window - overlap.min(window - 1)).max(1);
    let mut out: Vec<usize> = (0..=n - window).step_by(stride).collect();
    if let Some(&last) = out.last() {
        if last + window < n {
            out.push(n - window);
        }
    }
    out
}

/// How many windows [`window_starts`] gives, without listing them.
pub fn window_count(n: usize, window: usize, overlap: usize) -> usize {
    if window == 0 || n < window {
        return 0;
    }
    let stride = (window - overlap.min(window - 1)).max(1);
    let regular = (n - window) / stride + 1;
    regular + usize::from((regular - 1) * stride + window < n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps() {
        assert_eq!(overlap_samples(0.5, 3001).unwrap(), 1500);
        assert_eq!(overlap_samples(1500.0, 3001).unwrap(), 1500);
        assert_eq!(overlap_samples(0.0, 3001).unwrap(), 0);
        assert!(overlap_samples(3001.0, 3001).is_err());
        assert!(overlap_samples(2.5, 3001).is_err());
        assert!(overlap_samples(-0.1, 3001).is_err());
        assert!(overlap_samples(f64::NAN, 3001).is_err());
    }

    #[test]
    fn every_sample_is_covered_and_the_last_window_ends_at_the_end() {
        assert_eq!(window_starts(10, 4, 2), vec![0, 2, 4, 6]);
        assert_eq!(window_starts(11, 4, 2), vec![0, 2, 4, 6, 7]);
        assert_eq!(window_starts(4, 4, 2), vec![0]);
        assert_eq!(window_starts(3, 4, 2), Vec::<usize>::new());
        assert_eq!(window_starts(9, 4, 0), vec![0, 4, 5]);
        for n in 1..200 {
            for w in 1..20 {
                for o in 0..w {
                    let s = window_starts(n, w, o);
                    assert_eq!(s.len(), window_count(n, w, o), "{n} {w} {o}");
                    if n < w {
                        assert!(s.is_empty());
                        continue;
                    }
                    let mut cover = vec![0; n];
                    for &a in &s {
                        assert!(a + w <= n);
                        cover[a..a + w].iter_mut().for_each(|c| *c += 1);
                    }
                    assert!(cover.iter().all(|&c| c > 0), "{n} {w} {o}: {s:?}");
                    assert_eq!(s[0], 0);
                    assert_eq!(s.last().unwrap() + w, n);
                    assert!(s.windows(2).all(|p| p[1] > p[0] && p[1] - p[0] <= w - o));
                }
            }
        }
    }
}
