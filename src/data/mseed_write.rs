//! miniSEED 2 writing: big-endian 4096-byte data records of float32 samples (encoding 4) with
//! blockettes 1000 (encoding, word order, record length) and 1001 (microseconds), which
//! `data::mseed`, libmseed and ObsPy read.

use super::time::civil;
use anyhow::{bail, Result};

/// Record length: 2^12 bytes.
const RECLEN_EXP: u8 = 12;
const RECLEN: usize = 1 << RECLEN_EXP;
/// Fixed header (48) + blockette 1000 (8) + blockette 1001 (8).
const DATA_OFFSET: usize = 64;
/// Samples in a full record.
pub const SAMPLES_PER_RECORD: usize = (RECLEN - DATA_OFFSET) / 4;

/// SEED's sampling-rate factor and multiplier for `rate` Hz: an integer rate, an integer period,
/// or a ratio F/M with M up to 10000.
pub fn rate_factors(rate: f64) -> Result<(i16, i16)> {
    if !(rate.is_finite() && rate > 0.0) {
        bail!("sampling rate {rate} Hz is not positive");
    }
    if rate >= 1.0 && (rate - rate.round()).abs() < 1e-9 && rate <= 32767.0 {
        return Ok((rate.round() as i16, 1));
    }
    let period = 1.0 / rate;
    if (period - period.round()).abs() < 1e-9 && period <= 32767.0 {
        return Ok((-(period.round() as i16), 1));
    }
    for m in 2..=10000i32 {
        let f = rate * m as f64;
        if (f - f.round()).abs() < 1e-6 && f.round() >= 1.0 && f.round() <= 32767.0 {
            return Ok((f.round() as i16, -(m as i16)));
        }
    }
    bail!("sampling rate {rate} Hz cannot be written as a SEED rate factor and multiplier")
}

/// Appends the records of one channel's contiguous samples to `out`.
/// `id` is `NET.STA.LOC.CHA` (codes of at most 2, 5, 2 and 3 ASCII characters), `start` the
/// time of the first sample (seconds since 1970, years 1900–2100). `seq` numbers the records
/// (1 for the first of a file) and is advanced.
pub fn write_channel(
    out: &mut Vec<u8>,
    id: &str,
    start: f64,
    rate: f64,
    samples: &[f32],
    seq: &mut u32,
) -> Result<()> {
    let parts: Vec<&str> = id.split('.').collect();
    let [net, sta, loc, cha] = parts[..] else {
        bail!("channel id {id:?}: expected NET.STA.LOC.CHA");
    };
    for (v, max, what) in [
        (net, 2, "network"),
        (sta, 5, "station"),
        (loc, 2, "location"),
        (cha, 3, "channel"),
    ] {
        if v.len() > max || !v.bytes().all(|c| c.is_ascii_alphanumeric()) {
            bail!("channel id {id:?}: {what} code {v:?} must be at most {max} letters or digits");
        }
    }
    if sta.is_empty() || cha.is_empty() {
        bail!("channel id {id:?}: station and channel codes are required");
    }
    let (factor, mult) = rate_factors(rate)?;
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        bail!("channel {id}: sample {i} is {}", samples[i]);
    }
    let pad = |s: &str, n: usize| format!("{s:<n$}").into_bytes();
    for (k, chunk) in samples.chunks(SAMPLES_PER_RECORD).enumerate() {
        let t = start + (k * SAMPLES_PER_RECORD) as f64 / rate;
        let c = civil(t);
        if !(1900..=2100).contains(&c.year) {
            bail!(
                "channel {id}: record time year {} is outside 1900–2100",
                c.year
            );
        }
        let mut r = Vec::with_capacity(RECLEN);
        r.extend(format!("{:06}", *seq % 1_000_000).into_bytes());
        *seq += 1;
        r.extend(b"D ");
        r.extend(pad(sta, 5));
        r.extend(pad(loc, 2));
        r.extend(pad(cha, 3));
        r.extend(pad(net, 2));
        r.extend((c.year as u16).to_be_bytes());
        r.extend((c.doy as u16).to_be_bytes());
        r.extend([c.hour as u8, c.minute as u8, c.second as u8, 0]);
        r.extend(((c.micro / 100) as u16).to_be_bytes());
        r.extend((chunk.len() as u16).to_be_bytes());
        r.extend(factor.to_be_bytes());
        r.extend(mult.to_be_bytes());
        r.extend([0, 0, 0, 2]); // activity, I/O, quality flags; 2 blockettes follow
        r.extend(0i32.to_be_bytes()); // time correction
        r.extend((DATA_OFFSET as u16).to_be_bytes());
        r.extend(48u16.to_be_bytes());
        // Blockette 1000: float32, big-endian, 2^12 bytes.
        r.extend(1000u16.to_be_bytes());
        r.extend(56u16.to_be_bytes());
        r.extend([4, 1, RECLEN_EXP, 0]);
        // Blockette 1001: microseconds beyond the 0.1 ms of the header time.
        r.extend(1001u16.to_be_bytes());
        r.extend(0u16.to_be_bytes());
        r.extend([0, (c.micro % 100) as u8, 0, 0]);
        debug_assert_eq!(r.len(), DATA_OFFSET);
        for v in chunk {
            r.extend(v.to_be_bytes());
        }
        r.resize(RECLEN, 0);
        out.extend(r);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::mseed::parse_records;

    #[test]
    fn written_records_read_back() {
        assert_eq!(rate_factors(100.0).unwrap(), (100, 1));
        assert_eq!(rate_factors(0.1).unwrap(), (-10, 1));
        assert_eq!(rate_factors(2.5).unwrap(), (5, -2));
        assert!(rate_factors(0.0).is_err());
        let start = crate::data::time::parse_iso("2024-03-01T10:00:00.123456Z").unwrap();
        let x: Vec<f32> = (0..2500).map(|i| (i as f32 * 0.1).sin()).collect();
        let mut out = Vec::new();
        let mut seq = 1;
        write_channel(&mut out, "XS.S0001.00.HHZ", start, 100.0, &x, &mut seq).unwrap();
        assert_eq!(out.len(), 3 * RECLEN);
        let (recs, skipped) = parse_records(&out, "t.mseed").unwrap();
        assert_eq!((recs.len(), skipped), (3, 0));
        assert_eq!(recs[0].id, "XS.S0001.00.HHZ");
        assert!((recs[0].start - start).abs() < 1e-6);
        assert!((recs[2].start - (start + 2.0 * SAMPLES_PER_RECORD as f64 / 100.0)).abs() < 1e-6);
        let back: Vec<f32> = recs
            .iter()
            .flat_map(|r| r.samples.iter().map(|&v| v as f32))
            .collect();
        assert_eq!(back, x);
        assert!(write_channel(&mut out, "XS.TOOLONG.00.HHZ", start, 100.0, &x, &mut seq).is_err());
        assert!(write_channel(&mut out, "XS.S1", start, 100.0, &x, &mut seq).is_err());
        assert!(
            write_channel(&mut out, "XS.S1..HHZ", start, 100.0, &[f32::NAN], &mut seq).is_err()
        );
    }
}
