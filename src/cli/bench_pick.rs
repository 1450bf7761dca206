//! `seisfuse bench pick`: throughput of `seisfuse pick` on continuous data, in hours of
//! 3-component data per second: synthetic traces at `--input-rate` resampled to 100 Hz,
//! windowed, run through a randomly initialised SeisLM picker in batches, stacked and
//! triggered — everything `pick` does between reading the input and writing the outputs.

use super::pick::{min_samples, window_config, SeislmWindows, WindowFlags};
use crate::backend::Device;
use crate::limits;
use crate::models::seislm::SeislmConfig;
use crate::models::seislm_heads::SeislmPicker;
use crate::outln;
use crate::pick::annotate::{Short, WindowModel};
use crate::pick::picks::{picks_of, Thresholds};
use crate::pick::stack::Stacking;
use crate::pick::stream::{layout, GapMode, Piece, Resamplers, StationData};
use crate::pick::{pipeline, MODEL_RATE};
use crate::tensor::DType;
use anyhow::{bail, Result};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct PickArgs {
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// seislm-tiny, seislm-base or seislm-large.
    #[arg(long, default_value = "seislm-base")]
    pub preset: String,
    /// Windows per forward pass (default 64 on a GPU, 8 on the CPU).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Hours of data per station (default 1 on a GPU, 0.05 on the CPU).
    #[arg(long)]
    pub hours: Option<f64>,
    /// Stations.
    #[arg(long, default_value_t = 1)]
    pub stations: usize,
    /// Sampling rate of the synthetic data in Hz (resampled to 100 Hz; 100 skips resampling).
    #[arg(long, default_value_t = 200.0)]
    pub input_rate: f64,
    /// Window length in samples.
    #[arg(long, default_value_t = 3001)]
    pub window: usize,
    /// Overlap of neighbouring windows: a fraction below 1, else samples.
    #[arg(long, default_value_t = 0.5)]
    pub overlap: f64,
    /// avg or max.
    #[arg(long, value_enum, default_value = "avg")]
    pub stacking: Stacking,
    /// fp32 or bf16.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: super::embed::Precision,
}

fn hours(a: &PickArgs, cuda: bool) -> f64 {
    a.hours.unwrap_or(if cuda { 1.0 } else { 0.05 })
}

/// Input samples per station and component.
fn samples(a: &PickArgs, h: f64) -> f64 {
    h * 3600.0 * a.input_rate
}

/// Checks the flags and the memory they ask for, before the device starts.
pub fn check(a: &PickArgs) -> Result<()> {
    if a.batch == Some(0) {
        bail!("--batch must be at least 1");
    }
    if a.stations == 0 {
        bail!("--stations must be at least 1");
    }
    if let Some(h) = a.hours {
        if !(h > 0.0 && h.is_finite()) {
            bail!("--hours must be positive, found {h}");
        }
    }
    if !(a.input_rate > 0.0 && a.input_rate.is_finite()) {
        bail!("--input-rate must be positive, found {}", a.input_rate);
    }
    crate::pick::resample::Resampler::new(a.input_rate, MODEL_RATE)
        .map_err(|e| anyhow::anyhow!("--input-rate: {e}"))?;
    let cfg = SeislmConfig::preset(&a.preset)?;
    let (h, b) = (hours(a, true).max(hours(a, false)), a.batch.unwrap_or(64));
    let per_station = samples(a, h) * 3.0 * 4.0 + h * 3600.0 * MODEL_RATE * 3.0 * (4.0 + 16.0);
    limits::check(
        format_args!(
            "bench pick --stations {} --hours {h} --input-rate {} --batch {b}",
            a.stations, a.input_rate
        ),
        (per_station * a.stations as f64).min(u128::MAX as f64) as u128
            + super::estimate::seislm_bytes(&cfg, b, a.window.max(1), cfg.hidden + 3),
    )
}

