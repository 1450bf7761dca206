//! Phase picking on continuous data, as SeisBench's `annotate` and `classify` do it for a
//! window model (PhaseNet-like: 3 components in, P/S/noise probabilities per sample out):
//!
//! - [`input`]: miniSEED files and folders (stations, components Z/N/E or Z/1/2 in either
//!   case) or a `.npy` of traces, into [`stream::StationData`];
//! - [`stream`]: the channels of a station merged (overlaps), resampled ([`resample`]) to the
//!   model's rate, put on its sample grid and cut into continuous groups at gaps (or with the
//!   gaps filled with zeros);
//! - [`window`]: windows over a group with an overlap, the last one aligned to its end;
//! - [`annotate`]: windows normalised and run through a [`annotate::WindowModel`] in batches,
//!   their predictions blinded at the window edges and stacked ([`stack`]: avg or max);
//! - [`trigger`] and [`picks`]: on/off triggers per phase on the stacked probabilities, a pick
//!   at each interval's peak, and the CSV with SeisBench's columns;
//! - [`mseed_write`]: the probability traces as miniSEED;
//! - [`time`]: ISO 8601 UTC times.
//!
//! `seisfuse pick` (src/cli/pick.rs) puts these together with the SeisLM picker; docs/pick.md
//! describes the command.

pub mod annotate;
pub mod input;
pub mod mseed_write;
pub mod picks;
pub mod pipeline;
pub mod resample;
pub mod stack;
pub mod stream;
pub mod time;
pub mod trigger;
pub mod window;

/// The model's sampling rate (SeisLM and PhaseNet: 100 Hz).
pub const MODEL_RATE: f64 = 100.0;

/// The default window (SeisLM's 30 s at 100 Hz, as PhaseNet's).
pub const DEFAULT_WINDOW: usize = 3001;

/// The default blinding for a window of `window` samples: SeisBench's default for
/// EQTransformer (500 samples at each end of its 6000-sample window, 1/12) scaled to the
/// window: 250 at each end of 3001; none for whole groups (`window` 0).
pub fn default_blinding(window: usize) -> stack::Blinding {
    let b = (window as f64 / 12.0).round() as usize;
    stack::Blinding { start: b, end: b }
}
