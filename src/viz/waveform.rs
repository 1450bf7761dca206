//! Multi-component waveforms as figures, with pick markers.

use super::image::Rgb;
use anyhow::{bail, Result};

pub const P_COLOR: [u8; 3] = [30, 90, 220];
pub const S_COLOR: [u8; 3] = [220, 40, 40];

/// A pick to draw: a sample index and a colour.
#[derive(Clone, Copy, Debug)]
pub struct PickMark {
    pub sample: usize,
    pub color: [u8; 3],
}

/// Draws `channels` traces of `samples` each (row-major `data`), one band per trace, each
/// scaled to its own largest |value|, `width` pixels wide and `band_height` per trace. Every
/// pixel column shows the min–max range of the samples it covers, so no peak is lost.
/// Picks are vertical lines across all bands.
pub fn waveform_figure(
    data: &[f32],
    channels: usize,
    samples: usize,
    picks: &[PickMark],
    width: usize,
    band_height: usize,
) -> Result<Rgb> {
    if data.len() != channels * samples || samples == 0 || width == 0 || band_height < 4 {
        bail!(
            "waveform figure: {} values for {channels}×{samples}, width {width}, band {band_height}",
            data.len()
        );
    }
    let height = channels * band_height;
    let mut img = Rgb::new(width, height, [255, 255, 255]);
    let col_of = |s: usize| (s * width / samples).min(width - 1);
    for p in picks {
        if p.sample < samples {
            let x = col_of(p.sample);
            for y in 0..height {
                img.set(x as i64, y as i64, p.color);
            }
        }
    }
    for c in 0..channels {
        let tr = &data[c * samples..(c + 1) * samples];
        let m = tr
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |a, v| a.max(v.abs()));
        let m = if m > 0.0 { m } else { 1.0 };
        let top = c * band_height;
        let half = (band_height as f32 - 2.0) / 2.0;
        let mid = top as f32 + 1.0 + half;
        let to_y = |v: f32| (mid - (v / m).clamp(-1.0, 1.0) * half).round() as i64;
        for x in 0..width {
            img.set(x as i64, mid.round() as i64, [200, 200, 200]);
        }
        if c > 0 {
            for x in 0..width {
                img.set(x as i64, top as i64, [120, 120, 120]);
            }
        }
        for x in 0..width {
            let a = x * samples / width;
            let b = ((x + 1) * samples / width).max(a + 1).min(samples);
            // Include the previous sample so that consecutive columns connect.
            let a0 = a.saturating_sub(1);
            let (lo, hi) = tr[a0..b]
                .iter()
                .filter(|v| v.is_finite())
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                });
            if lo > hi {
                continue;
            }
            for y in to_y(hi)..=to_y(lo) {
                img.set(x as i64, y, [0, 0, 0]);
            }
        }
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn draws_traces_and_picks() {
        let data: Vec<f32> = (0..300).map(|i| ((i % 100) as f32 * 0.3).sin()).collect();
        let img = waveform_figure(
            &data,
            3,
            100,
            &[PickMark {
                sample: 50,
                color: P_COLOR,
            }],
            200,
            40,
        )
        .unwrap();
        assert_eq!((img.width, img.height), (200, 120));
        assert_eq!(img.pixels[100], P_COLOR);
        assert!(img.pixels.contains(&[0, 0, 0]));
        assert!(waveform_figure(&data, 2, 100, &[], 200, 40).is_err());
    }
}
