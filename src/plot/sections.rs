//! 2-D sections side by side: amplitude panels in a seismic colour map with a colour bar, class
//! maps with a legend of class names, binary masks as a tint with an outline. Rows are time (or
//! depth) samples from the top, columns are traces.

use super::canvas::{legend_label, pe, text_width, Area, Canvas, Figure, Rect};
use super::style::{self, anchored, centred, font, non_finite_note, tick, title_with, PALETTE};
use crate::viz::image::ColorMap;
use anyhow::{bail, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// One panel: an amplitude image, a class map, a mask, or a class map / mask over amplitudes.
#[derive(Clone, Debug, Default)]
pub struct Panel<'a> {
    pub title: String,
    /// Amplitudes, `height × width` row-major, in the blue–white–red map (zero is white).
    pub amplitude: Option<&'a [f32]>,
    /// Class ids, `height × width`: opaque colours alone, translucent over an amplitude;
    /// negative ids are left clear.
    pub classes: Option<&'a [i32]>,
    /// A binary mask (non-zero inside): tinted, with an opaque outline.
    pub mask: Option<&'a [u8]>,
}

impl<'a> Panel<'a> {
    pub fn amplitude(title: impl Into<String>, values: &'a [f32]) -> Self {
        Panel {
            title: title.into(),
            amplitude: Some(values),
            ..Default::default()
        }
    }
    pub fn classes(title: impl Into<String>, classes: &'a [i32]) -> Self {
        Panel {
            title: title.into(),
            classes: Some(classes),
            ..Default::default()
        }
    }
    pub fn mask(title: impl Into<String>, mask: &'a [u8]) -> Self {
        Panel {
            title: title.into(),
            mask: Some(mask),
            ..Default::default()
        }
    }
    /// Adds a class map over this panel.
    pub fn with_classes(mut self, classes: &'a [i32]) -> Self {
        self.classes = Some(classes);
        self
    }
    /// Adds a mask over this panel.
    pub fn with_mask(mut self, mask: &'a [u8]) -> Self {
        self.mask = Some(mask);
        self
    }
}

/// Panels of `height × width` sections side by side, each titled, with axes, a colour bar for
/// the amplitudes and a legend for classes and masks.
#[derive(Clone, Debug)]
pub struct Sections<'a> {
    /// A title above all panels (may be empty).
    pub title: String,
    pub height: usize,
    pub width: usize,
    pub panels: Vec<Panel<'a>>,
    /// The horizontal axis ("trace").
    pub x_label: String,
    /// The vertical axis ("time sample" or "depth sample").
    pub y_label: String,
    /// The colour bar's label, with units ("amplitude", "amplitude (normalised)").
    pub amplitude_label: String,
    /// Names of class ids 0, 1, …; ids without a name are "class K".
    pub class_names: Vec<String>,
    /// The legend entry of masks ("salt").
    pub mask_label: String,
    /// Amplitudes are drawn in ±clip (larger ones saturate); by default the 99.5th percentile
    /// of |value| over the panels that share a colour bar (their largest |value| when that is
    /// 0), so that a few spikes do not wash the section out.
    pub clip: Option<f32>,
    /// One colour bar for all amplitude panels (true), or one beside each.
    pub shared_scale: bool,
    /// The height of each panel's image, in pixels.
    pub panel_height: u32,
}

impl<'a> Sections<'a> {
    /// A figure titled `title` of `panels`, each `height × width`, the rest as by default.
    pub fn new(
        title: impl Into<String>,
        (height, width): (usize, usize),
        panels: Vec<Panel<'a>>,
    ) -> Self {
        Sections {
            title: title.into(),
            height,
            width,
            panels,
            ..Default::default()
        }
    }
}

impl Default for Sections<'_> {
    fn default() -> Self {
        Sections {
            title: String::new(),
            height: 0,
            width: 0,
            panels: Vec::new(),
            x_label: "trace".into(),
            y_label: "time sample".into(),
            amplitude_label: "amplitude".into(),
            class_names: Vec::new(),
            mask_label: "mask".into(),
            clip: None,
            shared_scale: true,
            panel_height: 300,
        }
    }
}

