//! SeisBench's `annotate` for a window model: groups cut into windows, each window normalised
//! and run through the model in batches, the windows' probabilities blinded at their edges and
//! stacked into one probability trace per class and group.
//!
//! Stations stream through an [`Annotator`]: [`Annotator::push`] queues the windows of one
//! group (running the model whenever a batch is full), [`Annotator::end_station`] closes a
//! station, and finished stations come out of [`Annotator::take_finished`] in order, so only
//! the stations with windows still in the batch are held.

use super::stack::{Blinding, Stacker, Stacking};
use super::stream::Group;
use super::window::window_starts;
use crate::data::transforms::zscore_in_place;
use anyhow::{bail, Result};
use std::collections::VecDeque;

/// Classes of the picker's output, in its order.
pub const CLASSES: [&str; 3] = ["P", "S", "N"];

/// A model that turns normalised windows into per-sample class probabilities.
pub trait WindowModel {
    /// `x`: `n` windows `[n, 3, len]`; returns `[n, len, CLASSES.len()]`.
    fn predict(&mut self, x: Vec<f32>, n: usize, len: usize) -> Result<Vec<f32>>;
}

/// What to do with a group shorter than a window.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Short {
    /// Pad it to a whole window with its mean (per component) and keep the probabilities of
    /// its own samples.
    Pad,
    /// Leave it out (SeisBench's way), with a note.
    Skip,
}

/// How windows are cut and combined.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Window length in samples; 0: every group is one window of its own length.
    pub window: usize,
    /// Samples shared by neighbouring windows.
    pub overlap: usize,
    pub blinding: Blinding,
    pub stacking: Stacking,
    pub short: Short,
    /// Windows per model call.
    pub batch: usize,
    /// The shortest input the model takes (groups run whole are padded to it).
    pub min_len: usize,
}

impl Config {
    /// The windows of a group of `n` samples: (start, model length).
    pub fn windows(&self, n: usize) -> Vec<(usize, usize)> {
        if self.window == 0 {
            return match (n >= self.min_len, self.short) {
                (true, _) => vec![(0, n)],
                (false, Short::Pad) => vec![(0, self.min_len)],
                (false, Short::Skip) => vec![],
            };
        }
        if n < self.window {
            return match self.short {
                Short::Pad => vec![(0, self.window)],
                Short::Skip => vec![],
            };
        }
        window_starts(n, self.window, self.overlap)
            .into_iter()
            .map(|s| (s, self.window))
            .collect()
    }

    /// Whether a group of `n` samples is shorter than a window.
    pub fn is_short(&self, n: usize) -> bool {
        n < if self.window == 0 {
            self.min_len
        } else {
            self.window
        }
    }
}

/// The stacked probabilities of one group.
#[derive(Clone, Debug)]
pub struct AnnotatedGroup {
    /// Time of sample 0, seconds since 1970.
    pub start: f64,
    pub rate: f64,
    pub n: usize,
    /// `[CLASSES, n]`, NaN where no window contributed.
    pub probs: Vec<f32>,
}

impl AnnotatedGroup {
    /// The probabilities of class `c` (0 P, 1 S, 2 noise).
    pub fn class(&self, c: usize) -> &[f32] {
        &self.probs[c * self.n..(c + 1) * self.n]
    }
}

/// The annotation of one station.
#[derive(Clone, Debug, Default)]
pub struct Annotation {
    /// `NET.STA.LOC`.
    pub station: String,
    pub groups: Vec<AnnotatedGroup>,
}

struct Open {
    ann: Annotation,
    stackers: Vec<Option<Stacker>>,
    /// Windows queued but not yet through the model.
    pending: usize,
    closed: bool,
}

/// A window in the current batch: (open station index, group, start, label for errors).
struct Slot {
    station: u64,
    group: usize,
    start: usize,
}

