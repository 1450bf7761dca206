//! Multi-component waveforms (Z, N, E) stacked over a common time axis, with true picks as solid
//! and predicted picks as dashed vertical lines, and optionally the phase probability curves.

use super::canvas::{legend_label, pe, text_width, Area, Backend, Canvas, Figure};
use super::style::{self, anchored, font, non_finite_note, palette, tick, title_with};
use anyhow::{bail, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// A phase pick to mark: the phase ("P", "S"), its sample (fractional allowed), and whether it
/// is a model's prediction (dashed) or the true pick (solid).
#[derive(Clone, Debug, PartialEq)]
pub struct Pick {
    pub phase: String,
    pub sample: f64,
    pub predicted: bool,
}

impl Pick {
    pub fn truth(phase: &str, sample: f64) -> Self {
        Pick {
            phase: phase.into(),
            sample,
            predicted: false,
        }
    }
    pub fn predicted(phase: &str, sample: f64) -> Self {
        Pick {
            phase: phase.into(),
            sample,
            predicted: true,
        }
    }
}

/// A probability curve (one value per sample, in 0…1) for the bottom panel.
#[derive(Clone, Copy, Debug)]
pub struct Probability<'a> {
    pub name: &'a str,
    pub values: &'a [f32],
}

/// `channels` traces of `samples` each (row-major `data`), one band per trace.
#[derive(Clone, Debug)]
pub struct Waveforms<'a> {
    pub title: String,
    pub data: &'a [f32],
    pub channels: usize,
    pub samples: usize,
    /// Names of the components; empty: Z, N, E for 3 channels, "channel K" otherwise.
    pub channel_names: Vec<String>,
    /// Samples per second; the time axis is in seconds, or in samples without it.
    pub sampling_rate: Option<f64>,
    /// The amplitude unit, added to each band's name when not empty ("counts", "m/s").
    pub amplitude_unit: String,
    pub picks: Vec<Pick>,
    /// Curves for a bottom panel (y 0…1); none: no panel.
    pub probabilities: Vec<Probability<'a>>,
    pub width: u32,
    /// The height of each trace's band, in pixels.
    pub band_height: u32,
}

impl Default for Waveforms<'_> {
    fn default() -> Self {
        Waveforms {
            title: String::new(),
            data: &[],
            channels: 0,
            samples: 0,
            channel_names: Vec::new(),
            sampling_rate: None,
            amplitude_unit: String::new(),
            picks: Vec::new(),
            probabilities: Vec::new(),
            width: 1100,
            band_height: 120,
        }
    }
}

/// The colour of a phase: P blue, S red, noise gray, others from the palette.
fn phase_color(phase: &str, k: usize) -> RGBColor {
    match phase.to_ascii_lowercase().as_str() {
        "p" => RGBColor(31, 95, 205),
        "s" => RGBColor(214, 39, 40),
        "noise" | "n" => RGBColor(130, 130, 130),
        _ => palette(k + 2),
    }
}

const MARGIN: i32 = 16;
const BAND_GAP: i32 = 8;
const TRACE: RGBColor = RGBColor(30, 30, 30);

