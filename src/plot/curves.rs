//! Line charts of named series against a common x axis (loss, metrics, learning rate by step).

use super::canvas::{pe, text_width, Canvas, Figure};
use super::style::{self, font, non_finite_note, padded, palette, tick, title_with};
use anyhow::{bail, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use std::path::Path;

/// One named line: `y[i]` at `x[i]`.
#[derive(Clone, Copy, Debug)]
pub struct Series<'a> {
    pub name: &'a str,
    pub x: &'a [f64],
    pub y: &'a [f64],
}

impl<'a> Series<'a> {
    pub fn new(name: &'a str, x: &'a [f64], y: &'a [f64]) -> Self {
        Series { name, x, y }
    }
}

/// A line chart of several series with a legend. `x_label`/`y_label` should carry units,
/// e.g. "step (optimizer updates)", "loss (cross-entropy, nats)".
#[derive(Clone, Debug)]
pub struct Curves<'a> {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series<'a>>,
    /// A logarithmic y axis (values ≤ 0 are then left out and counted in the title).
    pub log_y: bool,
    pub width: u32,
    pub height: u32,
}

impl Default for Curves<'_> {
    fn default() -> Self {
        Curves {
            title: String::new(),
            x_label: "step".into(),
            y_label: "value".into(),
            series: Vec::new(),
            log_y: false,
            width: 960,
            height: 560,
        }
    }
}

/// Series with markers when no series has more points than this.
const MARKERS_UP_TO: usize = 60;

struct Prepared {
    /// Per series: runs of consecutive drawable points.
    runs: Vec<Vec<Vec<(f64, f64)>>>,
    x: (f64, f64),
    y: (f64, f64),
    notes: Vec<String>,
}

