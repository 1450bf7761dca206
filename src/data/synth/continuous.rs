//! Synthetic continuous recordings: a few 3-component stations recording background noise for
//! a span of time, with earthquakes at random places and times arriving at every station
//! (P at distance / 6 km/s, S at distance / 3.5 km/s, the same P/S/coda model as
//! `waveforms`), and the catalog of their picks. The onsets are exact: before the catalogued
//! P time a station records noise only.
//!
//! Station s, event e and every trace are drawn from `Rng::for_sample(seed, kind, index)`, so
//! the output depends only on the config and the seed.

use super::waveforms::{background, envelope, Band, VP_KM_S, VS_KM_S};
use super::Rng;

#[derive(Clone, Debug)]
pub struct ContinuousConfig {
    pub stations: usize,
    /// Length of the recording in seconds.
    pub seconds: f64,
    pub events: usize,
    pub sampling_rate: f64,
    /// Time of the first sample (seconds since 1970).
    pub start: f64,
    pub network: String,
    /// Signal-to-noise ratio range in dB (peak signal over noise standard deviation).
    pub snr_db: (f64, f64),
    /// Side of the square the stations and epicentres lie in (km).
    pub region_km: f64,
}

impl ContinuousConfig {
    pub fn new(stations: usize, seconds: f64, events: usize) -> Self {
        ContinuousConfig {
            stations,
            seconds,
            events,
            sampling_rate: 100.0,
            // 2024-01-01T00:00:00Z
            start: 1_704_067_200.0,
            network: "XS".into(),
            snr_db: (15.0, 35.0),
            region_km: 80.0,
        }
    }

    pub fn samples(&self) -> usize {
        (self.seconds * self.sampling_rate).round() as usize
    }
}

#[derive(Clone, Debug)]
pub struct Station {
    /// Station code, `S0001`, …
    pub code: String,
    pub x_km: f64,
    pub y_km: f64,
}

#[derive(Clone, Debug)]
pub struct Event {
    /// `ev0001`, …
    pub id: String,
    /// Origin time (seconds since 1970).
    pub origin: f64,
    pub x_km: f64,
    pub y_km: f64,
    pub depth_km: f64,
}

/// A catalogued arrival.
#[derive(Clone, Debug, PartialEq)]
pub struct Pick {
    pub event: String,
    pub station: String,
    /// 'P' or 'S'.
    pub phase: char,
    pub time: f64,
}

pub fn stations(cfg: &ContinuousConfig, seed: u64) -> Vec<Station> {
    (0..cfg.stations)
        .map(|s| {
            let mut r = Rng::for_sample(seed, 10, s as u64);
            Station {
                code: format!("S{:04}", s + 1),
                x_km: r.range(0.0, cfg.region_km),
                y_km: r.range(0.0, cfg.region_km),
            }
        })
        .collect()
}

pub fn events(cfg: &ContinuousConfig, seed: u64) -> Vec<Event> {
    // Origins leave room for the arrivals before the end.
    let last = (cfg.seconds - 80.0).max(1.0);
    let mut ev: Vec<Event> = (0..cfg.events)
        .map(|e| {
            let mut r = Rng::for_sample(seed, 11, e as u64);
            Event {
                id: String::new(),
                origin: cfg.start + r.range(5.0, last),
                x_km: r.range(-0.25, 1.25) * cfg.region_km,
                y_km: r.range(-0.25, 1.25) * cfg.region_km,
                depth_km: r.range(3.0, 15.0),
            }
        })
        .collect();
    ev.sort_by(|a, b| a.origin.total_cmp(&b.origin));
    for (i, e) in ev.iter_mut().enumerate() {
        e.id = format!("ev{:04}", i + 1);
    }
    ev
}

/// P and S arrival times of `e` at `s`.
pub fn arrivals(e: &Event, s: &Station) -> (f64, f64) {
    let d = ((e.x_km - s.x_km).powi(2) + (e.y_km - s.y_km).powi(2) + e.depth_km.powi(2)).sqrt();
    (e.origin + d / VP_KM_S, e.origin + d / VS_KM_S)
}

