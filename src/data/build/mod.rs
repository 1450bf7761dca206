//! `seisfuse dataset build`: labelled windows cut from continuous miniSEED around catalogued
//! P/S picks, plus noise windows away from every pick, written as a SeisBench dataset
//! (`metadata.csv` + `waveforms.hdf5`, the layout `SeisBenchDataset` reads), split into
//! train/dev/test by event.
//!
//! - `catalog`: the pick catalog (CSV).
//! - `streams`: the recordings, by station.
//! - `cut`: one window from a station's recording (resampled when asked).
//! - `split`: events to splits.
//! - this file: the plan (which windows) and the writing.

pub mod catalog;
pub mod cut;
pub mod split;
pub mod streams;

use crate::data::h5::H5Writer;
use crate::data::synth::Rng;
use crate::data::time::format_iso;
use crate::limits;
use anyhow::{bail, Result};
use catalog::{Catalog, StationKey};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use streams::Recordings;

/// Traces per bucket dataset in `waveforms.hdf5`.
pub const BUCKET: usize = 256;

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildConfig {
    /// Window length in seconds.
    pub window_s: f64,
    /// Range of the P pick's offset from the window start, in seconds.
    pub p_offset_s: (f64, f64),
    /// Noise windows per event.
    pub noise_per_event: usize,
    /// No pick of the station within this many seconds of a noise window.
    pub noise_margin_s: f64,
    /// Sampling rate of the dataset; `None`: the data's (which must then agree).
    pub sampling_rate: Option<f64>,
    /// Resample data at other rates instead of refusing them.
    pub resample: bool,
    /// Train, dev, test fractions of the events.
    pub split: [f64; 3],
    pub seed: u64,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            window_s: 30.0,
            p_offset_s: (3.0, 12.0),
            noise_per_event: 1,
            noise_margin_s: 60.0,
            sampling_rate: None,
            resample: false,
            split: [0.7, 0.1, 0.2],
            seed: 0,
        }
    }
}

impl BuildConfig {
    /// Checks the flags among themselves (sizes are checked once the rate is known).
    pub fn check(&self) -> Result<()> {
        let w = self.window_s;
        if !(w.is_finite() && w > 0.0) {
            bail!("--window {w}: give a positive number of seconds");
        }
        let (a, b) = self.p_offset_s;
        if !(a.is_finite() && b.is_finite() && 0.0 <= a && a <= b && b < w) {
            bail!("--p-offset {a}:{b}: give MIN:MAX seconds with 0 ≤ MIN ≤ MAX < --window ({w})");
        }
        if !(self.noise_margin_s.is_finite() && self.noise_margin_s >= 0.0) {
            bail!("--noise-margin {}: give seconds ≥ 0", self.noise_margin_s);
        }
        if let Some(r) = self.sampling_rate {
            if !(r.is_finite() && r > 0.0) {
                bail!("--sampling-rate {r}: give a positive number of Hz");
            }
        }
        split::check_fractions(&self.split)?;
        Ok(())
    }
}

/// What was written and what was skipped, and why.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// (split, category) → windows.
    pub written: BTreeMap<(String, String), usize>,
    /// Reason → windows not written.
    pub skipped: BTreeMap<String, usize>,
    /// Catalog stations without recordings.
    pub unknown_stations: Vec<String>,
    pub sampling_rate: f64,
    pub npts: usize,
}

impl Summary {
    pub fn total(&self) -> usize {
        self.written.values().sum()
    }
    fn skip(&mut self, why: impl Into<String>) {
        *self.skipped.entry(why.into()).or_default() += 1;
    }
}

/// One window to cut.
struct Planned {
    station: StationKey,
    /// Requested start time of the window.
    t0: f64,
    event: String,
    /// P and S times (earthquake windows).
    p: Option<f64>,
    s: Option<f64>,
    noise: bool,
}

/// The rate of the dataset: the flag's, or the data's when every station agrees. A station at
/// another rate is an error naming its file, unless `resample`.
fn dataset_rate(cfg: &BuildConfig, rec: &Recordings, used: &[&StationKey]) -> Result<f64> {
    let mut rates: Vec<(f64, &StationKey)> = used
        .iter()
        .filter_map(|k| rec.stations.get(*k).map(|s| (s.rate, *k)))
        .collect();
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let target = match cfg.sampling_rate {
        Some(r) => r,
        None => match rates.first() {
            Some(&(r, _)) => r,
            None => bail!("no station of the catalog has recordings"),
        },
    };
    if cfg.resample {
        return Ok(target);
    }
    if let Some((r, k)) = rates
        .iter()
        .find(|(r, _)| (r - target).abs() > 1e-9 * target)
    {
        let s = &rec.stations[*k];
        let file = s
            .comps
            .iter()
            .flatten()
            .next()
            .map(|g| rec.files[g.file].display().to_string());
        bail!(
            "{}: station {k} is sampled at {r} Hz but the dataset at {target} Hz{}; \
             pass --resample to resample it, or --sampling-rate to choose the rate",
            file.unwrap_or_default(),
            if cfg.sampling_rate.is_some() {
                " (--sampling-rate)"
            } else {
                " (the rate of the other stations)"
            }
        );
    }
    Ok(target)
}

