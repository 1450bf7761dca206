//! Picks from annotations (SeisBench's `classify` for a picker) and the pick CSV with
//! SeisBench's columns: `station,time,start_time,end_time,probability,phase`.

use super::annotate::Annotation;
use super::time::iso;
use super::trigger::triggers;
use anyhow::{bail, Result};

/// On and off thresholds of one phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    pub on: f32,
    pub off: f32,
}

impl Thresholds {
    /// `ON` (off = ON / 2, as SeisBench) or `ON,OFF`, both in (0, 1], OFF ≤ ON.
    pub fn parse(flag: &str, s: &str) -> Result<Self> {
        let num = |x: &str| -> Result<f32> {
            match x.trim().parse::<f32>() {
                Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
                _ => bail!(
                    "{flag} '{s}': a threshold is a probability in (0, 1]; give ON or ON,OFF \
                     (e.g. 0.3 or 0.3,0.15)"
                ),
            }
        };
        let t = match s.split_once(',') {
            None => {
                let on = num(s)?;
                Thresholds { on, off: on / 2.0 }
            }
            Some((a, b)) => Thresholds {
                on: num(a)?,
                off: num(b)?,
            },
        };
        if t.off > t.on {
            bail!(
                "{flag} '{s}': the off threshold ({}) is above the on threshold ({}); a trigger \
                 switches on above ON and off at or below OFF",
                t.off,
                t.on
            );
        }
        Ok(t)
    }
}

/// One pick, as SeisBench's `Pick`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pick {
    /// `NET.STA.LOC`.
    pub station: String,
    /// Peak time, seconds since 1970.
    pub time: f64,
    /// Trigger on and off times.
    pub start_time: f64,
    pub end_time: f64,
    /// The probability at the peak.
    pub probability: f32,
    /// "P" or "S".
    pub phase: &'static str,
}

/// The picks of one station's annotation: P from class 0 and S from class 1, triggered per
/// group. `min_distance` (seconds, 0 for none) keeps, of picks of one phase closer than it,
/// only the most probable.
pub fn picks_of(ann: &Annotation, p: Thresholds, s: Thresholds, min_distance: f64) -> Vec<Pick> {
    let mut out = Vec::new();
    for (c, phase, th) in [(0, "P", p), (1, "S", s)] {
        let mut mine = Vec::new();
        for g in &ann.groups {
            let t = |i: usize| g.start + i as f64 / g.rate;
            for tr in triggers(g.class(c), th.on, th.off) {
                mine.push(Pick {
                    station: ann.station.clone(),
                    time: t(tr.peak),
                    start_time: t(tr.start),
                    end_time: t(tr.end),
                    probability: tr.value,
                    phase,
                });
            }
        }
        if min_distance > 0.0 {
            mine = thin(mine, min_distance);
        }
        out.extend(mine);
    }
    out
}

/// Of picks closer than `dist` seconds, keeps the most probable (greedy, highest first).
fn thin(mut picks: Vec<Pick>, dist: f64) -> Vec<Pick> {
    picks.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    let mut kept: Vec<Pick> = Vec::new();
    for p in picks {
        if kept.iter().all(|k| (k.time - p.time).abs() >= dist) {
            kept.push(p);
        }
    }
    kept
}

/// Sorts picks by time (then station and phase), as SeisBench's pick list.
pub fn sort(picks: &mut [Pick]) {
    picks.sort_by(|a, b| {
        a.time
            .total_cmp(&b.time)
            .then_with(|| a.station.cmp(&b.station))
            .then_with(|| a.phase.cmp(b.phase))
    });
}

/// The CSV header.
pub const CSV_HEADER: &str = "station,time,start_time,end_time,probability,phase";

/// The CSV text of `picks` (in the given order): a header line and one line per pick, times
/// in ISO 8601 UTC with microseconds.
pub fn csv(picks: &[Pick]) -> String {
    let mut s = String::with_capacity(64 * (picks.len() + 1));
    s.push_str(CSV_HEADER);
    s.push('\n');
    for p in picks {
        s.push_str(&format!(
            "{},{},{},{},{:.6},{}\n",
            p.station,
            iso(p.time),
            iso(p.start_time),
            iso(p.end_time),
            p.probability,
            p.phase
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pick::annotate::AnnotatedGroup;

    #[test]
    fn thresholds() {
        assert_eq!(
            Thresholds::parse("--p-threshold", "0.3").unwrap(),
            Thresholds { on: 0.3, off: 0.15 }
        );
        assert_eq!(
            Thresholds::parse("--p-threshold", "0.5,0.2").unwrap(),
            Thresholds { on: 0.5, off: 0.2 }
        );
        for bad in ["0", "1.5", "x", "0.2,0.4", "0.3,", "nan"] {
            let e = Thresholds::parse("--s-threshold", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("--s-threshold"), "{e}");
        }
    }

    #[test]
    fn picks_and_csv() {
        // Two groups at 4 Hz (exact times); P triggers once in each, S once in the second.
        let nan = f32::NAN;
        let g1 = AnnotatedGroup {
            start: 100.0,
            rate: 4.0,
            n: 5,
            probs: [[nan, 0.1, 0.6, 0.4, 0.1], [0.0; 5], [0.9; 5]].concat(),
        };
        let g2 = AnnotatedGroup {
            start: 200.0,
            rate: 4.0,
            n: 4,
            probs: [[0.9, 0.2, 0.0, 0.0], [0.0, 0.35, 0.5, 0.2], [0.0; 4]].concat(),
        };
        let ann = Annotation {
            station: "XX.STA.00".into(),
            groups: vec![g1, g2],
        };
        let th = Thresholds { on: 0.3, off: 0.15 };
        let mut p = picks_of(&ann, th, th, 0.0);
        sort(&mut p);
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[0].phase, p[0].time, p[0].start_time, p[0].end_time),
            ("P", 100.5, 100.5, 100.75)
        );
        assert_eq!((p[1].phase, p[1].time, p[1].end_time), ("P", 200.0, 200.25));
        assert_eq!(
            (p[2].phase, p[2].time, p[2].start_time, p[2].end_time),
            ("S", 200.5, 200.25, 200.75)
        );
        let text = csv(&p);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "station,time,start_time,end_time,probability,phase"
        );
        assert_eq!(
            lines[1],
            "XX.STA.00,1970-01-01T00:01:40.500000Z,1970-01-01T00:01:40.500000Z,\
             1970-01-01T00:01:40.750000Z,0.600000,P"
        );
        // --min-distance keeps the most probable of close picks.
        let p = picks_of(&ann, th, th, 200.0);
        assert_eq!(p.iter().filter(|k| k.phase == "P").count(), 1);
        assert_eq!(p[0].probability, 0.9);
    }
}