/// The picks of every event at every station whose arrivals fall inside the recording,
/// ordered by event then station then phase.
pub fn picks(cfg: &ContinuousConfig, seed: u64) -> Vec<Pick> {
    let st = stations(cfg, seed);
    let end = cfg.start + cfg.samples() as f64 / cfg.sampling_rate;
    let mut out = Vec::new();
    for e in events(cfg, seed) {
        for s in &st {
            let (tp, ts) = arrivals(&e, s);
            for (phase, t) in [('P', tp), ('S', ts)] {
                if t < end {
                    out.push(Pick {
                        event: e.id.clone(),
                        station: s.code.clone(),
                        phase,
                        time: t,
                    });
                }
            }
        }
    }
    out
}

/// The `[3, samples]` recording (Z, N, E) of station `index`.
pub fn recording(cfg: &ContinuousConfig, seed: u64, index: usize) -> Vec<f32> {
    let st = &stations(cfg, seed)[index];
    let n = cfg.samples();
    let fs = cfg.sampling_rate;
    let mut rng = Rng::for_sample(seed, 12, index as u64);
    let mut data = vec![0f32; 3 * n];
    for c in 0..3 {
        let noise = background(&mut rng, n, fs);
        for (d, v) in data[c * n..(c + 1) * n].iter_mut().zip(noise) {
            *d = v as f32;
        }
    }
    for (ei, e) in events(cfg, seed).iter().enumerate() {
        let mut r = Rng::for_sample(seed, 13, (ei * cfg.stations.max(1) + index) as u64);
        let (tp, ts) = arrivals(e, st);
        // Relative times in the recording.
        let (tp, ts) = (tp - cfg.start, ts - cfg.start);
        let first = (tp * fs).ceil().max(0.0) as usize;
        let last = (((ts + 60.0) * fs).ceil() as usize).min(n);
        if first >= last {
            continue;
        }
        let b = (st.y_km - e.y_km).atan2(st.x_km - e.x_km);
        let fp = r.range(4.0, 12.0);
        let fsw = r.range(1.0, 4.0);
        let s_ratio = r.range(1.5, 3.0);
        let p_amp = [1.0, 0.35 * b.cos(), 0.35 * b.sin()];
        let s_amp = [0.3, s_ratio * (-b.sin()), s_ratio * b.cos()];
        let (tau_p, tau_s, tau_coda) = (r.range(0.3, 1.5), r.range(1.0, 4.0), r.range(3.0, 10.0));
        let bands: Vec<(Band, Band, Band)> = (0..3)
            .map(|_| {
                (
                    Band::new(&mut r, fp),
                    Band::new(&mut r, fsw),
                    Band::new(&mut r, 0.5 * (fp + fsw)),
                )
            })
            .collect();
        let mut sig = vec![[0f64; 3]; last - first];
        let mut peak = 0f64;
        for (k, s) in sig.iter_mut().enumerate() {
            let t = (first + k) as f64 / fs;
            let ep = envelope(t, tp, 0.05, tau_p);
            let es = envelope(t, ts, 0.1, tau_s);
            let ec = 0.3 * envelope(t, ts, 0.5, tau_coda);
            for c in 0..3 {
                let (bp, bs, bc) = &bands[c];
                s[c] = p_amp[c] * ep * bp.at(t)
                    + s_amp[c] * es * bs.at(t)
                    + s_amp[c].abs().max(0.5) * ec * bc.at(t);
                peak = peak.max(s[c].abs());
            }
        }
        let snr = r.range(cfg.snr_db.0, cfg.snr_db.1);
        let gain = if peak > 0.0 {
            10f64.powf(snr / 20.0) / peak
        } else {
            0.0
        };
        for (k, s) in sig.iter().enumerate() {
            for c in 0..3 {
                data[c * n + first + k] += (s[c] * gain) as f32;
            }
        }
    }
    data
}

