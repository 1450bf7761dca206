//! Raster images and PNG output: a value grid mapped through a colour map.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Colour maps for value grids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMap {
    /// Black to white.
    Gray,
    /// Blue–white–red, for signed data such as seismic amplitude.
    Seismic,
    /// Perceptually ordered dark-blue → green → yellow (viridis-like), for spectrograms.
    Viridis,
}

impl ColorMap {
    /// RGB of t in [0, 1].
    pub fn rgb(self, t: f32) -> [u8; 3] {
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let c = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        match self {
            ColorMap::Gray => [c(t), c(t), c(t)],
            ColorMap::Seismic => {
                if t < 0.5 {
                    let s = t / 0.5;
                    [c(s), c(s), c(1.0)]
                } else {
                    let s = (t - 0.5) / 0.5;
                    [c(1.0), c(1.0 - s), c(1.0 - s)]
                }
            }
            ColorMap::Viridis => {
                // Piecewise-linear through five viridis anchors.
                const A: [[f32; 3]; 5] = [
                    [0.267, 0.005, 0.329],
                    [0.229, 0.322, 0.546],
                    [0.128, 0.567, 0.551],
                    [0.369, 0.789, 0.383],
                    [0.993, 0.906, 0.144],
                ];
                let x = t * 4.0;
                let i = (x.floor() as usize).min(3);
                let f = x - i as f32;
                let m = |k: usize| A[i][k] + (A[i + 1][k] - A[i][k]) * f;
                [c(m(0)), c(m(1)), c(m(2))]
            }
        }
    }
}

/// An RGB raster.
#[derive(Clone, Debug)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<[u8; 3]>,
}

impl Rgb {
    pub fn new(width: usize, height: usize, fill: [u8; 3]) -> Self {
        Rgb {
            width,
            height,
            pixels: vec![fill; width * height],
        }
    }

    /// A `height`×`width` row-major grid mapped through `cmap`, scaled from [lo, hi]
    /// (the data's min and max when `range` is `None`).
    pub fn from_grid(
        values: &[f32],
        height: usize,
        width: usize,
        cmap: ColorMap,
        range: Option<(f32, f32)>,
    ) -> Result<Self> {
        if values.len() != height * width {
            bail!(
                "image of {height}×{width} needs {} values, found {}",
                height * width,
                values.len()
            );
        }
        let (lo, hi) = range.unwrap_or_else(|| {
            values
                .iter()
                .filter(|v| v.is_finite())
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                })
        });
        let span = if hi > lo { hi - lo } else { 1.0 };
        Ok(Rgb {
            width,
            height,
            pixels: values.iter().map(|&v| cmap.rgb((v - lo) / span)).collect(),
        })
    }

    /// Nearest-neighbour enlargement by an integer factor (small images are hard to see).
    pub fn upscale(&self, factor: usize) -> Rgb {
        let f = factor.max(1);
        let mut out = Rgb::new(self.width * f, self.height * f, [0, 0, 0]);
        for y in 0..out.height {
            for x in 0..out.width {
                out.pixels[y * out.width + x] = self.pixels[(y / f) * self.width + x / f];
            }
        }
        out
    }

    /// The PNG complete under its temporary name, to be committed with other outputs.
    pub fn png_file(&self, path: &Path) -> Result<crate::atomic::OutputFile> {
        let (Ok(w), Ok(h)) = (u32::try_from(self.width), u32::try_from(self.height)) else {
            bail!(
                "{}: an image of {}×{} pixels is too large for PNG",
                path.display(),
                self.width,
                self.height
            );
        };
        if w == 0 || h == 0 {
            bail!("{}: the image is empty ({w}×{h} pixels)", path.display());
        }
        let mut file = crate::atomic::OutputFile::create(path)?;
        {
            let mut enc = png::Encoder::new(&mut file, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc
                .write_header()
                .with_context(|| format!("writing {}", path.display()))?;
            let flat: Vec<u8> = self.pixels.iter().flat_map(|p| p.iter().copied()).collect();
            wr.write_image_data(&flat)
                .with_context(|| format!("writing {}", path.display()))?;
            wr.finish()
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(file)
    }
}
