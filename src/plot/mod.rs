//! Figures with axes, tick labels, units, legends and colour bars, drawn with `plotters` into
//! an RGB buffer and written as PNG through [`crate::atomic::OutputFile`] (a reader never sees
//! half a figure). Text uses DejaVu Sans embedded in the binary (`assets/fonts`), so figures
//! look the same on every machine and no system font is looked up.
//!
//! Every figure kind is a plain struct of slices and strings (no plotters types) with
//! `render() -> Result<Figure>` and `write(path) -> Result<()>`:
//!
//! | kind | struct | shows |
//! | --- | --- | --- |
//! | line chart | [`Curves`] | named series (loss, metric, learning rate) against step |
//! | training log | [`curves_from_log`] | `loss.png`, `lr.png`, `dev-<metric>.png` of a JSONL log |
//! | section panels | [`Sections`] | amplitude / class map / mask panels side by side |
//! | waveforms | [`Waveforms`] | Z, N, E traces with true and predicted picks, probabilities |
//! | confusion matrix | [`Confusion`] | counts and row percentages, true × predicted |
//! | scatter | [`Scatter`] | 2-D points by class ([`pca_2d`] projects embeddings) |
//! | bars | [`Bars`] | grouped bars with mean ± std error bars |
//!
//! Inputs are validated: mismatched lengths, empty series and data with nothing finite to draw
//! are errors; non-finite values among finite ones are left out and counted in the figure's
//! title. Nothing panics on user data.

mod bars;
mod canvas;
mod confusion;
mod curves;
mod font;
mod log;
mod pca;
mod scatter;
mod sections;
mod style;
mod text;
mod waveforms;

pub use bars::{BarSeries, Bars};
pub use canvas::Figure;
pub use confusion::Confusion;
pub use curves::{Curves, Series};
pub use log::{curves_from_log, read_log, DevPoint, RunLog, TrainPoint};
pub use pca::{pca_2d, Pca2};
pub use scatter::Scatter;
pub use sections::{Panel, Sections};
pub use waveforms::{Pick, Probability, Waveforms};
