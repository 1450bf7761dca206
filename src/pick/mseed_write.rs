//! A miniSEED 2 writer for probability traces: 4096-byte data records, big-endian, float32
//! samples (encoding 4), blockette 1000 and blockette 1001 (microseconds of the start time),
//! as `data::mseed` reads them back. NaN samples (no prediction) are not written: a run of
//! them is a gap between records.

use super::time::btime;
use anyhow::{bail, Result};
use std::io::Write;

/// Record length (2^12).
const RECLEN_EXP: u8 = 12;
const RECLEN: usize = 1 << RECLEN_EXP;
/// Header (48) + blockette 1000 (8) + blockette 1001 (8).
const DATA_OFFSET: usize = 64;
/// float32 samples per record.
pub const SAMPLES_PER_RECORD: usize = (RECLEN - DATA_OFFSET) / 4;

/// One trace to write.
#[derive(Clone, Copy, Debug)]
pub struct TraceOut<'a> {
    pub network: &'a str,
    pub station: &'a str,
    pub location: &'a str,
    pub channel: &'a str,
    /// Time of `data[0]`, seconds since 1970.
    pub start: f64,
    pub rate: f64,
    pub data: &'a [f32],
}

/// SEED's sample rate factor and multiplier for `rate`.
fn rate_fields(rate: f64) -> Result<(i16, i16)> {
    if (1.0..=32767.0).contains(&rate) && rate.fract() == 0.0 {
        return Ok((rate as i16, 1));
    }
    let period = 1.0 / rate;
    if rate > 0.0 && period <= 32767.0 && (period - period.round()).abs() < 1e-9 {
        return Ok((-(period.round() as i16), 1));
    }
    // factor / divisor with a power-of-ten divisor.
    for div in [10i16, 100, 1000, 10000] {
        let f = rate * div as f64;
        if (1.0..=32767.0).contains(&f) && (f - f.round()).abs() < 1e-6 {
            return Ok((f.round() as i16, -div));
        }
    }
    bail!("a sampling rate of {rate} Hz cannot be written in a miniSEED 2 header")
}

/// Checks the codes fit their fields (network 2, station 5, location 2, channel 3 characters
/// of ASCII letters, digits or '-').
pub fn check_codes(t: &TraceOut) -> Result<()> {
    for (what, v, n) in [
        ("network", t.network, 2),
        ("station", t.station, 5),
        ("location", t.location, 2),
        ("channel", t.channel, 3),
    ] {
        if v.len() > n || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            bail!(
                "miniSEED: {what} code '{v}' does not fit ({n} letters or digits at most) \
                 in {}.{}.{}.{}",
                t.network,
                t.station,
                t.location,
                t.channel
            );
        }
    }
    Ok(())
}

/// Appends the records of `t` to `out`, numbering them from `*seq` (incremented). Returns the
/// number of records written.
pub fn write_trace(out: &mut impl Write, t: &TraceOut, seq: &mut u32) -> Result<usize> {
    check_codes(t)?;
    let (factor, mult) = rate_fields(t.rate)?;
    let mut records = 0;
    let mut i = 0;
    let n = t.data.len();
    while i < n {
        // Skip NaN, then take up to a record of finite samples.
        while i < n && !t.data[i].is_finite() {
            i += 1;
        }
        if i == n {
            break;
        }
        let mut j = i;
        while j < n && j - i < SAMPLES_PER_RECORD && t.data[j].is_finite() {
            j += 1;
        }
        let rec = record(t, i, j, factor, mult, *seq)?;
        out.write_all(&rec)?;
        *seq = if *seq >= 999_999 { 1 } else { *seq + 1 };
        records += 1;
        i = j;
    }
    Ok(records)
}

