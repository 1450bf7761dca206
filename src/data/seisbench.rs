//! SeisBench `WaveformDataset` folders: `metadata.csv` (one row per trace) and
//! `waveforms.hdf5` (groups `data` and `data_format`), or chunked datasets (a `chunks` file
//! naming chunks c, each with `metadata{c}.csv` and `waveforms{c}.hdf5`).
//!
//! The metadata part: CSV, splits, trace-name parsing such as `bucket0$1,:3,:1200`, pick
//! columns mapped to P or S by phase name. The waveforms are read with `data::h5` (pure Rust).

use super::dataset::{Dataset, Target};
use super::h5::H5File;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Parses CSV text (RFC 4180: quoted fields, doubled quotes, CRLF or LF) into rows.
pub fn parse_csv(text: &str, name: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c)
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                line += 1;
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if quoted {
        bail!("{name}: unterminated quoted field (started before line {line})");
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// Which phase a pick column belongs to: `trace_{phase}_arrival_sample`, classified by the
/// first P/p or S/s in the phase name (P, Pg, Pn, pP, PmP, TPg → P; S, Sg, Sn, SmS, TSg → S).
pub fn pick_column_phase(column: &str) -> Option<char> {
    let phase = column
        .strip_prefix("trace_")?
        .strip_suffix("_arrival_sample")?;
    phase
        .chars()
        .find(|c| matches!(c, 'P' | 'p' | 'S' | 's'))
        .map(|c| c.to_ascii_uppercase())
}

/// Where a trace lives in `waveforms.hdf5`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLocation {
    /// Dataset under `data/`.
    pub dataset: String,
    /// Row in a bucketed dataset (`bucket0$1,...`), `None` for one dataset per trace.
    pub row: Option<usize>,
    /// Length of each remaining axis from the `:n` slices (e.g. [3, 1200]).
    pub extents: Vec<usize>,
}

/// Parses a SeisBench trace name: `bucket0$1,:3,:1200` or a plain dataset name.
pub fn parse_trace_name(name: &str) -> Result<TraceLocation> {
    let Some((bucket, spec)) = name.split_once('$') else {
        return Ok(TraceLocation {
            dataset: name.to_string(),
            row: None,
            extents: Vec::new(),
        });
    };
    let mut parts = spec.split(',');
    let row = parts
        .next()
        .and_then(|r| r.trim().parse::<usize>().ok())
        .ok_or_else(|| anyhow::anyhow!("trace name {name:?}: expected bucket$ROW,:C,:W"))?;
    let extents = parts
        .map(|p| {
            let p = p.trim();
            let end = p
                .strip_prefix(':')
                .and_then(|e| e.parse::<usize>().ok())
                .ok_or_else(|| anyhow::anyhow!("trace name {name:?}: slice {p:?} should be :N"))?;
            Ok(end)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TraceLocation {
        dataset: bucket.to_string(),
        row: Some(row),
        extents,
    })
}

/// One row of the metadata that the loader needs.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceMeta {
    pub trace_name: String,
    /// Chunk the trace belongs to ("" when not chunked).
    pub chunk: String,
    pub split: Option<String>,
    pub sampling_rate: Option<f64>,
    /// `trace_category` (earthquake, noise, …), when the column is there and not empty.
    pub category: Option<String>,
    /// Earliest P-type and S-type pick (samples), from all pick columns.
    pub p: Option<f64>,
    pub s: Option<f64>,
}

/// The metadata of a SeisBench dataset folder (all chunks).
#[derive(Clone, Debug)]
pub struct SeisBenchMetadata {
    pub root: PathBuf,
    pub chunks: Vec<String>,
    pub traces: Vec<TraceMeta>,
}

impl SeisBenchMetadata {
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let chunks_file = root.join("chunks");
        let chunks: Vec<String> = if chunks_file.exists() {
            std::fs::read_to_string(&chunks_file)
                .with_context(|| format!("reading {}", chunks_file.display()))?
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        } else {
            vec![String::new()]
        };
        let mut traces = Vec::new();
        for c in &chunks {
            let p = root.join(format!("metadata{c}.csv"));
            let text = std::fs::read_to_string(&p).with_context(|| {
                format!("reading {} (a SeisBench folder holds metadata.csv, or a chunks file and metadata{{chunk}}.csv)", p.display())
            })?;
            traces.extend(parse_metadata(&text, c, &p.display().to_string())?);
        }
        Ok(SeisBenchMetadata {
            root,
            chunks,
            traces,
        })
    }

    /// Indices of the traces in `split` (train, dev or test).
    pub fn split(&self, split: &str) -> Vec<usize> {
        (0..self.traces.len())
            .filter(|&i| self.traces[i].split.as_deref() == Some(split))
            .collect()
    }
}