/// Streams windows through the model and stacks them (see the module documentation).
pub struct Annotator<'m, M: WindowModel> {
    cfg: Config,
    model: &'m mut M,
    /// Normalised windows of the current batch, all of length `batch_len`.
    x: Vec<f32>,
    slots: Vec<Slot>,
    batch_len: usize,
    /// Stations not yet handed out, oldest first; `first_id` is the id of `open[0]`.
    open: VecDeque<Open>,
    first_id: u64,
    finished: Vec<Annotation>,
    /// Called with the number of windows of every batch run.
    on_batch: Option<Box<dyn FnMut(usize) + 'm>>,
}

impl<'m, M: WindowModel> Annotator<'m, M> {
    pub fn new(cfg: Config, model: &'m mut M) -> Self {
        Annotator {
            cfg,
            model,
            x: Vec::new(),
            slots: Vec::new(),
            batch_len: 0,
            open: VecDeque::new(),
            first_id: 0,
            finished: Vec::new(),
            on_batch: None,
        }
    }

    /// Calls `f` with the window count of every batch that ran (progress).
    pub fn on_batch(&mut self, f: impl FnMut(usize) + 'm) {
        self.on_batch = Some(Box::new(f));
    }

    /// Starts a station; its groups follow through [`push`](Self::push).
    pub fn begin_station(&mut self, station: &str) {
        self.open.push_back(Open {
            ann: Annotation {
                station: station.to_string(),
                groups: Vec::new(),
            },
            stackers: Vec::new(),
            pending: 0,
            closed: false,
        });
    }

    /// Queues the windows of `g`, a group of the station begun last. Returns the number of
    /// windows (0: the group was shorter than a window and `Short::Skip` left it out).
    pub fn push(&mut self, g: &Group) -> Result<usize> {
        let id = (self.first_id + self.open.len() as u64).wrapping_sub(1);
        let Some(cur) = self.open.back_mut() else {
            bail!("Annotator::push before begin_station");
        };
        let gi = cur.ann.groups.len();
        cur.ann.groups.push(AnnotatedGroup {
            start: g.start,
            rate: g.rate,
            n: g.n,
            probs: Vec::new(),
        });
        let windows = self.cfg.windows(g.n);
        cur.stackers.push(if windows.is_empty() {
            None
        } else {
            Some(Stacker::new(g.n, CLASSES.len(), self.cfg.stacking))
        });
        cur.pending += windows.len();
        for &(s, len) in &windows {
            if !self.slots.is_empty()
                && (len != self.batch_len || self.slots.len() >= self.cfg.batch)
            {
                self.run_batch()?;
            }
            self.batch_len = len;
            for c in 0..3 {
                let row = &g.data[c * g.n..(c + 1) * g.n];
                let have = &row[s..(s + len).min(g.n)];
                let mut ch = Vec::with_capacity(len);
                ch.extend_from_slice(have);
                if have.len() < len {
                    let mean =
                        have.iter().map(|v| *v as f64).sum::<f64>() / have.len().max(1) as f64;
                    ch.resize(len, mean as f32);
                }
                zscore_in_place(&mut ch, 1e-6);
                self.x.extend_from_slice(&ch);
            }
            self.slots.push(Slot {
                station: id,
                group: gi,
                start: s,
            });
        }
        if self.slots.len() >= self.cfg.batch {
            self.run_batch()?;
        }
        Ok(windows.len())
    }

    /// Marks the station begun last as complete.
    pub fn end_station(&mut self) {
        if let Some(o) = self.open.back_mut() {
            o.closed = true;
        }
        self.collect();
    }

    /// Runs what is left in the batch.
    pub fn flush(&mut self) -> Result<()> {
        if !self.slots.is_empty() {
            self.run_batch()?;
        }
        Ok(())
    }

    /// Stations whose windows have all been through the model, in the order they were begun.
    pub fn take_finished(&mut self) -> Vec<Annotation> {
        std::mem::take(&mut self.finished)
    }

