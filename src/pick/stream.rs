//! From channels of a station, each a list of contiguous pieces at its own rate, to
//! continuous 3-component groups on the model's sample grid:
//!
//! 1. [`merge_pieces`]: the pieces of a channel sorted by time; a piece that starts where the
//!    previous ends (within half a sample) is appended to it; one that overlaps it on the same
//!    sample grid is merged (its overlapping samples are compared: equal ones are duplicates,
//!    different ones are conflicts and the earlier piece's values are kept); anything else
//!    starts a new piece.
//! 2. [`layout`]: every piece resampled (in length only) to the output rate and its first
//!    sample put on the output grid (multiples of 1/rate since 1970; the start moves by at
//!    most half a sample, and the groups' start times carry the mean of those shifts back, as
//!    SeisBench does). Groups are the stretches where at least one component has data
//!    ([`GapMode::Split`], SeisBench's way) or one stretch from the first to the last sample
//!    ([`GapMode::Zero`]); inside a group, missing samples of a component are zeros.
//! 3. [`assemble`]: one group's `[3, n]` samples, resampled and placed.

use super::resample::Resampler;
use anyhow::{bail, Result};
use std::collections::HashMap;

/// Component names in model order.
pub const COMPONENTS: [&str; 3] = ["Z", "N", "E"];

/// A contiguous run of samples of one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    /// Time of the first sample, seconds since 1970-01-01 UTC.
    pub start: f64,
    /// Samples per second.
    pub rate: f64,
    pub data: Vec<f32>,
}

impl Piece {
    /// The time just after the last sample.
    pub fn end(&self) -> f64 {
        self.start + self.data.len() as f64 / self.rate
    }
}

/// What [`merge_pieces`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Overlapping samples equal in both pieces (dropped once).
    pub duplicates: usize,
    /// Overlapping samples that differ (the earlier piece's kept).
    pub conflicts: usize,
}

/// The channels of one station (one instrument), before assembly.
#[derive(Clone, Debug, Default)]
pub struct StationData {
    /// `NET.STA.LOC`.
    pub id: String,
    /// Band and instrument letters of the channels (`HH`), empty for .npy traces.
    pub instrument: String,
    /// Pieces of Z, N (or 1), E (or 2).
    pub channels: [Vec<Piece>; 3],
    /// Channel codes found per component, for messages.
    pub channel_codes: [String; 3],
}

impl StationData {
    /// `NET.STA.LOC` with the instrument, for messages: `XX.STA.00 (HH)`.
    pub fn label(&self) -> String {
        if self.instrument.is_empty() {
            self.id.clone()
        } else {
            format!("{} ({})", self.id, self.instrument)
        }
    }
    /// Samples held, over all components.
    pub fn samples(&self) -> usize {
        self.channels.iter().flatten().map(|p| p.data.len()).sum()
    }
}

/// Sorts and merges the pieces of one channel (see the module documentation).
pub fn merge_pieces(mut pieces: Vec<Piece>) -> (Vec<Piece>, MergeStats) {
    pieces.retain(|p| !p.data.is_empty());
    pieces.sort_by(|a, b| a.start.total_cmp(&b.start));
    let mut stats = MergeStats::default();
    let mut out: Vec<Piece> = Vec::new();
    for p in pieces {
        if let Some(cur) = out.last_mut() {
            let same_rate = (p.rate - cur.rate).abs() <= 1e-9 * cur.rate;
            let tol = 0.5 / cur.rate;
            let gap = p.start - cur.end();
            if same_rate && gap.abs() <= tol {
                cur.data.extend_from_slice(&p.data);
                continue;
            }
            if same_rate && gap < -tol {
                // Overlap: merge when the sample grids agree.
                let pos = (p.start - cur.start) * cur.rate;
                if (pos - pos.round()).abs() <= 0.25 {
                    let i0 = pos.round().max(0.0) as usize;
                    let shared = cur.data.len().saturating_sub(i0).min(p.data.len());
                    for k in 0..shared {
                        if cur.data[i0 + k] == p.data[k] {
                            stats.duplicates += 1;
                        } else {
                            stats.conflicts += 1;
                        }
                    }
                    if shared < p.data.len() {
                        cur.data.extend_from_slice(&p.data[shared..]);
                    }
                    continue;
                }
            }
        }
        out.push(p);
    }
    (out, stats)
}

/// What to do with time where no component has data.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapMode {
    /// Each stretch of data is a group of its own (SeisBench's way).
    Split,
    /// One group per station from its first to its last sample, gaps filled with zeros.
    Zero,
}

/// A piece put on the output grid.
#[derive(Clone, Debug)]
struct Placed {
    comp: usize,
    piece: usize,
    /// First grid index.
    g0: i64,
    /// Samples at the output rate.
    len: usize,
    /// Start time minus grid time (|shift| ≤ half a sample).
    shift: f64,
}