/// Plans the windows: one per (event, station) with a P pick and recordings, then the noise
/// windows of each event.
fn plan(cfg: &BuildConfig, cat: &Catalog, rec: &Recordings, summary: &mut Summary) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut by_event: BTreeMap<&str, Vec<&StationKey>> = BTreeMap::new();
    for (i, a) in cat.arrivals.iter().enumerate() {
        if !rec.stations.contains_key(&a.station) {
            unknown.push(a.station.to_string());
            summary.skip("station without recordings");
            continue;
        }
        let Some(p) = a.p else {
            summary.skip("no P pick");
            continue;
        };
        by_event.entry(&a.event).or_default().push(&a.station);
        let mut r = Rng::for_sample(cfg.seed, 30, i as u64);
        let offset = r.range(cfg.p_offset_s.0, cfg.p_offset_s.1);
        out.push(Planned {
            station: a.station.clone(),
            t0: p - offset,
            event: a.event.clone(),
            p: Some(p),
            s: a.s,
            noise: false,
        });
    }
    unknown.sort();
    unknown.dedup();
    summary.unknown_stations = unknown;
    // Noise: a random station of the event, a random time of its recording with no pick of
    // that station within the margin.
    let picks = cat.pick_times();
    for (ei, (event, stations)) in by_event.iter().enumerate() {
        let mut r = Rng::for_sample(cfg.seed, 31, ei as u64);
        for _ in 0..cfg.noise_per_event {
            let mut found = None;
            for _try in 0..64 {
                let key = stations[r.below(stations.len())];
                let Some((a, b)) = rec.stations[key].span() else {
                    continue;
                };
                if b - a <= cfg.window_s {
                    continue;
                }
                let t0 = r.range(a, b - cfg.window_s);
                let (lo, hi) = (
                    t0 - cfg.noise_margin_s,
                    t0 + cfg.window_s + cfg.noise_margin_s,
                );
                let times = picks.get(key).map(|v| v.as_slice()).unwrap_or(&[]);
                let i = times.partition_point(|&t| t < lo);
                if times.get(i).is_none_or(|&t| t > hi) {
                    found = Some((key.clone(), t0));
                    break;
                }
            }
            match found {
                Some((station, t0)) => out.push(Planned {
                    station,
                    t0,
                    event: event.to_string(),
                    p: None,
                    s: None,
                    noise: true,
                }),
                None => summary.skip("noise: no pick-free span found"),
            }
        }
    }
    // Station by station, in time: reads stay local.
    out.sort_by(|a, b| a.station.cmp(&b.station).then(a.t0.total_cmp(&b.t0)));
    out
}

/// Shortest decimal form of a sample position (3 decimals at most).
fn sample_pos(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').unwrap_or(s).to_string()
}