impl Curves<'_> {
    /// Draws the chart.
    pub fn render(&self) -> Result<Figure> {
        let p = self.prepare()?;
        let mut canvas = Canvas::new(self.width, self.height)?;
        {
            let root = canvas.area();
            let x = p.x.0..p.x.1;
            if self.log_y {
                let (lo, hi) = p.y;
                let (lo, hi) = if hi > lo * 1.0001 {
                    (lo / 1.25, hi * 1.25)
                } else {
                    (lo / 2.0, hi * 2.0)
                };
                self.draw(&root, &p, x, (lo..hi).log_scale(), lo, hi)?;
            } else {
                let (lo, hi) = padded(p.y.0, p.y.1, 0.06)?;
                self.draw(&root, &p, x, lo..hi, lo, hi)?;
            }
            root.present().map_err(pe)?;
        }
        Ok(canvas.finish())
    }

    /// Draws the chart into a PNG at `path` (written atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.render()?.write_png(path)
    }

    fn prepare(&self) -> Result<Prepared> {
        if self.series.is_empty() {
            bail!("line chart {:?}: no series to draw", self.title);
        }
        let mut runs = Vec::new();
        let (mut bad, mut non_pos) = (0usize, 0usize);
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for s in &self.series {
            if s.x.len() != s.y.len() {
                bail!(
                    "line chart {:?}: series {:?} has {} x values but {} y values",
                    self.title,
                    s.name,
                    s.x.len(),
                    s.y.len()
                );
            }
            if s.x.is_empty() {
                bail!("line chart {:?}: series {:?} is empty", self.title, s.name);
            }
            let mut rs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (&x, &y) in s.x.iter().zip(s.y) {
                let ok = if !(x.is_finite() && y.is_finite()) {
                    bad += 1;
                    false
                } else if self.log_y && y <= 0.0 {
                    non_pos += 1;
                    false
                } else {
                    true
                };
                if ok {
                    rs.last_mut().expect("one run").push((x, y));
                    x0 = x0.min(x);
                    x1 = x1.max(x);
                    y0 = y0.min(y);
                    y1 = y1.max(y);
                } else if !rs.last().expect("one run").is_empty() {
                    rs.push(Vec::new());
                }
            }
            rs.retain(|r| !r.is_empty());
            runs.push(rs);
        }
        if x0 > x1 {
            if non_pos > 0 {
                bail!(
                    "line chart {:?}: no positive finite values for a logarithmic y axis",
                    self.title
                );
            }
            bail!(
                "line chart {:?}: no finite values to draw ({bad} non-finite)",
                self.title
            );
        }
        let mut notes: Vec<String> = non_finite_note(bad).into_iter().collect();
        if non_pos > 0 {
            notes.push(format!("{non_pos} values ≤ 0 not drawn on the log scale"));
        }
        let x = padded(x0, x1, 0.0)?;
        padded(y0, y1, 0.0)?;
        Ok(Prepared {
            runs,
            x,
            y: (y0, y1),
            notes,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn draw<Y>(
        &self,
        root: &super::canvas::Area<'_>,
        p: &Prepared,
        x: std::ops::Range<f64>,
        y: Y,
        ylo: f64,
        yhi: f64,
    ) -> Result<()>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        root.fill(&WHITE).map_err(pe)?;
        let ticks_w = if self.log_y {
            [ylo, yhi, 1.0]
                .iter()
                .map(|&v| text_width(&tick(v), style::TICK))
                .max()
                .unwrap_or(40)
        } else {
            style::tick_width_range(ylo, yhi, 8)
        };
        let title = title_with(&self.title, &p.notes);
        let mut b = style::numeric_chart(root, ticks_w, &title);
        b.margin(14).margin_right(28);
        let mut chart = b.build_cartesian_2d(x, y).map_err(pe)?;
        style::numeric_mesh(&mut chart.configure_mesh(), &self.x_label, &self.y_label)
            .x_labels(8)
            .y_labels(8)
            .draw()
            .map_err(pe)?;
        let markers = self.series.iter().all(|s| s.x.len() <= MARKERS_UP_TO);
        let (mut corners, mut n) = ([0usize; 4], 0usize);
        let log = |v: f64| {
            if ylo > 0.0 && yhi / ylo > 50.0 {
                v.ln()
            } else {
                v
            }
        };
        let (lx0, lx1) = (chart.x_range().start, chart.x_range().end);
        let (ly0, ly1) = (log(ylo), log(yhi));
        for (k, runs) in p.runs.iter().enumerate() {
            let c = palette(k);
            let line = c.stroke_width(2);
            let mut labelled = false;
            for run in runs {
                for &(x, y) in run {
                    let fx = (x - lx0) / (lx1 - lx0);
                    let fy = (log(y) - ly0) / (ly1 - ly0);
                    n += 1;
                    // Corners: upper-right, lower-right, upper-left, lower-left.
                    for (i, (cx, cy)) in
                        [(true, true), (true, false), (false, true), (false, false)]
                            .into_iter()
                            .enumerate()
                    {
                        let inx = if cx { fx > 0.55 } else { fx < 0.45 };
                        let iny = if cy { fy > 0.6 } else { fy < 0.4 };
                        if inx && iny {
                            corners[i] += 1;
                        }
                    }
                }
                let s = chart
                    .draw_series(LineSeries::new(run.iter().copied(), line))
                    .map_err(pe)?;
                if !labelled {
                    s.label(self.series[k].name).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                    });
                    labelled = true;
                }
                if markers {
                    chart
                        .draw_series(run.iter().map(|&p| Circle::new(p, 3, c.filled())))
                        .map_err(pe)?;
                }
            }
        }
        let _ = n;
        let best = (0..4).min_by_key(|&i| corners[i]).unwrap_or(0);
        let pos = [
            SeriesLabelPosition::UpperRight,
            SeriesLabelPosition::LowerRight,
            SeriesLabelPosition::UpperLeft,
            SeriesLabelPosition::LowerLeft,
        ][best]
            .clone();
        chart
            .configure_series_labels()
            .position(pos)
            .margin(12)
            .legend_area_size(30)
            .label_font(font(style::LEGEND))
            .background_style(WHITE.mix(0.9))
            .border_style(style::GRID_BOLD)
            .draw()
            .map_err(pe)?;
        Ok(())
    }
}
