//! UTC times as seconds since 1970-01-01 (f64: microsecond resolution for centuries around
//! now): ISO-8601 formatting and parsing, and the (year, day of year) of miniSEED headers.

use crate::data::time::{civil_from_days, days_from_civil};
use anyhow::{bail, Result};

/// Splits `t` into whole microseconds since 1970 (rounded).
fn micros(t: f64) -> i64 {
    (t * 1e6).round() as i64
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds).
pub fn iso(t: f64) -> String {
    if !t.is_finite() {
        return format!("{t}");
    }
    let us = micros(t);
    let (secs, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Broken-down time for a miniSEED BTIME: (year, day of year, hour, minute, second,
/// 1/10000 s) and the remaining microseconds in −50..=49.
pub fn btime(t: f64) -> ((u16, u16, u8, u8, u8, u16), i8) {
    let us = micros(t);
    // Nearest 100 µs, with the rest (−50..=49 µs) for blockette 1001.
    let tenths = (us + 50).div_euclid(100);
    let rest = (us - tenths * 100) as i8;
    let (secs, frac) = (tenths.div_euclid(10_000), tenths.rem_euclid(10_000));
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, _, _) = civil_from_days(days);
    let doy = days - days_from_civil(y, 1, 1) + 1;
    (
        (
            y as u16,
            doy as u16,
            (rem / 3600) as u8,
            (rem / 60 % 60) as u8,
            (rem % 60) as u8,
            frac as u16,
        ),
        rest,
    )
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.f…]]` with an optional `Z` (UTC; a space may
/// replace the `T`).
pub fn parse_iso(s: &str) -> Result<f64> {
    let bad = || {
        anyhow::anyhow!(
            "'{s}' is not a UTC time; write it as 2024-05-01T12:30:00Z (ISO 8601, seconds and \
             fraction optional)"
        )
    };
    let t = s.trim().trim_end_matches(['Z', 'z']);
    let (date, clock) = match t.split_once(['T', 't', ' ']) {
        Some((d, c)) => (d, Some(c)),
        None => (t, None),
    };
    let dp: Vec<&str> = date.split('-').collect();
    if dp.len() != 3 || dp[0].len() != 4 {
        return Err(bad());
    }
    let num = |x: &str| -> Result<i64> {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        x.parse::<i64>().map_err(|_| bad())
    };
    let (y, m, d) = (num(dp[0])?, num(dp[1])?, num(dp[2])?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m as u32) as i64 {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) as f64 * 86400.0;
    if let Some(c) = clock {
        let cp: Vec<&str> = c.split(':').collect();
        if !(2..=3).contains(&cp.len()) {
            return Err(bad());
        }
        let (h, mi) = (num(cp[0])?, num(cp[1])?);
        let sec = match cp.get(2) {
            Some(x) => {
                let (whole, frac) = x.split_once('.').unwrap_or((x, ""));
                let w = num(whole)? as f64;
                let f = if frac.is_empty() {
                    0.0
                } else {
                    num(frac)? as f64 / 10f64.powi(frac.len().min(15) as i32)
                };
                if frac.len() > 15 {
                    return Err(bad());
                }
                w + f
            }
            None => 0.0,
        };
        if h > 23 || mi > 59 || sec >= 61.0 {
            return Err(bad());
        }
        secs += h as f64 * 3600.0 + mi as f64 * 60.0 + sec;
    }
    if !(1900..=2200).contains(&y) {
        bail!("'{s}': the year must be between 1900 and 2200");
    }
    Ok(secs)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(iso(0.0), "1970-01-01T00:00:00.000000Z");
        let t = 19782.0 * 86400.0 + 3723.25; // 2024-02-29
        assert_eq!(iso(t), "2024-02-29T01:02:03.250000Z");
        assert_eq!(iso(-0.5), "1969-12-31T23:59:59.500000Z");
        assert_eq!(parse_iso("2024-02-29T01:02:03.25Z").unwrap(), t);
        assert_eq!(parse_iso("2024-02-29 01:02:03.25").unwrap(), t);
        assert_eq!(parse_iso("1970-01-01").unwrap(), 0.0);
        assert_eq!(parse_iso("1970-01-01T00:01").unwrap(), 60.0);
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "x",
            "2024-01-01T25:00",
            "24-01-01",
            "",
        ] {
            assert!(parse_iso(bad).is_err(), "{bad}");
        }
        for d in [-800_000i64, -1, 0, 59, 10_000, 19782, 60_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn btime_fields() {
        // 2024-02-29 (day 60) 01:02:03.123456
        let t = 19782.0 * 86400.0 + 3723.123456;
        let ((y, doy, h, m, s, f), us) = btime(t);
        assert_eq!((y, doy, h, m, s, f, us), (2024, 60, 1, 2, 3, 1235, -44));
        let ((_, _, _, _, s, f), us) = btime(59.99996);
        assert_eq!((s, f, us), (0, 0, -40)); // rounds up to the next minute
    }
}
