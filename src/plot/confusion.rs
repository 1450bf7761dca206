//! A confusion matrix as a heat map: rows are true classes, columns predicted classes; each
//! cell shows its count and its share of the row, coloured by that share.

use super::canvas::{pe, text_width, Canvas, Figure, Rect};
use super::style::{self, anchored, centred, font, tick};
use anyhow::{bail, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::FontTransform;
use std::path::Path;

/// `counts[t * k + p]`: how many items of true class `t` were predicted as `p`.
#[derive(Clone, Debug, Default)]
pub struct Confusion<'a> {
    pub title: String,
    /// The `k` class names, in id order.
    pub class_names: Vec<String>,
    /// `k × k` counts, row-major, rows = true class.
    pub counts: &'a [u64],
}

/// Blues, light to dark.
fn blues(t: f64) -> [u8; 3] {
    const A: [[f64; 3]; 5] = [
        [247.0, 251.0, 255.0],
        [198.0, 219.0, 239.0],
        [107.0, 174.0, 214.0],
        [33.0, 113.0, 181.0],
        [8.0, 48.0, 107.0],
    ];
    let x = t.clamp(0.0, 1.0) * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    let m = |k: usize| (A[i][k] + (A[i + 1][k] - A[i][k]) * f).round() as u8;
    [m(0), m(1), m(2)]
}

const MARGIN: i32 = 18;
const BAR_W: i32 = 16;

