//! The pixel buffer a figure is drawn into, and the finished [`Figure`] with its PNG output.

use super::{font, text};
use crate::atomic::OutputFile;
use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};
use std::path::Path;

/// The largest side of a figure, in pixels.
pub const MAX_SIDE: u32 = 8192;

/// A rendered figure: 8-bit RGB pixels, row-major.
#[derive(Clone, Debug)]
pub struct Figure {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Figure {
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    /// The pixels, 3 bytes (R, G, B) each, row by row.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    /// The PNG complete under its temporary name, to be committed with other outputs
    /// ([`crate::atomic::Staged`]).
    pub fn png_file(&self, path: &Path) -> Result<OutputFile> {
        let mut file = OutputFile::create(path)?;
        {
            let ctx = || format!("writing {}", path.display());
            let mut enc = png::Encoder::new(&mut file, self.width, self.height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().with_context(ctx)?;
            w.write_image_data(&self.rgb).with_context(ctx)?;
            w.finish().with_context(ctx)?;
        }
        Ok(file)
    }

    /// Writes the PNG under a temporary name and renames it into place.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        self.png_file(path)?.commit()
    }
}

/// A white canvas to draw on with plotters ([`Canvas::area`]) and directly ([`Canvas::blit`]).
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    buf: Vec<u8>,
}

/// The plotters drawing area of a canvas.
pub type Area<'a> = DrawingArea<Backend<'a>, Shift>;

/// plotters' bitmap backend with text laid out and drawn by [`text`] (correct glyph bearings
/// and heights in the embedded font); everything else is the bitmap backend's.
pub struct Backend<'a> {
    inner: BitMapBackend<'a>,
}

type Err<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

impl<'a> DrawingBackend for Backend<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), Err<'a>> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), Err<'a>> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), Err<'a>> {
        self.inner.draw_pixel(point, color)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Err<'a>> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Err<'a>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Err<'a>> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Err<'a>> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Err<'a>> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), Err<'a>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), Err<'a>> {
        Ok(text::size_of(text, style.size()))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), Err<'a>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let Some(line) = text::layout(text, style.size()) else {
            return Ok(());
        };
        let (w, h) = (line.width.round() as i32, line.height.round() as i32);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Center => -w / 2,
            HPos::Right => -w,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let trans = style.transform();
        let (cw, ch) = self.inner.get_size();
        let mut result = Ok(());
        let inner = &mut self.inner;
        text::rasterize(&line, |x, y, c| {
            if result.is_err() || c <= 0.0 {
                return;
            }
            let (x, y) = trans.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && x < cw as i32 && y < ch as i32 {
                result = inner.draw_pixel(
                    (x, y),
                    BackendColor {
                        alpha: color.alpha * c.min(1.0) as f64,
                        rgb: color.rgb,
                    },
                );
            }
        });
        result
    }
}

/// A plotters error as an anyhow error.
pub fn pe<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the figure: {e}")
}

/// A legend entry's label: legend-size text from `at` rightwards, centred on it vertically.
pub fn legend_label(area: &Area, text: String, at: (i32, i32)) -> Result<()> {
    let style = super::style::anchored(super::style::LEGEND, HPos::Left, VPos::Center);
    area.draw(&Text::new(text, at, style)).map_err(pe)
}

/// A rectangle of pixels: `x0..x1` × `y0..y1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    pub fn w(&self) -> i32 {
        self.x1 - self.x0
    }
    pub fn h(&self) -> i32 {
        self.y1 - self.y0
    }
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Result<Self> {
        if width < 16 || height < 16 || width > MAX_SIDE || height > MAX_SIDE {
            bail!("a figure of {width}×{height} pixels is outside 16…{MAX_SIDE} pixels a side");
        }
        font::ensure()?;
        Ok(Canvas {
            width,
            height,
            buf: vec![255; width as usize * height as usize * 3],
        })
    }

    /// The whole canvas as a plotters drawing area (drawing goes straight into the buffer).
    pub fn area(&mut self) -> Area<'_> {
        Backend {
            inner: BitMapBackend::with_buffer(&mut self.buf, (self.width, self.height)),
        }
        .into_drawing_area()
    }

    /// Fills `r` (clipped to the canvas) with `f(column, row)` of the `cols`×`rows` grid it
    /// shows, nearest neighbour; `None` leaves the pixel as it is, `Some((rgb, alpha))`
    /// blends.
    pub fn blit(
        &mut self,
        r: Rect,
        cols: usize,
        rows: usize,
        f: impl Fn(usize, usize) -> Option<([u8; 3], f32)>,
    ) {
        if r.w() <= 0 || r.h() <= 0 || cols == 0 || rows == 0 {
            return;
        }
        let (w, h) = (self.width as i32, self.height as i32);
        for py in r.y0.max(0)..r.y1.min(h) {
            let row = (((py - r.y0) as f64 + 0.5) * rows as f64 / r.h() as f64) as usize;
            let row = row.min(rows - 1);
            for px in r.x0.max(0)..r.x1.min(w) {
                let col = (((px - r.x0) as f64 + 0.5) * cols as f64 / r.w() as f64) as usize;
                if let Some((c, a)) = f(col.min(cols - 1), row) {
                    self.blend(px, py, c, a);
                }
            }
        }
    }

    /// Blends `c` over pixel (x, y) with opacity `alpha` (outside the canvas: nothing).
    pub fn blend(&mut self, x: i32, y: i32, c: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        let a = alpha.clamp(0.0, 1.0);
        for (p, &v) in self.buf[i..i + 3].iter_mut().zip(&c) {
            *p = (*p as f32 * (1.0 - a) + v as f32 * a).round() as u8;
        }
    }

    /// A one-pixel outline just outside `r`.
    pub fn frame(&mut self, r: Rect, c: [u8; 3]) {
        for x in r.x0 - 1..=r.x1 {
            self.blend(x, r.y0 - 1, c, 1.0);
            self.blend(x, r.y1, c, 1.0);
        }
        for y in r.y0 - 1..=r.y1 {
            self.blend(r.x0 - 1, y, c, 1.0);
            self.blend(r.x1, y, c, 1.0);
        }
    }

    pub fn finish(self) -> Figure {
        Figure {
            width: self.width,
            height: self.height,
            rgb: self.buf,
        }
    }
}

/// The width in pixels of `text` at `size` in the embedded font (an estimate when the font
/// cannot measure it).
pub fn text_width(text: &str, size: f64) -> i32 {
    text::size_of(text, size).0 as i32
}