/// Parses one metadata CSV.
pub fn parse_metadata(text: &str, chunk: &str, name: &str) -> Result<Vec<TraceMeta>> {
    let rows = parse_csv(text, name)?;
    let Some((header, body)) = rows.split_first() else {
        bail!("{name}: empty metadata file");
    };
    let col = |n: &str| header.iter().position(|h| h == n);
    let Some(tn) = col("trace_name") else {
        bail!(
            "{name}: no trace_name column (columns: {})",
            header.join(", ")
        );
    };
    let split = col("split");
    let sr = col("trace_sampling_rate_hz");
    let category = col("trace_category");
    let picks: Vec<(usize, char)> = header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| pick_column_phase(h).map(|p| (i, p)))
        .collect();
    let mut out = Vec::with_capacity(body.len());
    for (r, row) in body.iter().enumerate() {
        if row.len() == 1 && row[0].is_empty() {
            continue;
        }
        if row.len() != header.len() {
            bail!(
                "{name}: line {} has {} fields, the header {}",
                r + 2,
                row.len(),
                header.len()
            );
        }
        let num = |i: usize| -> Result<Option<f64>> {
            let v = row[i].trim();
            if v.is_empty() || v.eq_ignore_ascii_case("nan") {
                return Ok(None);
            }
            v.parse::<f64>().map(Some).map_err(|_| {
                anyhow::anyhow!(
                    "{name}: line {}, column {}: {v:?} is not a number",
                    r + 2,
                    header[i]
                )
            })
        };
        let (mut p, mut s) = (None::<f64>, None::<f64>);
        for &(i, phase) in &picks {
            if let Some(v) = num(i)? {
                let slot = if phase == 'P' { &mut p } else { &mut s };
                *slot = Some(slot.map_or(v, |o| o.min(v)));
            }
        }
        out.push(TraceMeta {
            trace_name: row[tn].clone(),
            chunk: chunk.to_string(),
            split: split.map(|i| row[i].clone()),
            sampling_rate: match sr {
                Some(i) => num(i)?,
                None => None,
            },
            category: category
                .map(|i| row[i].trim().to_string())
                .filter(|c| !c.is_empty()),
            p,
            s,
        });
    }
    Ok(out)
}

/// Traces of a SeisBench folder as a `Dataset` of `[3, samples]` windows (components in Z, N,
/// E order as far as the file's `component_order` has them; traces shorter than `samples` are
/// zero-padded, longer ones cut), with their P/S picks. Each sample reads only its own trace
/// (one row of a bucket), converted to f32 from any float or integer type.
pub struct SeisBenchDataset {
    pub meta: SeisBenchMetadata,
    indices: Vec<usize>,
    files: Vec<H5File>,
    /// Per chunk: the source component of Z, N, E, and whether samples come first (WC).
    formats: Vec<([usize; 3], bool)>,
    samples: usize,
}

/// Where Z, N and E are in `order` (1 and 2 stand for N and E, as in SeisBench).
fn component_map(order: &str, file: &Path) -> Result<[usize; 3]> {
    let mut map = [0usize; 3];
    for (k, want) in ['Z', 'N', 'E'].into_iter().enumerate() {
        map[k] = order
            .chars()
            .position(|c| c == want || (want == 'N' && c == '1') || (want == 'E' && c == '2'))
            .ok_or_else(|| {
                anyhow::anyhow!("{}: component order {order:?} lacks {want}", file.display())
            })?;
    }
    Ok(map)
}

impl SeisBenchDataset {
    /// Opens the folder; `split` selects train/dev/test (all traces when `None`).
    pub fn open(root: impl AsRef<Path>, split: Option<&str>, samples: usize) -> Result<Self> {
        if samples == 0 {
            bail!("SeisBench windows of 0 samples asked for");
        }
        let meta = SeisBenchMetadata::open(root)?;
        let mut files = Vec::new();
        let mut formats = Vec::new();
        for c in &meta.chunks {
            let p = meta.root.join(format!("waveforms{c}.hdf5"));
            let f = H5File::open(&p)?;
            let order = f
                .string("data_format/component_order")?
                .unwrap_or_else(|| "ZNE".into());
            let dims = f
                .string("data_format/dimension_order")?
                .unwrap_or_else(|| "CW".into());
            let map = component_map(&order, &p)?;
            let wc = match dims.as_str() {
                "CW" | "NCW" => false,
                "WC" | "NWC" => true,
                d => bail!(
                    "{}: dimension_order {d:?} is not supported (CW or WC)",
                    p.display()
                ),
            };
            files.push(f);
            formats.push((map, wc));
        }
        let indices = match split {
            Some(s) => meta.split(s),
            None => (0..meta.traces.len()).collect(),
        };
        Ok(SeisBenchDataset {
            meta,
            indices,
            files,
            formats,
            samples,
        })
    }

    /// The metadata row of sample `index` of the selection.
    pub fn trace(&self, index: usize) -> Option<&TraceMeta> {
        self.indices.get(index).map(|&t| &self.meta.traces[t])
    }

    /// `trace_category` of sample `index` (SeisBench: "earthquake", "noise", …), when the
    /// metadata has that column and the row a value.
    pub fn category(&self, index: usize) -> Option<&str> {
        self.trace(index)?.category.as_deref()
    }
}

