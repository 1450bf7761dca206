//! SEG-Y (revisions 0, 1 and 2), memory-mapped: the 3200-byte textual header (EBCDIC or
//! ASCII), the 400-byte binary header, optional extended textual headers, and fixed-length
//! traces of 240-byte headers plus samples in IBM float, IEEE float (32/64 bit) or integers
//! (8/16/32 bit). Big-endian as the standard says; little-endian files of revision 2 are
//! recognised by the byte-order constant at bytes 3297–3300.
//!
//! Selected trace-header fields are read (inline, crossline, offset, CDP and source/receiver
//! coordinates with their scalar). A 2-D file is one section `[samples, traces]`; a 3-D file
//! whose (inline, crossline) pairs fill a grid is a cube, sorted by inline then crossline,
//! and its inline/crossline sections are images with time down the rows.

use super::npy::check_finite;
use super::{be_or_le16, be_or_le32};
use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use std::io::Write;
use std::path::{Path, PathBuf};

const TEXT_LEN: usize = 3200;
const BIN_LEN: usize = 400;
const TRACE_HEADER: usize = 240;

/// Sample encodings (binary header bytes 3225–3226).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    Ibm32,
    Int32,
    Int16,
    Ieee32,
    Ieee64,
    Int8,
}

impl SampleFormat {
    pub fn from_code(c: u16) -> Option<Self> {
        Some(match c {
            1 => SampleFormat::Ibm32,
            2 => SampleFormat::Int32,
            3 => SampleFormat::Int16,
            5 => SampleFormat::Ieee32,
            6 => SampleFormat::Ieee64,
            8 => SampleFormat::Int8,
            _ => return None,
        })
    }
    pub fn code(self) -> u16 {
        match self {
            SampleFormat::Ibm32 => 1,
            SampleFormat::Int32 => 2,
            SampleFormat::Int16 => 3,
            SampleFormat::Ieee32 => 5,
            SampleFormat::Ieee64 => 6,
            SampleFormat::Int8 => 8,
        }
    }
    pub fn size(self) -> usize {
        match self {
            SampleFormat::Ibm32 | SampleFormat::Int32 | SampleFormat::Ieee32 => 4,
            SampleFormat::Int16 => 2,
            SampleFormat::Ieee64 => 8,
            SampleFormat::Int8 => 1,
        }
    }
}

/// IBM System/360 single precision to f32: sign, base-16 exponent biased by 64, 24-bit fraction.
pub fn ibm_to_f32(bits: u32) -> f32 {
    let sign = if bits >> 31 == 1 { -1.0 } else { 1.0 };
    let exp = ((bits >> 24) & 0x7f) as i32 - 64;
    let frac = (bits & 0x00ff_ffff) as f64 / 16_777_216.0;
    (sign * frac * 16f64.powi(exp)) as f32
}

/// f32 to IBM single precision (rounded to nearest; out-of-range values saturate).
pub fn f32_to_ibm(v: f32) -> u32 {
    if v == 0.0 || !v.is_finite() {
        return 0;
    }
    let sign = if v < 0.0 { 1u32 << 31 } else { 0 };
    let m = (v as f64).abs();
    let mut e = (m.log2() / 4.0).floor() as i32 + 1;
    let mut frac = m / 16f64.powi(e);
    // Guard against log rounding: frac must be in [1/16, 1).
    while frac >= 1.0 {
        e += 1;
        frac /= 16.0;
    }
    while frac < 1.0 / 16.0 {
        e -= 1;
        frac *= 16.0;
    }
    let mut mant = (frac * 16_777_216.0).round() as u32;
    if mant >= 1 << 24 {
        mant >>= 4;
        e += 1;
    }
    if e + 64 > 127 {
        return sign | 0x7fff_ffff;
    }
    if e + 64 < 0 {
        return 0;
    }
    sign | (((e + 64) as u32) << 24) | mant
}

