//! Inputs of `seisfuse pick`: miniSEED files and folders (any number of stations, several
//! files per channel, gaps and overlaps) or one `.npy` of traces, into [`StationData`].
//!
//! miniSEED channels are grouped into stations by `NET.STA.LOC` and instrument (the band and
//! instrument letters, `HH`); the component is the channel's last letter, in either case: Z,
//! N or 1, E or 2 (Z12 is read as ZNE). A location with several instruments (HH and HN) is
//! picked once, on the preferred one: a seismometer (instrument letter H, then L) before an
//! accelerometer (N), then the rate closest to 100 Hz from above; the choice is noted.

use super::stream::{merge_pieces, Piece, StationData, COMPONENTS};
use crate::data::mseed::{stream_of, MseedFile};
use crate::limits;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Extensions of miniSEED files.
pub const MSEED_EXTENSIONS: [&str; 3] = ["mseed", "miniseed", "ms"];

/// What the inputs are.
#[derive(Clone, Debug, PartialEq)]
pub enum Inputs {
    /// miniSEED files (folders expanded), sorted.
    Mseed(Vec<PathBuf>),
    /// One `.npy` of traces.
    Npy(PathBuf),
}

fn ext_of(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Whether the file starts like a miniSEED 2 data record (files without an extension, as in
/// SDS archives, are recognised by their first bytes).
pub fn sniff_mseed(path: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 48];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if f.read_exact(&mut b).is_err() {
        return false;
    }
    let seq = b[..6]
        .iter()
        .all(|c| c.is_ascii_digit() || *c == b' ' || *c == 0);
    let year_be = u16::from_be_bytes([b[20], b[21]]);
    let year_le = u16::from_le_bytes([b[20], b[21]]);
    seq && matches!(b[6], b'D' | b'R' | b'Q' | b'M')
        && ((1900..=2100).contains(&year_be) || (1900..=2100).contains(&year_le))
}

/// Files under `dir` (recursively, hidden entries left out) that are miniSEED by extension or
/// by their first bytes.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 32 {
        bail!("{}: folders nested more than 32 deep", dir.display());
    }
    let rd = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?;
    let mut entries: Vec<PathBuf> = Vec::new();
    for e in rd {
        let e = e.with_context(|| format!("reading the folder {}", dir.display()))?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        entries.push(e.path());
    }
    entries.sort();
    for p in entries {
        let Ok(m) = std::fs::metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            walk(&p, out, depth + 1)?;
        } else if m.is_file()
            && ext_of(&p) != "npy"
            && (MSEED_EXTENSIONS.contains(&ext_of(&p).as_str()) || sniff_mseed(&p))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Sorts the input paths into miniSEED files or one .npy, expanding folders.
pub fn classify(paths: &[PathBuf]) -> Result<Inputs> {
    let mut mseed = Vec::new();
    let mut npy = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot open {}", p.display()))?;
        if meta.is_dir() {
            let before = mseed.len();
            walk(p, &mut mseed, 0)?;
            if mseed.len() == before {
                bail!(
                    "{} is a folder; it holds no miniSEED files (.mseed, .miniseed, .ms, or files \
                     that start with a miniSEED 2 record)",
                    p.display()
                );
            }
            continue;
        }
        if !meta.is_file() {
            bail!(
                "{} is not a regular file (a device, pipe or socket); give a file",
                p.display()
            );
        }
        let ext = ext_of(p);
        if ext == "npy" {
            npy.push(p.clone());
        } else if MSEED_EXTENSIONS.contains(&ext.as_str()) || sniff_mseed(p) {
            mseed.push(p.clone());
        } else {
            bail!(
                "{}: unknown input type '.{ext}'; give a .npy of traces N×3×T or miniSEED files \
                 or folders (.mseed, .miniseed, .ms)",
                p.display()
            );
        }
    }
    match (npy.len(), mseed.is_empty()) {
        (0, false) => {
            mseed.sort();
            mseed.dedup();
            Ok(Inputs::Mseed(mseed))
        }
        (1, true) => Ok(Inputs::Npy(npy.remove(0))),
        (0, true) => bail!("--input: no input given"),
        (_, true) => bail!(
            "--input: give one .npy of traces (N×3×T) at a time, not {} ({})",
            npy.len(),
            npy.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (_, false) => bail!(
            "--input mixes .npy ({}) and miniSEED ({}); pick one kind at a time",
            npy[0].display(),
            mseed[0].display()
        ),
    }
}

