//! Classification metrics: accuracy, confusion matrix, Matthews correlation coefficient and
//! the area under the ROC curve.

use anyhow::{bail, Result};

/// Fraction of positions where `pred` equals `truth`. Errors on different lengths or no data.
pub fn accuracy<T: PartialEq>(pred: &[T], truth: &[T]) -> Result<f64> {
    let (n, m) = ((pred.len(), "predictions"), (truth.len(), "labels"));
    super::check_pairs("accuracy", n, m, "one prediction per label")?;
    if pred.is_empty() {
        bail!("accuracy: no predictions");
    }
    let hits = pred.iter().zip(truth).filter(|(a, b)| a == b).count();
    Ok(hits as f64 / pred.len() as f64)
}

/// Confusion matrix `m[true][pred]` over `classes` classes; pairs with a label outside
/// [0, classes) are ignored (as the segmentation metrics do).
pub fn confusion_matrix(pred: &[usize], truth: &[usize], classes: usize) -> Result<Vec<Vec<u64>>> {
    let (n, m) = ((pred.len(), "predictions"), (truth.len(), "labels"));
    super::check_pairs("confusion matrix", n, m, "one prediction per label")?;
    let mut m = vec![vec![0u64; classes]; classes];
    for (&p, &t) in pred.iter().zip(truth) {
        if p < classes && t < classes {
            m[t][p] += 1;
        }
    }
    Ok(m)
}

/// Matthews correlation coefficient of a confusion matrix `m[true][pred]` (the multiclass
/// form of Gorodkin 2004, which sklearn computes; for 2 classes it is the usual
/// (TP·TN − FP·FN)/√((TP+FP)(TP+FN)(TN+FP)(TN+FN))). 0 when a denominator factor is 0.
pub fn mcc(m: &[Vec<u64>]) -> Result<f64> {
    let k = m.len();
    if m.iter().any(|r| r.len() != k) {
        bail!("mcc: the confusion matrix must be square ({k} rows)");
    }
    let s: f64 = m.iter().flatten().map(|&v| v as f64).sum();
    let c: f64 = (0..k).map(|i| m[i][i] as f64).sum();
    let t: Vec<f64> = (0..k).map(|i| m[i].iter().sum::<u64>() as f64).collect();
    let p: Vec<f64> = (0..k)
        .map(|j| (0..k).map(|i| m[i][j]).sum::<u64>() as f64)
        .collect();
    let tp: f64 = t.iter().zip(&p).map(|(a, b)| a * b).sum();
    let den = ((s * s - p.iter().map(|v| v * v).sum::<f64>())
        * (s * s - t.iter().map(|v| v * v).sum::<f64>()))
    .sqrt();
    Ok(if den == 0.0 { 0.0 } else { (c * s - tp) / den })
}

/// Macro-averaged F1 of a confusion matrix `m[true][pred]` (sklearn's `f1_score(average=
/// "macro")`: the mean over classes of 2·TP / (2·TP + FP + FN), a class with no true and no
/// predicted sample scoring 0).
pub fn macro_f1(m: &[Vec<u64>]) -> Result<f64> {
    let k = m.len();
    if k == 0 || m.iter().any(|r| r.len() != k) {
        bail!("macro_f1: the confusion matrix must be square and non-empty");
    }
    let mut sum = 0.0;
    for (c, row) in m.iter().enumerate() {
        let tp = row[c] as f64;
        let fp = (0..k).filter(|&i| i != c).map(|i| m[i][c]).sum::<u64>() as f64;
        let fn_ = (0..k).filter(|&j| j != c).map(|j| row[j]).sum::<u64>() as f64;
        let den = 2.0 * tp + fp + fn_;
        sum += if den == 0.0 { 0.0 } else { 2.0 * tp / den };
    }
    Ok(sum / k as f64)
}

/// MCC of binary predictions against binary labels.
pub fn mcc_binary(pred: &[bool], truth: &[bool]) -> Result<f64> {
    let p: Vec<usize> = pred.iter().map(|&b| b as usize).collect();
    let t: Vec<usize> = truth.iter().map(|&b| b as usize).collect();
    mcc(&confusion_matrix(&p, &t, 2)?)
}

/// Area under the ROC curve of `scores` for the positive labels: the Mann–Whitney statistic
/// with tied scores given their average rank (so a tie between a positive and a negative counts
/// one half), as sklearn's `roc_auc_score`. Errors when a class is absent or a score is NaN.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Result<f64> {
    let (n, m) = ((scores.len(), "scores"), (positive.len(), "labels"));
    super::check_pairs("roc_auc", n, m, "one score per label")?;
    if scores.iter().any(|s| s.is_nan()) {
        bail!("roc_auc: a score is NaN");
    }
    let npos = positive.iter().filter(|&&b| b).count();
    let nneg = positive.len() - npos;
    if npos == 0 || nneg == 0 {
        bail!("roc_auc: needs both classes, found {npos} positive and {nneg} negative labels");
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg * idx[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let (np, nn) = (npos as f64, nneg as f64);
    Ok((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}