/// EBCDIC (code page 037) to ASCII for the printable characters a textual header uses;
/// anything else becomes a space.
pub fn ebcdic_to_ascii(b: u8) -> u8 {
    match b {
        0x40 => b' ',
        0x4b => b'.',
        0x4c => b'<',
        0x4d => b'(',
        0x4e => b'+',
        0x4f => b'|',
        0x50 => b'&',
        0x5a => b'!',
        0x5b => b'$',
        0x5c => b'*',
        0x5d => b')',
        0x5e => b';',
        0x60 => b'-',
        0x61 => b'/',
        0x6b => b',',
        0x6c => b'%',
        0x6d => b'_',
        0x6e => b'>',
        0x6f => b'?',
        0x7a => b':',
        0x7b => b'#',
        0x7c => b'@',
        0x7d => b'\'',
        0x7e => b'=',
        0x7f => b'"',
        0x81..=0x89 => b'a' + (b - 0x81),
        0x91..=0x99 => b'j' + (b - 0x91),
        0xa2..=0xa9 => b's' + (b - 0xa2),
        0xc1..=0xc9 => b'A' + (b - 0xc1),
        0xd1..=0xd9 => b'J' + (b - 0xd1),
        0xe2..=0xe9 => b'S' + (b - 0xe2),
        0xf0..=0xf9 => b'0' + (b - 0xf0),
        _ => b' ',
    }
}

/// ASCII to EBCDIC (the inverse of `ebcdic_to_ascii` on its characters; others → space).
pub fn ascii_to_ebcdic(a: u8) -> u8 {
    (0u8..=255)
        .find(|&e| e != 0x40 && ebcdic_to_ascii(e) == a)
        .unwrap_or(0x40)
}

/// Byte positions (1-based, as in the standard and segyio) of the trace-header fields read.
#[derive(Clone, Debug)]
pub struct HeaderBytes {
    pub inline: usize,
    pub crossline: usize,
}

impl Default for HeaderBytes {
    /// Inline at 189, crossline at 193 (SEG-Y rev 1; segyio's defaults).
    fn default() -> Self {
        HeaderBytes {
            inline: 189,
            crossline: 193,
        }
    }
}

/// Selected fields of one trace header.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceHeader {
    /// Trace sequence number within the line (bytes 1–4).
    pub sequence: i32,
    /// CDP ensemble number (21–24).
    pub cdp: i32,
    /// Source–receiver offset (37–40).
    pub offset: i32,
    pub inline: i32,
    pub crossline: i32,
    /// Source, group and CDP coordinates with the scalar (71–72) applied.
    pub source_xy: (f64, f64),
    pub group_xy: (f64, f64),
    pub cdp_xy: (f64, f64),
    /// Samples in this trace as its header says (115–116).
    pub samples: u16,
}

/// Binary-header facts.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryHeader {
    pub sample_interval_us: f64,
    pub samples: usize,
    pub format: SampleFormat,
    /// Revision as (major, minor): rev 0, 1.0, 2.0, 2.1.
    pub revision: (u8, u8),
    pub fixed_length: bool,
    pub extended_headers: usize,
    pub little_endian: bool,
}

/// A memory-mapped SEG-Y file.
pub struct SegyFile {
    path: PathBuf,
    mmap: Mmap,
    pub text: String,
    pub text_encoding: &'static str,
    pub binary: BinaryHeader,
    pub headers: Vec<TraceHeader>,
    data_start: usize,
    trace_len: usize,
}