/// (`NET.STA.LOC`, band and instrument letters) of a `NET.STA.LOC.BI` stream.
fn split_stream(s: &str) -> (String, String) {
    match s.rsplit_once('.') {
        Some((id, bi)) if id.matches('.').count() == 2 => (id.to_string(), bi.to_string()),
        _ => (s.to_string(), String::new()),
    }
}

/// Whether `--station` pattern `pat` selects the stream `s` (`NET.STA.LOC.BI`): equal, or a
/// leading part of it ending at a dot (`NET.STA`, `NET.STA.LOC`); letters in either case.
pub fn matches(pat: &str, s: &str) -> bool {
    let (p, s) = (pat.to_ascii_uppercase(), s.to_ascii_uppercase());
    s == p || s.starts_with(&format!("{p}."))
}

/// Component index of a channel's last letter (either case): Z → 0, N/1 → 1, E/2 → 2.
pub fn component_of(code: char) -> Option<usize> {
    match code.to_ascii_uppercase() {
        'Z' => Some(0),
        'N' | '1' => Some(1),
        'E' | '2' => Some(2),
        _ => None,
    }
}

/// The miniSEED stations and the notes made while reading them.
#[derive(Debug, Default)]
pub struct Read {
    pub stations: Vec<StationData>,
    /// Things the user should know (warnings, choices), one line each.
    pub notes: Vec<String>,
    pub records: usize,
}

