//! Shared look: font sizes, colours, tick-label formatting, range helpers.

use super::font::FAMILY;
use anyhow::{bail, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

// Sizes in pixels from the top of the tallest glyph to the bottom of the lowest (ab_glyph's
// "px scale"); the em is about 0.86 of that.
pub const TITLE: f64 = 22.0;
pub const PANEL_TITLE: f64 = 18.0;
pub const DESC: f64 = 17.0;
pub const TICK: f64 = 15.0;
pub const LEGEND: f64 = 16.0;
pub const CELL: f64 = 15.0;

pub const TEXT: RGBColor = RGBColor(25, 25, 25);
pub const AXIS: RGBColor = RGBColor(60, 60, 60);
pub const GRID: RGBColor = RGBColor(228, 228, 228);
pub const GRID_BOLD: RGBColor = RGBColor(205, 205, 205);

/// Category colours (matplotlib's tab10), index cycled.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

pub fn palette(i: usize) -> RGBColor {
    let [r, g, b] = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

pub fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// Text of `size` pixels in the embedded font.
pub fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font()).color(&TEXT)
}

/// A chart's mesh in the figures' style: axis descriptions and tick labels in their fonts, bold
/// grid lines at the ticks with one light line between, the axis line. Callers add the
/// descriptions, formatters and tick counts, then draw.
pub fn grid_mesh<'a, 'b, 'm, X: Ranged, Y: Ranged, DB: DrawingBackend>(
    mesh: &'m mut plotters::chart::MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut plotters::chart::MeshStyle<'a, 'b, X, Y, DB> {
    mesh.axis_desc_style(font(DESC))
        .label_style(font(TICK))
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID)
        .max_light_lines(1)
        .axis_style(AXIS)
}

/// [`grid_mesh`] for numeric axes: the descriptions `x_desc` and `y_desc`, [`tick`] labels.
pub fn numeric_mesh<'a, 'b, 'm, X, Y, DB>(
    mesh: &'m mut plotters::chart::MeshStyle<'a, 'b, X, Y, DB>,
    x_desc: &str,
    y_desc: &str,
) -> &'m mut plotters::chart::MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
    DB: DrawingBackend,
{
    grid_mesh(mesh)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&tick_label)
        .y_label_formatter(&tick_label)
}

/// [`tick`] as a mesh's label formatter.
fn tick_label(v: &f64) -> String {
    tick(*v)
}

/// A chart builder on `area` with label areas for numeric axes (y tick labels `ticks_w`
/// pixels wide, both axes described) and the caption `title` unless it is empty; the caller
/// sets the margins.
pub fn numeric_chart<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    ticks_w: i32,
    title: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.x_label_area_size(TICK as i32 + DESC as i32 + 26)
        .y_label_area_size(ticks_w + DESC as i32 + 24);
    if !title.is_empty() {
        b.caption(title, font(TITLE));
    }
    b
}

/// Text anchored at its centre.
pub fn centred(size: f64) -> TextStyle<'static> {
    font(size).pos(Pos::new(HPos::Center, VPos::Center))
}

/// Text anchored at `h`, `v`.
pub fn anchored(size: f64, h: HPos, v: VPos) -> TextStyle<'static> {
    font(size).pos(Pos::new(h, v))
}

/// A tick label: at most 4 significant decimals, no float noise (0.30000000000000004 → 0.3),
/// scientific notation for very large or very small magnitudes.
pub fn tick(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    if a < 1e-12 {
        return "0".into();
    }
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        // 1.50e-4 → 1.5e-4, 1.00e5 → 1e5
        if let Some((m, e)) = s.split_once('e') {
            let m = trim_zeros(m);
            return format!("{m}e{e}");
        }
        return s;
    }
    let decimals = (4 - a.log10().floor() as i32).clamp(0, 6) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// The widest tick label an axis over ±`m` may get (plotters picks steps of 1, 2 or 5 × 10^k).
pub fn tick_width_sym(m: f64) -> i32 {
    if !(m.is_finite() && m > 0.0) {
        return super::canvas::text_width("-0.5", TICK);
    }
    let p = 10f64.powf(m.log10().floor());
    [p, p / 2.0, p / 4.0, p * 2.0, p * 5.0]
        .iter()
        .filter(|&&v| v <= m * 1.0001)
        .map(|&v| super::canvas::text_width(&tick(-v), TICK))
        .max()
        .unwrap_or_else(|| super::canvas::text_width(&tick(-m), TICK))
}

/// The widest tick label of a linear axis over [lo, hi] with at most `max_ticks` labels at
/// multiples of 1, 2 or 5 × 10^k (as plotters places them).
pub fn tick_width_range(lo: f64, hi: f64, max_ticks: usize) -> i32 {
    let span = hi - lo;
    let fallback =
        super::canvas::text_width(&tick(lo), TICK).max(super::canvas::text_width(&tick(hi), TICK));
    if !(span.is_finite() && span > 0.0) || max_ticks < 2 {
        return fallback;
    }
    let p = 10f64.powf(span.log10().floor());
    let Some(step) = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|st| span / st + 1.0 <= max_ticks as f64)
    else {
        return fallback;
    };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .take(64)
        .map(|k| super::canvas::text_width(&tick(k as f64 * step), TICK))
        .max()
        .unwrap_or(fallback)
}

/// The range [lo, hi] of `values` widened by `pad` of its span on both sides; a single value
/// gets a span of its own. Errors when the range is not finite (plotters asserts on NaN).
pub fn padded(lo: f64, hi: f64, pad: f64) -> Result<(f64, f64)> {
    if !(lo.is_finite() && hi.is_finite()) || lo > hi {
        bail!("no finite values to draw");
    }
    let span = hi - lo;
    let (lo, hi) = if span > 0.0 && span > 1e-9 * hi.abs().max(lo.abs()) {
        (lo - pad * span, hi + pad * span)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    };
    if !(hi - lo).is_finite() {
        bail!(
            "values of magnitude {} are too large to draw",
            lo.abs().max(hi.abs())
        );
    }
    Ok((lo, hi))
}

/// A title with a note about left-out values appended.
pub fn title_with(title: &str, notes: &[String]) -> String {
    if notes.is_empty() {
        title.to_string()
    } else if title.is_empty() {
        format!("({})", notes.join("; "))
    } else {
        format!("{title} ({})", notes.join("; "))
    }
}

/// "N non-finite values not drawn" when `n > 0`.
pub fn non_finite_note(n: usize) -> Option<String> {
    match n {
        0 => None,
        1 => Some("1 non-finite value not drawn".into()),
        n => Some(format!("{n} non-finite values not drawn")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn tick_labels() {
        assert_eq!(tick(0.1 + 0.2), "0.3");
        assert_eq!(tick(2000.0), "2000");
        assert_eq!(tick(-1.25), "-1.25");
        assert_eq!(tick(1.5e-4), "1.5e-4");
        assert_eq!(tick(1e6), "1e6");
        assert_eq!(tick(0.0), "0");
        assert!(padded(f64::NAN, 1.0, 0.1).is_err());
        assert_eq!(padded(2.0, 2.0, 0.1).unwrap(), (1.8, 2.2));
        assert!(padded(-f64::MAX, f64::MAX, 0.1).is_err());
    }
}