/// Writes the recordings into `dir` (one miniSEED file per station, `NET.STA.mseed`, channels
/// `HHZ`, `HHN`, `HHE`, location `00`) and `catalog.csv` (event_id, network, station,
/// location, phase, time). `gaps` spans of 5–20 s are left out of random stations (all three
/// components). Written into a staging folder and moved into place at the end.
pub fn write(
    dir: &std::path::Path,
    cfg: &ContinuousConfig,
    seed: u64,
    gaps: usize,
    force: bool,
    progress: &dyn Fn(usize),
) -> anyhow::Result<()> {
    use crate::data::mseed_write::write_channel;
    use anyhow::bail;
    if cfg.stations == 0 || cfg.stations > 9999 {
        bail!("--stations {}: give 1 to 9999", cfg.stations);
    }
    let n = cfg.samples();
    if n < 100 {
        bail!(
            "--seconds {} at {} Hz: at least 100 samples",
            cfg.seconds,
            cfg.sampling_rate
        );
    }
    let stage = super::export::Stage::begin(dir, force)?;
    let fs = cfg.sampling_rate;
    // Gaps: (station, first sample, end sample).
    let mut g: Vec<(usize, usize, usize)> = (0..gaps)
        .map(|k| {
            let mut r = Rng::for_sample(seed, 14, k as u64);
            let st = r.below(cfg.stations);
            let len = (r.range(5.0, 20.0) * fs) as usize;
            let a = r.below(n.saturating_sub(len).max(1));
            (st, a, (a + len).min(n))
        })
        .collect();
    g.sort();
    for (i, st) in stations(cfg, seed).iter().enumerate() {
        let data = recording(cfg, seed, i);
        let mut bytes = Vec::new();
        let mut seq = 1;
        // Pieces of the recording between this station's gaps.
        let mut pieces = Vec::new();
        let mut from = 0;
        for &(_, a, b) in g.iter().filter(|x| x.0 == i) {
            if a > from {
                pieces.push((from, a));
            }
            from = from.max(b);
        }
        if from < n {
            pieces.push((from, n));
        }
        for (c, cha) in ["HHZ", "HHN", "HHE"].into_iter().enumerate() {
            let id = format!("{}.{}.00.{cha}", cfg.network, st.code);
            for &(a, b) in &pieces {
                let t = cfg.start + a as f64 / fs;
                write_channel(
                    &mut bytes,
                    &id,
                    t,
                    fs,
                    &data[c * n + a..c * n + b],
                    &mut seq,
                )?;
            }
        }
        let name = format!("{}.{}.mseed", cfg.network, st.code);
        crate::atomic::write_atomic(&stage.path().join(name), &bytes)?;
        progress(i + 1);
    }
    let mut csv = String::from("event_id,network,station,location,phase,time\n");
    for p in picks(cfg, seed) {
        csv.push_str(&format!(
            "{},{},{},00,{},{}\n",
            p.event,
            cfg.network,
            p.station,
            p.phase,
            crate::data::time::format_iso(p.time)
        ));
    }
    crate::atomic::write_atomic(&stage.path().join("catalog.csv"), csv.as_bytes())?;
    stage.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onsets_are_where_the_catalog_says() {
        let mut cfg = ContinuousConfig::new(2, 400.0, 3);
        cfg.snr_db = (30.0, 31.0);
        let p = picks(&cfg, 4);
        assert!(p.len() >= 8, "{p:?}");
        let rec = recording(&cfg, 4, 0);
        let n = cfg.samples();
        for pk in p.iter().filter(|k| k.station == "S0001" && k.phase == 'P') {
            let i = ((pk.time - cfg.start) * 100.0).ceil() as usize;
            if i < 300 || i + 50 > n {
                continue;
            }
            let rms = |a: usize, b: usize| {
                (rec[a..b].iter().map(|v| v * v).sum::<f32>() / (b - a) as f32).sqrt()
            };
            assert!(rms(i, i + 50) > 5.0 * rms(i - 300, i - 1), "{pk:?}");
        }
        assert_eq!(recording(&cfg, 4, 1), recording(&cfg, 4, 1));
    }
}