/// A group's place on the grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupSpan {
    /// First grid index (grid time = g0 / rate).
    pub g0: i64,
    /// Samples.
    pub len: usize,
    /// Time of the first sample (the grid time plus the mean shift of its pieces).
    pub start: f64,
}

/// Where every piece of a station goes on the output grid, and the groups.
#[derive(Clone, Debug)]
pub struct Layout {
    pub rate: f64,
    pub groups: Vec<GroupSpan>,
    /// Components without any data (filled with zeros).
    pub missing: Vec<usize>,
    placed: Vec<Placed>,
}

impl Layout {
    /// Samples over all groups (per component).
    pub fn samples(&self) -> usize {
        self.groups.iter().map(|g| g.len).sum()
    }
    /// Samples of the longest group.
    pub fn longest(&self) -> usize {
        self.groups.iter().map(|g| g.len).max().unwrap_or(0)
    }
}

/// Resamplers by input rate (bit pattern), built once.
#[derive(Default)]
pub struct Resamplers {
    map: HashMap<(u64, u64), Resampler>,
}

impl Resamplers {
    pub fn get(&mut self, rate_in: f64, rate_out: f64) -> Result<&Resampler> {
        let key = (rate_in.to_bits(), rate_out.to_bits());
        Ok(match self.map.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Resampler::new(rate_in, rate_out)?)
            }
        })
    }
}

/// Places the (merged) pieces of `st` on the grid of `rate` and forms the groups.
pub fn layout(st: &StationData, rate: f64, mode: GapMode, rs: &mut Resamplers) -> Result<Layout> {
    let mut placed = Vec::new();
    for (c, pieces) in st.channels.iter().enumerate() {
        for (i, p) in pieces.iter().enumerate() {
            let r = rs.get(p.rate, rate).map_err(|e| {
                anyhow::anyhow!("{}: channel {}: {e}", st.label(), st.channel_codes[c])
            })?;
            let g = (p.start * rate).round();
            if !g.is_finite() || g.abs() > 9e15 {
                bail!("{}: start time {} is out of range", st.label(), p.start);
            }
            placed.push(Placed {
                comp: c,
                piece: i,
                g0: g as i64,
                len: r.out_len(p.data.len()),
                shift: p.start - g / rate,
            });
        }
    }
    let missing: Vec<usize> = (0..3).filter(|&c| st.channels[c].is_empty()).collect();
    // Intervals, then groups.
    let mut iv: Vec<(i64, i64)> = placed.iter().map(|p| (p.g0, p.g0 + p.len as i64)).collect();
    iv.sort();
    let mut spans: Vec<(i64, i64)> = Vec::new();
    for (a, b) in iv {
        match spans.last_mut() {
            Some(last) if mode == GapMode::Zero || a <= last.1 => last.1 = last.1.max(b),
            _ => spans.push((a, b)),
        }
    }
    let groups = spans
        .iter()
        .map(|&(a, b)| {
            let inside: Vec<f64> = placed
                .iter()
                .filter(|p| p.g0 >= a && p.g0 < b)
                .map(|p| p.shift)
                .collect();
            let mean = inside.iter().sum::<f64>() / inside.len().max(1) as f64;
            GroupSpan {
                g0: a,
                len: (b - a) as usize,
                start: a as f64 / rate + mean,
            }
        })
        .collect();
    Ok(Layout {
        rate,
        groups,
        missing,
        placed,
    })
}

/// One assembled group.
#[derive(Clone, Debug)]
pub struct Group {
    /// Time of sample 0.
    pub start: f64,
    pub rate: f64,
    /// Samples per component.
    pub n: usize,
    /// `[3, n]`: Z, N, E.
    pub data: Vec<f32>,
    /// Samples (over the components with data) that no piece covered and are zeros.
    pub zero_filled: usize,
    /// Samples of a piece not placed because another piece of the component already covered
    /// them (overlaps that were not on one sample grid).
    pub overlapped: usize,
}

