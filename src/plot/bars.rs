//! Grouped bar charts with error bars (mean ± std over seeds), for comparing models.

use super::canvas::{legend_label, pe, text_width, Canvas, Figure};
use super::style::{self, anchored, centred, non_finite_note, palette, tick, title_with};
use anyhow::{bail, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// One model (a colour in every group): its mean per group and optionally the standard
/// deviation drawn as an error bar.
#[derive(Clone, Copy, Debug)]
pub struct BarSeries<'a> {
    pub name: &'a str,
    pub mean: &'a [f64],
    pub std: Option<&'a [f64]>,
}

/// Bars of every series for each group (task, metric, data set), side by side.
#[derive(Clone, Debug)]
pub struct Bars<'a> {
    pub title: String,
    /// The value axis, with units ("F1 (%)", "RMSE (normalised amplitude)").
    pub y_label: String,
    /// The group axis (may be empty).
    pub x_label: String,
    pub groups: Vec<String>,
    pub series: Vec<BarSeries<'a>>,
    pub width: u32,
    pub height: u32,
}

impl Default for Bars<'_> {
    fn default() -> Self {
        Bars {
            title: String::new(),
            y_label: "value".into(),
            x_label: String::new(),
            groups: Vec::new(),
            series: Vec::new(),
            width: 960,
            height: 560,
        }
    }
}

const MARGIN: i32 = 16;
const ERR: RGBColor = RGBColor(35, 35, 35);

