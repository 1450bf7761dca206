//! The embedded font: DejaVu Sans (Bitstream Vera license, `assets/fonts/LICENSE-DejaVu.txt`),
//! registered with plotters' ab_glyph font table under the family name the figures use, and
//! parsed for [`super::text`], which lays out and draws the figures' text.

use anyhow::{bail, Result};
use plotters::style::FontStyle;
use std::sync::OnceLock;

pub static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family every figure's text is drawn in.
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded font (once per process).
pub fn ensure() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
            && super::text::face().is_some()
    });
    if !ok {
        bail!("the embedded figure font (DejaVu Sans) could not be parsed");
    }
    Ok(())
}
