//! UTC times as f64 seconds since 1970-01-01: ISO-8601 parsing and formatting, and the
//! calendar fields miniSEED headers need.

use anyhow::{bail, Result};

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Calendar fields of a time, to the microsecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    /// Day of the year, 1-based.
    pub doy: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub micro: i64,
}

/// The calendar fields of `t` (rounded to the microsecond).
pub fn civil(t: f64) -> Civil {
    let us = (t * 1e6).round() as i64;
    let secs = us.div_euclid(1_000_000);
    let micro = us.rem_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        doy: days - days_from_civil(year, 1, 1) + 1,
        hour: rem / 3600,
        minute: rem / 60 % 60,
        second: rem % 60,
        micro,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn format_iso(t: f64) -> String {
    let c = civil(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.micro
    )
}

/// Parses an ISO-8601 UTC time: `YYYY-MM-DDTHH:MM:SS[.fff…][Z|+00:00]` (a space for the `T`
/// accepted; an offset other than zero is applied). Years 1900–2100.
pub fn parse_iso(s: &str) -> Result<f64> {
    let bad =
        || anyhow::anyhow!("{s:?} is not an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SS[.ffffff][Z])");
    let t = s.trim();
    let b = t.as_bytes();
    if !t.is_ascii()
        || b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64> {
        let p = &t[r];
        if !p.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse::<i64>().map_err(|_| bad())
    };
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = &t[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return Err(bad());
        }
        frac = format!("0.{}", &r[..n]).parse::<f64>().map_err(|_| bad())?;
        rest = &r[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        o if (o.len() == 6 && o.as_bytes()[3] == b':') || o.len() == 5 => {
            let sign = match o.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let hh: i64 = digits[..2].parse().map_err(|_| bad())?;
            let mm: i64 = digits[2..].parse().map_err(|_| bad())?;
            sign * (hh * 3600 + mm * 60)
        }
        _ => return Err(bad()),
    };
    let dim = [
        31,
        28 + i64::from(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1900..=2100).contains(&y)
        || !(1..=12).contains(&mo)
        || d < 1
        || d > dim[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || sec > 60
    {
        bail!("{s:?}: date or time out of range (years 1900–2100)");
    }
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    Ok(secs as f64 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29), 19782);
        assert_eq!(civil_from_days(19782), (2024, 2, 29));
        let t = parse_iso("2024-02-29T01:02:03.25Z").unwrap();
        assert_eq!(t, 19782.0 * 86400.0 + 3723.25);
        assert_eq!(format_iso(t), "2024-02-29T01:02:03.250000Z");
        assert_eq!(civil(t).doy, 60);
        assert_eq!(parse_iso("2024-02-29 01:02:03").unwrap(), t - 0.25);
        assert_eq!(parse_iso("2024-02-29T02:02:03.25+01:00").unwrap(), t);
        for bad in [
            "",
            "2024-02-30T00:00:00",
            "2023-02-29T00:00:00",
            "2024-13-01T00:00:00",
            "1800-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+5",
            "2024-01-01",
            "yesterday",
            "2024-01-01T00:00:00.1234567890Z",
            "２０２４-01-01T00:00:00",
            "2024-01-01T00:00:0é",
        ] {
            assert!(parse_iso(bad).is_err(), "{bad}");
        }
    }
}