fn record(t: &TraceOut, i: usize, j: usize, factor: i16, mult: i16, seq: u32) -> Result<Vec<u8>> {
    let mut r = vec![0u8; RECLEN];
    r[..6].copy_from_slice(format!("{seq:06}").as_bytes());
    r[6] = b'D';
    r[7] = b' ';
    let pad = |s: &str, n: usize| format!("{s:<n$}").into_bytes();
    r[8..13].copy_from_slice(&pad(t.station, 5));
    r[13..15].copy_from_slice(&pad(t.location, 2));
    r[15..18].copy_from_slice(&pad(t.channel, 3));
    r[18..20].copy_from_slice(&pad(t.network, 2));
    let start = t.start + i as f64 / t.rate;
    let ((year, doy, h, m, s, frac), us) = btime(start);
    if !(1900..=2100).contains(&year) {
        bail!("miniSEED: start time {start} s is outside the years 1900–2100");
    }
    r[20..22].copy_from_slice(&year.to_be_bytes());
    r[22..24].copy_from_slice(&doy.to_be_bytes());
    r[24] = h;
    r[25] = m;
    r[26] = s;
    r[28..30].copy_from_slice(&frac.to_be_bytes());
    r[30..32].copy_from_slice(&((j - i) as u16).to_be_bytes());
    r[32..34].copy_from_slice(&factor.to_be_bytes());
    r[34..36].copy_from_slice(&mult.to_be_bytes());
    r[39] = 2; // blockettes that follow
    r[44..46].copy_from_slice(&(DATA_OFFSET as u16).to_be_bytes());
    r[46..48].copy_from_slice(&48u16.to_be_bytes());
    // Blockette 1000: encoding, word order, record length.
    r[48..50].copy_from_slice(&1000u16.to_be_bytes());
    r[50..52].copy_from_slice(&56u16.to_be_bytes());
    r[52] = 4; // float32
    r[53] = 1; // big-endian
    r[54] = RECLEN_EXP;
    // Blockette 1001: microseconds.
    r[56..58].copy_from_slice(&1001u16.to_be_bytes());
    r[58..60].copy_from_slice(&0u16.to_be_bytes());
    r[61] = us as u8;
    for (k, v) in t.data[i..j].iter().enumerate() {
        let o = DATA_OFFSET + 4 * k;
        r[o..o + 4].copy_from_slice(&v.to_be_bytes());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::mseed::parse_records;

    #[test]
    fn rate_codes() {
        assert_eq!(rate_fields(100.0).unwrap(), (100, 1));
        assert_eq!(rate_fields(0.1).unwrap(), (-10, 1));
        assert_eq!(rate_fields(12.5).unwrap(), (125, -10));
        assert!(rate_fields(f64::NAN).is_err());
    }

    #[test]
    fn written_then_read_back() {
        // 2500 samples with a NaN run: two stretches, four records.
        let mut data: Vec<f32> = (0..2500)
            .map(|i| (i as f32 * 0.01).sin() * 0.5 + 0.5)
            .collect();
        for v in &mut data[1200..1300] {
            *v = f32::NAN;
        }
        let start = 1_700_000_000.123456;
        let t = TraceOut {
            network: "XX",
            station: "STA1",
            location: "00",
            channel: "HXP",
            start,
            rate: 100.0,
            data: &data,
        };
        let mut bytes = Vec::new();
        let mut seq = 1;
        let n = write_trace(&mut bytes, &t, &mut seq).unwrap();
        assert_eq!(n, 4); // 1008 + 192, then 1008 + 192
        assert_eq!(bytes.len(), 4 * RECLEN);
        let (recs, skipped) = parse_records(&bytes, "test").unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(recs.len(), 4);
        let mut k = 0;
        for r in &recs {
            assert_eq!(r.id, "XX.STA1.00.HXP");
            assert_eq!(r.sampling_rate, 100.0);
            assert_eq!(r.encoding, 4);
            while !data[k].is_finite() {
                k += 1;
            }
            let want = start + k as f64 / 100.0;
            assert!((r.start - want).abs() < 1.5e-6, "{} vs {want}", r.start);
            for v in &r.samples {
                assert_eq!(*v as f32, data[k]);
                k += 1;
            }
        }
        assert_eq!(k, 2500);
        // Codes that do not fit are refused.
        let long = TraceOut {
            channel: "SeisLM_P",
            ..t
        };
        assert!(write_trace(&mut Vec::new(), &long, &mut seq).is_err());
    }
}