impl Confusion<'_> {
    /// Draws the matrix.
    pub fn render(&self) -> Result<Figure> {
        let k = self.class_names.len();
        if k == 0 {
            bail!("confusion matrix {:?}: no classes", self.title);
        }
        if k > 100 {
            bail!(
                "confusion matrix {:?}: {k} classes; at most 100 can be drawn",
                self.title
            );
        }
        if self.counts.len() != k * k {
            bail!(
                "confusion matrix {:?}: {} counts for {k} classes (needs {k}×{k} = {})",
                self.title,
                self.counts.len(),
                k * k
            );
        }
        let total: u128 = self.counts.iter().map(|&c| c as u128).sum();
        if total == 0 {
            bail!(
                "confusion matrix {:?}: all counts are zero; nothing to draw",
                self.title
            );
        }
        let correct: u128 = (0..k).map(|i| self.counts[i * k + i] as u128).sum();
        let rows: Vec<u128> = (0..k)
            .map(|t| {
                self.counts[t * k..(t + 1) * k]
                    .iter()
                    .map(|&c| c as u128)
                    .sum()
            })
            .collect();
        let frac = |t: usize, p: usize| {
            if rows[t] == 0 {
                0.0
            } else {
                self.counts[t * k + p] as f64 / rows[t] as f64
            }
        };
        let cell = (560 / k as i32).clamp(24, 96);
        let two_lines = cell >= 52;
        let cell_font = if cell >= 60 {
            style::CELL
        } else {
            (cell as f64 / 4.0).clamp(9.0, style::CELL)
        };
        let name_w = self
            .class_names
            .iter()
            .map(|n| text_width(n, style::TICK))
            .max()
            .unwrap_or(0);
        // Column names: horizontal when they fit their cell, otherwise vertical.
        let vertical = name_w > cell - 6;
        let col_names_h = if vertical {
            name_w + 10
        } else {
            style::TICK as i32 + 12
        };
        let title = if self.title.is_empty() {
            format!(
                "accuracy {:.1}% of {total}",
                100.0 * correct as f64 / total as f64
            )
        } else {
            format!(
                "{} (accuracy {:.1}% of {total})",
                self.title,
                100.0 * correct as f64 / total as f64
            )
        };
        let title_h = style::TITLE as i32 + 18;
        let left = MARGIN + style::DESC as i32 + 14 + name_w + 10;
        let grid = Rect {
            x0: left,
            y0: MARGIN + title_h,
            x1: left + cell * k as i32,
            y1: MARGIN + title_h + cell * k as i32,
        };
        let bar_x = grid.x1 + 26;
        let bar_tick_w = text_width("100%", style::TICK);
        let width = (bar_x + BAR_W + 8 + bar_tick_w + 12 + style::DESC as i32 + 8 + MARGIN)
            .max(text_width(&title, style::TITLE) + 2 * MARGIN);
        let height = grid.y1 + col_names_h + style::DESC as i32 + 14 + MARGIN;
        let mut canvas = Canvas::new(width as u32, height as u32)?;
        {
            let root = canvas.area();
            root.fill(&WHITE).map_err(pe)?;
            root.draw(&Text::new(
                title,
                (width / 2, MARGIN),
                anchored(style::TITLE, HPos::Center, VPos::Top),
            ))
            .map_err(pe)?;
            for (t, &row) in rows.iter().enumerate() {
                for p in 0..k {
                    let f = frac(t, p);
                    let [r, g, b] = blues(f);
                    let x0 = grid.x0 + p as i32 * cell;
                    let y0 = grid.y0 + t as i32 * cell;
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + cell, y0 + cell)],
                        RGBColor(r, g, b).filled(),
                    ))
                    .map_err(pe)?;
                    let ink = if f > 0.5 { WHITE } else { style::TEXT };
                    let count = self.counts[t * k + p].to_string();
                    let pct = if row == 0 {
                        "–".to_string()
                    } else {
                        format!("{:.1}%", 100.0 * f)
                    };
                    let (cx, cy) = (x0 + cell / 2, y0 + cell / 2);
                    let st = centred(cell_font).color(&ink);
                    if two_lines {
                        root.draw(&Text::new(
                            count,
                            (cx, cy - cell_font as i32 * 6 / 10),
                            st.clone(),
                        ))
                        .map_err(pe)?;
                        root.draw(&Text::new(
                            pct,
                            (cx, cy + cell_font as i32 * 6 / 10),
                            centred(cell_font * 0.86).color(&ink),
                        ))
                        .map_err(pe)?;
                    } else if text_width(&count, cell_font) < cell - 4 {
                        root.draw(&Text::new(count, (cx, cy), st)).map_err(pe)?;
                    }
                }
            }
            // Cell borders.
            for i in 0..=k as i32 {
                let c = RGBColor(255, 255, 255);
                root.draw(&PathElement::new(
                    vec![(grid.x0 + i * cell, grid.y0), (grid.x0 + i * cell, grid.y1)],
                    c.stroke_width(1),
                ))
                .map_err(pe)?;
                root.draw(&PathElement::new(
                    vec![(grid.x0, grid.y0 + i * cell), (grid.x1, grid.y0 + i * cell)],
                    c.stroke_width(1),
                ))
                .map_err(pe)?;
            }
            root.draw(&Rectangle::new(
                [(grid.x0, grid.y0), (grid.x1, grid.y1)],
                style::AXIS,
            ))
            .map_err(pe)?;
            // Class names: rows on the left, columns below.
            for (i, name) in self.class_names.iter().enumerate() {
                let c = grid.y0 + i as i32 * cell + cell / 2;
                root.draw(&Text::new(
                    name.clone(),
                    (grid.x0 - 8, c),
                    anchored(style::TICK, HPos::Right, VPos::Center),
                ))
                .map_err(pe)?;
                let cx = grid.x0 + i as i32 * cell + cell / 2;
                if vertical {
                    root.draw(&Text::new(
                        name.clone(),
                        (cx, grid.y1 + 8),
                        anchored(style::TICK, HPos::Right, VPos::Center)
                            .transform(FontTransform::Rotate270),
                    ))
                    .map_err(pe)?;
                } else {
                    root.draw(&Text::new(
                        name.clone(),
                        (cx, grid.y1 + 8),
                        anchored(style::TICK, HPos::Center, VPos::Top),
                    ))
                    .map_err(pe)?;
                }
            }
            // Axis names.
            root.draw(&Text::new(
                "predicted",
                ((grid.x0 + grid.x1) / 2, grid.y1 + col_names_h + 6),
                anchored(style::DESC, HPos::Center, VPos::Top),
            ))
            .map_err(pe)?;
            root.draw(&Text::new(
                "true",
                (MARGIN, (grid.y0 + grid.y1) / 2),
                anchored(style::DESC, HPos::Center, VPos::Top).transform(FontTransform::Rotate270),
            ))
            .map_err(pe)?;
            // Colour bar: share of the row.
            let area = root.clone().shrink(
                (bar_x, grid.y0),
                (
                    (BAR_W + 8 + bar_tick_w + 12 + style::DESC as i32 + 8) as u32,
                    grid.h() as u32,
                ),
            );
            let mut chart = ChartBuilder::on(&area)
                .set_label_area_size(
                    LabelAreaPosition::Right,
                    8 + bar_tick_w + 12 + style::DESC as i32 + 8,
                )
                .build_cartesian_2d(0f64..1f64, 0f64..100f64)
                .map_err(pe)?;
            let fmt = |v: &f64| format!("{}%", tick(*v));
            chart
                .configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .y_desc("share of the true class")
                .axis_desc_style(font(style::DESC))
                .label_style(font(style::TICK))
                .y_label_formatter(&fmt)
                .y_labels(6)
                .axis_style(style::AXIS)
                .draw()
                .map_err(pe)?;
            root.present().map_err(pe)?;
        }
        let r = Rect {
            x0: bar_x,
            y0: grid.y0,
            x1: bar_x + BAR_W,
            y1: grid.y1,
        };
        let n = r.h().max(2) as usize;
        canvas.blit(r, 1, n, |_, row| {
            Some((blues(1.0 - row as f64 / (n - 1) as f64), 1.0))
        });
        canvas.frame(r, [60, 60, 60]);
        Ok(canvas.finish())
    }

    /// Draws the matrix into a PNG at `path` (written atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.render()?.write_png(path)
    }
}