/// Synthetic stations: noise with a few impulsive arrivals, at `rate`.
fn synthetic(stations: usize, n: usize, rate: f64) -> Vec<StationData> {
    (0..stations)
        .map(|s| {
            let mut rng = crate::backend::cpu::philox::PhiloxStream::new(7, s as u32, 0);
            let mut st = StationData {
                id: format!("XX.B{s}."),
                instrument: "HH".into(),
                channel_codes: ["HHZ".into(), "HHN".into(), "HHE".into()],
                ..Default::default()
            };
            for c in 0..3 {
                let mut data: Vec<f32> = (0..n).map(|_| rng.next_f32() - 0.5).collect();
                // An arrival every 5 minutes: a decaying 5 Hz burst.
                let every = (300.0 * rate) as usize;
                for e in (every / 2..n).step_by(every.max(1)) {
                    for k in 0..((10.0 * rate) as usize).min(n - e) {
                        let t = k as f32 / rate as f32;
                        data[e + k] +=
                            20.0 * (-t).exp() * (2.0 * std::f32::consts::PI * 5.0 * t).sin();
                    }
                }
                st.channels[c] = vec![Piece {
                    start: 1.7e9,
                    rate,
                    data,
                }];
            }
            st
        })
        .collect()
}

/// Times the model's calls.
struct Timed<'a, M: WindowModel> {
    inner: &'a mut M,
    secs: f64,
}

impl<M: WindowModel> WindowModel for Timed<'_, M> {
    fn predict(&mut self, x: Vec<f32>, n: usize, len: usize) -> Result<Vec<f32>> {
        let t = Instant::now();
        let out = self.inner.predict(x, n, len);
        self.secs += t.elapsed().as_secs_f64();
        out
    }
}

pub fn run(d: &Device, a: PickArgs) -> Result<()> {
    let cuda = d.is_cuda();
    let h = hours(&a, cuda);
    let batch = a.batch.unwrap_or(if cuda { 64 } else { 8 });
    let cfg = SeislmConfig::preset(&a.preset)?;
    let wcfg = window_config(
        &WindowFlags {
            window: a.window,
            overlap: a.overlap,
            blinding: None,
            stacking: a.stacking,
            short: Short::Pad,
            batch,
        },
        min_samples(&cfg),
        &a.preset,
    )?;
    let n = samples(&a, h).round() as usize;
    if n == 0 {
        bail!("--hours {h}: no samples at {} Hz", a.input_rate);
    }
    let stations = synthetic(a.stations, n, a.input_rate);
    let mut model = SeislmPicker::new(&a.preset, cfg.hidden + 3, 0)?;
    let _store = a.precision.pack(&mut model, d)?;
    let dtype = a.precision.dtype();
    let mut runner = SeislmWindows {
        model: &mut model,
        device: d.clone(),
        dtype,
    };
    // Warm-up (kernels compiled, buffers allocated): one batch.
    let len = if a.window == 0 { 3001 } else { a.window };
    runner.predict(vec![0.1; batch * 3 * len], batch, len)?;
    let mut timed = Timed {
        inner: &mut runner,
        secs: 0.0,
    };

    let t = Instant::now();
    let mut rs = Resamplers::default();
    let layouts = stations
        .iter()
        .map(|s| layout(s, MODEL_RATE, GapMode::Split, &mut rs))
        .collect::<Result<Vec<_>>>()?;
    let th = Thresholds { on: 0.3, off: 0.15 };
    let mut picks = 0;
    let mut trigger_secs = 0.0;
    let report = pipeline::run(
        stations,
        &layouts,
        wcfg,
        &mut timed,
        |_| {},
        |ann, _| {
            let t = Instant::now();
            picks += picks_of(&ann, th, th, 0.0).len();
            trigger_secs += t.elapsed().as_secs_f64();
            Ok(())
        },
    )?;
    let total = t.elapsed().as_secs_f64();
    let model_secs = timed.secs;
    let data_hours = h * a.stations as f64;
    let where_ = match d {
        Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
        Device::Cuda(b) => b.name.clone(),
    };
    outln!(
        "bench pick: {} batch {batch} {} on {where_}: {} station{} × {h} h of 3-component data at {} Hz → {MODEL_RATE} Hz, {} windows of {} ({} stacking, {picks} picks of random weights)",
        a.preset,
        match dtype {
            DType::BF16 => "bf16",
            _ => "fp32",
        },
        a.stations,
        if a.stations == 1 { "" } else { "s" },
        a.input_rate,
        report.windows,
        a.window,
        match a.stacking {
            Stacking::Avg => "avg",
            Stacking::Max => "max",
        }
    )?;
    outln!(
        "  {total:.2} s: {:.4} h of data per second ({:.0} s of data per second); resampling {:.3} s, model {:.2} s, triggers {:.3} s, windows and stacking {:.3} s",
        data_hours / total,
        data_hours * 3600.0 / total,
        report.assemble_secs,
        model_secs,
        trigger_secs,
        (total - report.assemble_secs - model_secs - trigger_secs).max(0.0)
    )?;
    Ok(())
}