    fn collect(&mut self) {
        while self
            .open
            .front()
            .is_some_and(|o| o.closed && o.pending == 0)
        {
            let mut o = self.open.pop_front().expect("front");
            self.first_id += 1;
            for (g, s) in o.ann.groups.iter_mut().zip(o.stackers) {
                g.probs = match s {
                    Some(s) => s.finish(),
                    None => vec![f32::NAN; CLASSES.len() * g.n],
                };
            }
            self.finished.push(o.ann);
        }
    }

    fn run_batch(&mut self) -> Result<()> {
        let (n, len) = (self.slots.len(), self.batch_len);
        let x = std::mem::take(&mut self.x);
        let p = self.model.predict(x, n, len)?;
        let k = CLASSES.len();
        if p.len() != n * len * k {
            bail!(
                "the model returned {} values for {n} windows of {len} samples ({} expected)",
                p.len(),
                n * len * k
            );
        }
        if let Some(bad) = p.iter().position(|v| !v.is_finite()) {
            let s = &self.slots[bad / (len * k)];
            let o = &self.open[(s.station - self.first_id) as usize];
            let g = &o.ann.groups[s.group];
            bail!(
                "the model gives {} probabilities for {} in the window from {} ({} samples); \
                 no picks can be made from them",
                p[bad],
                o.ann.station,
                super::time::iso(g.start + s.start as f64 / g.rate),
                len
            );
        }
        let blinding = self.cfg.blinding;
        for (w, s) in self.slots.drain(..).enumerate() {
            let o = &mut self.open[(s.station - self.first_id) as usize];
            if let Some(st) = o.stackers[s.group].as_mut() {
                st.add(s.start, &p[w * len * k..(w + 1) * len * k], len, blinding);
            }
            o.pending -= 1;
        }
        if let Some(f) = self.on_batch.as_mut() {
            f(n);
        }
        self.collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose P probability is the window's normalised Z sample squashed to (0, 1),
    /// S a constant per window length, and noise the rest: enough to check where every
    /// window's values land.
    struct Fake {
        calls: Vec<(usize, usize)>,
    }
    impl WindowModel for Fake {
        fn predict(&mut self, x: Vec<f32>, n: usize, len: usize) -> Result<Vec<f32>> {
            self.calls.push((n, len));
            let mut out = Vec::with_capacity(n * len * 3);
            for w in 0..n {
                for t in 0..len {
                    let z = x[w * 3 * len + t];
                    let p = 0.5 + 0.1 * z.tanh();
                    out.extend([p, 0.1, 0.9 - p]);
                }
            }
            Ok(out)
        }
    }

    fn group(n: usize, start: f64) -> Group {
        let mut data = vec![0f32; 3 * n];
        for i in 0..n {
            data[i] = (i as f32 * 0.37).sin();
            data[n + i] = 1.0;
        }
        Group {
            start,
            rate: 100.0,
            n,
            data,
            zero_filled: 0,
            overlapped: 0,
        }
    }

    fn cfg(window: usize, overlap: usize, batch: usize, short: Short) -> Config {
        Config {
            window,
            overlap,
            blinding: Blinding::default(),
            stacking: Stacking::Avg,
            short,
            batch,
            min_len: 4,
        }
    }

    #[test]
    fn stations_stream_through_batches_in_order() {
        let mut m = Fake { calls: vec![] };
        let mut a = Annotator::new(cfg(10, 5, 3, Short::Pad), &mut m);
        // Station A: 25 samples → windows at 0, 5, 10, 15; station B: one short group (pad)
        // and one of 10 samples.
        a.begin_station("XX.A.");
        assert_eq!(a.push(&group(25, 0.0)).unwrap(), 4);
        a.end_station();
        // 3 windows ran; A still has one pending.
        assert!(a.take_finished().is_empty());
        a.begin_station("XX.B.");
        assert_eq!(a.push(&group(6, 100.0)).unwrap(), 1);
        assert_eq!(a.push(&group(10, 200.0)).unwrap(), 1);
        a.end_station();
        // The second batch (A's last window, both of B's) finished both, in order.
        let done = a.take_finished();
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].station, "XX.A.");
        assert_eq!(done[1].groups.len(), 2);
        assert_eq!(done[1].groups[0].n, 6);
        assert!(done[1].groups[0].probs.iter().all(|v| v.is_finite()));
        a.flush().unwrap();
        assert!(a.take_finished().is_empty());
        drop(a);
        assert_eq!(m.calls, vec![(3, 10), (3, 10)]);
    }

    #[test]
    fn stacked_probabilities_are_the_average_of_the_windows() {
        let mut m = Fake { calls: vec![] };
        let g = group(25, 0.0);
        let c = cfg(10, 5, 8, Short::Pad);
        let mut a = Annotator::new(c, &mut m);
        a.begin_station("XX.A.");
        a.push(&g).unwrap();
        a.end_station();
        a.flush().unwrap();
        let ann = a.take_finished().remove(0);
        // By hand: every window normalised alone, its P values averaged where windows overlap.
        let mut sum = [0f32; 25];
        let mut cnt = [0f32; 25];
        for s in [0, 5, 10, 15] {
            let mut z = g.data[s..s + 10].to_vec();
            zscore_in_place(&mut z, 1e-6);
            for k in 0..10 {
                sum[s + k] += 0.5 + 0.1 * z[k].tanh();
                cnt[s + k] += 1.0;
            }
        }
        for i in 0..25 {
            assert!((ann.groups[0].class(0)[i] - sum[i] / cnt[i]).abs() < 1e-6);
            assert!((ann.groups[0].class(1)[i] - 0.1).abs() < 1e-6);
        }
    }

    #[test]
    fn short_groups_are_padded_or_skipped() {
        let mut m = Fake { calls: vec![] };
        let mut a = Annotator::new(cfg(10, 5, 8, Short::Skip), &mut m);
        a.begin_station("XX.A.");
        assert_eq!(a.push(&group(6, 0.0)).unwrap(), 0);
        a.end_station();
        let ann = a.take_finished().remove(0);
        assert!(ann.groups[0].probs.iter().all(|v| v.is_nan()));
        drop(a);
        // Padded: the window is the group followed by its mean, normalised together.
        let g = group(6, 0.0);
        let mut a = Annotator::new(cfg(10, 5, 8, Short::Pad), &mut m);
        a.begin_station("XX.A.");
        a.push(&g).unwrap();
        a.end_station();
        a.flush().unwrap();
        let ann = a.take_finished().remove(0);
        let mut z = g.data[..6].to_vec();
        let mean = z.iter().map(|v| *v as f64).sum::<f64>() / 6.0;
        z.resize(10, mean as f32);
        zscore_in_place(&mut z, 1e-6);
        for (got, zi) in ann.groups[0].class(0).iter().zip(&z[..6]) {
            assert!((got - (0.5 + 0.1 * zi.tanh())).abs() < 1e-6);
        }
        // Whole groups (window 0): one window each, shorter than the model's minimum padded.
        let c = cfg(0, 0, 8, Short::Pad);
        assert_eq!(c.windows(25), vec![(0, 25)]);
        assert_eq!(c.windows(3), vec![(0, 4)]);
        assert!(cfg(0, 0, 8, Short::Skip).windows(3).is_empty());
    }

    struct Broken;
    impl WindowModel for Broken {
        fn predict(&mut self, _x: Vec<f32>, n: usize, len: usize) -> Result<Vec<f32>> {
            Ok(vec![f32::NAN; n * len * 3])
        }
    }

    #[test]
    fn non_finite_probabilities_name_the_station_and_time() {
        let mut m = Broken;
        let mut a = Annotator::new(cfg(10, 5, 8, Short::Pad), &mut m);
        a.begin_station("XX.BAD.");
        a.push(&group(10, 0.0)).unwrap();
        a.end_station();
        let e = a.flush().unwrap_err().to_string();
        assert!(
            e.contains("XX.BAD.") && e.contains("1970-01-01T00:00:00"),
            "{e}"
        );
    }
}