impl Waveforms<'_> {
    fn names(&self) -> Vec<String> {
        if !self.channel_names.is_empty() {
            self.channel_names.clone()
        } else if self.channels == 3 {
            ["Z", "N", "E"].map(String::from).to_vec()
        } else {
            (0..self.channels).map(|k| format!("channel {k}")).collect()
        }
    }

    fn check(&self) -> Result<Vec<String>> {
        let (c, s) = (self.channels, self.samples);
        if c == 0 || s < 2 {
            bail!("waveform figure: {c} channels of {s} samples; at least 1 channel of 2 samples is needed");
        }
        if c > 64 {
            bail!("waveform figure: {c} channels; at most 64 bands can be drawn");
        }
        if c.checked_mul(s) != Some(self.data.len()) {
            bail!(
                "waveform figure: {} values for {c} channels of {s} samples",
                self.data.len()
            );
        }
        if !self.channel_names.is_empty() && self.channel_names.len() != c {
            bail!(
                "waveform figure: {} channel names for {c} channels",
                self.channel_names.len()
            );
        }
        if let Some(r) = self.sampling_rate {
            if !(r.is_finite() && r > 0.0) {
                bail!("waveform figure: the sampling rate {r} Hz is not a positive number");
            }
        }
        let mut notes = Vec::new();
        let bad = self.data.iter().filter(|v| !v.is_finite()).count();
        if bad == self.data.len() {
            bail!("waveform figure: no finite sample to draw");
        }
        notes.extend(non_finite_note(bad));
        let mut pbad = 0;
        for p in &self.probabilities {
            if p.values.len() != s {
                bail!(
                    "waveform figure: probability {:?} has {} values for {s} samples",
                    p.name,
                    p.values.len()
                );
            }
            pbad += p.values.iter().filter(|v| !v.is_finite()).count();
        }
        if pbad > 0 {
            notes.push(format!("{pbad} non-finite probabilities not drawn"));
        }
        let outside = self.picks.iter().filter(|p| !self.inside(p)).count();
        match outside {
            0 => {}
            1 => notes.push("1 pick outside the trace not drawn".into()),
            n => notes.push(format!("{n} picks outside the trace not drawn")),
        }
        Ok(notes)
    }

    /// Whether a pick falls on the trace (and is drawn).
    fn inside(&self, p: &Pick) -> bool {
        p.sample.is_finite() && p.sample >= 0.0 && p.sample <= (self.samples - 1) as f64
    }

    fn t(&self, sample: f64) -> f64 {
        match self.sampling_rate {
            Some(r) => sample / r,
            None => sample,
        }
    }

    /// Draws the figure.
    pub fn render(&self) -> Result<Figure> {
        let notes = self.check()?;
        let names = self.names();
        let (c, s) = (self.channels, self.samples);
        let band_h = if c > 6 {
            (self.band_height as i32 * 6 / c as i32).max(44)
        } else {
            self.band_height.clamp(40, 1000) as i32
        };
        let prob_h = if self.probabilities.is_empty() {
            0
        } else {
            band_h.max(110) + BAND_GAP
        };
        let title = title_with(&self.title, &notes);
        let title_h = if title.is_empty() {
            0
        } else {
            style::TITLE as i32 + 16
        };
        let bottom = style::TICK as i32 + 12 + style::DESC as i32 + 14;
        let width = self.width.clamp(300, 8192) as i32;
        let height = MARGIN + title_h + c as i32 * (band_h + BAND_GAP) + prob_h + bottom + MARGIN;
        // Scales: each band ±(largest |value|).
        let scales: Vec<f64> = (0..c)
            .map(|k| {
                let m = self.data[k * s..(k + 1) * s]
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold(0f32, |a, v| a.max(v.abs())) as f64;
                if m > 0.0 {
                    m * 1.08
                } else {
                    1.0
                }
            })
            .collect();
        let tick_w = scales
            .iter()
            .map(|&m| style::tick_width_sym(m))
            .chain([text_width("0.75", style::TICK)])
            .max()
            .unwrap_or(40);
        let band_names: Vec<String> = names
            .iter()
            .map(|n| {
                if self.amplitude_unit.is_empty() {
                    n.clone()
                } else {
                    format!("{n} ({})", self.amplitude_unit)
                }
            })
            .collect();
        let left = tick_w + 14 + style::DESC as i32 + 12;
        // Legend column on the right.
        let mut entries: Vec<(String, RGBColor, bool)> = Vec::new();
        let mut phases: Vec<&str> = Vec::new();
        for p in &self.picks {
            if !phases.contains(&p.phase.as_str()) {
                phases.push(&p.phase);
            }
        }
        for predicted in [false, true] {
            for (k, ph) in phases.iter().enumerate() {
                if self
                    .picks
                    .iter()
                    .any(|p| p.phase == *ph && p.predicted == predicted && self.inside(p))
                {
                    let what = if predicted { "predicted" } else { "true" };
                    entries.push((format!("{ph} {what}"), phase_color(ph, k), predicted));
                }
            }
        }
        let prob_entries: Vec<(String, RGBColor)> = self
            .probabilities
            .iter()
            .enumerate()
            .map(|(k, p)| (p.name.to_string(), phase_color(p.name, k)))
            .collect();
        let legend_w = entries
            .iter()
            .map(|e| &e.0)
            .chain(prob_entries.iter().map(|e| &e.0))
            .map(|n| text_width(n, style::LEGEND))
            .max()
            .map(|w| 30 + 8 + w + 16)
            .unwrap_or(0);
        let right = 18 + legend_w;
        let x_range = self.t(0.0)..self.t((s - 1) as f64);
        let mut canvas = Canvas::new(width as u32, height as u32)?;
        {
            let root = canvas.area();
            root.fill(&WHITE).map_err(pe)?;
            if !title.is_empty() {
                root.draw(&Text::new(
                    title.clone(),
                    (width / 2, MARGIN),
                    anchored(style::TITLE, HPos::Center, VPos::Top),
                ))
                .map_err(pe)?;
            }
            let plot_w = width - MARGIN - left - right;
            let mut y = MARGIN + title_h;
            let last_band = if prob_h > 0 { usize::MAX } else { c - 1 };
            for k in 0..c {
                let is_last = k == last_band;
                let h = band_h + if is_last { bottom } else { 0 };
                let area = root
                    .clone()
                    .shrink((MARGIN, y), ((left + plot_w) as u32, h as u32));
                let m = scales[k];
                let mut chart = ChartBuilder::on(&area)
                    .x_label_area_size(if is_last { bottom } else { 0 })
                    .y_label_area_size(left)
                    .build_cartesian_2d(x_range.clone(), -m..m)
                    .map_err(pe)?;
                self.mesh(&mut chart, &band_names[k], is_last, 3)?;
                // Picks under the trace, so that the onset stays visible.
                self.pick_lines(&mut chart, &phases, -m, m)?;
                let tr = &self.data[k * s..(k + 1) * s];
                for run in decimate(tr, plot_w.max(1) as usize) {
                    chart
                        .draw_series(LineSeries::new(
                            run.into_iter().map(|(i, v)| (self.t(i), v as f64)),
                            TRACE.stroke_width(1),
                        ))
                        .map_err(pe)?;
                }
                y += band_h + BAND_GAP;
            }
            if prob_h > 0 {
                let h = prob_h - BAND_GAP + bottom;
                let area = root
                    .clone()
                    .shrink((MARGIN, y), ((left + plot_w) as u32, h as u32));
                let mut chart = ChartBuilder::on(&area)
                    .x_label_area_size(bottom)
                    .y_label_area_size(left)
                    .build_cartesian_2d(x_range.clone(), -0.02f64..1.05f64)
                    .map_err(pe)?;
                self.mesh(&mut chart, "probability", true, 3)?;
                self.pick_lines(&mut chart, &phases, 0.0, 1.05)?;
                for (k, p) in self.probabilities.iter().enumerate() {
                    let col = phase_color(p.name, k);
                    for run in decimate(p.values, plot_w.max(1) as usize) {
                        chart
                            .draw_series(LineSeries::new(
                                run.into_iter()
                                    .map(|(i, v)| (self.t(i), v.clamp(0.0, 1.0) as f64)),
                                col.stroke_width(2),
                            ))
                            .map_err(pe)?;
                    }
                }
            }
            // Legends, right of the plots.
            let lx = width - MARGIN - legend_w + 10;
            let mut ly = MARGIN + title_h + 6;
            for (name, col, dashed) in &entries {
                legend_line(&root, lx, ly, *col, *dashed, name)?;
                ly += 24;
            }
            if prob_h > 0 {
                let mut ly = MARGIN + title_h + c as i32 * (band_h + BAND_GAP) + 6;
                for (name, col) in &prob_entries {
                    legend_line(&root, lx, ly, *col, false, name)?;
                    ly += 24;
                }
            }
            root.present().map_err(pe)?;
        }
        Ok(canvas.finish())
    }

    /// Draws the figure into a PNG at `path` (written atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.render()?.write_png(path)
    }

    fn mesh(
        &self,
        chart: &mut ChartContext<'_, Backend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
        name: &str,
        x_axis: bool,
        y_labels: usize,
    ) -> Result<()> {
        let fmt = |v: &f64| tick(*v);
        let x_desc = if self.sampling_rate.is_some() {
            "time (s)"
        } else {
            "sample"
        };
        let mut mesh = chart.configure_mesh();
        mesh.y_desc(name)
            .axis_desc_style(font(style::DESC))
            .label_style(font(style::TICK))
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt)
            .x_labels(12)
            .y_labels(y_labels)
            .bold_line_style(style::GRID)
            .light_line_style(WHITE)
            .max_light_lines(0)
            .axis_style(style::AXIS);
        if x_axis {
            mesh.x_desc(x_desc);
        }
        mesh.draw().map_err(pe)
    }

    fn pick_lines(
        &self,
        chart: &mut ChartContext<'_, Backend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
        phases: &[&str],
        lo: f64,
        hi: f64,
    ) -> Result<()> {
        for p in &self.picks {
            if !self.inside(p) {
                continue;
            }
            let k = phases.iter().position(|q| *q == p.phase).unwrap_or(0);
            let col = phase_color(&p.phase, k);
            let t = self.t(p.sample);
            let pts = [(t, lo), (t, hi)];
            if p.predicted {
                chart
                    .draw_series(DashedLineSeries::new(pts, 7, 5, col.stroke_width(2)))
                    .map_err(pe)?;
            } else {
                chart
                    .draw_series(LineSeries::new(pts, col.stroke_width(2)))
                    .map_err(pe)?;
            }
        }
        Ok(())
    }
}

