//! Picks from a probability curve with an on/off trigger, as SeisBench's
//! `picks_from_annotations` does with ObsPy's `trigger_onset`: a trigger switches on at a
//! sample strictly above the on-threshold and stays on while the curve stays strictly above
//! the off-threshold; its interval runs from the first sample above the on-threshold to the
//! last sample above the off-threshold. The pick is the interval's peak (the first sample of
//! the highest value) with that value as its probability. NaN (no prediction) is below every
//! threshold. A trigger still on at the end of the curve ends at its last sample.

use std::collections::VecDeque;

/// One triggered interval and its peak, in samples of the curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trigger {
    /// First sample above the on-threshold.
    pub start: usize,
    /// Last sample above the off-threshold (inclusive).
    pub end: usize,
    /// The first sample of the highest value in `start..=end`.
    pub peak: usize,
    /// The curve at `peak`.
    pub value: f32,
}

/// On/off sample pairs (`end` inclusive), the same as ObsPy's `trigger_onset(cf, on, off)`
/// (no maximum length). `off` should not exceed `on`; when it does, an interval is whatever
/// ObsPy's bookkeeping makes of it, and nothing when no sample exceeds `off`.
pub fn trigger_onset(cf: &[f32], on: f32, off: f32) -> Vec<(usize, usize)> {
    let ind1: Vec<usize> = (0..cf.len()).filter(|&i| cf[i] > on).collect();
    let ind2: Vec<usize> = (0..cf.len()).filter(|&i| cf[i] > off).collect();
    let (Some(&first), Some(&last2)) = (ind1.first(), ind2.last()) else {
        return Vec::new();
    };
    // Candidate onsets: the first sample of every run above `on`.
    let mut ons: VecDeque<i64> = VecDeque::from([first as i64]);
    ons.extend(
        ind1.windows(2)
            .filter(|w| w[1] - w[0] > 1)
            .map(|w| w[1] as i64),
    );
    // Candidate ends: the last sample of every run above `off`, after a sentinel.
    let mut offs: VecDeque<i64> = VecDeque::from([-1]);
    offs.extend(
        ind2.windows(2)
            .filter(|w| w[1] - w[0] > 1)
            .map(|w| w[0] as i64),
    );
    offs.push_back(last2 as i64);
    let mut out = Vec::new();
    while let (Some(&last_on), Some(&of0)) = (ons.back(), offs.front()) {
        if last_on <= of0 {
            break;
        }
        while ons.front().is_some_and(|&o| o <= offs[0]) {
            ons.pop_front();
        }
        let Some(&on0) = ons.front() else { break };
        while offs.front().is_some_and(|&f| f < on0) {
            offs.pop_front();
        }
        let Some(&of0) = offs.front() else { break };
        out.push((on0 as usize, of0 as usize));
    }
    out
}

/// The triggers of `cf` with their peaks.
pub fn triggers(cf: &[f32], on: f32, off: f32) -> Vec<Trigger> {
    trigger_onset(cf, on, off)
        .into_iter()
        .map(|(s, e)| {
            let e = e.min(cf.len() - 1);
            let mut peak = s;
            for i in s..=e {
                if cf[i] > cf[peak] {
                    peak = i;
                }
            }
            Trigger {
                start: s,
                end: e,
                peak,
                value: cf[peak],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    const NAN: f32 = f32::NAN;

    // Each expected list is what ObsPy's trigger_onset(np.array(cf), on, off) returns for the
    // curve, worked through its steps by hand (runs above `on` give the onsets, runs above
    // `off` the ends).

    #[test]
    fn one_trigger() {
        let cf = [0.0, 0.2, 0.6, 0.8, 0.4, 0.1, 0.0];
        assert_eq!(trigger_onset(&cf, 0.5, 0.25), vec![(2, 4)]);
        let t = triggers(&cf, 0.5, 0.25);
        assert_eq!((t[0].peak, t[0].value), (3, 0.8));
    }

    #[test]
    fn hysteresis_keeps_one_trigger_while_above_off() {
        // Falls to 0.3 (above off) between two peaks: one trigger 0..=2; then below off at 3,
        // so 0.55 at 4 starts another.
        let cf = [0.6, 0.3, 0.7, 0.1, 0.55, 0.2];
        assert_eq!(trigger_onset(&cf, 0.5, 0.25), vec![(0, 2), (4, 4)]);
        let t = triggers(&cf, 0.5, 0.25);
        assert_eq!((t[0].peak, t[0].value), (2, 0.7));
        assert_eq!((t[1].peak, t[1].value), (4, 0.55));
        // With off = on there is no hysteresis: three triggers.
        assert_eq!(trigger_onset(&cf, 0.5, 0.5), vec![(0, 0), (2, 2), (4, 4)]);
    }

    #[test]
    fn thresholds_are_strict() {
        assert!(trigger_onset(&[0.5, 0.5, 0.1], 0.5, 0.25).is_empty());
        // Falling exactly to `off` ends the trigger.
        assert_eq!(
            trigger_onset(&[0.6, 0.25, 0.6], 0.5, 0.25),
            vec![(0, 0), (2, 2)]
        );
    }

    #[test]
    fn trigger_on_at_the_end_ends_at_the_last_sample() {
        let cf = [0.1, 0.9, 0.9, 0.8];
        assert_eq!(trigger_onset(&cf, 0.5, 0.25), vec![(1, 3)]);
        // The first of equal maxima is the peak.
        assert_eq!(triggers(&cf, 0.5, 0.25)[0].peak, 1);
    }

    #[test]
    fn nan_is_below_every_threshold() {
        let cf = [NAN, 0.7, NAN, 0.7, 0.3, NAN];
        assert_eq!(trigger_onset(&cf, 0.5, 0.25), vec![(1, 1), (3, 4)]);
        assert!(trigger_onset(&[NAN; 4], 0.5, 0.25).is_empty());
        assert!(trigger_onset(&[], 0.5, 0.25).is_empty());
    }

    #[test]
    fn seisbench_default_off_is_half_of_on() {
        // PhaseNet in SeisBench: on 0.3, off 0.15. A bump to 0.35 with a shoulder at 0.2 and a
        // second bump after a dip to 0.1.
        let cf = [0.0, 0.1, 0.35, 0.2, 0.16, 0.1, 0.31, 0.4, 0.14];
        assert_eq!(trigger_onset(&cf, 0.3, 0.15), vec![(2, 4), (6, 7)]);
        let t = triggers(&cf, 0.3, 0.15);
        assert_eq!(
            (t[1].start, t[1].end, t[1].peak, t[1].value),
            (6, 7, 7, 0.4)
        );
    }
}
