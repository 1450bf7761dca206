//! Combining the probabilities of overlapping windows into one trace per class, as SeisBench's
//! `annotate` does: the first and last samples of every window's prediction are blinded (not
//! used: the model sees too little around them), and what remains is averaged (`avg`, the
//! NaN-ignoring mean) or maximised (`max`) per sample. Samples no window covers stay NaN.

/// How overlapping predictions are combined.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stacking {
    /// Mean of the windows covering a sample (SeisBench's default).
    Avg,
    /// Maximum of the windows covering a sample.
    Max,
}

/// Samples of a window's prediction left out at its start and at its end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blinding {
    pub start: usize,
    pub end: usize,
}

/// The running combination of windows over one piece of `n` samples and `classes` classes.
#[derive(Clone, Debug)]
pub struct Stacker {
    n: usize,
    classes: usize,
    mode: Stacking,
    /// `[classes][n]`: sums (avg) or maxima (max).
    acc: Vec<f32>,
    /// Windows that contributed to each sample.
    count: Vec<u32>,
}

impl Stacker {
    pub fn new(n: usize, classes: usize, mode: Stacking) -> Self {
        let init = match mode {
            Stacking::Avg => 0.0,
            Stacking::Max => f32::NEG_INFINITY,
        };
        Stacker {
            n,
            classes,
            mode,
            acc: vec![init; n * classes],
            count: vec![0; n],
        }
    }

    /// Bytes a stacker of `n` samples and `classes` classes holds.
    pub fn bytes(n: usize, classes: usize) -> u128 {
        n as u128 * (classes as u128 * 4 + 4)
    }

    /// Adds the prediction of a window that starts at sample `offset` of the piece: `pred` is
    /// `[len, classes]` (sample-major, as the model returns it). Samples `< blinding.start`
    /// and `≥ len − blinding.end` of the window, and those past the end of the piece (padding),
    /// are left out.
    pub fn add(&mut self, offset: usize, pred: &[f32], len: usize, blinding: Blinding) {
        debug_assert_eq!(pred.len(), len * self.classes);
        let lo = blinding.start.min(len);
        let hi = len
            .saturating_sub(blinding.end)
            .min(self.n.saturating_sub(offset));
        for k in lo..hi {
            let i = offset + k;
            self.count[i] += 1;
            for c in 0..self.classes {
                let v = pred[k * self.classes + c];
                let a = &mut self.acc[c * self.n + i];
                match self.mode {
                    Stacking::Avg => *a += v,
                    Stacking::Max => *a = a.max(v),
                }
            }
        }
    }

    /// `[classes][n]`: the combined probabilities, NaN where no window contributed.
    pub fn finish(mut self) -> Vec<f32> {
        for c in 0..self.classes {
            for i in 0..self.n {
                let a = &mut self.acc[c * self.n + i];
                *a = match (self.count[i], self.mode) {
                    (0, _) => f32::NAN,
                    (k, Stacking::Avg) => *a / k as f32,
                    (_, Stacking::Max) => *a,
                };
            }
        }
        self.acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One class: window predictions given as plain rows.
    fn run(n: usize, mode: Stacking, b: Blinding, windows: &[(usize, Vec<f32>)]) -> Vec<f32> {
        let mut s = Stacker::new(n, 1, mode);
        for (o, p) in windows {
            s.add(*o, p, p.len(), b);
        }
        s.finish()
    }

    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x.is_nan() && y.is_nan()) || (x - y).abs() < 1e-6)
    }

    #[test]
    fn avg_and_max_of_hand_computed_overlaps() {
        // Windows of 4 over 6 samples at 0 and 2: samples 2 and 3 are covered twice.
        let w = [(0, vec![0.1, 0.2, 0.3, 0.4]), (2, vec![0.5, 0.1, 0.8, 0.6])];
        let nb = Blinding::default();
        let avg = run(6, Stacking::Avg, nb, &w);
        assert!(same(&avg, &[0.1, 0.2, 0.4, 0.25, 0.8, 0.6]), "{avg:?}");
        let max = run(6, Stacking::Max, nb, &w);
        assert!(same(&max, &[0.1, 0.2, 0.5, 0.4, 0.8, 0.6]), "{max:?}");
        // Three windows over one sample.
        let w = [
            (0, vec![0.3, 0.9]),
            (1, vec![0.6, 0.0]),
            (1, vec![0.0, 0.0]),
        ];
        assert!(same(&run(3, Stacking::Avg, nb, &w), &[0.3, 0.5, 0.0]));
        assert!(same(&run(3, Stacking::Max, nb, &w), &[0.3, 0.9, 0.0]));
    }

    #[test]
    fn blinding_leaves_window_edges_out() {
        let nan = f32::NAN;
        let b = Blinding { start: 1, end: 2 };
        // One window of 6: samples 0 and 4, 5 are blinded.
        let one = run(
            6,
            Stacking::Avg,
            b,
            &[(0, vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6])],
        );
        assert!(same(&one, &[nan, 0.2, 0.3, 0.4, nan, nan]), "{one:?}");
        // Windows at 0 and 3 of 6 samples over 9: the first keeps 1..4, the second 4..7, so
        // sample 3 comes from the first alone although both cover it, and 7, 8 stay NaN.
        let w = [
            (0, vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
            (3, vec![0.9, 0.8, 0.7, 0.6, 0.5, 0.4]),
        ];
        let avg = run(9, Stacking::Avg, b, &w);
        assert!(
            same(&avg, &[nan, 0.2, 0.3, 0.4, 0.8, 0.7, 0.6, nan, nan]),
            "{avg:?}"
        );
        // A window's padding past the end of the piece is not stacked.
        let pad = run(
            3,
            Stacking::Max,
            Blinding::default(),
            &[(0, vec![0.5, 0.6, 0.7, 0.9])],
        );
        assert!(same(&pad, &[0.5, 0.6, 0.7]));
        // Blinding longer than the window leaves nothing.
        let all = run(
            2,
            Stacking::Avg,
            Blinding { start: 5, end: 5 },
            &[(0, vec![0.5, 0.6])],
        );
        assert!(all.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn classes_are_stacked_separately() {
        let mut s = Stacker::new(2, 3, Stacking::Avg);
        s.add(0, &[0.1, 0.2, 0.7, 0.3, 0.3, 0.4], 2, Blinding::default());
        s.add(1, &[0.5, 0.1, 0.4], 1, Blinding::default());
        let out = s.finish(); // [classes][n]
        assert!(same(&out, &[0.1, 0.4, 0.2, 0.2, 0.7, 0.4]), "{out:?}");
    }
}
