//! miniSEED 2 (SEED 2.4 data records): fixed header, blockettes 1000/1001, encodings int16,
//! int32, float32, float64, Steim-1 and Steim-2; records grouped per channel and merged into
//! contiguous segments, with gaps and overlaps reported, and a 3-component window for
//! `seisfuse pick`.
//!
//! miniSEED 3 is not read (it starts with "MS"; the error says so).

use super::{be_or_le16, be_or_le32};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One decoded record.
#[derive(Clone, Debug)]
pub struct Record {
    /// NET.STA.LOC.CHA
    pub id: String,
    /// Start time in seconds since 1970-01-01 UTC.
    pub start: f64,
    pub sampling_rate: f64,
    pub samples: Vec<f64>,
    pub encoding: u8,
}

/// A contiguous run of samples of one channel.
#[derive(Clone, Debug)]
pub struct Segment {
    pub id: String,
    pub start: f64,
    pub sampling_rate: f64,
    pub samples: Vec<f64>,
}

impl Segment {
    pub fn end(&self) -> f64 {
        self.start + self.samples.len() as f64 / self.sampling_rate
    }
}

/// Days since 1970-01-01 of a (year, day-of-year) date.
fn days_since_epoch(year: i64, doy: i64) -> i64 {
    let y = year - 1;
    let days_before_year =
        365 * (y - 1969) + (y / 4 - 1969 / 4) - (y / 100 - 1969 / 100) + (y / 400 - 1969 / 400);
    days_before_year + doy - 1
}

fn rate(factor: i16, mult: i16) -> f64 {
    let (f, m) = (factor as f64, mult as f64);
    match (factor > 0, mult > 0) {
        _ if factor == 0 => 0.0,
        (true, true) => f * m,
        (true, false) if mult == 0 => f,
        (true, false) => -f / m,
        (false, true) => -m / f,
        (false, false) if mult == 0 => -1.0 / f,
        (false, false) => 1.0 / (f * m),
    }
}

/// Sign-extends the low `bits` bits of `v`.
/// How a Steim-2 data word with nibble code `code` (2 or 3) and sub-code `dnib` (its top two
/// bits) packs its differences: (count, bits each); None for an invalid sub-code.
fn steim2_packing(code: u32, dnib: u32) -> Option<(u32, u32)> {
    match (code, dnib) {
        (2, 1) => Some((1, 30)),
        (2, 2) => Some((2, 15)),
        (2, 3) => Some((3, 10)),
        (3, 0) => Some((5, 6)),
        (3, 1) => Some((6, 5)),
        (3, 2) => Some((7, 4)),
        _ => None,
    }
}

fn sext(v: u32, bits: u32) -> i32 {
    let s = 32 - bits;
    ((v << s) as i32) >> s
}

/// Decodes Steim-1 (`level` 1) or Steim-2 (2) frames into `n` samples. The standard says
/// big-endian words; some dataloggers write little-endian ones and flag it in blockette 1000,
/// which libmseed honours, so `big_endian` comes from there.
pub fn decode_steim(
    data: &[u8],
    n: usize,
    level: u8,
    big_endian: bool,
    name: &str,
) -> Result<Vec<f64>> {
    let be32 = |b: &[u8]| be_or_le32(b, !big_endian);
    let mut diffs: Vec<i32> = Vec::with_capacity(n + 8);
    let (mut x0, mut xn) = (None, 0i32);
    for (fi, frame) in data.chunks_exact(64).enumerate() {
        let ctrl = be32(frame);
        for w in 1..16 {
            let code = (ctrl >> (30 - 2 * w)) & 3;
            let word = be32(&frame[4 * w..]);
            if fi == 0 && w == 1 {
                x0 = Some(word as i32);
                continue;
            }
            if fi == 0 && w == 2 {
                xn = word as i32;
                continue;
            }
            match (level, code) {
                (_, 0) => {}
                // Byte differences are in memory order whatever the word order (as libmseed
                // reads them); half-words are each in the word order.
                (_, 1) => {
                    for k in 0..4 {
                        diffs.push(frame[4 * w + k] as i8 as i32);
                    }
                }
                (1, 2) => {
                    for k in 0..2 {
                        let h = [frame[4 * w + 2 * k], frame[4 * w + 2 * k + 1]];
                        diffs.push(if big_endian {
                            i16::from_be_bytes(h)
                        } else {
                            i16::from_le_bytes(h)
                        } as i32);
                    }
                }
                (1, 3) => diffs.push(word as i32),
                (2, _) => {
                    let d = word >> 30;
                    let Some((count, bits)) = steim2_packing(code, d) else {
                        bail!("{name}: bad Steim-2 sub-code {d} in frame {fi}");
                    };
                    // The differences fill the low 30 bits from the top down.
                    for k in 0..count {
                        diffs.push(sext(word >> ((count - 1 - k) * bits), bits));
                    }
                }
                _ => unreachable!("two-bit code"),
            }
        }
        if diffs.len() >= n {
            break;
        }
    }
    let Some(x0) = x0 else {
        if n == 0 {
            return Ok(Vec::new());
        }
        bail!("{name}: Steim data hold no frame");
    };
    if n > 0 && diffs.len() < n {
        bail!(
            "{name}: Steim-{level} frames hold {} differences but the header says {n} samples",
            diffs.len()
        );
    }
    // The first difference links to the previous record and is not used.
    let mut out = Vec::with_capacity(n);
    let mut x = x0;
    for (i, d) in diffs.iter().take(n).enumerate() {
        if i > 0 {
            x = x.wrapping_add(*d);
        }
        out.push(x as f64);
    }
    if n > 0 && x != xn {
        bail!("{name}: Steim-{level} integrity check failed: last sample {x}, reverse integration constant {xn}");
    }
    Ok(out)
}