impl Dataset for SeisBenchDataset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![3, self.samples]
    }
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<Target> {
        let Some(&t) = self.indices.get(index) else {
            bail!(
                "trace {index} asked for but the selection holds {}",
                self.indices.len()
            );
        };
        if input.len() != 3 * self.samples {
            bail!(
                "buffer of {} elements for windows of 3×{}",
                input.len(),
                self.samples
            );
        }
        let m = &self.meta.traces[t];
        let ci = self
            .meta
            .chunks
            .iter()
            .position(|c| *c == m.chunk)
            .unwrap_or(0);
        let f = &self.files[ci];
        let (map, wc) = &self.formats[ci];
        let file = f.path().display();
        let loc = parse_trace_name(&m.trace_name)?;
        let ds = f.dataset(&format!("data/{}", loc.dataset))?;
        // The trace's own [a, b] block: one row of a bucket, or the whole dataset.
        let (block, dims) = match loc.row {
            Some(r) => {
                if ds.shape.len() != 3 {
                    bail!(
                        "{file}: trace {}: data/{} has shape {:?}, a bucket of traces is 3-D",
                        m.trace_name,
                        loc.dataset,
                        ds.shape
                    );
                }
                f.read_f32(&ds, Some(r))
                    .with_context(|| format!("trace {}", m.trace_name))?
            }
            None => f.read_f32(&ds, None)?,
        };
        if dims.len() != 2 {
            bail!(
                "{file}: trace {}: expected 2-D trace data, found {dims:?}",
                m.trace_name
            );
        }
        let (nc, nw) = if *wc {
            (dims[1], dims[0])
        } else {
            (dims[0], dims[1])
        };
        let used_w = loc
            .extents
            .get(if *wc { 0 } else { 1 })
            .copied()
            .unwrap_or(nw)
            .min(nw);
        input.iter_mut().for_each(|v| *v = 0.0);
        for (out_c, &src_c) in map.iter().enumerate() {
            if src_c >= nc {
                bail!("{file}: trace {}: component {src_c} of {nc}", m.trace_name);
            }
            for w in 0..used_w.min(self.samples) {
                let v = if *wc {
                    block[w * nc + src_c]
                } else {
                    block[src_c * nw + w]
                };
                if !v.is_finite() {
                    bail!(
                        "{file}: trace {}: sample {w} of component {src_c} is {v}",
                        m.trace_name
                    );
                }
                input[out_c * self.samples + w] = v;
            }
        }
        Ok(Target::Picks {
            p: m.p.map(|v| v as f32),
            s: m.s.map(|v| v as f32),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_phases() {
        let rows = parse_csv("a,b,c\n1,\"x, \"\"y\"\"\",3\r\n4,,6", "t").unwrap();
        assert_eq!(rows[1], vec!["1", "x, \"y\"", "3"]);
        assert_eq!(rows[2], vec!["4", "", "6"]);
        assert!(parse_csv("a,\"b", "t").is_err());
        assert_eq!(pick_column_phase("trace_Pg_arrival_sample"), Some('P'));
        assert_eq!(pick_column_phase("trace_pP_arrival_sample"), Some('P'));
        assert_eq!(pick_column_phase("trace_TSg_arrival_sample"), Some('S'));
        assert_eq!(pick_column_phase("trace_SmS_arrival_sample"), Some('S'));
        assert_eq!(pick_column_phase("trace_snr_db"), None);
        let l = parse_trace_name("bucket0$1,:3,:1200").unwrap();
        assert_eq!(
            (l.dataset.as_str(), l.row, l.extents),
            ("bucket0", Some(1), vec![3, 1200])
        );
        assert_eq!(parse_trace_name("abc").unwrap().row, None);
        assert!(parse_trace_name("b$x,:3").is_err());
    }

    #[test]
    fn metadata_maps_picks_by_phase() {
        let text = "trace_name,split,trace_sampling_rate_hz,trace_Pg_arrival_sample,trace_Pn_arrival_sample,trace_Sg_arrival_sample\n\
                    bucket0$0,:3,:100,train,100,50,40,\n\
                    bucket0$1,:3,:100,dev,100,,,70.5\n";
        // trace_name holds commas, so SeisBench quotes it.
        let text = text
            .replace("bucket0$0,:3,:100", "\"bucket0$0,:3,:100\"")
            .replace("bucket0$1,:3,:100", "\"bucket0$1,:3,:100\"");
        let m = parse_metadata(&text, "", "m.csv").unwrap();
        assert_eq!(m[0].p, Some(40.0));
        assert_eq!(m[0].s, None);
        assert_eq!(m[1].s, Some(70.5));
        assert_eq!(m[1].split.as_deref(), Some("dev"));
        let e = parse_metadata("trace_name,x\na,1,2\n", "", "m.csv").unwrap_err();
        assert!(e.to_string().contains("line 2"));
        let e = parse_metadata("name\na\n", "", "m.csv").unwrap_err();
        assert!(e.to_string().contains("no trace_name"));
    }
}