const MARGIN: i32 = 16;
const GAP: i32 = 22;
const BAR_W: i32 = 16;
const SWATCH: i32 = 16;
const ROW: i32 = 24;
/// The 99.5th percentile of |value| over the finite values of `amps` (a strided sample of at
/// most about 2^20 values); 0 when there are none.
fn robust_max(amps: &[&[f32]]) -> f32 {
    let total: usize = amps.iter().map(|a| a.len()).sum();
    let stride = (total >> 20).max(1);
    let mut s: Vec<f32> = amps
        .iter()
        .flat_map(|a| a.iter().step_by(stride))
        .filter(|v| v.is_finite())
        .map(|v| v.abs())
        .collect();
    if s.is_empty() {
        return 0.0;
    }
    let k = ((s.len() - 1) as f64 * 0.995).round() as usize;
    let (_, q, _) = s.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    *q
}

/// The colour of masks.
const MASK_RGB: [u8; 3] = [20, 20, 20];
/// Non-finite amplitudes.
const BAD_RGB: [u8; 3] = [0, 0, 0];
/// Classes alone: where the id is negative.
const CLEAR_RGB: [u8; 3] = [238, 238, 238];

fn class_rgb(c: i32) -> [u8; 3] {
    PALETTE[c as usize % PALETTE.len()]
}

/// What the checks found, for the layout and the titles.
struct Prep {
    clips: Vec<f32>,
    notes: Vec<Vec<String>>,
    classes: Vec<i32>,
    any_mask: bool,
}

