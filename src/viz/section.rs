//! Seismic sections as figures: amplitude panels, class and mask overlays, side-by-side panels.

use super::image::{ColorMap, Rgb};
use anyhow::{bail, Result};

/// Distinct colours for class overlays (index = class id, cycled).
pub const CLASS_COLORS: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [188, 189, 34],
];

/// An amplitude section (`height × width`, row = time) in the blue–white–red map, with a range
/// symmetric about zero (±the largest |value|) so that zero is white.
pub fn amplitude_panel(values: &[f32], height: usize, width: usize) -> Result<Rgb> {
    let m = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |a, v| a.max(v.abs()));
    let m = if m > 0.0 { m } else { 1.0 };
    Rgb::from_grid(values, height, width, ColorMap::Seismic, Some((-m, m)))
}

/// A gray-scale panel of a section (for amplitudes, without the sign emphasis).
pub fn gray_panel(values: &[f32], height: usize, width: usize) -> Result<Rgb> {
    Rgb::from_grid(values, height, width, ColorMap::Gray, None)
}

/// Blends class colours over `img` (classes < 0 are left clear).
pub fn overlay_classes(img: &mut Rgb, classes: &[i32], alpha: f32) -> Result<()> {
    if classes.len() != img.width * img.height {
        bail!(
            "class map of {} values does not match an image of {}×{}",
            classes.len(),
            img.height,
            img.width
        );
    }
    for (i, &c) in classes.iter().enumerate() {
        if c >= 0 {
            let col = CLASS_COLORS[c as usize % CLASS_COLORS.len()];
            img.blend(i % img.width, i / img.width, col, alpha);
        }
    }
    Ok(())
}

/// Blends `color` where `mask` is non-zero and draws the mask's outline fully opaque.
pub fn overlay_mask(img: &mut Rgb, mask: &[u8], color: [u8; 3], alpha: f32) -> Result<()> {
    let (w, h) = (img.width, img.height);
    if mask.len() != w * h {
        bail!(
            "mask of {} values does not match an image of {h}×{w}",
            mask.len()
        );
    }
    for y in 0..h {
        for x in 0..w {
            if mask[y * w + x] == 0 {
                continue;
            }
            let edge = x == 0
                || y == 0
                || x + 1 == w
                || y + 1 == h
                || mask[y * w + x - 1] == 0
                || mask[y * w + x + 1] == 0
                || mask[(y - 1) * w + x] == 0
                || mask[(y + 1) * w + x] == 0;
            img.blend(x, y, color, if edge { 1.0 } else { alpha });
        }
    }
    Ok(())
}

/// Places panels side by side, top-aligned, separated by `gap` white columns.
pub fn hconcat(panels: &[Rgb], gap: usize) -> Rgb {
    let width =
        panels.iter().map(|p| p.width).sum::<usize>() + gap * panels.len().saturating_sub(1);
    let height = panels.iter().map(|p| p.height).max().unwrap_or(0);
    let mut out = Rgb::new(width, height, [255, 255, 255]);
    let mut x0 = 0;
    for p in panels {
        for y in 0..p.height {
            for x in 0..p.width {
                out.pixels[y * width + x0 + x] = p.pixels[y * p.width + x];
            }
        }
        x0 += p.width + gap;
    }
    out
}

/// The integer factor that brings the smaller side of an image to at least `min_side` pixels.
pub fn upscale_factor(height: usize, width: usize, min_side: usize) -> usize {
    let s = height.min(width).max(1);
    min_side.div_ceil(s).max(1)
}

/// The longest side, in pixels, that enlarging a figure may reach ([`figure_factor`]).
pub const MAX_UPSCALED_SIDE: usize = 4096;

/// [`upscale_factor`], but never making the longer side exceed [`MAX_UPSCALED_SIDE`] (a thin
/// 2×10000 array would otherwise become a 256×1280000 figure); 1 when the image already is
/// that long.
pub fn figure_factor(height: usize, width: usize, min_side: usize) -> usize {
    let long = height.max(width).max(1);
    upscale_factor(height, width, min_side)
        .min(MAX_UPSCALED_SIDE / long)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn panels_and_overlays() {
        let v: Vec<f32> = (0..12).map(|i| i as f32 - 6.0).collect();
        let mut p = amplitude_panel(&v, 3, 4).unwrap();
        assert_eq!(p.pixels[6], [255, 255, 255]); // zero is white
        overlay_classes(&mut p, &[0; 12], 0.5).unwrap();
        assert!(overlay_classes(&mut p, &[0; 5], 0.5).is_err());
        let mut m = vec![0u8; 12];
        m[5] = 1;
        overlay_mask(&mut p, &m, [0, 0, 0], 0.3).unwrap();
        assert_eq!(p.pixels[5], [0, 0, 0]);
        let c = hconcat(&[p.clone(), p], 2);
        assert_eq!((c.width, c.height), (10, 3));
        assert_eq!(upscale_factor(64, 100, 256), 4);
        assert_eq!(figure_factor(64, 100, 256), 4);
        assert_eq!(figure_factor(2, 10_000, 256), 1);
        assert_eq!(figure_factor(2, 1000, 256), 4);
        assert_eq!(figure_factor(0, 0, 256), 256);
    }
}
