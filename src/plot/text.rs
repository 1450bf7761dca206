//! Text laid out and drawn with ab_glyph in the embedded font. plotters 0.3.7's own ab_glyph
//! renderer drops each glyph's left side bearing (so "cl" reads as "d") and guesses the text
//! height; the figures' backend ([`super::canvas::Backend`]) draws text through this instead.

use super::font;
use ab_glyph::{point, Font, FontRef, Glyph, PxScale, ScaleFont};
use std::sync::OnceLock;

/// The embedded font, parsed once.
pub fn face() -> Option<&'static FontRef<'static>> {
    static FACE: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FACE.get_or_init(|| FontRef::try_from_slice(font::DEJAVU_SANS).ok())
        .as_ref()
}

/// Glyphs of one line of text at `size` pixels (ascent − descent), positioned with kerning in
/// a box whose top-left is (0, 0) and baseline at the ascent; and the box's width and height.
pub struct Line {
    pub glyphs: Vec<Glyph>,
    pub width: f32,
    pub height: f32,
}

pub fn layout(text: &str, size: f64) -> Option<Line> {
    let f = face()?;
    let scale = PxScale::from(size.max(1.0) as f32);
    let sf = f.as_scaled(scale);
    let ascent = sf.ascent();
    let mut caret = 0f32;
    let mut prev = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            continue;
        }
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            caret += sf.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(caret, ascent)));
        caret += sf.h_advance(id);
        prev = Some(id);
    }
    Some(Line {
        glyphs,
        width: caret,
        height: sf.ascent() - sf.descent(),
    })
}

/// The (width, height) of `text` in pixels.
pub fn size_of(text: &str, size: f64) -> (u32, u32) {
    match layout(text, size) {
        Some(l) => (
            l.width.ceil().max(0.0) as u32,
            l.height.ceil().max(0.0) as u32,
        ),
        None => (
            (text.chars().count() as f64 * size * 0.55) as u32,
            size as u32,
        ),
    }
}

/// Calls `put(x, y, coverage)` for every covered pixel of `line`, relative to its box's
/// top-left corner.
pub fn rasterize(line: &Line, mut put: impl FnMut(i32, i32, f32)) {
    let Some(f) = face() else { return };
    for g in &line.glyphs {
        if let Some(o) = f.outline_glyph(g.clone()) {
            let b = o.px_bounds();
            let (x0, y0) = (b.min.x as i32, b.min.y as i32);
            o.draw(|x, y, c| put(x0 + x as i32, y0 + y as i32, c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn bearings_and_sizes() {
        let (w, h) = size_of("class", 20.0);
        assert!(w > 35 && w < 60, "{w}");
        assert!((19..=21).contains(&h), "{h}");
        assert!(size_of("", 20.0).0 == 0);
        // 'l' after 'c' starts right of the 'c' (the bearing is kept).
        let line = layout("cl", 40.0).unwrap();
        let mut xs_l = Vec::new();
        let l_only = layout("l", 40.0).unwrap();
        rasterize(&l_only, |x, _, c| {
            if c > 0.5 {
                xs_l.push(x)
            }
        });
        let mut xs = Vec::new();
        rasterize(&line, |x, _, c| {
            if c > 0.5 {
                xs.push(x)
            }
        });
        let c_right = {
            let c_only = layout("c", 40.0).unwrap();
            let mut v = Vec::new();
            rasterize(&c_only, |x, _, c| {
                if c > 0.5 {
                    v.push(x)
                }
            });
            *v.iter().max().unwrap()
        };
        let l_left_in_cl = line.glyphs[1].position.x as i32 + *xs_l.iter().min().unwrap();
        assert!(l_left_in_cl > c_right, "{l_left_in_cl} <= {c_right}");
    }
}
