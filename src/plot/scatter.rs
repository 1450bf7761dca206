//! 2-D points coloured by class with a legend (embeddings after [`super::pca_2d`]).

use super::canvas::{legend_label, pe, text_width, Canvas, Figure};
use super::style::{self, non_finite_note, padded, palette, title_with};
use anyhow::{bail, Result};
use plotters::prelude::*;
use std::path::Path;

/// Points `(x[i], y[i])` of class `classes[i]`.
#[derive(Clone, Debug)]
pub struct Scatter<'a> {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub classes: &'a [usize],
    /// Names of class ids 0, 1, …; ids without a name are "class K".
    pub class_names: Vec<String>,
    pub width: u32,
    pub height: u32,
}

impl Default for Scatter<'_> {
    fn default() -> Self {
        Scatter {
            title: String::new(),
            x_label: "x".into(),
            y_label: "y".into(),
            x: &[],
            y: &[],
            classes: &[],
            class_names: Vec::new(),
            width: 900,
            height: 640,
        }
    }
}

const MARGIN: i32 = 16;

impl Scatter<'_> {
    /// Draws the points.
    pub fn render(&self) -> Result<Figure> {
        let n = self.x.len();
        if n == 0 {
            bail!("scatter plot {:?}: no points", self.title);
        }
        if self.y.len() != n || self.classes.len() != n {
            bail!(
                "scatter plot {:?}: {} x, {} y and {} class values (all must be equal)",
                self.title,
                n,
                self.y.len(),
                self.classes.len()
            );
        }
        let ok: Vec<usize> = (0..n)
            .filter(|&i| self.x[i].is_finite() && self.y[i].is_finite())
            .collect();
        if ok.is_empty() {
            bail!(
                "scatter plot {:?}: no point has finite coordinates",
                self.title
            );
        }
        let mut ids: Vec<usize> = ok.iter().map(|&i| self.classes[i]).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > 64 {
            bail!(
                "scatter plot {:?}: {} classes; at most 64 can be told apart",
                self.title,
                ids.len()
            );
        }
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &i in &ok {
            x0 = x0.min(self.x[i]);
            x1 = x1.max(self.x[i]);
            y0 = y0.min(self.y[i]);
            y1 = y1.max(self.y[i]);
        }
        let (x0, x1) = padded(x0, x1, 0.05)?;
        let (y0, y1) = padded(y0, y1, 0.05)?;
        let name = |k: usize| {
            self.class_names
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("class {k}"))
        };
        let entries: Vec<(String, usize)> = ids
            .iter()
            .map(|&k| {
                let c = ok.iter().filter(|&&i| self.classes[i] == k).count();
                (format!("{} ({c})", name(k)), k)
            })
            .collect();
        let legend_w = entries
            .iter()
            .map(|(s, _)| text_width(s, style::LEGEND))
            .max()
            .unwrap_or(0)
            + 12
            + 10
            + 20;
        let title = title_with(
            &self.title,
            &non_finite_note(n - ok.len())
                .into_iter()
                .collect::<Vec<_>>(),
        );
        let mut canvas = Canvas::new(self.width, self.height)?;
        {
            let root = canvas.area();
            root.fill(&WHITE).map_err(pe)?;
            let (plot, legend) = root.split_horizontally(self.width as i32 - legend_w - MARGIN);
            let ticks_w = style::tick_width_range(y0, y1, 10);
            let mut b = style::numeric_chart(&plot, ticks_w, &title);
            b.margin(MARGIN);
            let mut chart = b.build_cartesian_2d(x0..x1, y0..y1).map_err(pe)?;
            style::numeric_mesh(&mut chart.configure_mesh(), &self.x_label, &self.y_label)
                .draw()
                .map_err(pe)?;
            let r = if ok.len() > 5000 { 2 } else { 4 };
            for &(_, k) in &entries {
                let col = palette(k);
                chart
                    .draw_series(
                        ok.iter().filter(|&&i| self.classes[i] == k).map(|&i| {
                            Circle::new((self.x[i], self.y[i]), r, col.mix(0.75).filled())
                        }),
                    )
                    .map_err(pe)?;
            }
            // The legend beside the plot, level with its top.
            let (_, yr) = chart.plotting_area().get_pixel_range();
            let top = yr.start;
            let lx0 = legend.get_base_pixel().0 + 6;
            let fit = ((yr.end - yr.start - 8) / 24).max(1) as usize;
            let shown = if entries.len() > fit {
                fit - 1
            } else {
                entries.len()
            };
            if shown < entries.len() {
                let more = format!("… {} more classes", entries.len() - shown);
                legend_label(&root, more, (lx0, top + 4 + shown as i32 * 24 + 8))?;
            }
            for (j, (s, k)) in entries.iter().take(shown).enumerate() {
                let y = top + 4 + j as i32 * 24;
                root.draw(&Circle::new((lx0 + 6, y + 8), 6, palette(*k).filled()))
                    .map_err(pe)?;
                legend_label(&root, s.clone(), (lx0 + 20, y + 8))?;
            }
            root.present().map_err(pe)?;
        }
        Ok(canvas.finish())
    }

    /// Draws the points into a PNG at `path` (written atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.render()?.write_png(path)
    }
}
