//! The figures of a run, drawn with `crate::plot` (axes, labels, legends): one function per
//! kind, called by the tasks with plain slices.

use super::tasks::Evaluation;
use crate::plot::{Confusion, Panel, Pick, Probability, Sections, Waveforms};
use anyhow::{bail, Result};
use std::path::Path;

/// Section | true classes | predicted classes.
pub fn segmentation(
    path: &Path,
    section: &[f32],
    truth: &[i32],
    pred: &[usize],
    (h, w): (usize, usize),
    names: &[String],
) -> Result<()> {
    let pi: Vec<i32> = pred.iter().map(|&v| v as i32).collect();
    let k = truth.iter().chain(&pi).copied().max().unwrap_or(0).max(0) as usize + 1;
    let class_names = if names.len() >= k {
        names.to_vec()
    } else {
        (0..k).map(|c| format!("class {c}")).collect()
    };
    let panels = vec![
        Panel::amplitude("input section", section),
        Panel::classes("true classes", truth),
        Panel::classes("predicted classes", &pi),
    ];
    Sections {
        class_names,
        ..Sections::new("segmentation", (h, w), panels)
    }
    .write(path)
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
    let panels = vec![
        Panel::amplitude("input", input),
        Panel::amplitude("target", target),
        Panel::amplitude("output", output),
        Panel::amplitude("output − target", &err),
    ];
    Sections::new("regression", (h, w), panels).write(path)
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
    let panels = vec![
        Panel::amplitude("section", section),
        Panel::amplitude("visible patches", &m),
        Panel::amplitude("reconstruction", rec),
    ];
    Sections::new("masked autoencoder (masked patches zeroed)", (h, w), panels).write(path)
}

/// Three components with the true and predicted picks, and the P, S, noise probabilities.
/// `probs` is [T, 3] (P, S, noise per sample).
pub fn picks(
    path: &Path,
    wave: &[f32],
    probs: &[f32],
    (p, s): (Option<f32>, Option<f32>),
    sampling_rate: f64,
) -> Result<()> {
    let len = wave.len() / 3;
    if probs.len() != 3 * len {
        bail!(
            "picks figure: {} probabilities for {len} samples",
            probs.len()
        );
    }
    let curves: Vec<Vec<f32>> = (0..3)
        .map(|c| probs.chunks(3).map(|r| r[c]).collect())
        .collect();
    let mut marks = Vec::new();
    if let Some(p) = p {
        marks.push(Pick::truth("P", p as f64));
    }
    if let Some(s) = s {
        marks.push(Pick::truth("S", s as f64));
    }
    for (c, name) in [(0usize, "P"), (1, "S")] {
        let best = crate::metrics::picking::onset_sample(&curves[c]);
        if let Some(b) = best {
            if curves[c][b] >= 0.3 {
                marks.push(Pick::predicted(name, b as f64));
            }
        }
    }
    Waveforms {
        title: "phase picking".into(),
        data: wave,
        channels: 3,
        samples: len,
        channel_names: vec!["Z".into(), "N".into(), "E".into()],
        sampling_rate: Some(sampling_rate),
        amplitude_unit: "normalised".into(),
        picks: marks,
        probabilities: vec![
            Probability {
                name: "P",
                values: &curves[0],
            },
            Probability {
                name: "S",
                values: &curves[1],
            },
            Probability {
                name: "noise",
                values: &curves[2],
            },
        ],
        ..Default::default()
    }
    .write(path)
}

/// The confusion matrix (rows true, columns predicted).
pub fn confusion(path: &Path, e: &Evaluation) -> Result<()> {
    let Some(m) = &e.confusion else {
        bail!("no confusion matrix to draw");
    };
    let counts: Vec<u64> = m.iter().flatten().copied().collect();
    Confusion {
        title: format!("confusion matrix ({} samples)", e.samples),
        class_names: e.class_names.clone(),
        counts: &counts,
    }
    .write(path)
}