/// A legend entry: a short (dashed) line and its name.
fn legend_line(
    root: &Area<'_>,
    x: i32,
    y: i32,
    col: RGBColor,
    dashed: bool,
    name: &str,
) -> Result<()> {
    let yc = y + 8;
    if dashed {
        root.draw(&plotters::element::DashedPathElement::new(
            vec![(x, yc), (x + 30, yc)],
            7,
            5,
            col.stroke_width(2),
        ))
        .map_err(pe)?;
    } else {
        root.draw(&PathElement::new(
            vec![(x, yc), (x + 30, yc)],
            col.stroke_width(2),
        ))
        .map_err(pe)?;
    }
    legend_label(root, name.to_string(), (x + 38, yc))
}

/// The trace as runs of (sample, value) without non-finite values; a trace much longer than
/// `columns` becomes its per-column minimum and maximum (in order), so no peak is lost.
fn decimate(tr: &[f32], columns: usize) -> Vec<Vec<(f64, f32)>> {
    let n = tr.len();
    let mut runs: Vec<Vec<(f64, f32)>> = vec![Vec::new()];
    let push = |runs: &mut Vec<Vec<(f64, f32)>>, p: Option<(f64, f32)>| match p {
        Some(p) => runs.last_mut().expect("a run").push(p),
        None => {
            if !runs.last().expect("a run").is_empty() {
                runs.push(Vec::new());
            }
        }
    };
    if n <= 2 * columns {
        for (i, &v) in tr.iter().enumerate() {
            push(&mut runs, v.is_finite().then_some((i as f64, v)));
        }
    } else {
        for col in 0..columns {
            let a = col * n / columns;
            let b = ((col + 1) * n / columns).max(a + 1).min(n);
            let mut lo: Option<(usize, f32)> = None;
            let mut hi: Option<(usize, f32)> = None;
            for (i, &v) in tr[a..b].iter().enumerate() {
                if !v.is_finite() {
                    continue;
                }
                if lo.is_none_or(|(_, l)| v < l) {
                    lo = Some((a + i, v));
                }
                if hi.is_none_or(|(_, h)| v > h) {
                    hi = Some((a + i, v));
                }
            }
            match (lo, hi) {
                (Some(l), Some(h)) => {
                    let (first, second) = if l.0 <= h.0 { (l, h) } else { (h, l) };
                    push(&mut runs, Some((first.0 as f64, first.1)));
                    push(&mut runs, Some((second.0 as f64, second.1)));
                }
                _ => push(&mut runs, None),
            }
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn decimation_keeps_peaks_and_splits_at_gaps() {
        let mut tr: Vec<f32> = (0..10_000).map(|i| (i as f32 * 0.01).sin()).collect();
        tr[5000] = 7.0;
        let runs = decimate(&tr, 100);
        assert_eq!(runs.len(), 1);
        assert!(runs[0].len() <= 200);
        assert!(runs[0].iter().any(|&(_, v)| v == 7.0));
        let runs = decimate(&[1.0, f32::NAN, 2.0, 3.0], 100);
        assert_eq!(runs.len(), 2);
    }
}