/// Builds the dataset into `out` (the two files, not yet committed: the caller renames them
/// into place together). `progress(done, total)` is called as windows are written.
pub fn build(
    cfg: &BuildConfig,
    cat: &Catalog,
    rec: &Recordings,
    out_dir: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<(Vec<crate::atomic::OutputFile>, Summary)> {
    cfg.check()?;
    let mut summary = Summary::default();
    let used: Vec<&StationKey> = {
        let mut v: Vec<&StationKey> = cat
            .arrivals
            .iter()
            .map(|a| &a.station)
            .filter(|k| rec.stations.contains_key(*k))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    if used.is_empty() {
        let mut cat_st: Vec<String> = cat.arrivals.iter().map(|a| a.station.to_string()).collect();
        cat_st.sort();
        cat_st.dedup();
        let data_st: Vec<String> = rec.stations.keys().map(|k| k.to_string()).collect();
        bail!(
            "no station of the catalog has recordings: the catalog has {} (e.g. {}), the \
             waveforms {} ({}); network, station and location codes must match",
            cat_st.len(),
            cat_st
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            data_st.len(),
            data_st
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let rate = dataset_rate(cfg, rec, &used)?;
    let npts_f = (cfg.window_s * rate).round();
    if npts_f < 1.0 {
        bail!("--window {} s at {rate} Hz holds no sample", cfg.window_s);
    }
    // A bucket of windows is held before it is written (plus the resampler's copy).
    limits::check(
        format_args!("--window {} s at {rate} Hz ({npts_f} samples per component, {BUCKET} windows per bucket)", cfg.window_s),
        (npts_f * 3.0 * 4.0 * (BUCKET as f64 + 2.0)).min(u128::MAX as f64) as u128,
    )?;
    let npts = npts_f as usize;
    summary.sampling_rate = rate;
    summary.npts = npts;
    let splits = split::assign(&cat.events(), cfg.split, cfg.seed);
    let planned = plan(cfg, cat, rec, &mut summary);

    let mut h5 = H5Writer::create(&out_dir.join("waveforms.hdf5"))?;
    h5.string("data_format/component_order", "ZNE")?;
    h5.string("data_format/dimension_order", "CW")?;
    h5.scalar_f64("data_format/sampling_rate", rate)?;
    let mut csv = String::from(
        "trace_name,split,trace_category,source_id,station_network_code,station_code,\
         station_location_code,trace_channel,trace_start_time,trace_sampling_rate_hz,trace_npts,\
         trace_P_arrival_sample,trace_S_arrival_sample,trace_component_order\n",
    );
    let mut bucket: Vec<f32> = Vec::with_capacity(BUCKET * 3 * npts);
    let mut in_bucket = 0;
    let mut n_bucket = 0;
    let total = planned.len();
    for (done, w) in planned.iter().enumerate() {
        progress(done, total);
        let stream = &rec.stations[&w.station];
        let cut = if (stream.rate - rate).abs() > 1e-9 * rate {
            cut::cut_resampled(stream, w.t0, npts, rate)
        } else {
            cut::cut(stream, w.t0, npts)
        };
        let win = match cut {
            Ok(win) => win,
            Err(why) => {
                let kind = if w.noise { "noise: " } else { "" };
                summary.skip(format!("{kind}{}", why.describe()));
                continue;
            }
        };
        if let Some(i) = win.data.iter().position(|v| !v.is_finite()) {
            bail!(
                "station {}: sample {i} of the window at {} is not finite",
                w.station,
                format_iso(w.t0)
            );
        }
        let pos = |t: Option<f64>| {
            t.map(|t| (t - win.start) * rate)
                .filter(|&v| v >= 0.0 && v < npts as f64)
        };
        let (p, s) = (pos(w.p), pos(w.s));
        if !w.noise && p.is_none() {
            summary.skip("P pick outside its window");
            continue;
        }
        bucket.extend_from_slice(&win.data);
        let split = splits.get(&w.event).copied().unwrap_or("train");
        let category = if w.noise { "noise" } else { "earthquake" };
        writeln!(
            csv,
            "\"bucket{n_bucket}${in_bucket},:3,:{npts}\",{split},{category},{},{},{},{},{},{},{},{npts},{},{},ZNE",
            if w.noise { "" } else { w.event.as_str() },
            w.station.network,
            w.station.station,
            w.station.location,
            stream.instrument,
            format_iso(win.start),
            rate,
            p.map(sample_pos).unwrap_or_default(),
            s.map(sample_pos).unwrap_or_default(),
        )?;
        *summary
            .written
            .entry((split.to_string(), category.to_string()))
            .or_default() += 1;
        in_bucket += 1;
        if in_bucket == BUCKET {
            h5.dataset(
                &format!("data/bucket{n_bucket}"),
                &[in_bucket, 3, npts],
                &bucket,
            )?;
            bucket.clear();
            in_bucket = 0;
            n_bucket += 1;
        }
    }
    if in_bucket > 0 {
        h5.dataset(
            &format!("data/bucket{n_bucket}"),
            &[in_bucket, 3, npts],
            &bucket,
        )?;
    }
    progress(total, total);
    let quakes: usize = summary
        .written
        .iter()
        .filter(|((_, c), _)| c == "earthquake")
        .map(|(_, n)| n)
        .sum();
    if quakes == 0 {
        bail!(
            "no earthquake window could be cut ({}); check the catalog's times against the recordings",
            skipped_text(&summary)
        );
    }
    let mut meta = crate::atomic::OutputFile::create(&out_dir.join("metadata.csv"))?;
    std::io::Write::write_all(&mut meta, csv.as_bytes())?;
    Ok((vec![h5.finish()?, meta], summary))
}

/// "3 gap in the data, 1 window outside the recorded time", or "none".
pub fn skipped_text(s: &Summary) -> String {
    if s.skipped.is_empty() {
        return "none".into();
    }
    s.skipped
        .iter()
        .map(|(why, n)| format!("{n} {why}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inputs given on the command line, expanded.
pub fn inputs(waveforms: &[PathBuf]) -> Result<Vec<PathBuf>> {
    streams::expand_inputs(waveforms)
}
