//! The figures of a run: one function per kind, called by the tasks with plain slices.

use super::tasks::Evaluation;
use crate::viz::image::{ColorMap, Rgb};
use crate::viz::section::{amplitude_panel, hconcat, overlay_classes, upscale_factor};
use crate::viz::waveform::{waveform_figure, PickMark, P_COLOR, S_COLOR};
use anyhow::Result;
use std::path::Path;

fn finish(panels: Vec<Rgb>, h: usize, w: usize, path: &Path) -> Result<()> {
    let k = upscale_factor(h, w, 192);
    let up: Vec<Rgb> = panels.iter().map(|p| p.upscale(k)).collect();
    hconcat(&up, 8).write_png(path)
}

/// Section | true classes | predicted classes.
pub fn segmentation(
    path: &Path,
    section: &[f32],
    truth: &[i32],
    pred: &[usize],
    (h, w): (usize, usize),
    _names: &[String],
) -> Result<()> {
    let base = amplitude_panel(section, h, w)?;
    let mut t = base.clone();
    overlay_classes(&mut t, truth, 0.6)?;
    let mut p = base.clone();
    let pi: Vec<i32> = pred.iter().map(|&v| v as i32).collect();
    overlay_classes(&mut p, &pi, 0.6)?;
    finish(vec![base, t, p], h, w, path)
}

/// Input | target | output | error.
pub fn regression(
    path: &Path,
    input: &[f32],
    target: &[f32],
    output: &[f32],
    (h, w): (usize, usize),
) -> Result<()> {
    let err: Vec<f32> = output.iter().zip(target).map(|(a, b)| a - b).collect();
    let panels = [input, target, output, &err]
        .iter()
        .map(|v| amplitude_panel(v, h, w))
        .collect::<Result<Vec<_>>>()?;
    finish(panels, h, w, path)
}

/// Section | masked section | reconstruction.
pub fn mae(
    path: &Path,
    section: &[f32],
    masked: &[f32],
    rec: &[f32],
    (h, w): (usize, usize),
) -> Result<()> {
    let m: Vec<f32> = masked
        .iter()
        .map(|v| if v.is_finite() { *v } else { 0.0 })
        .collect();
    let panels = [section, &m, rec]
        .iter()
        .map(|v| amplitude_panel(v, h, w))
        .collect::<Result<Vec<_>>>()?;
    finish(panels, h, w, path)
}

/// Three components with the true picks, then the P, S, noise probabilities.
pub fn picks(
    path: &Path,
    wave: &[f32],
    probs: &[f32],
    (p, s): (Option<f32>, Option<f32>),
    _sampling_rate: f64,
) -> Result<()> {
    let len = wave.len() / 3;
    let mut marks = Vec::new();
    if let Some(p) = p {
        marks.push(PickMark {
            sample: p as usize,
            color: P_COLOR,
        });
    }
    if let Some(s) = s {
        marks.push(PickMark {
            sample: s as usize,
            color: S_COLOR,
        });
    }
    let mut rows = wave.to_vec();
    for c in 0..3 {
        rows.extend(probs.chunks(3).map(|r| r[c]));
    }
    waveform_figure(&rows, 6, len, &marks, 900, 60)?.write_png(path)
}

/// The confusion matrix as a heat map (rows true, columns predicted).
pub fn confusion(path: &Path, e: &Evaluation) -> Result<()> {
    let Some(m) = &e.confusion else {
        anyhow::bail!("no confusion matrix to draw");
    };
    let k = m.len();
    let mut v = Vec::with_capacity(k * k);
    for r in m {
        let t = r.iter().sum::<u64>().max(1) as f32;
        v.extend(r.iter().map(|&c| c as f32 / t));
    }
    Rgb::from_grid(&v, k, k, ColorMap::Viridis, Some((0.0, 1.0)))?
        .upscale(48)
        .write_png(path)
}