impl Sections<'_> {
    fn check(&self) -> Result<Prep> {
        let (h, w) = (self.height, self.width);
        if h == 0 || w == 0 {
            bail!("section figure: the sections are empty ({h}×{w})");
        }
        let Some(n) = h.checked_mul(w) else {
            bail!("section figure: {h}×{w} is too large");
        };
        if self.panels.is_empty() {
            bail!("section figure: no panels to draw");
        }
        let mut notes = Vec::new();
        let mut max_abs = Vec::new();
        let mut classes = Vec::new();
        let mut any_mask = false;
        for p in &self.panels {
            let name = &p.title;
            let mut note = Vec::new();
            let mut m = 0f32;
            if p.amplitude.is_none() && p.classes.is_none() && p.mask.is_none() {
                bail!("section figure: panel {name:?} has nothing to draw");
            }
            if let Some(a) = p.amplitude {
                if a.len() != n {
                    bail!(
                        "section figure: panel {name:?} has {} amplitudes, {h}×{w} needs {n}",
                        a.len()
                    );
                }
                let mut bad = 0;
                for v in a {
                    if v.is_finite() {
                        m = m.max(v.abs());
                    } else {
                        bad += 1;
                    }
                }
                if bad == n {
                    bail!("section figure: panel {name:?} has no finite amplitude");
                }
                note.extend(non_finite_note(bad));
            }
            if let Some(c) = p.classes {
                if c.len() != n {
                    bail!(
                        "section figure: panel {name:?} has {} class ids, {h}×{w} needs {n}",
                        c.len()
                    );
                }
                for &k in c {
                    if k >= 0 && !classes.contains(&k) {
                        classes.push(k);
                        if classes.len() > 64 {
                            bail!(
                                "section figure: panel {name:?} has more than 64 distinct classes; \
                                 is this a class map?"
                            );
                        }
                    }
                }
            }
            if let Some(mk) = p.mask {
                if mk.len() != n {
                    bail!(
                        "section figure: panel {name:?} has {} mask values, {h}×{w} needs {n}",
                        mk.len()
                    );
                }
                any_mask = true;
            }
            notes.push(note);
            max_abs.push(m);
        }
        classes.sort_unstable();
        let clip_of = |amps: &[&[f32]], m: f32| match self.clip {
            Some(c) if c.is_finite() && c > 0.0 => Ok(c),
            Some(c) => bail!("section figure: the amplitude clip {c} is not a positive number"),
            None => {
                let q = robust_max(amps);
                Ok(if q > 0.0 {
                    q
                } else if m > 0.0 {
                    m
                } else {
                    1.0
                })
            }
        };
        let clips = if self.shared_scale {
            let amps: Vec<&[f32]> = self.panels.iter().filter_map(|p| p.amplitude).collect();
            let c = clip_of(&amps, max_abs.iter().fold(0f32, |a, &b| a.max(b)))?;
            vec![c; self.panels.len()]
        } else {
            self.panels
                .iter()
                .zip(&max_abs)
                .map(|(p, &m)| clip_of(p.amplitude.as_slice(), m))
                .collect::<Result<_>>()?
        };
        Ok(Prep {
            clips,
            notes,
            classes,
            any_mask,
        })
    }

    fn class_name(&self, k: i32) -> String {
        self.class_names
            .get(k as usize)
            .cloned()
            .unwrap_or_else(|| format!("class {k}"))
    }

    /// Draws the panels.
    pub fn render(&self) -> Result<Figure> {
        let prep = self.check()?;
        let (h, w) = (self.height, self.width);
        let ph = self.panel_height.clamp(64, 2000) as i32;
        let aspect = (w as f64 / h as f64).clamp(0.3, 3.0);
        let pw = (ph as f64 * aspect).round() as i32;
        let tick_w = text_width(&tick(h.max(w) as f64), style::TICK);
        // Left of a plot: tick labels, and on the first panel the axis name.
        let left_first = tick_w + 12 + style::DESC as i32 + 8;
        let left = tick_w + 14;
        let bottom = style::TICK as i32 + 12 + style::DESC as i32 + 14;
        let has_amp = self.panels.iter().any(|p| p.amplitude.is_some());
        let bar_tick_w = prep
            .clips
            .iter()
            .map(|&c| style::tick_width_sym(c as f64))
            .max()
            .unwrap_or(30);
        // A colour bar block: bar, ticks, and (on the last bar) its label.
        let bar_block = |label: bool| {
            BAR_W
                + 8
                + bar_tick_w
                + if label {
                    10 + style::DESC as i32 + 4
                } else {
                    4
                }
        };
        let own_bars = !self.shared_scale;
        let last_amp = self.panels.iter().rposition(|p| p.amplitude.is_some());
        // Legend entries: classes, then the mask.
        let mut entries: Vec<(String, bool, [u8; 3])> = prep
            .classes
            .iter()
            .map(|&k| (self.class_name(k), false, class_rgb(k)))
            .collect();
        if prep.any_mask {
            let l = &self.mask_label;
            let name = if l.to_lowercase().contains("mask") {
                l.clone()
            } else {
                format!("{l} mask")
            };
            entries.push((name, true, MASK_RGB));
        }
        let per_col = ((ph / ROW).max(1)) as usize;
        let legend_cols = entries.len().div_ceil(per_col);
        let name_w = entries
            .iter()
            .map(|(n, _, _)| text_width(n, style::LEGEND))
            .max()
            .unwrap_or(0);
        let legend_col_w = SWATCH + 8 + name_w + 14;

        // Horizontal layout.
        let suptitle_h = if self.title.is_empty() {
            0
        } else {
            style::TITLE as i32 + 14
        };
        let ptitle_h = style::PANEL_TITLE as i32 + 12;
        let top = MARGIN + suptitle_h + ptitle_h;
        let mut x = MARGIN;
        let mut plots = Vec::new();
        let mut bars = Vec::new();
        for (i, p) in self.panels.iter().enumerate() {
            let l = if i == 0 { left_first } else { left };
            let r = Rect {
                x0: x + l,
                y0: top,
                x1: x + l + pw,
                y1: top + ph,
            };
            plots.push(r);
            x = r.x1;
            if own_bars && p.amplitude.is_some() {
                let label = Some(i) == last_amp;
                bars.push((i, x + 12, label));
                x += 12 + bar_block(label);
            }
            x += GAP;
        }
        if has_amp && !own_bars {
            bars.push((usize::MAX, x, true));
            x += bar_block(true) + GAP;
        }
        let legend_x = x;
        if !entries.is_empty() {
            x += legend_cols as i32 * legend_col_w;
        }
        let width = (x - GAP + MARGIN).max(200) as u32;
        let height = (top + ph + bottom + MARGIN) as u32;
        let mut canvas = Canvas::new(width, height)?;
        {
            let root = canvas.area();
            root.fill(&WHITE).map_err(pe)?;
            if !self.title.is_empty() {
                root.draw(&Text::new(
                    self.title.clone(),
                    (width as i32 / 2, MARGIN),
                    anchored(style::TITLE, HPos::Center, VPos::Top),
                ))
                .map_err(pe)?;
            }
            for (i, (p, r)) in self.panels.iter().zip(&plots).enumerate() {
                let l = if i == 0 { left_first } else { left };
                self.axes(&root, *r, l, bottom, i == 0)?;
                let title = title_with(&p.title, &prep.notes[i]);
                root.draw(&Text::new(
                    title,
                    ((r.x0 + r.x1) / 2, r.y0 - ptitle_h / 2 - 1),
                    centred(style::PANEL_TITLE),
                ))
                .map_err(pe)?;
            }
            for &(i, bx, label) in &bars {
                let clip = if i == usize::MAX {
                    prep.clips[0]
                } else {
                    prep.clips[i]
                };
                let label = if label {
                    Some(self.amplitude_label.as_str())
                } else {
                    None
                };
                colorbar_axes(&root, bx, top, ph, clip, label, bar_tick_w)?;
            }
            for (k, (name, is_mask, c)) in entries.iter().enumerate() {
                let col = (k / per_col) as i32;
                let row = (k % per_col) as i32;
                let x0 = legend_x + col * legend_col_w;
                let y0 = top + row * ROW + 2;
                let fill = if *is_mask {
                    let a = 0.35f32;
                    let m = |v: u8| (255.0 * (1.0 - a) + v as f32 * a) as u8;
                    RGBColor(m(c[0]), m(c[1]), m(c[2]))
                } else {
                    style::rgb(*c)
                };
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + SWATCH, y0 + SWATCH)],
                    fill.filled(),
                ))
                .map_err(pe)?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + SWATCH, y0 + SWATCH)],
                    if *is_mask {
                        style::rgb(*c)
                    } else {
                        style::AXIS
                    },
                ))
                .map_err(pe)?;
                legend_label(&root, name.clone(), (x0 + SWATCH + 8, y0 + SWATCH / 2))?;
            }
            root.present().map_err(pe)?;
        }
        // The images, drawn directly into the plot rectangles.
        for (i, (p, r)) in self.panels.iter().zip(&plots).enumerate() {
            self.blit_panel(&mut canvas, p, *r, prep.clips[i]);
            canvas.frame(*r, [60, 60, 60]);
        }
        for &(_, bx, _) in &bars {
            let r = Rect {
                x0: bx,
                y0: top,
                x1: bx + BAR_W,
                y1: top + ph,
            };
            let n = r.h().max(1) as usize;
            canvas.blit(r, 1, n, |_, row| {
                let t = 1.0 - row as f32 / (n - 1).max(1) as f32;
                Some((ColorMap::Seismic.rgb(t), 1.0))
            });
            canvas.frame(r, [60, 60, 60]);
        }
        Ok(canvas.finish())
    }

    /// Draws the panels into a PNG at `path` (written atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.render()?.write_png(path)
    }

    /// Axes, ticks and axis names around the plot rectangle `r`.
    fn axes(&self, root: &Area<'_>, r: Rect, left: i32, bottom: i32, first: bool) -> Result<()> {
        let (h, w) = (self.height as f64, self.width as f64);
        let area = root.clone().shrink(
            (r.x0 - left, r.y0),
            ((r.w() + left) as u32, (r.h() + bottom) as u32),
        );
        let mut chart = ChartBuilder::on(&area)
            .x_label_area_size(bottom)
            .y_label_area_size(left)
            .build_cartesian_2d(0f64..w, h..0f64)
            .map_err(pe)?;
        let int = |v: &f64| {
            if (v - v.round()).abs() < 1e-9 {
                format!("{}", v.round() as i64)
            } else {
                String::new()
            }
        };
        let mut mesh = chart.configure_mesh();
        mesh.disable_mesh()
            .x_desc(&self.x_label)
            .axis_desc_style(font(style::DESC))
            .label_style(font(style::TICK))
            .x_label_formatter(&int)
            .y_label_formatter(&int)
            .x_labels(6)
            .y_labels(6)
            .axis_style(style::AXIS);
        if first {
            mesh.y_desc(&self.y_label);
        }
        mesh.draw().map_err(pe)
    }

    fn blit_panel(&self, canvas: &mut Canvas, p: &Panel<'_>, r: Rect, clip: f32) {
        let (h, w) = (self.height, self.width);
        if let Some(a) = p.amplitude {
            canvas.blit(r, w, h, |c, row| {
                let v = a[row * w + c];
                if v.is_finite() {
                    Some((ColorMap::Seismic.rgb((v / clip + 1.0) / 2.0), 1.0))
                } else {
                    Some((BAD_RGB, 1.0))
                }
            });
        }
        if let Some(cl) = p.classes {
            let over = p.amplitude.is_some();
            canvas.blit(r, w, h, |c, row| {
                let k = cl[row * w + c];
                if k >= 0 {
                    Some((class_rgb(k), if over { 0.45 } else { 1.0 }))
                } else if over {
                    None
                } else {
                    Some((CLEAR_RGB, 1.0))
                }
            });
        }
        if let Some(mk) = p.mask {
            let alone = p.amplitude.is_none() && p.classes.is_none();
            // The mask as shown, pixel by pixel, so that its outline is one pixel wide.
            let (rw, rh) = (r.w().max(0) as usize, r.h().max(0) as usize);
            let at = |px: usize, py: usize| {
                let col = ((px as f64 + 0.5) * w as f64 / rw as f64) as usize;
                let row = ((py as f64 + 0.5) * h as f64 / rh as f64) as usize;
                mk[row.min(h - 1) * w + col.min(w - 1)] != 0
            };
            for py in 0..rh {
                for px in 0..rw {
                    if !at(px, py) {
                        continue;
                    }
                    let edge = (px > 0 && !at(px - 1, py))
                        || (px + 1 < rw && !at(px + 1, py))
                        || (py > 0 && !at(px, py - 1))
                        || (py + 1 < rh && !at(px, py + 1));
                    let a = if edge {
                        1.0
                    } else if alone {
                        0.55
                    } else {
                        0.3
                    };
                    canvas.blend(r.x0 + px as i32, r.y0 + py as i32, MASK_RGB, a);
                }
            }
        }
    }
}