/// Whether `b` starts with a plausible data-record header (sequence number, D/R/Q/M, a start
/// date that makes sense in either byte order).
fn looks_like_data_header(b: &[u8]) -> bool {
    if b.len() < 48 {
        return false;
    }
    let seq = b[..6]
        .iter()
        .all(|c| c.is_ascii_digit() || *c == b' ' || *c == 0);
    let date = |le: bool| {
        let r = |o: usize| {
            if le {
                u16::from_le_bytes([b[o], b[o + 1]])
            } else {
                u16::from_be_bytes([b[o], b[o + 1]])
            }
        };
        (1900..=2100).contains(&r(20)) && (1..=366).contains(&r(22))
    };
    seq && matches!(b[6], b'D' | b'R' | b'Q' | b'M') && (date(false) || date(true))
}

/// Whether `b` starts a SEED control header (V, A, S, T) or a blank "noise" record.
fn looks_like_control_or_noise(b: &[u8]) -> bool {
    b.len() >= 8
        && b[..6]
            .iter()
            .all(|c| c.is_ascii_digit() || *c == b' ' || *c == 0)
        && matches!(b[6], b'V' | b'A' | b'S' | b'T' | b' ')
        && matches!(b[7], b' ' | b'*')
}

/// Parses all records of a miniSEED 2 byte stream. SEED control headers (full SEED volumes)
/// and blank noise records are skipped, in 128-byte steps up to the next data record; the
/// number of skipped bytes is returned beside the records. Anything else that is not a
/// record is an error.
pub fn parse_records(bytes: &[u8], name: &str) -> Result<(Vec<Record>, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    let mut skipped = 0;
    while off < bytes.len() {
        let rest = &bytes[off..];
        if looks_like_control_or_noise(rest) {
            let mut next = (off / 128 + 1) * 128;
            while next < bytes.len() && !looks_like_data_header(&bytes[next..]) {
                next += 128;
            }
            let next = next.min(bytes.len());
            skipped += next - off;
            off = next;
            continue;
        }
        if rest.len() < 48 {
            bail!(
                "{name}: truncated record at byte {off} ({} bytes left, a header needs 48)",
                rest.len()
            );
        }
        if &rest[..2] == b"MS" && rest[2] == 3 {
            bail!("{name}: this is miniSEED 3, which is not supported (convert with mseed3-utils or ObsPy to miniSEED 2)");
        }
        let seq_ok = rest[..6]
            .iter()
            .all(|c| c.is_ascii_digit() || *c == b' ' || *c == 0);
        if !seq_ok || !matches!(rest[6], b'D' | b'R' | b'Q' | b'M') {
            bail!(
                "{name}: no miniSEED record at byte {off} (a record starts with a 6-digit sequence number and D/R/Q/M)"
            );
        }
        // Header byte order: the year must be plausible.
        let yb = u16::from_be_bytes([rest[20], rest[21]]);
        let le = !(1900..=2100).contains(&yb);
        let u16_at = |o: usize| {
            if le {
                u16::from_le_bytes([rest[o], rest[o + 1]])
            } else {
                u16::from_be_bytes([rest[o], rest[o + 1]])
            }
        };
        let year = u16_at(20) as i64;
        let doy = u16_at(22) as i64;
        if !(1900..=2100).contains(&year) || !(1..=366).contains(&doy) {
            bail!("{name}: record at byte {off} has an impossible start date (year {year}, day {doy})");
        }
        let (hh, mm, ss) = (rest[24] as f64, rest[25] as f64, rest[26] as f64);
        let frac = u16_at(28) as f64 * 1e-4;
        let mut start =
            days_since_epoch(year, doy) as f64 * 86400.0 + hh * 3600.0 + mm * 60.0 + ss + frac;
        let nsamp = u16_at(30) as usize;
        let sr = rate(u16_at(32) as i16, u16_at(34) as i16);
        let act_flags = rest[36];
        let tcorr = u32::from(u16_at(40)) << 16 | u32::from(u16_at(42));
        let tcorr = if le {
            i32::from_le_bytes([rest[40], rest[41], rest[42], rest[43]])
        } else {
            tcorr as i32
        };
        if act_flags & 0x02 == 0 {
            start += tcorr as f64 * 1e-4;
        }
        let data_off = u16_at(44) as usize;
        let mut boff = u16_at(46) as usize;
        let (mut encoding, mut word_be, mut reclen) = (None, true, None);
        let mut guard = 0;
        while boff != 0 && guard < 16 {
            guard += 1;
            if boff + 4 > rest.len() {
                bail!("{name}: record at byte {off}: blockette offset {boff} is past the end of the file");
            }
            let btype = u16_at(boff);
            let next = u16_at(boff + 2) as usize;
            if btype == 1000 {
                if boff + 8 > rest.len() {
                    bail!("{name}: truncated blockette 1000 at byte {}", off + boff);
                }
                encoding = Some(rest[boff + 4]);
                // 0 is little-endian; 1, and anything invalid, big-endian (the standard's order).
                word_be = rest[boff + 5] != 0;
                let exp = rest[boff + 6];
                if !(7..=20).contains(&exp) {
                    bail!("{name}: record length 2^{exp} in blockette 1000 at byte {} is not supported", off + boff);
                }
                reclen = Some(1usize << exp);
            } else if btype == 1001 {
                if boff + 8 > rest.len() {
                    bail!("{name}: truncated blockette 1001 at byte {}", off + boff);
                }
                start += (rest[boff + 5] as i8) as f64 * 1e-6;
            }
            boff = next;
        }
        let (Some(encoding), Some(reclen)) = (encoding, reclen) else {
            bail!("{name}: record at byte {off} has no blockette 1000 (encoding and record length); old SEED data records are not supported");
        };
        if rest.len() < reclen {
            bail!(
                "{name}: truncated: record at byte {off} needs {reclen} bytes, {} remain",
                rest.len()
            );
        }
        if nsamp > 0 && (data_off < 48 || data_off > reclen) {
            bail!("{name}: record at byte {off}: data offset {data_off} is outside the record of {reclen} bytes");
        }
        let rec_name = format!("{name} (record at byte {off})");
        let data = if nsamp == 0 {
            &rest[..0]
        } else {
            &rest[data_off..reclen]
        };
        let need = |size: usize| -> Result<()> {
            if nsamp * size > data.len() {
                bail!(
                    "{rec_name}: {nsamp} samples of {size} bytes do not fit in {} data bytes",
                    data.len()
                );
            }
            Ok(())
        };
        let w16 = |c: &[u8]| be_or_le16(c, !word_be) as i16;
        let w32 = |c: &[u8]| be_or_le32(c, !word_be);
        let samples: Vec<f64> = match encoding {
            1 => {
                need(2)?;
                data.chunks_exact(2).take(nsamp).map(|c| w16(c) as f64).collect()
            }
            3 => {
                need(4)?;
                data.chunks_exact(4).take(nsamp).map(|c| w32(c) as i32 as f64).collect()
            }
            4 => {
                need(4)?;
                data.chunks_exact(4).take(nsamp).map(|c| f32::from_bits(w32(c)) as f64).collect()
            }
            5 => {
                need(8)?;
                data.chunks_exact(8)
                    .take(nsamp)
                    .map(|c| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        if word_be { f64::from_be_bytes(a) } else { f64::from_le_bytes(a) }
                    })
                    .collect()
            }
            10 => decode_steim(data, nsamp, 1, word_be, &rec_name)?,
            11 => decode_steim(data, nsamp, 2, word_be, &rec_name)?,
            e => bail!("{rec_name}: data encoding {e} is not supported (1 int16, 3 int32, 4 float32, 5 float64, 10 Steim-1, 11 Steim-2)"),
        };
        if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
            bail!(
                "{rec_name}: sample {i} is {} (non-finite samples are not accepted)",
                samples[i]
            );
        }
        if nsamp > 0 && !(sr.is_finite() && sr > 0.0) {
            bail!("{rec_name}: sampling rate {sr} from factor/multiplier is not positive");
        }
        let t = |r: std::ops::Range<usize>| String::from_utf8_lossy(&rest[r]).trim().to_string();
        out.push(Record {
            id: format!("{}.{}.{}.{}", t(18..20), t(8..13), t(13..15), t(15..18)),
            start,
            sampling_rate: sr,
            samples,
            encoding,
        });
        off += reclen;
    }
    Ok((out, skipped))
}

