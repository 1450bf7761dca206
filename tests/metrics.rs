//! Metrics on hand-computable cases (the expected values are worked out in the comments; they
//! are what sklearn's `roc_auc_score`, `matthews_corrcoef` and `confusion_matrix` return).

use seisfuse::metrics::picking::onset_sample;
use seisfuse::metrics::*;

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

#[test]
fn roc_auc_separated_reversed_and_tied() {
    let y = [false, false, true, true];
    close(roc_auc(&[0.1, 0.2, 0.8, 0.9], &y).unwrap(), 1.0);
    close(roc_auc(&[0.9, 0.8, 0.2, 0.1], &y).unwrap(), 0.0);
    // all scores tied: every positive–negative pair counts one half
    close(
        roc_auc(&[0.5; 4], &[false, true, false, true]).unwrap(),
        0.5,
    );
}

#[test]
fn roc_auc_known_examples() {
    // sklearn's documentation example: of the 4 (pos, neg) pairs, (0.35, 0.4) is misordered → 3/4
    close(
        roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap(),
        0.75,
    );
    // ties across classes: positives {0.2, 0.5, 0.9}, negatives {0.2, 0.5}:
    // 0.2 → 0.5 + 0; 0.5 → 1 + 0.5; 0.9 → 1 + 1; total 4 of 6 pairs
    close(
        roc_auc(
            &[0.2, 0.2, 0.5, 0.5, 0.9],
            &[false, true, false, true, true],
        )
        .unwrap(),
        4.0 / 6.0,
    );
}

#[test]
fn roc_auc_rejects_bad_input() {
    let e = roc_auc(&[0.1, 0.2], &[true, true]).unwrap_err().to_string();
    assert!(e.contains("both classes"), "{e}");
    assert!(roc_auc(&[0.1], &[true, false]).is_err());
    assert!(roc_auc(&[f64::NAN, 0.2], &[true, false]).is_err());
}

#[test]
fn confusion_matrix_accuracy_and_mcc() {
    let truth = [0, 0, 1, 1, 2, 2, 7];
    let pred = [0, 1, 1, 1, 2, 0, 0];
    // label 7 is outside the 3 classes and ignored
    let m = confusion_matrix(&pred, &truth, 3).unwrap();
    assert_eq!(m, vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 1]]);
    close(accuracy(&pred, &truth).unwrap(), 4.0 / 7.0);
    // multiclass MCC (Gorodkin): s = 6, c = 4, t = (2, 2, 2), p = (2, 3, 1);
    // (c·s − t·p) / √((s² − Σp²)(s² − Σt²)) = (24 − 12) / √((36 − 14)(36 − 12)) = 12 / √528
    close(mcc(&m).unwrap(), 12.0 / 528f64.sqrt());
    // binary: TN 3, FP 1, FN 2, TP 6 → (6·3 − 1·2)/√(7·8·4·5) = 16/√1120 ≈ 0.478091
    let m2 = vec![vec![3, 1], vec![2, 6]];
    close(mcc(&m2).unwrap(), 16.0 / 1120f64.sqrt());
    // perfect, inverted and constant predictions
    let t = [true, false, true, false];
    close(mcc_binary(&t, &t).unwrap(), 1.0);
    let inv: Vec<bool> = t.iter().map(|b| !b).collect();
    close(mcc_binary(&inv, &t).unwrap(), -1.0);
    close(mcc_binary(&[true; 4], &t).unwrap(), 0.0);
    assert!(accuracy(&[1, 2], &[1]).is_err());
    assert!(mcc(&[vec![1, 2]]).is_err());
}

#[test]
fn seisbench_scores() {
    close(detection_score(&[0.875, 0.25, 0.9375]), 0.75);
    close(phase_score(&[0.125, 0.75], &[0.25, 0.0]), 0.75);
    close(phase_score(&[0.0], &[0.0]), 0.5);
    assert_eq!(onset_sample(&[0.1, 0.7, 0.7, 0.2]), Some(1));
    assert_eq!(onset_sample(&[]), None);
}

#[test]
fn phase_identification_threshold_from_dev_quantiles() {
    let dev = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9];
    let dev_p = [false, false, false, true, true, true];
    // Quantile q of 6 sorted values sits at position 5q. The lowest of the 50 quantiles
    // (q = i/49) that separates the classes needs 5q > 2: i = 20, position 100/49, threshold
    // 0.3 + (100/49 − 2)·0.4 = 0.3163265…
    let test = [0.32, 0.31, 0.5];
    let r = phase_identification(&dev, &dev_p, &test, &[true, false, true]).unwrap();
    close(r.threshold, 0.3 + (100.0 / 49.0 - 2.0) * 0.4);
    close(r.dev_mcc, 1.0);
    close(r.test_mcc, 1.0);
    // test: 0.31 is a P called S → TP 1, FN 1, TN 1, FP 0 → 1/√(1·2·1·2) = 0.5
    let r = phase_identification(&dev, &dev_p, &[0.31, 0.9, 0.1], &[true, true, false]).unwrap();
    close(r.test_mcc, 0.5);
    assert!(phase_identification(&dev, &dev_p[..2], &test, &[true; 3]).is_err());
    assert!(phase_identification(&[], &[], &test, &[true; 3]).is_err());
}

#[test]
fn onset_residuals_in_seconds() {
    // residuals 0.1, −0.05, 0 s: RMSE √(0.0125/3), MAE 0.05
    let s = onset_stats(&[110.0, 95.0, 100.0], &[100.0; 3], 100.0).unwrap();
    for (a, b) in s.residuals.iter().zip([0.1, -0.05, 0.0]) {
        close(*a, b);
    }
    close(s.rmse, (0.0125f64 / 3.0).sqrt());
    close(s.mae, 0.05);
    assert!(onset_stats(&[1.0], &[], 100.0).is_err());
    assert!(onset_stats(&[1.0], &[1.0], 0.0).is_err());
}

#[test]
fn seisbench_tasks_from_probabilities() {
    // task 1: windows with events have lower noise minima (higher scores 0.9, 0.6 vs 0.5, 0.2)
    let w: [&[f32]; 4] = [&[1.0, 0.1], &[0.8, 0.5], &[0.4, 0.9], &[0.8, 0.95]];
    let events = [true, false, true, false];
    close(detection_auc(&w, &events).unwrap(), 1.0);
    // task 3: argmax onsets 1 and 2 against true 1 and 4 at 2 Hz → residuals 0 and −1 s
    let p: [&[f32]; 2] = [&[0.1, 0.9, 0.2], &[0.0, 0.1, 0.8, 0.3, 0.2]];
    let s = onset_stats_from_probs(&p, &[1.0, 4.0], 2.0).unwrap();
    assert_eq!(s.residuals, vec![0.0, -1.0]);
    close(s.rmse, 0.5f64.sqrt());
    close(s.mae, 0.5);
    assert!(onset_stats_from_probs(&[&[]], &[1.0], 2.0).is_err());
}