impl SegyFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &HeaderBytes::default())
    }

    pub fn open_with(path: impl AsRef<Path>, fields: &HeaderBytes) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        let mmap = super::map_file(&path, &name)?;
        if mmap.len() < TEXT_LEN + BIN_LEN {
            bail!(
                "{name}: {} bytes is too short for a SEG-Y file (the textual and binary headers alone take 3600)",
                mmap.len()
            );
        }
        let raw_text = &mmap[..TEXT_LEN];
        // Textual header: EBCDIC when the first byte is an EBCDIC 'C' (0xC3) or most bytes
        // are outside ASCII; ASCII when it starts with 'C' or is printable.
        let ebcdic = raw_text[0] == 0xC3
            || (raw_text[0] != b'C'
                && raw_text.iter().filter(|&&b| b >= 0x80).count() > TEXT_LEN / 4);
        let text: String = raw_text
            .iter()
            .map(|&b| {
                let c = if ebcdic { ebcdic_to_ascii(b) } else { b };
                if c.is_ascii_graphic() || c == b' ' {
                    c as char
                } else {
                    ' '
                }
            })
            .collect();
        let bin = &mmap[TEXT_LEN..TEXT_LEN + BIN_LEN];
        // Byte order: rev 2's constant 0x01020304 at 3297; otherwise guess from the format code.
        let order = u32::from_be_bytes([bin[96], bin[97], bin[98], bin[99]]);
        let le = if order == 0x0102_0304 {
            false
        } else if order == 0x0403_0201 {
            true
        } else {
            let f_be = u16::from_be_bytes([bin[24], bin[25]]);
            let f_le = u16::from_le_bytes([bin[24], bin[25]]);
            SampleFormat::from_code(f_be).is_none() && SampleFormat::from_code(f_le).is_some()
        };
        let code = be_or_le16(&bin[24..], le);
        let format = SampleFormat::from_code(code).ok_or_else(|| {
            anyhow::anyhow!(
                "{name}: sample format code {code} (binary header bytes 3225-3226) is not supported; \
                 supported: 1 IBM float, 2 int32, 3 int16, 5 IEEE float32, 6 IEEE float64, 8 int8 \
                 (or this is not a SEG-Y file)"
            )
        })?;
        let rev_raw = be_or_le16(&bin[300..], le);
        let revision = ((rev_raw >> 8) as u8, (rev_raw & 0xff) as u8);
        let mut samples = be_or_le16(&bin[20..], le) as usize;
        let mut interval = be_or_le16(&bin[16..], le) as f64;
        if revision.0 >= 2 {
            let ext_ns = be_or_le32(&bin[68..], le) as usize;
            if samples == 0 && ext_ns > 0 {
                samples = ext_ns;
            }
            let b = &bin[72..80];
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let ext_dt = if le {
                f64::from_le_bytes(a)
            } else {
                f64::from_be_bytes(a)
            };
            if interval == 0.0 && ext_dt.is_finite() && ext_dt > 0.0 {
                interval = ext_dt;
            }
        }
        let fixed_length = be_or_le16(&bin[302..], le) == 1;
        let ext_raw = be_or_le16(&bin[304..], le) as i16;
        if ext_raw < 0 {
            bail!(
                "{name}: a variable number of extended textual headers (-1 at byte 3505) is not supported"
            );
        }
        let extended_headers = ext_raw as usize;
        let data_start = TEXT_LEN + BIN_LEN + TEXT_LEN * extended_headers;
        if samples == 0 {
            // Fall back to the first trace header's count.
            if mmap.len() >= data_start + TRACE_HEADER {
                samples = be_or_le16(&mmap[data_start + 114..], le) as usize;
            }
            if samples == 0 {
                bail!("{name}: the binary header says 0 samples per trace (bytes 3221-3222) and so does the first trace");
            }
        }
        let trace_len = TRACE_HEADER + samples * format.size();
        let body = mmap.len().saturating_sub(data_start);
        if mmap.len() < data_start {
            bail!("{name}: truncated inside the {extended_headers} extended textual headers");
        }
        if body % trace_len != 0 {
            bail!(
                "{name}: truncated or not fixed-length: {body} bytes after the headers are {} whole traces of {trace_len} bytes \
                 ({samples} samples of {} bytes + 240) and {} bytes more",
                body / trace_len,
                format.size(),
                body % trace_len
            );
        }
        let n = body / trace_len;
        if n == 0 {
            bail!("{name}: holds no traces");
        }
        let i32_at = |t: usize, byte: usize| -> i32 {
            let o = data_start + t * trace_len + byte - 1;
            be_or_le32(&mmap[o..], le) as i32
        };
        let i16_at = |t: usize, byte: usize| -> i16 {
            let o = data_start + t * trace_len + byte - 1;
            be_or_le16(&mmap[o..], le) as i16
        };
        for (what, b) in [("inline", fields.inline), ("crossline", fields.crossline)] {
            if !(1..=237).contains(&b) {
                bail!("{what} byte position {b} is outside the 240-byte trace header (1..=237)");
            }
        }
        let mut headers = Vec::with_capacity(n);
        for t in 0..n {
            let scalar = i16_at(t, 71) as f64;
            let s = if scalar > 0.0 {
                scalar
            } else if scalar < 0.0 {
                -1.0 / scalar
            } else {
                1.0
            };
            let xy = |bx: usize| (i32_at(t, bx) as f64 * s, i32_at(t, bx + 4) as f64 * s);
            let ns_t = i16_at(t, 115) as u16;
            if ns_t != 0 && ns_t as usize != samples && samples <= u16::MAX as usize {
                bail!(
                    "{name}: trace {t} says {ns_t} samples (bytes 115-116) but the binary header says {samples}; \
                     variable-length traces are not supported"
                );
            }
            headers.push(TraceHeader {
                sequence: i32_at(t, 1),
                cdp: i32_at(t, 21),
                offset: i32_at(t, 37),
                inline: i32_at(t, fields.inline),
                crossline: i32_at(t, fields.crossline),
                source_xy: xy(73),
                group_xy: xy(81),
                cdp_xy: xy(181),
                samples: ns_t,
            });
        }
        Ok(SegyFile {
            path,
            text,
            text_encoding: if ebcdic { "EBCDIC" } else { "ASCII" },
            binary: BinaryHeader {
                sample_interval_us: interval,
                samples,
                format,
                revision,
                fixed_length,
                extended_headers,
                little_endian: le,
            },
            headers,
            data_start,
            trace_len,
            mmap,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn traces(&self) -> usize {
        self.headers.len()
    }
    pub fn samples(&self) -> usize {
        self.binary.samples
    }

    /// Decodes trace `t` into `out` (`samples` values), erroring on NaN/Inf.
    pub fn read_trace(&self, t: usize, out: &mut [f32]) -> Result<()> {
        let ns = self.binary.samples;
        if t >= self.traces() || out.len() != ns {
            bail!(
                "{}: trace {t} of {} into a buffer of {} (traces have {ns} samples)",
                self.path.display(),
                self.traces(),
                out.len()
            );
        }
        let o = self.data_start + t * self.trace_len + TRACE_HEADER;
        let b = &self.mmap[o..o + ns * self.binary.format.size()];
        let le = self.binary.little_endian;
        match self.binary.format {
            SampleFormat::Ibm32 => {
                for (v, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                    *v = ibm_to_f32(be_or_le32(c, le));
                }
            }
            SampleFormat::Ieee32 => {
                for (v, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                    *v = f32::from_bits(be_or_le32(c, le));
                }
            }
            SampleFormat::Ieee64 => {
                for (v, c) in out.iter_mut().zip(b.chunks_exact(8)) {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    *v = if le {
                        f64::from_le_bytes(a)
                    } else {
                        f64::from_be_bytes(a)
                    } as f32;
                }
            }
            SampleFormat::Int32 => {
                for (v, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                    *v = be_or_le32(c, le) as i32 as f32;
                }
            }
            SampleFormat::Int16 => {
                for (v, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                    *v = be_or_le16(c, le) as i16 as f32;
                }
            }
            SampleFormat::Int8 => {
                for (v, &c) in out.iter_mut().zip(b) {
                    *v = c as i8 as f32;
                }
            }
        }
        check_finite(out, &self.path, t * ns).with_context(|| format!("in trace {t}"))
    }

    /// All traces as a 2-D section `[samples, traces]` (time down the rows, one column per
    /// trace in file order).
    pub fn section(&self) -> Result<(Vec<f32>, usize, usize)> {
        let (ns, nt) = (self.samples(), self.traces());
        let mut out = vec![0f32; ns * nt];
        let mut tr = vec![0f32; ns];
        for t in 0..nt {
            self.read_trace(t, &mut tr)?;
            for (s, v) in tr.iter().enumerate() {
                out[s * nt + t] = *v;
            }
        }
        Ok((out, ns, nt))
    }

    /// The 3-D geometry: sorted unique inlines and crosslines and, for each (inline,
    /// crossline) cell in that order, its trace index. Errors when the traces do not fill the
    /// grid exactly once.
    pub fn geometry(&self) -> Result<CubeGeometry> {
        let mut il: Vec<i32> = self.headers.iter().map(|h| h.inline).collect();
        let mut xl: Vec<i32> = self.headers.iter().map(|h| h.crossline).collect();
        il.sort_unstable();
        il.dedup();
        xl.sort_unstable();
        xl.dedup();
        let n = il.len() * xl.len();
        if n != self.traces() {
            bail!(
                "{}: {} inlines × {} crosslines = {n} cells but the file has {} traces: not a regular 3-D cube \
                 (check the inline/crossline byte positions, or read it as a 2-D section)",
                self.path.display(),
                il.len(),
                xl.len(),
                self.traces()
            );
        }
        let mut trace_of = vec![usize::MAX; n];
        for (t, h) in self.headers.iter().enumerate() {
            let i = il.binary_search(&h.inline).unwrap_or(0);
            let j = xl.binary_search(&h.crossline).unwrap_or(0);
            let cell = &mut trace_of[i * xl.len() + j];
            if *cell != usize::MAX {
                bail!(
                    "{}: traces {} and {t} both claim inline {} crossline {}",
                    self.path.display(),
                    *cell,
                    h.inline,
                    h.crossline
                );
            }
            *cell = t;
        }
        Ok(CubeGeometry {
            inlines: il,
            crosslines: xl,
            trace_of,
        })
    }

    /// The whole cube `[inlines, crosslines, samples]`, sorted by inline then crossline.
    pub fn cube(&self) -> Result<(Vec<f32>, [usize; 3])> {
        let g = self.geometry()?;
        let ns = self.samples();
        let mut out = vec![0f32; g.trace_of.len() * ns];
        for (cell, &t) in g.trace_of.iter().enumerate() {
            self.read_trace(t, &mut out[cell * ns..(cell + 1) * ns])?;
        }
        Ok((out, [g.inlines.len(), g.crosslines.len(), ns]))
    }

    /// The section along inline number `inline`: `[samples, crosslines]`.
    pub fn inline_section(&self, inline: i32) -> Result<(Vec<f32>, usize, usize)> {
        let g = self.geometry()?;
        let i = g.inlines.binary_search(&inline).map_err(|_| {
            anyhow::anyhow!(
                "{}: no inline {inline} (inlines {:?}..={:?})",
                self.path.display(),
                g.inlines.first(),
                g.inlines.last()
            )
        })?;
        let nx = g.crosslines.len();
        self.gather(&g.trace_of[i * nx..(i + 1) * nx])
    }

    /// The section along crossline number `crossline`: `[samples, inlines]`.
    pub fn crossline_section(&self, crossline: i32) -> Result<(Vec<f32>, usize, usize)> {
        let g = self.geometry()?;
        let j = g
            .crosslines
            .binary_search(&crossline)
            .map_err(|_| anyhow::anyhow!("{}: no crossline {crossline}", self.path.display()))?;
        let nx = g.crosslines.len();
        let traces: Vec<usize> = (0..g.inlines.len())
            .map(|i| g.trace_of[i * nx + j])
            .collect();
        self.gather(&traces)
    }

    fn gather(&self, traces: &[usize]) -> Result<(Vec<f32>, usize, usize)> {
        let (ns, nt) = (self.samples(), traces.len());
        let mut out = vec![0f32; ns * nt];
        let mut tr = vec![0f32; ns];
        for (c, &t) in traces.iter().enumerate() {
            self.read_trace(t, &mut tr)?;
            for (s, v) in tr.iter().enumerate() {
                out[s * nt + c] = *v;
            }
        }
        Ok((out, ns, nt))
    }
}

/// Inline/crossline grid of a 3-D file.
#[derive(Clone, Debug)]
pub struct CubeGeometry {
    pub inlines: Vec<i32>,
    pub crosslines: Vec<i32>,
    /// Trace index of cell (i, j) at `i * crosslines.len() + j`.
    pub trace_of: Vec<usize>,
}

/// A trace to write.
#[derive(Clone, Debug, Default)]
pub struct TraceToWrite {
    pub inline: i32,
    pub crossline: i32,
    pub offset: i32,
    /// CDP coordinates, written as integers with scalar −100 (two decimals).
    pub cdp_xy: (f64, f64),
    pub samples: Vec<f32>,
}

/// Writes a big-endian SEG-Y rev 1 file: EBCDIC (or ASCII) textual header from `text`
/// (40 lines of 80 characters, padded), binary header, traces in IBM or IEEE float.
pub fn write(
    path: impl AsRef<Path>,
    text: &str,
    ebcdic: bool,
    format: SampleFormat,
    sample_interval_us: u16,
    traces: &[TraceToWrite],
) -> Result<()> {
    let path = path.as_ref();
    if !matches!(format, SampleFormat::Ibm32 | SampleFormat::Ieee32) {
        bail!(
            "writing {}: only IBM (1) and IEEE float32 (5) are written",
            path.display()
        );
    }
    let ns = traces.first().map(|t| t.samples.len()).unwrap_or(0);
    if traces.iter().any(|t| t.samples.len() != ns) || ns == 0 || ns > u16::MAX as usize {
        bail!(
            "writing {}: every trace needs the same number (1..=65535) of samples",
            path.display()
        );
    }
    let mut out = Vec::with_capacity(3600 + traces.len() * (240 + 4 * ns));
    let mut t: Vec<u8> = text.bytes().take(TEXT_LEN).collect();
    t.resize(TEXT_LEN, b' ');
    if ebcdic {
        t.iter_mut().for_each(|c| *c = ascii_to_ebcdic(*c));
    }
    out.extend_from_slice(&t);
    let mut bin = [0u8; BIN_LEN];
    bin[16..18].copy_from_slice(&sample_interval_us.to_be_bytes());
    bin[20..22].copy_from_slice(&(ns as u16).to_be_bytes());
    bin[24..26].copy_from_slice(&format.code().to_be_bytes());
    bin[28..30].copy_from_slice(&1u16.to_be_bytes()); // trace sorting: as recorded
    bin[54..56].copy_from_slice(&1u16.to_be_bytes()); // measurement system: metres
    bin[300..302].copy_from_slice(&0x0100u16.to_be_bytes()); // revision 1.0
    bin[302..304].copy_from_slice(&1u16.to_be_bytes()); // fixed-length traces
    out.extend_from_slice(&bin);
    for (k, tr) in traces.iter().enumerate() {
        let mut h = [0u8; TRACE_HEADER];
        let put32 = |h: &mut [u8; TRACE_HEADER], byte: usize, v: i32| {
            h[byte - 1..byte + 3].copy_from_slice(&v.to_be_bytes())
        };
        put32(&mut h, 1, k as i32 + 1);
        put32(&mut h, 37, tr.offset);
        h[70..72].copy_from_slice(&(-100i16).to_be_bytes());
        put32(&mut h, 181, (tr.cdp_xy.0 * 100.0).round() as i32);
        put32(&mut h, 185, (tr.cdp_xy.1 * 100.0).round() as i32);
        put32(&mut h, 189, tr.inline);
        put32(&mut h, 193, tr.crossline);
        h[114..116].copy_from_slice(&(ns as u16).to_be_bytes());
        h[116..118].copy_from_slice(&sample_interval_us.to_be_bytes());
        out.extend_from_slice(&h);
        for &v in &tr.samples {
            let bits = match format {
                SampleFormat::Ibm32 => f32_to_ibm(v),
                _ => v.to_bits(),
            };
            out.extend_from_slice(&bits.to_be_bytes());
        }
    }
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(&out)
        .with_context(|| format!("writing {}", path.display()))
}

/// The inline sections of a 3-D SEG-Y cube as a dataset of images `[samples, crosslines]`
/// (time down the rows), in inline order; no targets.
pub struct SegyInlineDataset {
    file: SegyFile,
    geometry: CubeGeometry,
}

impl SegyInlineDataset {
    pub fn new(file: SegyFile) -> Result<Self> {
        let geometry = file.geometry()?;
        Ok(SegyInlineDataset { file, geometry })
    }
    pub fn geometry(&self) -> &CubeGeometry {
        &self.geometry
    }
}

impl super::dataset::Dataset for SegyInlineDataset {
    fn len(&self) -> usize {
        self.geometry.inlines.len()
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![self.file.samples(), self.geometry.crosslines.len()]
    }
    fn get_into(&self, index: usize, input: &mut [f32]) -> Result<super::dataset::Target> {
        let nx = self.geometry.crosslines.len();
        let ns = self.file.samples();
        if index >= self.len() || input.len() != ns * nx {
            bail!(
                "{}: inline index {index} of {} into a buffer of {} (sections are {ns}×{nx})",
                self.file.path().display(),
                self.len(),
                input.len()
            );
        }
        let mut tr = vec![0f32; ns];
        for (c, &t) in self.geometry.trace_of[index * nx..(index + 1) * nx]
            .iter()
            .enumerate()
        {
            self.file.read_trace(t, &mut tr)?;
            for (s, v) in tr.iter().enumerate() {
                input[s * nx + c] = *v;
            }
        }
        Ok(super::dataset::Target::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibm_known_values_and_round_trip() {
        // The IBM example from the literature: -118.625 = 0xC276A000.
        assert_eq!(ibm_to_f32(0xC276_A000), -118.625);
        assert_eq!(f32_to_ibm(-118.625), 0xC276_A000);
        assert_eq!(ibm_to_f32(0x4110_0000), 1.0);
        assert_eq!(f32_to_ibm(1.0), 0x4110_0000);
        assert_eq!(f32_to_ibm(0.0), 0);
        for &v in &[0.1f32, 3.0e-5, 12345.678, -7.25e10, 1.0e-30] {
            let r = ibm_to_f32(f32_to_ibm(v));
            assert!(((r - v) / v).abs() < 1e-6, "{v} -> {r}");
        }
    }

    #[test]
    fn ebcdic_round_trip() {
        for &a in b"C 1 CLIENT: SEISFUSE, LINE 42 (TEST) X=1.5; Y=-2 / ok" {
            assert_eq!(ebcdic_to_ascii(ascii_to_ebcdic(a)), a, "{}", a as char);
        }
        assert_eq!(ascii_to_ebcdic(b'C'), 0xC3);
    }
}