/// The samples of group `gi` of `layout`.
pub fn assemble(
    st: &StationData,
    layout: &Layout,
    gi: usize,
    rs: &mut Resamplers,
) -> Result<Group> {
    let span = layout.groups[gi];
    let n = span.len;
    let mut data = vec![0f32; 3 * n];
    let mut filled = vec![false; 3 * n];
    let mut overlapped = 0;
    let end = span.g0 + n as i64;
    for p in layout
        .placed
        .iter()
        .filter(|p| p.g0 >= span.g0 && p.g0 < end)
    {
        let piece = &st.channels[p.comp][p.piece];
        let y = rs.get(piece.rate, layout.rate)?.process(&piece.data);
        let off = (p.g0 - span.g0) as usize;
        for (k, v) in y.iter().enumerate().take(n.saturating_sub(off)) {
            let i = p.comp * n + off + k;
            if filled[i] {
                overlapped += 1;
            } else {
                data[i] = *v;
                filled[i] = true;
            }
        }
    }
    let zero_filled = (0..3)
        .filter(|c| !layout.missing.contains(c))
        .map(|c| filled[c * n..(c + 1) * n].iter().filter(|f| !**f).count())
        .sum();
    Ok(Group {
        start: span.start,
        rate: layout.rate,
        n,
        data,
        zero_filled,
        overlapped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(start: f64, rate: f64, data: &[f32]) -> Piece {
        Piece {
            start,
            rate,
            data: data.to_vec(),
        }
    }

    #[test]
    fn merging_contiguous_overlapping_and_conflicting_pieces() {
        // Contiguous (given out of order), then a duplicate overlap of 2 samples.
        let (m, s) = merge_pieces(vec![
            piece(0.03, 100.0, &[4.0, 5.0]),
            piece(0.0, 100.0, &[1.0, 2.0, 3.0]),
            piece(0.03, 100.0, &[4.0, 5.0, 6.0]),
        ]);
        assert_eq!(m, vec![piece(0.0, 100.0, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])]);
        assert_eq!(
            s,
            MergeStats {
                duplicates: 2,
                conflicts: 0
            }
        );
        // A conflicting overlap keeps the earlier values; a gap starts a new piece.
        let (m, s) = merge_pieces(vec![
            piece(0.0, 100.0, &[1.0, 2.0, 3.0]),
            piece(0.02, 100.0, &[9.0, 4.0]),
            piece(1.0, 100.0, &[7.0]),
        ]);
        assert_eq!(
            m,
            vec![
                piece(0.0, 100.0, &[1.0, 2.0, 3.0, 4.0]),
                piece(1.0, 100.0, &[7.0])
            ]
        );
        assert_eq!(s.conflicts, 1);
        // Off the sample grid: kept apart.
        let (m, _) = merge_pieces(vec![
            piece(0.0, 100.0, &[1.0, 2.0, 3.0]),
            piece(0.015, 100.0, &[9.0, 4.0]),
        ]);
        assert_eq!(m.len(), 2);
    }

    fn station(channels: [Vec<Piece>; 3]) -> StationData {
        StationData {
            id: "XX.STA.".into(),
            instrument: "HH".into(),
            channels,
            channel_codes: ["HHZ".into(), "HHN".into(), "HHE".into()],
        }
    }

    #[test]
    fn gaps_split_or_zero_filled() {
        let ones = vec![1f32; 100];
        // Z: 0–1 s and 3–4 s; N: 0.5–1.5 s; E: nothing.
        let st = station([
            vec![piece(0.0, 100.0, &ones), piece(3.0, 100.0, &ones)],
            vec![piece(0.5, 100.0, &ones)],
            vec![],
        ]);
        let mut rs = Resamplers::default();
        let l = layout(&st, 100.0, GapMode::Split, &mut rs).unwrap();
        assert_eq!(l.missing, vec![2]);
        let spans: Vec<(i64, usize)> = l.groups.iter().map(|g| (g.g0, g.len)).collect();
        assert_eq!(spans, vec![(0, 150), (300, 100)]);
        let g = assemble(&st, &l, 0, &mut rs).unwrap();
        assert_eq!(g.n, 150);
        // Z has 0..100, N 50..150: 50 zeros each.
        assert_eq!(g.zero_filled, 100);
        assert_eq!(&g.data[99..101], &[1.0, 0.0]);
        assert_eq!(&g.data[150 + 49..150 + 51], &[0.0, 1.0]);
        assert!(g.data[300..].iter().all(|v| *v == 0.0));
        let l = layout(&st, 100.0, GapMode::Zero, &mut rs).unwrap();
        assert_eq!(l.groups.len(), 1);
        assert_eq!((l.groups[0].g0, l.groups[0].len), (0, 400));
        let g = assemble(&st, &l, 0, &mut rs).unwrap();
        assert_eq!(g.data[..400].iter().filter(|v| **v == 1.0).count(), 200);
    }

    #[test]
    fn pieces_are_resampled_and_put_on_the_grid() {
        // 50 Hz, starting 3 ms after a 10 ms grid point.
        let st = station([
            vec![piece(10.003, 50.0, &[2.0; 100])],
            vec![piece(10.0, 100.0, &[1.0; 200])],
            vec![piece(10.0, 100.0, &[1.0; 200])],
        ]);
        let mut rs = Resamplers::default();
        let l = layout(&st, 100.0, GapMode::Split, &mut rs).unwrap();
        assert_eq!(l.groups.len(), 1);
        assert_eq!((l.groups[0].g0, l.groups[0].len), (1000, 200));
        // Start: the grid time plus the mean shift (3 ms, 0, 0).
        assert!((l.groups[0].start - 10.001).abs() < 1e-9);
        let g = assemble(&st, &l, 0, &mut rs).unwrap();
        assert!(g.data[..200].iter().all(|v| (v - 2.0).abs() < 1e-4));
        assert_eq!(g.zero_filled, 0);
    }
}
