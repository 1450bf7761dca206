//! The SeisBench pick benchmark's evaluation (Münchmeyer et al. 2022; docs/reference.md):
//!
//! - task 1, event detection: score of a window = max over time of (1 − noise probability);
//!   metric ROC AUC ([`detection_score`], then [`super::roc_auc`]);
//! - task 2, phase identification: a P-vs-S score per window ([`phase_score`]); MCC with the
//!   threshold chosen on the dev split among 50 quantiles of the dev scores and applied to the
//!   test split ([`phase_identification`]);
//! - task 3, onset time: residual = (predicted − true onset sample) / sampling rate, in
//!   seconds; RMSE and MAE per phase ([`onset_stats`]).

use super::classification::mcc_binary;
use anyhow::{bail, Result};

/// Task 1 score of one window: max over time of (1 − noise probability).
pub fn detection_score(noise_prob: &[f32]) -> f64 {
    noise_prob
        .iter()
        .map(|&n| 1.0 - n as f64)
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Task 2 score of one window: max P / (max P + max S) over the window, in [0, 1] (0.5 when
/// both are 0). High means P. It is a monotone function of the ratio max P / max S, so a
/// threshold on it is a threshold on that ratio.
pub fn phase_score(p_prob: &[f32], s_prob: &[f32]) -> f64 {
    let mp = p_prob.iter().fold(0.0f64, |a, &b| a.max(b as f64));
    let ms = s_prob.iter().fold(0.0f64, |a, &b| a.max(b as f64));
    if mp + ms == 0.0 {
        0.5
    } else {
        mp / (mp + ms)
    }
}

/// The sample of the highest probability (the first on ties): the predicted onset of a
/// window holding one onset of that phase. None for an empty slice.
pub fn onset_sample(prob: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in prob.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// The `q`-quantile of sorted values with linear interpolation (numpy's default method).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Task 2 result.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseIdentification {
    /// Windows with score ≥ threshold are called P.
    pub threshold: f64,
    pub dev_mcc: f64,
    pub test_mcc: f64,
}

/// Chooses the threshold among the 50 quantiles (q = 0, 1/49, …, 1) of the dev scores that
/// maximises the dev MCC (the lowest such threshold on ties), and reports the test MCC at it.
/// `*_is_p`: true for windows whose onset is a P phase.
pub fn phase_identification(
    dev_scores: &[f64],
    dev_is_p: &[bool],
    test_scores: &[f64],
    test_is_p: &[bool],
) -> Result<PhaseIdentification> {
    if dev_scores.len() != dev_is_p.len() || test_scores.len() != test_is_p.len() {
        bail!(
            "phase identification: scores and labels differ in length (dev {} vs {}, test {} vs {})",
            dev_scores.len(),
            dev_is_p.len(),
            test_scores.len(),
            test_is_p.len()
        );
    }
    if dev_scores.is_empty() || test_scores.is_empty() {
        bail!("phase identification: the dev and test splits both need at least one window");
    }
    if dev_scores.iter().chain(test_scores).any(|s| s.is_nan()) {
        bail!("phase identification: a score is NaN");
    }
    let mut sorted = dev_scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let call = |scores: &[f64], th: f64| scores.iter().map(|&s| s >= th).collect::<Vec<_>>();
    let mut best: Option<(f64, f64)> = None;
    for i in 0..50 {
        let th = quantile_sorted(&sorted, i as f64 / 49.0);
        let m = mcc_binary(&call(dev_scores, th), dev_is_p)?;
        if best.is_none_or(|(_, bm)| m > bm) {
            best = Some((th, m));
        }
    }
    let (threshold, dev_mcc) = best.expect("50 candidates");
    let test_mcc = mcc_binary(&call(test_scores, threshold), test_is_p)?;
    Ok(PhaseIdentification {
        threshold,
        dev_mcc,
        test_mcc,
    })
}

/// Task 3 result for one phase.
#[derive(Clone, Debug, PartialEq)]
pub struct OnsetStats {
    /// (predicted − true) / sampling rate, seconds, one per window.
    pub residuals: Vec<f64>,
    pub rmse: f64,
    pub mae: f64,
}

/// Onset residuals in seconds and their RMSE and MAE.
pub fn onset_stats(predicted: &[f64], truth: &[f64], sampling_rate: f64) -> Result<OnsetStats> {
    let (n, m) = (
        (predicted.len(), "predicted onsets"),
        (truth.len(), "true onsets"),
    );
    super::check_pairs("onset residuals", n, m, "one per window")?;
    if predicted.is_empty() {
        bail!("onset residuals: no windows");
    }
    if !(sampling_rate > 0.0 && sampling_rate.is_finite()) {
        bail!("onset residuals: the sampling rate must be positive, found {sampling_rate}");
    }
    let residuals: Vec<f64> = predicted
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t) / sampling_rate)
        .collect();
    let n = residuals.len() as f64;
    let rmse = (residuals.iter().map(|r| r * r).sum::<f64>() / n).sqrt();
    let mae = residuals.iter().map(|r| r.abs()).sum::<f64>() / n;
    Ok(OnsetStats {
        residuals,
        rmse,
        mae,
    })
}

/// Task 1 over windows: ROC AUC of [`detection_score`] of each window's noise probabilities,
/// positives being the windows that hold an event.
pub fn detection_auc(noise_probs: &[&[f32]], has_event: &[bool]) -> Result<f64> {
    let scores: Vec<f64> = noise_probs.iter().map(|p| detection_score(p)).collect();
    super::roc_auc(&scores, has_event)
}

/// Task 3 over windows of one phase: the predicted onset of each window is the sample of its
/// highest probability ([`onset_sample`]); residuals against the true onset samples.
pub fn onset_stats_from_probs(
    phase_probs: &[&[f32]],
    true_onsets: &[f64],
    sampling_rate: f64,
) -> Result<OnsetStats> {
    let mut pred = Vec::with_capacity(phase_probs.len());
    for (i, p) in phase_probs.iter().enumerate() {
        match onset_sample(p) {
            Some(s) => pred.push(s as f64),
            None => bail!("onset residuals: window {i} has no samples"),
        }
    }
    onset_stats(&pred, true_onsets, sampling_rate)
}
