//! Training-run logs (JSONL) as line charts: `loss.png`, `lr.png`, `dev-<metric>.png`.
//!
//! One JSON object per line. Train lines:
//! `{"kind":"train","step":N,"loss":x,"lr":x,"grad_norm":x,"samples_per_s":x}`; dev lines:
//! `{"kind":"eval","step":N,"split":"dev","metrics":{"name":value,...}}`. Unknown keys, other
//! kinds and other splits are ignored; lines that are not such objects are skipped and
//! counted. `null` (and Python's `NaN`/`Infinity`) values are non-finite points, left out of
//! the figures and counted in their titles.

use super::curves::{Curves, Series};
use crate::atomic::Staged;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One train line.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainPoint {
    pub step: f64,
    pub loss: Option<f64>,
    pub lr: Option<f64>,
    pub grad_norm: Option<f64>,
    pub samples_per_s: Option<f64>,
}

/// One dev evaluation: its metrics, by name.
#[derive(Clone, Debug, PartialEq)]
pub struct DevPoint {
    pub step: f64,
    pub metrics: Vec<(String, f64)>,
}

/// A training log as read by [`read_log`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunLog {
    pub train: Vec<TrainPoint>,
    pub dev: Vec<DevPoint>,
    /// Non-empty lines read.
    pub lines: usize,
    /// Lines skipped as not valid (not JSON, not an object, no numeric step, too long).
    pub skipped: usize,
    /// The 1-based number of the first skipped line.
    pub first_skipped: Option<usize>,
}

/// Lines longer than this are skipped (a log line is a few hundred bytes).
const MAX_LINE: u64 = 1 << 20;

/// Reads a JSONL training log.
pub fn read_log(path: &Path) -> Result<RunLog> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = BufReader::new(f);
    let mut log = RunLog::default();
    let mut buf = Vec::new();
    let mut lineno = 0usize;
    loop {
        let n = read_part(&mut r, &mut buf, path)?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let complete = buf.last() == Some(&b'\n') || (n as u64) < MAX_LINE;
        if !complete {
            // Discard the rest of an over-long line.
            let mut rest = Vec::new();
            while read_part(&mut r, &mut rest, path)? > 0 && rest.last() != Some(&b'\n') {}
            log.lines += 1;
            skip(&mut log, lineno);
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        log.lines += 1;
        if !parse_line(text, &mut log) {
            skip(&mut log, lineno);
        }
    }
    Ok(log)
}

/// Reads at most MAX_LINE bytes of the next line into `buf` (cleared first); returns their
/// count.
fn read_part(r: &mut impl BufRead, buf: &mut Vec<u8>, path: &Path) -> Result<usize> {
    buf.clear();
    r.by_ref()
        .take(MAX_LINE)
        .read_until(b'\n', buf)
        .with_context(|| format!("reading {}", path.display()))
}

fn skip(log: &mut RunLog, lineno: usize) {
    log.skipped += 1;
    log.first_skipped.get_or_insert(lineno);
}

/// A number, `null` as NaN; anything else `None`.
fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::Null => Some(f64::NAN),
        _ => None,
    }
}

/// Parses one line into `log`; false when the line is not valid.
fn parse_line(text: &str, log: &mut RunLog) -> bool {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => {
            // Python's json writes NaN, Infinity and -Infinity bare.
            let fixed = text
                .replace("-Infinity", "null")
                .replace("Infinity", "null")
                .replace("NaN", "null");
            match serde_json::from_str(&fixed) {
                Ok(v) => v,
                Err(_) => return false,
            }
        }
    };
    let Value::Object(o) = v else { return false };
    let kind = o.get("kind").and_then(|k| k.as_str());
    match kind {
        Some("train") => {
            let Some(step) = num(o.get("step")).filter(|s| s.is_finite()) else {
                return false;
            };
            log.train.push(TrainPoint {
                step,
                loss: num(o.get("loss")),
                lr: num(o.get("lr")),
                grad_norm: num(o.get("grad_norm")),
                samples_per_s: num(o.get("samples_per_s")),
            });
            true
        }
        Some("eval") => {
            if o.get("split").and_then(|s| s.as_str()) != Some("dev") {
                return true; // another split: ignored
            }
            let Some(step) = num(o.get("step")).filter(|s| s.is_finite()) else {
                return false;
            };
            let Some(Value::Object(m)) = o.get("metrics") else {
                return false;
            };
            let metrics = m
                .iter()
                .filter_map(|(k, v)| num(Some(v)).map(|x| (k.clone(), x)))
                .collect();
            log.dev.push(DevPoint { step, metrics });
            true
        }
        // Other kinds (config, checkpoint, …) are not drawn.
        Some(_) => true,
        None => false,
    }
}

/// A metric name as a file name part: letters, digits, `-`, `_`, `.`; others become `_`.
fn file_part(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "metric".into()
    } else {
        s
    }
}