/// A miniSEED file: its records merged into segments per channel.
#[derive(Debug)]
pub struct MseedFile {
    pub path: PathBuf,
    pub records: Vec<Record>,
    /// Bytes of SEED control headers and noise records that were skipped.
    pub skipped_bytes: usize,
}

impl MseedFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        let mmap = super::map_file(&path, &name)?;
        if mmap.is_empty() {
            bail!("{name}: empty file");
        }
        let (records, skipped_bytes) = parse_records(&mmap, &name)?;
        if records.is_empty() {
            bail!("{name}: holds no miniSEED data records ({skipped_bytes} bytes of control headers or noise records)");
        }
        Ok(MseedFile {
            path,
            records,
            skipped_bytes,
        })
    }

    /// Contiguous segments per channel: records sorted by time are joined when the next starts
    /// within half a sample of where the previous ends; a gap or overlap starts a new segment.
    pub fn segments(&self) -> Vec<Segment> {
        let mut by_id: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for r in self.records.iter().filter(|r| !r.samples.is_empty()) {
            by_id.entry(&r.id).or_default().push(r);
        }
        let mut out = Vec::new();
        for (_, mut recs) in by_id {
            recs.sort_by(|a, b| a.start.total_cmp(&b.start));
            let mut cur: Option<Segment> = None;
            for r in recs {
                if let Some(s) = cur.as_mut() {
                    let tol = 0.5 / s.sampling_rate;
                    if (r.sampling_rate - s.sampling_rate).abs() < 1e-9 * s.sampling_rate
                        && (r.start - s.end()).abs() <= tol
                    {
                        s.samples.extend_from_slice(&r.samples);
                        continue;
                    }
                    out.push(cur.take().expect("segment"));
                }
                cur = Some(Segment {
                    id: r.id.clone(),
                    start: r.start,
                    sampling_rate: r.sampling_rate,
                    samples: r.samples.clone(),
                });
            }
            out.extend(cur);
        }
        out
    }

    /// The streams of the file: `NET.STA.LOC.BI` (network, station, location and the band and
    /// instrument letters of the channel code), each of which may hold three components.
    pub fn streams(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .records
            .iter()
            .filter(|r| !r.samples.is_empty())
            .map(|r| stream_of(&r.id).to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// [`three_components_of`](Self::three_components_of) the file's only stream; a file of
    /// several stations (or instruments) is an error that lists them.
    pub fn three_components(&self) -> Result<ThreeComponent> {
        self.three_components_of(None)
    }

    /// A `[3, S]` window (Z, N, E order; channels whose last letter is Z, N or 1, E or 2) of
    /// one stream's common time span. `stream` selects it by `NET.STA.LOC.BI` or a leading
    /// part of it (`NET.STA`); `None` takes the only one. Gaps inside the span are filled with
    /// zeros; their count in samples is returned so the caller can warn. Errors when a
    /// component is missing, the rates differ, or the span exceeds the memory budget.
    pub fn three_components_of(&self, stream: Option<&str>) -> Result<ThreeComponent> {
        let name = self.path.display();
        let streams = self.streams();
        let chosen: Vec<&String> = match stream {
            None => streams.iter().collect(),
            Some(want) => streams
                .iter()
                .filter(|s| *s == want || s.starts_with(&format!("{want}.")))
                .collect(),
        };
        let stream_id = match (chosen.as_slice(), stream) {
            ([one], _) => (*one).clone(),
            ([], Some(want)) => bail!(
                "{name}: no stream {want} (the file holds {})",
                streams.join(", ")
            ),
            ([], None) => bail!("{name}: holds no samples"),
            (many, _) => bail!(
                "{name}: holds {} streams ({}); they are different stations or instruments, \
                 not one trace: choose one with --station (e.g. --station {})",
                many.len(),
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                many[0]
            ),
        };
        let segs: Vec<Segment> = self
            .segments()
            .into_iter()
            .filter(|s| stream_of(&s.id) == stream_id)
            .collect();
        let mut comps: [Vec<&Segment>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for s in &segs {
            match s.id.chars().last() {
                Some('Z') => comps[0].push(s),
                Some('N') | Some('1') => comps[1].push(s),
                Some('E') | Some('2') => comps[2].push(s),
                _ => {}
            }
        }
        for (c, l) in comps.iter().zip(["Z", "N/1", "E/2"]) {
            if c.is_empty() {
                let mut ids: Vec<&str> = segs.iter().map(|s| s.id.as_str()).collect();
                ids.dedup();
                bail!("{name}: no {l} component in {stream_id} (channels: {ids:?})");
            }
        }
        let sr = comps[0][0].sampling_rate;
        if comps
            .iter()
            .flatten()
            .any(|s| (s.sampling_rate - sr).abs() > 1e-9 * sr)
        {
            bail!("{name}: components have different sampling rates; resample first");
        }
        let start = comps
            .iter()
            .map(|c| c.iter().map(|s| s.start).fold(f64::INFINITY, f64::min))
            .fold(f64::NEG_INFINITY, f64::max);
        let end = comps
            .iter()
            .map(|c| c.iter().map(|s| s.end()).fold(f64::NEG_INFINITY, f64::max))
            .fold(f64::INFINITY, f64::min);
        if end <= start {
            bail!("{name}: the three components do not overlap in time");
        }
        // The span comes from the records' start times: records years apart make it huge.
        let n_f = ((end - start) * sr).round();
        let held: usize = segs.iter().map(|s| s.samples.len()).sum();
        // 4 bytes of data and 1 of "filled" per sample and component.
        crate::limits::check(
            format_args!(
                "{name}: the span of {stream_id} from {} to {} ({:.0} s at {sr} Hz: {n_f} samples per \
                 component, of which the file holds {held} in all; the rest are gaps)",
                time_string(start),
                time_string(end),
                end - start
            ),
            (n_f * 15.0).min(u128::MAX as f64) as u128,
        )?;
        let n = n_f as usize;
        let mut data = vec![0f32; 3 * n];
        let mut filled = vec![false; 3 * n];
        for (c, segs) in comps.iter().enumerate() {
            for s in segs {
                let first = ((s.start - start) * sr).round() as i64;
                for (k, v) in s.samples.iter().enumerate() {
                    let i = first + k as i64;
                    if i >= 0 && (i as usize) < n {
                        data[c * n + i as usize] = *v as f32;
                        filled[c * n + i as usize] = true;
                    }
                }
            }
        }
        let gap_samples = filled.iter().filter(|f| !**f).count();
        Ok(ThreeComponent {
            stream: stream_id,
            data,
            samples: n,
            start,
            sampling_rate: sr,
            gap_samples,
        })
    }
}

/// `NET.STA.LOC.BI` of a `NET.STA.LOC.CHA` id (the channel's last letter, the component,
/// dropped).
pub fn stream_of(id: &str) -> &str {
    match id.char_indices().last() {
        Some((i, _)) if id[..i].matches('.').count() == 3 => &id[..i],
        _ => id,
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of seconds since 1970, for messages.
pub fn time_string(t: f64) -> String {
    if !t.is_finite() {
        return format!("{t}");
    }
    let secs = t.floor() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = crate::data::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Three aligned components.
#[derive(Clone, Debug)]
pub struct ThreeComponent {
    /// The stream (`NET.STA.LOC.BI`) the components belong to.
    pub stream: String,
    /// `[3, samples]`, Z, N, E.
    pub data: Vec<f32>,
    pub samples: usize,
    pub start: f64,
    pub sampling_rate: f64,
    /// Samples (over all three components) filled with zeros because no record covered them.
    pub gap_samples: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn dates_and_rates() {
        assert_eq!(days_since_epoch(1970, 1), 0);
        assert_eq!(days_since_epoch(2000, 1), 10957);
        assert_eq!(days_since_epoch(2024, 60), 19782); // 2024-02-29
        assert_eq!(rate(100, 1), 100.0);
        assert_eq!(rate(-10, 1), 0.1);
        assert_eq!(rate(1, -10), 0.1);
        assert_eq!(rate(-10, -10), 0.01);
        assert_eq!(sext(0x3ff, 10), -1);
        assert_eq!(sext(0x1ff, 10), 511);
        assert_eq!(stream_of("IU.ANMO.00.BHZ"), "IU.ANMO.00.BH");
        assert_eq!(stream_of("XX.STA..HHN"), "XX.STA..HH");
        assert_eq!(stream_of("odd"), "odd");
        assert_eq!(time_string(0.0), "1970-01-01T00:00:00");
        assert_eq!(
            time_string(19782.0 * 86400.0 + 3723.5),
            "2024-02-29T01:02:03"
        );
    }
}
