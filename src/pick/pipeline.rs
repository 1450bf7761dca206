//! Stations through assembly and the [`Annotator`]: each station's groups are assembled one at
//! a time (resampled, placed), their windows queued, and the station's raw data dropped once
//! queued; finished stations are handed to a callback in order.

use super::annotate::{Annotation, Annotator, Config, WindowModel};
use super::stream::{assemble, Layout, Resamplers, StationData};
use anyhow::Result;
use std::collections::VecDeque;
use std::time::Instant;

/// What assembly found in a station, handed out with its annotation.
#[derive(Clone, Debug, Default)]
pub struct StationStats {
    /// `XX.STA.00 (HH)`, for messages.
    pub label: String,
    /// Samples (over the components with data) inside groups that no piece covered: zeros.
    pub zero_filled: usize,
    /// Samples of overlapping pieces not on one sample grid that were left out.
    pub overlapped: usize,
    /// Windows run.
    pub windows: usize,
}

/// Totals of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub windows: usize,
    /// Seconds spent resampling and placing samples.
    pub assemble_secs: f64,
}

/// Runs `stations` (laid out by `layouts`, one each) through `model`. `on_batch` is called with
/// the window count of every batch; `done` with every finished station, in order.
pub fn run<M: WindowModel>(
    stations: Vec<StationData>,
    layouts: &[Layout],
    cfg: Config,
    model: &mut M,
    on_batch: impl FnMut(usize),
    mut done: impl FnMut(Annotation, StationStats) -> Result<()>,
) -> Result<Report> {
    let mut ann = Annotator::new(cfg, model);
    ann.on_batch(on_batch);
    let mut rs = Resamplers::default();
    let mut pending: VecDeque<StationStats> = VecDeque::new();
    let mut report = Report::default();
    let mut hand_out = |ann: &mut Annotator<M>, pending: &mut VecDeque<StationStats>| {
        for a in ann.take_finished() {
            let s = pending.pop_front().unwrap_or_default();
            done(a, s)?;
        }
        anyhow::Ok(())
    };
    for (st, layout) in stations.into_iter().zip(layouts) {
        let mut stats = StationStats {
            label: st.label(),
            ..Default::default()
        };
        ann.begin_station(&st.id);
        for gi in 0..layout.groups.len() {
            let t = Instant::now();
            let g = assemble(&st, layout, gi, &mut rs)?;
            report.assemble_secs += t.elapsed().as_secs_f64();
            stats.zero_filled += g.zero_filled;
            stats.overlapped += g.overlapped;
            let w = ann.push(&g)?;
            stats.windows += w;
            report.windows += w;
        }
        drop(st);
        pending.push_back(stats);
        ann.end_station();
        hand_out(&mut ann, &mut pending)?;
    }
    ann.flush()?;
    hand_out(&mut ann, &mut pending)?;
    Ok(report)
}
