//! Train/dev/test by event: the sorted event ids are shuffled with the seed and cut by the
//! fractions, so every window of an event (and its noise windows) is in one split.

use crate::data::synth::Rng;
use anyhow::{bail, Result};
use std::collections::BTreeMap;

pub const SPLITS: [&str; 3] = ["train", "dev", "test"];

/// Fractions must be ≥ 0 and sum to 1.
pub fn check_fractions(f: &[f64; 3]) -> Result<()> {
    let sum: f64 = f.iter().sum();
    if f.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || (sum - 1.0).abs() > 1e-6 {
        bail!(
            "--split {},{},{}: give train,dev,test fractions ≥ 0 that sum to 1 (e.g. 0.7,0.1,0.2)",
            f[0],
            f[1],
            f[2]
        );
    }
    Ok(())
}

/// Parses `--split TRAIN,DEV,TEST`.
pub fn parse_fractions(s: &str) -> std::result::Result<[f64; 3], String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| format!("'{s}': give three fractions, e.g. 0.7,0.1,0.2"))?;
    match v[..] {
        [a, b, c] => Ok([a, b, c]),
        _ => Err(format!("'{s}': give three fractions, e.g. 0.7,0.1,0.2")),
    }
}

/// The split of each event: deterministic from the seed and the set of events.
pub fn assign(events: &[String], fractions: [f64; 3], seed: u64) -> BTreeMap<String, &'static str> {
    let mut ev: Vec<&String> = events.iter().collect();
    ev.sort();
    ev.dedup();
    Rng::for_sample(seed, 32, 0).shuffle(&mut ev);
    let n = ev.len();
    let n_train = (fractions[0] * n as f64).round() as usize;
    let n_dev = ((fractions[0] + fractions[1]) * n as f64).round() as usize - n_train.min(n);
    ev.into_iter()
        .enumerate()
        .map(|(i, e)| {
            let s = if i < n_train {
                SPLITS[0]
            } else if i < n_train + n_dev {
                SPLITS[1]
            } else {
                SPLITS[2]
            };
            (e.clone(), s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_of_events() {
        let ev: Vec<String> = (0..100).map(|i| format!("e{i}")).collect();
        let a = assign(&ev, [0.7, 0.1, 0.2], 3);
        let count = |s: &str| a.values().filter(|v| **v == s).count();
        assert_eq!((count("train"), count("dev"), count("test")), (70, 10, 20));
        assert_eq!(a, assign(&ev, [0.7, 0.1, 0.2], 3));
        assert_ne!(a, assign(&ev, [0.7, 0.1, 0.2], 4));
        assert!(check_fractions(&[0.5, 0.5, 0.1]).is_err());
        assert!(check_fractions(&[1.1, -0.1, 0.0]).is_err());
        assert_eq!(parse_fractions("0.8, 0.1,0.1"), Ok([0.8, 0.1, 0.1]));
        assert!(parse_fractions("0.8,0.2").is_err());
    }
}
