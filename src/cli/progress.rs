//! Progress of long-running commands: a bar on a terminal, plain periodic lines on standard
//! error otherwise (a log file, CI), so a job that runs for hours says where it is.
//!
//! ```no_run
//! # use seisfuse::cli::progress::Progress;
//! let p = Progress::new("embed", 1000, "images");
//! for _ in 0..10 {
//!     // ... work on 100 images ...
//!     p.inc(100);
//! }
//! p.finish();
//! ```
//!
//! Lines (not on a terminal) are written at most every [`Progress::interval`] (default 10 s,
//! `SEISFUSE_PROGRESS_SECS` to change it, 0 for every update), and once at the end:
//! `embed: 300/1000 images (30%), 12.1 s, eta 28.2 s`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

enum Mode {
    Bar(indicatif::ProgressBar),
    Lines {
        last: Mutex<Option<Instant>>,
        interval: Duration,
    },
    Hidden,
}

/// A counter of units of work done out of `total`.
pub struct Progress {
    label: String,
    unit: String,
    total: u64,
    done: std::sync::atomic::AtomicU64,
    start: Instant,
    mode: Mode,
    /// Shown after the counts (e.g. the loss and throughput of a training run).
    message: Mutex<String>,
}

impl Progress {
    /// A bar when standard error is a terminal, else periodic lines.
    pub fn new(label: &str, total: u64, unit: &str) -> Self {
        let mode = if std::io::stderr().is_terminal() {
            let b = indicatif::ProgressBar::new(total);
            let tpl = format!(
                "{label} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{elapsed}}, eta {{eta}}) {{msg}}"
            );
            if let Ok(s) = indicatif::ProgressStyle::with_template(&tpl) {
                b.set_style(s.progress_chars("=> "));
            }
            Mode::Bar(b)
        } else {
            Mode::Lines {
                last: Mutex::new(None),
                interval: Self::interval(),
            }
        };
        Self::with_mode(label, total, unit, mode)
    }

    /// No output at all (small jobs, tests).
    pub fn hidden(label: &str, total: u64, unit: &str) -> Self {
        Self::with_mode(label, total, unit, Mode::Hidden)
    }

    fn with_mode(label: &str, total: u64, unit: &str, mode: Mode) -> Self {
        Progress {
            label: label.to_string(),
            unit: unit.to_string(),
            total,
            done: Default::default(),
            start: Instant::now(),
            mode,
            message: Mutex::new(String::new()),
        }
    }

    /// Seconds between lines when not on a terminal: `SEISFUSE_PROGRESS_SECS` or 10.
    pub fn interval() -> Duration {
        let secs = std::env::var("SEISFUSE_PROGRESS_SECS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(10.0);
        Duration::from_secs_f64(secs)
    }

    /// Text shown after the counts from now on.
    pub fn set_message(&self, msg: String) {
        if let Mode::Bar(b) = &self.mode {
            b.set_message(msg.clone());
        }
        *self.message.lock().unwrap_or_else(|e| e.into_inner()) = msg;
    }

    /// `n` more units done.
    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        self.set(done);
    }

    /// `done` units done in all.
    pub fn set(&self, done: u64) {
        self.done.store(done, std::sync::atomic::Ordering::Relaxed);
        match &self.mode {
            Mode::Bar(b) => b.set_position(done),
            Mode::Lines { last, interval } => {
                let now = Instant::now();
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                let due = match *last {
                    None => now.duration_since(self.start) >= *interval,
                    Some(t) => now.duration_since(t) >= *interval,
                };
                if due && done < self.total {
                    *last = Some(now);
                    self.line(done);
                }
            }
            Mode::Hidden => {}
        }
    }

    fn line(&self, done: u64) {
        let el = self.start.elapsed().as_secs_f64();
        let pct = if self.total > 0 {
            100.0 * done as f64 / self.total as f64
        } else {
            100.0
        };
        let eta = if done > 0 && done < self.total {
            format!(
                ", eta {:.1} s",
                el * (self.total - done) as f64 / done as f64
            )
        } else {
            String::new()
        };
        // A closed standard error must not end the work: ignore write errors.
        use std::io::Write;
        let msg = self.message.lock().map(|m| m.clone()).unwrap_or_default();
        let msg = if msg.is_empty() {
            msg
        } else {
            format!(", {msg}")
        };
        let _ = writeln!(
            std::io::stderr(),
            "{}: {done}/{} {} ({pct:.0}%), {el:.1} s{eta}{msg}",
            self.label,
            self.total,
            self.unit
        );
    }

    /// Clears the bar, or writes the final line.
    pub fn finish(&self) {
        match &self.mode {
            Mode::Bar(b) => b.finish_and_clear(),
            Mode::Lines { .. } => self.line(self.done.load(std::sync::atomic::Ordering::Relaxed)),
            Mode::Hidden => {}
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Mode::Bar(b) = &self.mode {
            if !b.is_finished() {
                b.finish_and_clear();
            }
        }
    }
}
