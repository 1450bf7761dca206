//! The pick catalog of `seisfuse dataset build`: a CSV with a header and one pick per row.
//!
//! Columns (any order; others are ignored): `event_id`, `network`, `station`, `location`
//! (optional; empty for none), `phase` (P, Pg, Pn, S, Sg, …: the first P or S letter decides;
//! other phases are ignored and counted), `time` (ISO-8601 UTC, e.g.
//! `2024-01-01T00:12:34.560000Z`).

use crate::data::seisbench::parse_csv;
use crate::data::time::parse_iso;
use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// The station a pick was made at.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StationKey {
    pub network: String,
    pub station: String,
    pub location: String,
}

impl std::fmt::Display for StationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.network, self.station, self.location)
    }
}

/// The P and S picks of one event at one station (earliest of each kind).
#[derive(Clone, Debug, PartialEq)]
pub struct Arrival {
    pub event: String,
    pub station: StationKey,
    pub p: Option<f64>,
    pub s: Option<f64>,
}

/// A parsed catalog.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Sorted by station, then P time.
    pub arrivals: Vec<Arrival>,
    /// Rows whose phase is neither P- nor S-type.
    pub other_phases: usize,
}

impl Catalog {
    /// Every pick time at `station` (any event, either phase), sorted.
    pub fn pick_times(&self) -> BTreeMap<StationKey, Vec<f64>> {
        let mut m: BTreeMap<StationKey, Vec<f64>> = BTreeMap::new();
        for a in &self.arrivals {
            let v = m.entry(a.station.clone()).or_default();
            v.extend(a.p);
            v.extend(a.s);
        }
        for v in m.values_mut() {
            v.sort_by(f64::total_cmp);
        }
        m
    }

    /// The events, sorted.
    pub fn events(&self) -> Vec<String> {
        let mut v: Vec<String> = self.arrivals.iter().map(|a| a.event.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// P or S by the first P/S letter of a phase name.
pub fn phase_kind(phase: &str) -> Option<char> {
    phase
        .chars()
        .find(|c| matches!(c, 'P' | 'p' | 'S' | 's'))
        .map(|c| c.to_ascii_uppercase())
}

/// Parses catalog `text`; `name` (the file) is named in every error, with the line.
pub fn parse_catalog(text: &str, name: &str) -> Result<Catalog> {
    let rows = parse_csv(text, name)?;
    let Some((header, body)) = rows.split_first() else {
        bail!(
            "{name}: empty catalog; expected a header event_id,network,station,location,phase,time"
        );
    };
    let header: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let col = |c: &str| header.iter().position(|h| h == c);
    let need = |c: &str| {
        col(c).ok_or_else(|| {
            anyhow::anyhow!(
                "{name}: no {c} column (columns: {}); a catalog has event_id,network,station,location,phase,time",
                header.join(", ")
            )
        })
    };
    let (ev, net, sta, ph, tm) = (
        need("event_id")?,
        need("network")?,
        need("station")?,
        need("phase")?,
        need("time")?,
    );
    let loc = col("location");
    let mut groups: BTreeMap<(StationKey, String), (Option<f64>, Option<f64>)> = BTreeMap::new();
    let mut other = 0;
    for (r, row) in body.iter().enumerate() {
        let line = r + 2;
        if row.len() == 1 && row[0].trim().is_empty() {
            continue;
        }
        if row.len() != header.len() {
            bail!(
                "{name}: line {line} has {} fields, the header {}",
                row.len(),
                header.len()
            );
        }
        let field = |i: usize| row[i].trim();
        for (i, what) in [(ev, "event_id"), (net, "network"), (sta, "station")] {
            if field(i).is_empty() {
                bail!("{name}: line {line}: empty {what}");
            }
        }
        let code_ok =
            |s: &str, max: usize| s.len() <= max && s.bytes().all(|c| c.is_ascii_alphanumeric());
        let location = loc.map(field).unwrap_or("");
        let location = if location == "--" { "" } else { location };
        if !code_ok(field(net), 2) || !code_ok(field(sta), 5) || !code_ok(location, 2) {
            bail!(
                "{name}: line {line}: {}.{}.{location} is not a SEED station (network ≤ 2, station ≤ 5, location ≤ 2 letters or digits)",
                field(net),
                field(sta)
            );
        }
        let time =
            parse_iso(field(tm)).map_err(|e| anyhow::anyhow!("{name}: line {line}: time: {e}"))?;
        let Some(kind) = phase_kind(field(ph)) else {
            other += 1;
            continue;
        };
        let key = StationKey {
            network: field(net).to_string(),
            station: field(sta).to_string(),
            location: location.to_string(),
        };
        let slot = groups.entry((key, field(ev).to_string())).or_default();
        let t = if kind == 'P' {
            &mut slot.0
        } else {
            &mut slot.1
        };
        *t = Some(t.map_or(time, |o| o.min(time)));
    }
    let mut arrivals: Vec<Arrival> = groups
        .into_iter()
        .map(|((station, event), (p, s))| Arrival {
            event,
            station,
            p,
            s,
        })
        .collect();
    arrivals.sort_by(|a, b| {
        a.station
            .cmp(&b.station)
            .then(
                a.p.unwrap_or(f64::INFINITY)
                    .total_cmp(&b.p.unwrap_or(f64::INFINITY)),
            )
            .then(a.event.cmp(&b.event))
    });
    Ok(Catalog {
        arrivals,
        other_phases: other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_picks_and_names_bad_lines() {
        let text = "event_id,network,station,location,phase,time,extra\n\
                    e1,XS,S1,00,Pg,2024-01-01T00:00:10Z,x\n\
                    e1,XS,S1,00,Pn,2024-01-01T00:00:09.5Z,\n\
                    e1,XS,S1,00,Sg,2024-01-01T00:00:15Z,\n\
                    e1,XS,S1,00,Lg,2024-01-01T00:00:20Z,\n\
                    e2,XS,S2,,S,2024-01-01T00:01:00Z,\n";
        let c = parse_catalog(text, "cat.csv").unwrap();
        assert_eq!(c.arrivals.len(), 2);
        assert_eq!(c.other_phases, 1);
        let a = &c.arrivals[0];
        assert_eq!(
            (a.event.as_str(), a.station.to_string()),
            ("e1", "XS.S1.00".into())
        );
        assert_eq!(a.p, Some(1_704_067_209.5));
        assert_eq!(a.s, Some(1_704_067_215.0));
        assert_eq!(c.arrivals[1].p, None);
        assert_eq!(c.events(), vec!["e1", "e2"]);
        for (bad, want) in [
            ("event_id,network\n", "no station column"),
            ("", "empty catalog"),
            (
                "event_id,network,station,phase,time\ne,XS,S1,P\n",
                "line 2 has 4 fields",
            ),
            (
                "event_id,network,station,phase,time\ne,XS,S1,P,tomorrow\n",
                "line 2: time",
            ),
            (
                "event_id,network,station,phase,time\n,XS,S1,P,2024-01-01T00:00:00Z\n",
                "empty event_id",
            ),
            (
                "event_id,network,station,phase,time\ne,XS,STATION9,P,2024-01-01T00:00:00Z\n",
                "not a SEED station",
            ),
        ] {
            let e = parse_catalog(bad, "cat.csv").unwrap_err().to_string();
            assert!(e.contains("cat.csv") && e.contains(want), "{e}");
        }
    }
}
