//! Slurm's compressed host lists: `node[01-03,7],gpu-a[1-2]-ib`, `r[1-2]n[01-02]`.
//!
//! A list is a comma-separated sequence of host patterns (commas inside brackets belong to the
//! bracket). A pattern is text with zero or more bracket groups; a group is a comma-separated
//! list of numbers and ranges `lo-hi`. The width of `lo` sets the zero padding (`[08-11]` →
//! `08 09 10 11`). Several groups in one pattern expand as a product, the leftmost varying
//! slowest (`r[1-2]n[1-2]` → `r1n1 r1n2 r2n1 r2n2`), as `scontrol show hostnames` prints them.

use anyhow::{bail, Result};

/// At most this many hosts are expanded (a guard against `node[0-999999999]`).
pub const MAX_HOSTS: usize = 1 << 20;

/// One piece of a host pattern: literal text or the values of a bracket group.
#[derive(Debug)]
enum Piece {
    Text(String),
    Group(Vec<Range>),
}

#[derive(Debug, Clone)]
struct Range {
    lo: u64,
    hi: u64,
    width: usize,
}

impl Range {
    fn len(&self) -> u64 {
        self.hi - self.lo + 1
    }
    fn nth(&self, i: u64) -> String {
        format!("{:0width$}", self.lo + i, width = self.width)
    }
}

/// Expands a Slurm host list into host names, in Slurm's order.
pub fn expand(list: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for pattern in split_top_level(list)? {
        let pieces = parse_pattern(pattern, list)?;
        let count = pieces.iter().try_fold(1u64, |acc, p| match p {
            Piece::Text(_) => Some(acc),
            Piece::Group(rs) => acc.checked_mul(rs.iter().map(Range::len).sum()),
        });
        match count {
            Some(c) if (out.len() as u64).saturating_add(c) <= MAX_HOSTS as u64 => {}
            _ => bail!(
                "host list '{}' expands to more than {MAX_HOSTS} hosts; is it a Slurm node list?",
                shorten(list)
            ),
        }
        let mut names = vec![String::new()];
        for p in &pieces {
            names = match p {
                Piece::Text(t) => names.into_iter().map(|n| n + t).collect(),
                Piece::Group(rs) => names
                    .into_iter()
                    .flat_map(|n| {
                        rs.iter()
                            .flat_map(|r| (0..r.len()).map(|i| r.nth(i)))
                            .map(move |v| format!("{n}{v}"))
                    })
                    .collect(),
            };
        }
        out.extend(names);
    }
    if out.is_empty() {
        bail!("host list '{}' names no host", shorten(list));
    }
    Ok(out)
}

/// The first host of a Slurm host list, without expanding the rest.
pub fn first_host(list: &str) -> Result<String> {
    let Some(pattern) = split_top_level(list)?.into_iter().next() else {
        bail!("host list '{}' names no host", shorten(list));
    };
    let mut host = String::new();
    for p in parse_pattern(pattern, list)? {
        match p {
            Piece::Text(t) => host.push_str(&t),
            Piece::Group(rs) => host.push_str(&rs[0].nth(0)),
        }
    }
    Ok(host)
}

