//! Segmentation metrics from a confusion matrix M[true][pred] (SFM's evaluation): pixel
//! accuracy (PA), class pixel accuracy (CPA, per class: right / predicted as the class),
//! mean PA over classes (mPA), intersection over union per class (IoU) and its mean (mIoU).
//! Classes absent from both truth and prediction are left out of the means.

/// The metrics of one confusion matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentationScores {
    pub pa: f64,
    /// Per class; NaN where nothing was predicted as the class.
    pub cpa: Vec<f64>,
    pub mpa: f64,
    /// Per class; NaN where the class is absent from truth and prediction.
    pub iou: Vec<f64>,
    pub miou: f64,
}

pub fn segmentation_scores(m: &[Vec<u64>]) -> SegmentationScores {
    let k = m.len();
    let total: u64 = m.iter().flatten().sum();
    let diag: u64 = (0..k).map(|i| m[i][i]).sum();
    let row = |i: usize| m[i].iter().sum::<u64>();
    let col = |j: usize| m.iter().map(|r| r[j]).sum::<u64>();
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            f64::NAN
        } else {
            a as f64 / b as f64
        }
    };
    let cpa: Vec<f64> = (0..k).map(|i| ratio(m[i][i], col(i))).collect();
    let iou: Vec<f64> = (0..k)
        .map(|i| ratio(m[i][i], row(i) + col(i) - m[i][i]))
        .collect();
    let mean = |v: &[f64]| {
        let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if f.is_empty() {
            f64::NAN
        } else {
            f.iter().sum::<f64>() / f.len() as f64
        }
    };
    SegmentationScores {
        pa: ratio(diag, total),
        mpa: mean(&cpa),
        miou: mean(&iou),
        cpa,
        iou,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn by_hand() {
        // truth 0: 3 px (2 right, 1 as 1); truth 1: 2 px (both right)
        let m = vec![vec![2, 1], vec![0, 2]];
        let s = segmentation_scores(&m);
        assert!((s.pa - 0.8).abs() < 1e-12);
        assert!((s.cpa[0] - 1.0).abs() < 1e-12 && (s.cpa[1] - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.iou[0] - 2.0 / 3.0).abs() < 1e-12 && (s.iou[1] - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.miou - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.mpa - 5.0 / 6.0).abs() < 1e-12);
    }
}