/// Reads the miniSEED `files`, keeps the streams `select` chooses (all when empty) and builds
/// one [`StationData`] per `NET.STA.LOC`. `on_file` is called after every file (progress).
pub fn read_mseed(files: &[PathBuf], select: &[String], mut on_file: impl FnMut()) -> Result<Read> {
    // stream → last letter (upper case) → (channel code, pieces)
    let mut streams: BTreeMap<String, BTreeMap<char, (String, Vec<Piece>)>> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut rates: BTreeMap<String, f64> = BTreeMap::new();
    let mut held: u128 = 0;
    let mut read = Read::default();
    for f in files {
        let m = MseedFile::open(f)?;
        for r in m.records {
            if r.samples.is_empty() {
                continue;
            }
            let stream = stream_of(&r.id).to_string();
            seen.insert(stream.clone());
            if !select.is_empty() && !select.iter().any(|p| matches(p, &stream)) {
                continue;
            }
            read.records += 1;
            let last = r.id.chars().last().unwrap_or(' ');
            let cha = r.id.rsplit('.').next().unwrap_or("").to_string();
            held += 4 * r.samples.len() as u128;
            let e = rates.entry(stream.clone()).or_insert(0.0);
            *e = e.max(r.sampling_rate);
            let slot = streams
                .entry(stream)
                .or_default()
                .entry(last.to_ascii_uppercase())
                .or_insert_with(|| (cha, Vec::new()));
            slot.1.push(Piece {
                start: r.start,
                rate: r.sampling_rate,
                data: r.samples.iter().map(|v| *v as f32).collect(),
            });
        }
        limits::check(
            format_args!(
                "{}: the samples of the {} records read so far",
                f.display(),
                read.records
            ),
            held,
        )?;
        on_file();
    }
    for p in select {
        if !seen.iter().any(|s| matches(p, s)) {
            bail!(
                "--station {p}: no such stream in the input (it holds {})",
                seen.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    // One instrument per NET.STA.LOC.
    let mut by_loc: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for s in streams.keys() {
        let (id, bi) = split_stream(s);
        by_loc.entry(id).or_default().push((bi, s.clone()));
    }
    for (id, mut insts) in by_loc {
        if insts.len() > 1 {
            let rank = |bi: &str| match bi.chars().nth(1).map(|c| c.to_ascii_uppercase()) {
                Some('H') => 0,
                Some('L') => 1,
                Some('N') => 2,
                _ => 3,
            };
            let key = |(bi, s): &(String, String)| {
                let r = rates.get(s).copied().unwrap_or(0.0);
                (
                    rank(bi),
                    u8::from(r < 99.999),
                    ((r.max(1e-9) / 100.0).ln().abs() * 1e6) as u64,
                )
            };
            insts.sort_by_key(key);
            read.notes.push(format!(
                "{id} has several instruments ({}); picking {} (choose another with --station {id}.{})",
                insts.iter().map(|i| i.0.as_str()).collect::<Vec<_>>().join(", "),
                insts[0].0,
                insts[1].0
            ));
        }
        let (bi, stream) = insts.swap_remove(0);
        let chans = streams.remove(&stream).unwrap_or_default();
        let mut st = StationData {
            id: id.clone(),
            instrument: bi,
            ..Default::default()
        };
        let mut ignored = Vec::new();
        // N and E first, then 1 and 2 where N or E are absent.
        for (letter, (code, pieces)) in chans {
            let Some(c) = component_of(letter) else {
                ignored.push(code);
                continue;
            };
            if !st.channels[c].is_empty() {
                if letter.is_ascii_digit() {
                    read.notes.push(format!(
                        "{}: has both {} and {code}; {code} is not used",
                        st.label(),
                        st.channel_codes[c]
                    ));
                    ignored.push(code);
                    continue;
                }
                // A letter after a digit: the letter wins.
                read.notes.push(format!(
                    "{}: has both {code} and {}; {} is not used",
                    st.label(),
                    st.channel_codes[c],
                    st.channel_codes[c]
                ));
            }
            let (merged, stats) = merge_pieces(pieces);
            if stats.conflicts > 0 {
                read.notes.push(format!(
                    "{}: {code}: {} samples overlap with different values; the earlier record's are kept",
                    st.label(),
                    stats.conflicts
                ));
            }
            st.channels[c] = merged;
            st.channel_codes[c] = code;
        }
        if !ignored.is_empty() {
            read.notes.push(format!(
                "{}: channels {} are not Z, N, E, 1 or 2 and are not used",
                st.label(),
                ignored.join(", ")
            ));
        }
        if st.channels.iter().all(|c| c.is_empty()) {
            read.notes.push(format!(
                "{}: no Z, N, E, 1 or 2 channel; the station is left out",
                st.label()
            ));
            continue;
        }
        for (code, comp) in st.channel_codes.iter_mut().zip(COMPONENTS) {
            if code.is_empty() {
                *code = format!("{}{comp}", st.instrument);
            }
        }
        read.stations.push(st);
    }
    Ok(read)
}

/// The traces of a `.npy` (N×3×T or 3×T, Z/N/E) at `rate` Hz from `start`, one station each:
/// `XX.<index>.` (network XX, station the trace index, no location).
pub fn read_npy(path: &Path, rate: f64, start: f64) -> Result<Vec<StationData>> {
    let file = crate::data::npy::NpyFile::open(path)?;
    let (n, t) = match file.shape()[..] {
        [n, 3, t] => (n, t),
        [3, t] => (1, t),
        _ => bail!(
            "{}: expected 3-component traces of shape N×3×T (or 3×T), found {:?}",
            path.display(),
            file.shape()
        ),
    };
    if n == 0 || t == 0 {
        bail!("{}: no traces ({:?})", path.display(), file.shape());
    }
    limits::check(
        format_args!("{}: {n} traces of {t} samples", path.display()),
        limits::bytes_of(&[n, 3, t], 4),
    )?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut st = StationData {
            id: format!("XX.{i}."),
            instrument: String::new(),
            channel_codes: ["Z".into(), "N".into(), "E".into()],
            ..Default::default()
        };
        for (c, comp) in COMPONENTS.iter().enumerate() {
            let mut data = vec![0f32; t];
            file.read_f32_into((i * 3 + c) * t, &mut data)?;
            if let Some(k) = data.iter().position(|v| !v.is_finite()) {
                bail!(
                    "{}: the traces hold NaN or infinite values (trace {i}, component {comp}, sample {k})",
                    path.display(),
                );
            }
            st.channels[c] = vec![Piece { start, rate, data }];
        }
        out.push(st);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_components() {
        assert!(matches("XX.STA", "XX.STA.00.HH"));
        assert!(matches("xx.sta.00", "XX.STA.00.HH"));
        assert!(matches("XX.STA.", "XX.STA..HH"));
        assert!(matches("XX.STA..HH", "XX.STA..HH"));
        assert!(!matches("XX.ST", "XX.STA..HH"));
        assert_eq!(
            split_stream("XX.STA.00.HH"),
            ("XX.STA.00".into(), "HH".into())
        );
        assert_eq!(split_stream("XX.STA..HH"), ("XX.STA.".into(), "HH".into()));
        for (c, want) in [('Z', 0), ('z', 0), ('1', 1), ('n', 1), ('2', 2), ('E', 2)] {
            assert_eq!(component_of(c), Some(want));
        }
        assert_eq!(component_of('F'), None);
    }
}