/// A log scale when the values are positive and span more than 1.5 decades.
fn wants_log(ys: &[&[f64]]) -> bool {
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for &y in ys {
        for &v in y.iter().filter(|v| v.is_finite()) {
            if v <= 0.0 {
                return false;
            }
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    lo.is_finite() && hi / lo > 30.0
}

/// Reads the training log `log` and writes its figures into `out_dir` (created if missing;
/// existing figures of the same names are replaced): `loss.png` (train loss, and dev loss
/// when the dev lines have a `loss` metric), `lr.png`, and `dev-<metric>.png` for every other
/// dev metric; a figure with no finite value is left out with a note. All are written, or
/// none. Returns the paths written. Skipped lines are counted
/// in a note on standard error.
pub fn curves_from_log(log: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let run = read_log(log)?;
    if run.skipped > 0 {
        eprintln!(
            "note: {}: skipped {} of {} lines that are not train/eval records (first: line {})",
            log.display(),
            run.skipped,
            run.lines,
            run.first_skipped.unwrap_or(0)
        );
    }
    if run.train.is_empty() && run.dev.is_empty() {
        bail!(
            "{}: no train or dev lines to draw ({} lines, {} skipped as invalid)",
            log.display(),
            run.lines,
            run.skipped
        );
    }
    let name = log
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let step_label = "step (optimizer updates)".to_string();
    let mut figures: Vec<(PathBuf, super::Figure)> = Vec::new();
    // A figure whose values are all non-finite (a run that diverged at once) is left out with
    // a note rather than failing the others.
    let drawable = |what: &str, ys: &[&[f64]]| {
        let ok = ys.iter().any(|y| y.iter().any(|v| v.is_finite()));
        if !ok {
            eprintln!(
                "note: {}: no finite {what} value; its figure is not drawn",
                log.display()
            );
        }
        ok
    };

    // Train columns.
    let col = |f: fn(&TrainPoint) -> Option<f64>| -> (Vec<f64>, Vec<f64>) {
        run.train
            .iter()
            .filter_map(|p| f(p).map(|v| (p.step, v)))
            .unzip()
    };
    let (ls, lv) = col(|p| p.loss);
    let (rs, rv) = col(|p| p.lr);
    // Dev metrics in order of first appearance.
    let mut names: Vec<String> = Vec::new();
    for d in &run.dev {
        for (k, _) in &d.metrics {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let dev_col = |name: &str| -> (Vec<f64>, Vec<f64>) {
        run.dev
            .iter()
            .filter_map(|d| {
                d.metrics
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| (d.step, *v))
            })
            .unzip()
    };
    let (dls, dlv) = dev_col("loss");
    if (!lv.is_empty() || !dlv.is_empty()) && drawable("loss", &[&lv, &dlv]) {
        let mut series = Vec::new();
        if !lv.is_empty() {
            series.push(Series::new("train loss", &ls, &lv));
        }
        if !dlv.is_empty() {
            series.push(Series::new("dev loss", &dls, &dlv));
        }
        let fig = Curves {
            title: format!("loss — {name}"),
            x_label: step_label.clone(),
            y_label: "loss".into(),
            log_y: wants_log(&[&lv, &dlv]),
            series,
            ..Default::default()
        };
        figures.push((
            out_dir.join("loss.png"),
            fig.render()
                .with_context(|| format!("{}: the loss figure", log.display()))?,
        ));
    }
    if !rv.is_empty() && drawable("learning-rate", &[&rv]) {
        let fig = Curves {
            title: format!("learning rate — {name}"),
            x_label: step_label.clone(),
            y_label: "learning rate".into(),
            series: vec![Series::new("learning rate", &rs, &rv)],
            ..Default::default()
        };
        figures.push((
            out_dir.join("lr.png"),
            fig.render()
                .with_context(|| format!("{}: the learning-rate figure", log.display()))?,
        ));
    }
    let mut used: Vec<String> = Vec::new();
    for m in names.iter().filter(|m| m.as_str() != "loss") {
        let (s, v) = dev_col(m);
        if !drawable(&format!("dev {m}"), &[&v]) {
            continue;
        }
        let mut file = format!("dev-{}", file_part(m));
        while used.contains(&file) {
            file.push('_');
        }
        used.push(file.clone());
        let fig = Curves {
            title: format!("dev {m} — {name}"),
            x_label: step_label.clone(),
            y_label: m.clone(),
            series: vec![Series::new(m, &s, &v)],
            ..Default::default()
        };
        figures.push((
            out_dir.join(format!("{file}.png")),
            fig.render()
                .with_context(|| format!("{}: the dev {m} figure", log.display()))?,
        ));
    }
    if figures.is_empty() {
        bail!(
            "{}: no finite loss, learning rate or dev metric to draw",
            log.display()
        );
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut staged = Staged::new();
    let mut paths = Vec::new();
    for (p, f) in &figures {
        staged.add(f.png_file(p)?);
        paths.push(p.clone());
    }
    staged.commit()?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_lines_and_counts_bad_ones() {
        let mut log = RunLog::default();
        assert!(parse_line(
            r#"{"kind":"train","step":3,"loss":1.5,"lr":0.001,"extra":[1]}"#,
            &mut log
        ));
        assert!(parse_line(
            r#"{"kind":"train","step":4,"loss":NaN}"#,
            &mut log
        ));
        assert!(parse_line(
            r#"{"kind":"eval","step":4,"split":"dev","metrics":{"acc":0.5,"f1":null}}"#,
            &mut log
        ));
        assert!(parse_line(
            r#"{"kind":"eval","step":4,"split":"test","metrics":{"acc":0.5}}"#,
            &mut log
        ));
        assert!(parse_line(r#"{"kind":"config","lr":1}"#, &mut log));
        assert!(!parse_line(r#"{"kind":"train","loss":1}"#, &mut log));
        assert!(!parse_line("not json", &mut log));
        assert!(!parse_line("[1,2]", &mut log));
        assert_eq!(log.train.len(), 2);
        assert_eq!(log.train[0].lr, Some(0.001));
        assert!(log.train[1].loss.unwrap().is_nan());
        assert_eq!(log.dev.len(), 1);
        assert_eq!(log.dev[0].metrics[0], ("acc".to_string(), 0.5));
        assert_eq!(file_part("f1/macro"), "f1_macro");
        assert_eq!(file_part("..x"), "x");
    }
}