/// Splits at the commas outside brackets; empty entries (`a,,b`, a trailing comma) are skipped.
fn split_top_level(list: &str) -> Result<Vec<&str>> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, c) in list.char_indices() {
        match c {
            '[' => {
                if depth > 0 {
                    bail!(
                        "host list '{}': nested '[' at byte {i} (Slurm's groups do not nest)",
                        shorten(list)
                    );
                }
                depth += 1;
            }
            ']' => {
                if depth == 0 {
                    bail!(
                        "host list '{}': ']' at byte {i} closes no '['",
                        shorten(list)
                    );
                }
                depth -= 1;
            }
            ',' if depth == 0 => {
                out.push(list[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        bail!("host list '{}': a '[' is not closed", shorten(list));
    }
    out.push(list[start..].trim());
    out.retain(|p| !p.is_empty());
    Ok(out)
}

fn parse_pattern(pattern: &str, list: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('[') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        // split_top_level checked that every '[' has its ']'.
        let close = open + rest[open..].find(']').unwrap_or(rest.len() - open);
        let body = &rest[open + 1..close];
        pieces.push(Piece::Group(parse_group(body, list)?));
        rest = &rest[(close + 1).min(rest.len())..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    if pieces.is_empty() {
        bail!("host list '{}' has an empty host name", shorten(list));
    }
    Ok(pieces)
}

fn parse_group(body: &str, list: &str) -> Result<Vec<Range>> {
    let mut ranges = Vec::new();
    for item in body.split(',') {
        let item = item.trim();
        if item.is_empty() {
            bail!(
                "host list '{}': empty entry in the group [{body}]",
                shorten(list)
            );
        }
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (item, item),
        };
        let num = |s: &str| -> Result<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 18 {
                bail!(
                    "host list '{}': '{item}' in [{body}] is not a number or a range lo-hi",
                    shorten(list)
                );
            }
            Ok(s.parse()?)
        };
        let (l, h) = (num(lo)?, num(hi)?);
        if h < l {
            bail!(
                "host list '{}': the range '{item}' in [{body}] runs backwards",
                shorten(list)
            );
        }
        ranges.push(Range {
            lo: l,
            hi: h,
            width: lo.len(),
        });
    }
    Ok(ranges)
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Vec<String> {
        expand(s).unwrap_or_else(|e| panic!("{s}: {e:#}"))
    }

    #[test]
    fn table() {
        let cases: &[(&str, &[&str])] = &[
            ("node1", &["node1"]),
            ("a,b , c", &["a", "b", "c"]),
            ("node[1-3]", &["node1", "node2", "node3"]),
            ("node[01-03,7]", &["node01", "node02", "node03", "node7"]),
            ("node[08-11]", &["node08", "node09", "node10", "node11"]),
            ("n[8-11]", &["n8", "n9", "n10", "n11"]),
            ("n[098-101]", &["n098", "n099", "n100", "n101"]),
            ("gpu-a[1-2]-ib", &["gpu-a1-ib", "gpu-a2-ib"]),
            (
                "node[01-03,7],gpu-a[1-2]-ib",
                &[
                    "node01",
                    "node02",
                    "node03",
                    "node7",
                    "gpu-a1-ib",
                    "gpu-a2-ib",
                ],
            ),
            ("r[1-2]n[01-02]", &["r1n01", "r1n02", "r2n01", "r2n02"]),
            ("[1-2]x", &["1x", "2x"]),
            ("host[5],other", &["host5", "other"]),
            ("a,,b,", &["a", "b"]),
            ("c[1,3-4]-[5]", &["c1-5", "c3-5", "c4-5"]),
        ];
        for (input, want) in cases {
            assert_eq!(ex(input), *want, "{input}");
            assert_eq!(first_host(input).unwrap(), want[0], "first of {input}");
        }
    }

    #[test]
    fn errors_are_clear() {
        for (input, needle) in [
            ("node[1-3", "not closed"),
            ("node1-3]", "closes no"),
            ("node[3-1]", "backwards"),
            ("node[a-b]", "not a number"),
            ("node[1,,2]", "empty entry"),
            ("node[[1]]", "nested"),
            ("c[1]-[a]", "not a number"),
            ("", "no host"),
            (" , ", "no host"),
            ("n[0-99999999999]", "more than"),
            ("n[0-1023]m[0-1023]x[0-1]", "more than"),
        ] {
            let e = format!("{:#}", expand(input).unwrap_err());
            assert!(e.contains(needle), "{input}: {e}");
        }
        assert!(first_host("").is_err());
    }

    /// Compressing a random set of numbered hosts the way Slurm does and expanding it gives
    /// the hosts back (a property test over generated lists, with a fixed seed).
    #[test]
    fn roundtrip_of_generated_lists() {
        let mut rng = crate::data::synth::Rng::new(14);
        for _ in 0..300 {
            let width = 1 + rng.below(3);
            let prefix = ["node", "gpu-", "r1n", "x"][rng.below(4)];
            let suffix = ["", "-ib", "a"][rng.below(3)];
            let mut nums: Vec<usize> = (0..1 + rng.below(12))
                .map(|_| rng.below(10usize.pow(width as u32)))
                .collect();
            nums.sort();
            nums.dedup();
            // Slurm's compression: runs of consecutive numbers become lo-hi.
            let items: Vec<String> = crate::dist::rendezvous::runs(&nums)
                .into_iter()
                .map(|(lo, hi)| {
                    if lo == hi {
                        format!("{lo:0width$}")
                    } else {
                        format!("{lo:0width$}-{hi:0width$}")
                    }
                })
                .collect();
            let list = format!("{prefix}[{}]{suffix},login", items.join(","));
            let mut want: Vec<String> = nums
                .iter()
                .map(|n| format!("{prefix}{n:0width$}{suffix}"))
                .collect();
            want.push("login".into());
            assert_eq!(ex(&list), want, "{list}");
            assert_eq!(first_host(&list).unwrap(), want[0]);
        }
    }
}
