//! Evaluation metrics (docs/reference.md, "Metrics" and "SeisBench pick benchmark"):
//! classification (accuracy, confusion matrix, MCC, ROC AUC with tied ranks averaged) and the
//! SeisBench picking tasks (detection AUC, P-vs-S MCC with a dev-chosen threshold, onset
//! residuals). Plain functions over slices, computed in f64; no tensors.

pub mod classification;
pub mod picking;
pub mod segmentation;

pub use classification::{accuracy, confusion_matrix, macro_f1, mcc, mcc_binary, roc_auc};
pub use picking::{
    detection_auc, detection_score, onset_stats, onset_stats_from_probs, phase_identification,
    phase_score, OnsetStats, PhaseIdentification,
};
pub use segmentation::{segmentation_scores, SegmentationScores};

/// Errors unless two inputs pair up one to one: "{what}: {n} {a} but {m} {b}; give {hint}".
fn check_pairs(
    what: &str,
    (n, a): (usize, &str),
    (m, b): (usize, &str),
    hint: &str,
) -> anyhow::Result<()> {
    if n != m {
        anyhow::bail!("{what}: {n} {a} but {m} {b}; give {hint}");
    }
    Ok(())
}