/// The axis of a vertical colour bar at `x`, from `top`, `h` high: ticks and the label on its
/// right. The gradient itself is blitted afterwards.
fn colorbar_axes(
    root: &Area<'_>,
    x: i32,
    top: i32,
    h: i32,
    clip: f32,
    label: Option<&str>,
    tick_w: i32,
) -> Result<()> {
    let right = 8
        + tick_w
        + if label.is_some() {
            10 + style::DESC as i32 + 4
        } else {
            4
        };
    let area = root
        .clone()
        .shrink((x, top), ((BAR_W + right) as u32, h as u32));
    let c = clip as f64;
    let mut chart = ChartBuilder::on(&area)
        .set_label_area_size(LabelAreaPosition::Right, right)
        .build_cartesian_2d(0f64..1f64, -c..c)
        .map_err(pe)?;
    let fmt = |v: &f64| tick(*v);
    let mut mesh = chart.configure_mesh();
    mesh.disable_mesh()
        .disable_x_axis()
        .axis_desc_style(font(style::DESC))
        .label_style(font(style::TICK))
        .y_label_formatter(&fmt)
        .y_labels(5)
        .axis_style(style::AXIS);
    if let Some(l) = label {
        mesh.y_desc(l);
    }
    mesh.draw().map_err(pe)
}
