//! The continuous recordings of `dataset build`: every miniSEED file's contiguous segments,
//! grouped by station (NET.STA.LOC) and instrument (the first two letters of the channel), by
//! component (Z; N or 1; E or 2), kept as f32.

use super::catalog::StationKey;
use crate::data::mseed::MseedFile;
use crate::limits;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A contiguous run of one channel's samples.
#[derive(Clone, Debug)]
pub struct Seg {
    pub start: f64,
    pub samples: Vec<f32>,
    /// Index into [`Recordings::files`].
    pub file: usize,
}

impl Seg {
    pub fn end(&self, rate: f64) -> f64 {
        self.start + self.samples.len() as f64 / rate
    }
}

/// One instrument of a station: its rate and the segments of each component (Z, N, E),
/// sorted by start time.
#[derive(Clone, Debug)]
pub struct Stream {
    /// Band and instrument letters, e.g. `HH`.
    pub instrument: String,
    pub rate: f64,
    pub comps: [Vec<Seg>; 3],
}

impl Stream {
    /// First and last time any component covers.
    pub fn span(&self) -> Option<(f64, f64)> {
        let segs = self.comps.iter().flatten();
        let start = segs.clone().map(|s| s.start).min_by(f64::total_cmp)?;
        let end = segs.map(|s| s.end(self.rate)).max_by(f64::total_cmp)?;
        Some((start, end))
    }

    /// Component letters that have no data ("N/1", …).
    pub fn missing(&self) -> Vec<&'static str> {
        ["Z", "N/1", "E/2"]
            .into_iter()
            .zip(&self.comps)
            .filter(|(_, c)| c.is_empty())
            .map(|(l, _)| l)
            .collect()
    }
}

/// All recordings, by station, one stream per station (the one with the highest sampling
/// rate when a station has several instruments).
#[derive(Default)]
pub struct Recordings {
    pub files: Vec<PathBuf>,
    pub stations: BTreeMap<StationKey, Stream>,
    /// Channels that were not used: another instrument of a station, or a component letter
    /// other than Z/N/E/1/2.
    pub unused_channels: Vec<String>,
}

fn is_mseed_name(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()),
        Some(e) if e == "mseed" || e == "miniseed" || e == "ms"
    )
}

/// Expands folders (recursively: files named *.mseed, *.miniseed, *.ms) and keeps files as
/// given; the result is sorted and free of duplicates.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
        if depth > 16 {
            bail!("{}: folders nested more than 16 deep", dir.display());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out, depth + 1)?;
            } else if is_mseed_name(&p) {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for i in inputs {
        if i.is_dir() {
            let before = out.len();
            walk(i, &mut out, 0)?;
            if out.len() == before {
                bail!(
                    "--waveforms {}: the folder holds no *.mseed, *.miniseed or *.ms file",
                    i.display()
                );
            }
        } else if i.exists() {
            out.push(i.clone());
        } else {
            bail!("--waveforms {}: no such file or folder", i.display());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

impl Recordings {
    /// Reads every file (`progress` is called after each). The samples held are checked
    /// against the memory budget after each file.
    pub fn read(files: &[PathBuf], progress: &dyn Fn(usize)) -> Result<Self> {
        let mut r = Recordings::default();
        // (station, instrument) → rate and segments per component.
        let mut all: BTreeMap<(StationKey, String), Stream> = BTreeMap::new();
        let mut held: u128 = 0;
        for (fi, path) in files.iter().enumerate() {
            let f = MseedFile::open(path)?;
            r.files.push(path.clone());
            for seg in f.segments() {
                let parts: Vec<&str> = seg.id.split('.').collect();
                let [net, sta, loc, cha] = parts[..] else {
                    continue;
                };
                let comp = match cha.chars().last() {
                    Some('Z') => 0,
                    Some('N') | Some('1') => 1,
                    Some('E') | Some('2') => 2,
                    _ => {
                        r.unused_channels.push(seg.id.clone());
                        continue;
                    }
                };
                let key = StationKey {
                    network: net.into(),
                    station: sta.into(),
                    location: loc.into(),
                };
                let inst: String = cha
                    .chars()
                    .take(cha.chars().count().saturating_sub(1))
                    .collect();
                let s = all.entry((key, inst.clone())).or_insert_with(|| Stream {
                    instrument: inst,
                    rate: seg.sampling_rate,
                    comps: Default::default(),
                });
                if (s.rate - seg.sampling_rate).abs() > 1e-9 * s.rate {
                    bail!(
                        "{}: {} is sampled at {} Hz, but other data of that channel at {} Hz",
                        path.display(),
                        seg.id,
                        seg.sampling_rate,
                        s.rate
                    );
                }
                held += seg.samples.len() as u128;
                s.comps[comp].push(Seg {
                    start: seg.start,
                    samples: seg.samples.iter().map(|&v| v as f32).collect(),
                    file: fi,
                });
            }
            limits::check(
                format_args!(
                    "--waveforms: {held} samples of the first {} files (up to {})",
                    fi + 1,
                    path.display()
                ),
                held * 4,
            )?;
            progress(fi + 1);
        }
        for ((key, inst), mut s) in all {
            for c in &mut s.comps {
                c.sort_by(|a, b| a.start.total_cmp(&b.start));
            }
            match r.stations.get(&key) {
                Some(o) if o.rate >= s.rate => r.unused_channels.push(format!("{key}.{inst}?")),
                _ => {
                    if let Some(o) = r.stations.insert(key.clone(), s) {
                        r.unused_channels.push(format!("{key}.{}?", o.instrument));
                    }
                }
            }
        }
        Ok(r)
    }
}