/// `s` cut to `w` pixels with an ellipsis.
fn fit(s: &str, w: i32, size: f64) -> String {
    if text_width(s, size) <= w {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    for n in (1..chars.len()).rev() {
        let t: String = chars[..n].iter().collect::<String>() + "…";
        if text_width(&t, size) <= w {
            return t;
        }
    }
    "…".into()
}

impl Bars<'_> {
    /// Draws the chart.
    pub fn render(&self) -> Result<Figure> {
        let g = self.groups.len();
        if g == 0 {
            bail!("bar chart {:?}: no groups", self.title);
        }
        if self.series.is_empty() {
            bail!("bar chart {:?}: no series", self.title);
        }
        let (mut lo, mut hi) = (0f64, f64::NEG_INFINITY);
        let mut bad = 0;
        for s in &self.series {
            if s.mean.len() != g {
                bail!(
                    "bar chart {:?}: series {:?} has {} means for {g} groups",
                    self.title,
                    s.name,
                    s.mean.len()
                );
            }
            if let Some(sd) = s.std {
                if sd.len() != g {
                    bail!(
                        "bar chart {:?}: series {:?} has {} standard deviations for {g} groups",
                        self.title,
                        s.name,
                        sd.len()
                    );
                }
                if let Some(v) = sd.iter().find(|v| **v < 0.0) {
                    bail!(
                        "bar chart {:?}: series {:?} has a negative standard deviation ({v})",
                        self.title,
                        s.name
                    );
                }
            }
            for i in 0..g {
                let m = s.mean[i];
                if !m.is_finite() {
                    bad += 1;
                    continue;
                }
                let e = s
                    .std
                    .map(|sd| sd[i])
                    .filter(|e| e.is_finite())
                    .unwrap_or(0.0);
                lo = lo.min(m - e).min(m);
                hi = hi.max(m + e).max(m);
            }
        }
        if !hi.is_finite() {
            bail!("bar chart {:?}: no finite mean to draw", self.title);
        }
        let hi = hi.max(0.0);
        let span = if hi - lo > 0.0 { hi - lo } else { 1.0 };
        let (ylo, yhi) = (
            if lo < 0.0 { lo - 0.08 * span } else { 0.0 },
            hi + 0.1 * span,
        );
        if !(yhi - ylo).is_finite() {
            bail!("bar chart {:?}: values too large to draw", self.title);
        }
        let notes: Vec<String> = non_finite_note(bad).into_iter().collect();
        let title = title_with(&self.title, &notes);
        // A legend row under the title.
        let entries: Vec<(String, RGBColor)> = self
            .series
            .iter()
            .enumerate()
            .map(|(k, s)| (s.name.to_string(), palette(k)))
            .collect();
        let entry_w: Vec<i32> = entries
            .iter()
            .map(|(n, _)| 16 + 8 + text_width(n, style::LEGEND) + 22)
            .collect();
        let avail = self.width as i32 - 2 * MARGIN;
        let mut legend_rows = vec![Vec::new()];
        let mut row_w = 0;
        for (k, &w) in entry_w.iter().enumerate() {
            if row_w + w > avail && !legend_rows.last().expect("a row").is_empty() {
                legend_rows.push(Vec::new());
                row_w = 0;
            }
            legend_rows.last_mut().expect("a row").push(k);
            row_w += w;
        }
        let title_h = if title.is_empty() {
            0
        } else {
            style::TITLE as i32 + 14
        };
        let legend_h = legend_rows.len() as i32 * 24 + 8;
        let ticks_w = style::tick_width_range(ylo, yhi, 10);
        let group_names_h = style::TICK as i32 + 14;
        let x_desc_h = if self.x_label.is_empty() {
            0
        } else {
            style::DESC as i32 + 10
        };
        let mut canvas = Canvas::new(self.width, self.height)?;
        {
            let root = canvas.area();
            root.fill(&WHITE).map_err(pe)?;
            if !title.is_empty() {
                root.draw(&Text::new(
                    title.clone(),
                    (self.width as i32 / 2, MARGIN),
                    anchored(style::TITLE, HPos::Center, VPos::Top),
                ))
                .map_err(pe)?;
            }
            for (r, row) in legend_rows.iter().enumerate() {
                let total: i32 = row.iter().map(|&k| entry_w[k]).sum();
                let mut x = (self.width as i32 - total) / 2;
                let y = MARGIN + title_h + r as i32 * 24 + 4;
                for &k in row {
                    let (name, col) = &entries[k];
                    root.draw(&Rectangle::new([(x, y), (x + 16, y + 16)], col.filled()))
                        .map_err(pe)?;
                    legend_label(&root, name.clone(), (x + 24, y + 8))?;
                    x += entry_w[k];
                }
            }
            let area = root.margin(MARGIN + title_h + legend_h, MARGIN, MARGIN, MARGIN + 10);
            let mut chart = ChartBuilder::on(&area)
                .x_label_area_size(group_names_h + x_desc_h)
                .y_label_area_size(ticks_w + style::DESC as i32 + 24)
                .build_cartesian_2d(0f64..g as f64, ylo..yhi)
                .map_err(pe)?;
            let fmt = |v: &f64| tick(*v);
            style::grid_mesh(&mut chart.configure_mesh())
                .disable_x_mesh()
                .x_labels(0)
                .y_desc(&self.y_label)
                .y_label_formatter(&fmt)
                .draw()
                .map_err(pe)?;
            let ns = self.series.len() as f64;
            let bw = 0.8 / ns;
            for (k, s) in self.series.iter().enumerate() {
                let col = palette(k);
                for i in 0..g {
                    let m = s.mean[i];
                    if !m.is_finite() {
                        continue;
                    }
                    let x0 = i as f64 + 0.1 + k as f64 * bw;
                    let x1 = x0 + bw * 0.92;
                    chart
                        .draw_series([Rectangle::new([(x0, 0.0), (x1, m)], col.filled())])
                        .map_err(pe)?;
                    if let Some(e) = s.std.map(|sd| sd[i]).filter(|e| e.is_finite() && *e > 0.0) {
                        let xc = (x0 + x1) / 2.0;
                        let cap = (x1 - x0) * 0.22;
                        let st = ERR.stroke_width(2);
                        chart
                            .draw_series([
                                PathElement::new(vec![(xc, m - e), (xc, m + e)], st),
                                PathElement::new(vec![(xc - cap, m - e), (xc + cap, m - e)], st),
                                PathElement::new(vec![(xc - cap, m + e), (xc + cap, m + e)], st),
                            ])
                            .map_err(pe)?;
                    }
                }
            }
            if ylo < 0.0 {
                chart
                    .draw_series([PathElement::new(
                        vec![(0.0, 0.0), (g as f64, 0.0)],
                        style::AXIS,
                    )])
                    .map_err(pe)?;
            }
            // Group names under their bars, and the group axis name.
            let (xr, yr) = chart.plotting_area().get_pixel_range();
            let slot = (xr.end - xr.start) / g as i32;
            for (i, name) in self.groups.iter().enumerate() {
                let (cx, _) = chart.backend_coord(&(i as f64 + 0.5, ylo));
                root.draw(&Text::new(
                    fit(name, slot - 6, style::TICK),
                    (cx, yr.end + 8),
                    anchored(style::TICK, HPos::Center, VPos::Top),
                ))
                .map_err(pe)?;
            }
            if !self.x_label.is_empty() {
                root.draw(&Text::new(
                    self.x_label.clone(),
                    (
                        (xr.start + xr.end) / 2,
                        yr.end + group_names_h + x_desc_h / 2 + 2,
                    ),
                    centred(style::DESC),
                ))
                .map_err(pe)?;
            }
            root.present().map_err(pe)?;
        }
        Ok(canvas.finish())
    }

    /// Draws the chart into a PNG at `path` (written atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.render()?.write_png(path)
    }
}
