//! A small HDF5 writer: groups, contiguous little-endian numeric datasets and scalar UTF-8
//! strings, in the layout h5py writes by default (superblock version 0, version-1 object
//! headers; groups hold link messages, as libhdf5 writes them for new-style groups).
//!
//! File layout: the 96-byte superblock (written last, at offset 0), then each dataset's raw
//! data in the order given (streamed; nothing is kept), then at the end the global heap of the
//! strings and every object header, children before parents, the root group last.

use crate::atomic::OutputFile;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

const UNDEF: u64 = u64::MAX;
const SUPERBLOCK: u64 = 96;

/// Numeric element types the writer stores.
pub trait H5Elem: Copy {
    /// The datatype message body (class, bit field, size, properties).
    fn datatype() -> Vec<u8>;
    fn put(self, out: &mut Vec<u8>);
}

fn float_type(size: u32, sign: u8, exp_loc: u8, exp_size: u8, mant: u8, bias: u32) -> Vec<u8> {
    let mut v = vec![0x11, 0x20, sign, 0x00];
    v.extend(size.to_le_bytes());
    v.extend(0u16.to_le_bytes()); // bit offset
    v.extend(((size * 8) as u16).to_le_bytes()); // precision
    v.extend([exp_loc, exp_size, 0, mant]);
    v.extend(bias.to_le_bytes());
    v
}

fn int_type(size: u32, signed: bool) -> Vec<u8> {
    let mut v = vec![0x10, if signed { 0x08 } else { 0 }, 0, 0];
    v.extend(size.to_le_bytes());
    v.extend(0u16.to_le_bytes());
    v.extend(((size * 8) as u16).to_le_bytes());
    v
}

impl H5Elem for f32 {
    fn datatype() -> Vec<u8> {
        float_type(4, 31, 23, 8, 23, 127)
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend(self.to_le_bytes())
    }
}
impl H5Elem for f64 {
    fn datatype() -> Vec<u8> {
        float_type(8, 63, 52, 11, 52, 1023)
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend(self.to_le_bytes())
    }
}
macro_rules! int_elem {
    ($t:ty, $signed:expr) => {
        impl H5Elem for $t {
            fn datatype() -> Vec<u8> {
                int_type(std::mem::size_of::<$t>() as u32, $signed)
            }
            fn put(self, out: &mut Vec<u8>) {
                out.extend(self.to_le_bytes())
            }
        }
    };
}
int_elem!(i16, true);
int_elem!(i32, true);
int_elem!(i64, true);
int_elem!(u8, false);

/// A variable-length UTF-8 string (base type: unsigned 8-bit integers), as h5py writes `str`.
fn vlen_utf8_type() -> Vec<u8> {
    let mut v = vec![0x19, 0x01, 0x01, 0x00];
    v.extend(16u32.to_le_bytes());
    v.extend(int_type(1, false));
    v
}

enum Node {
    Group(BTreeMap<String, Node>),
    Dataset {
        dims: Vec<u64>,
        datatype: Vec<u8>,
        /// Contiguous data: address and size (bytes).
        addr: u64,
        size: u64,
    },
    /// Index into the global heap's strings.
    String(usize),
}

/// An HDF5 file being written: create, add datasets and strings (groups are made from the
/// paths), then [`finish`](Self::finish).
pub struct H5Writer {
    out: OutputFile,
    pos: u64,
    root: BTreeMap<String, Node>,
    strings: Vec<String>,
}

fn check_name(path: &str, part: &str) -> Result<()> {
    if part.is_empty() || part == "." || part.len() > 0xffff {
        bail!("HDF5 object path {path:?}: bad name {part:?}");
    }
    Ok(())
}

impl H5Writer {
    /// Starts `dest` (through a temporary file; see [`finish`](Self::finish)).
    pub fn create(dest: &Path) -> Result<Self> {
        let mut out = OutputFile::create(dest)?;
        out.write_all(&[0u8; SUPERBLOCK as usize])
            .with_context(|| format!("writing {}", dest.display()))?;
        Ok(H5Writer {
            out,
            pos: SUPERBLOCK,
            root: BTreeMap::new(),
            strings: Vec::new(),
        })
    }

    fn name(&self) -> String {
        self.out.dest().display().to_string()
    }

    /// Places `node` at `path` (`a/b/c`), making the groups on the way.
    fn insert(&mut self, path: &str, node: Node) -> Result<()> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        for p in &parts {
            check_name(path, p)?;
        }
        let (last, groups) = parts.split_last().expect("split gives one part");
        let mut g = &mut self.root;
        for p in groups {
            let e = g
                .entry(p.to_string())
                .or_insert_with(|| Node::Group(BTreeMap::new()));
            g = match e {
                Node::Group(m) => m,
                _ => bail!("{}: {path:?}: {p:?} is a dataset, not a group", self.name()),
            };
        }
        if g.contains_key(*last) {
            bail!("{}: {path:?} written twice", self.name());
        }
        g.insert(last.to_string(), node);
        Ok(())
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let name = self.name();
        self.out
            .write_all(bytes)
            .with_context(|| format!("writing {name}"))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// A contiguous dataset of `shape` (row-major) holding `data`.
    pub fn dataset<T: H5Elem>(&mut self, path: &str, shape: &[usize], data: &[T]) -> Result<()> {
        if crate::limits::numel(shape) != Some(data.len()) {
            bail!(
                "{}: {path}: {} values for shape {shape:?}",
                self.name(),
                data.len()
            );
        }
        if shape.len() > 32 {
            bail!(
                "{}: {path}: rank {} (HDF5 allows 32)",
                self.name(),
                shape.len()
            );
        }
        let addr = self.pos;
        let mut buf = Vec::with_capacity(data.len().min(1 << 20) * 8);
        for chunk in data.chunks(1 << 16) {
            buf.clear();
            for &v in chunk {
                v.put(&mut buf);
            }
            self.write_bytes(&buf)?;
        }
        self.insert(
            path,
            Node::Dataset {
                dims: shape.iter().map(|&d| d as u64).collect(),
                datatype: T::datatype(),
                addr,
                size: self.pos - addr,
            },
        )
    }

    /// A scalar variable-length UTF-8 string (what h5py writes for `f[path] = "text"`).
    pub fn string(&mut self, path: &str, value: &str) -> Result<()> {
        self.strings.push(value.to_string());
        self.insert(path, Node::String(self.strings.len() - 1))
    }

    /// A scalar f64.
    pub fn scalar_f64(&mut self, path: &str, value: f64) -> Result<()> {
        self.dataset(path, &[], &[value])
    }

    /// Writes the metadata and the superblock; the file is complete but not yet in place:
    /// commit it (alone, or with others in a `Staged`).
    pub fn finish(mut self) -> Result<OutputFile> {
        // Global heap collection of the strings (one object each, index from 1).
        let heap_addr = self.pos;
        let mut string_refs = Vec::new();
        if !self.strings.is_empty() {
            let mut objects = Vec::new();
            for (i, s) in self.strings.iter().enumerate() {
                let idx = u16::try_from(i + 1)
                    .map_err(|_| anyhow::anyhow!("{}: too many strings", self.name()))?;
                objects.extend(idx.to_le_bytes());
                objects.extend(1u16.to_le_bytes()); // reference count
                objects.extend([0u8; 4]);
                objects.extend((s.len() as u64).to_le_bytes());
                objects.extend(s.as_bytes());
                objects.resize(objects.len().next_multiple_of(8), 0);
                string_refs.push((s.len() as u32, idx as u32));
            }
            let used = 16 + objects.len() as u64;
            let size = (used + 16).max(4096);
            let mut heap = b"GCOL\x01\0\0\0".to_vec();
            heap.extend(size.to_le_bytes());
            heap.extend(objects);
            // Free space: object 0, its size counting its own header.
            heap.extend([0u8; 8]);
            heap.extend((size - used).to_le_bytes());
            heap.resize(size as usize, 0);
            self.write_bytes(&heap)?;
        }
        let root = std::mem::take(&mut self.root);
        let root_addr = self.write_group(&root, heap_addr, &string_refs)?;
        let eof = self.pos;
        // Superblock version 0 with the root group's symbol-table entry.
        let mut sb = b"\x89HDF\r\n\x1a\n".to_vec();
        sb.extend([0, 0, 0, 0, 0, 8, 8, 0]);
        sb.extend(4u16.to_le_bytes()); // group leaf node K
        sb.extend(16u16.to_le_bytes()); // group internal node K
        sb.extend(0u32.to_le_bytes()); // consistency flags
        sb.extend(0u64.to_le_bytes()); // base address
        sb.extend(UNDEF.to_le_bytes()); // free-space info
        sb.extend(eof.to_le_bytes());
        sb.extend(UNDEF.to_le_bytes()); // driver info
        sb.extend(0u64.to_le_bytes()); // root entry: link name offset
        sb.extend(root_addr.to_le_bytes());
        sb.extend([0u8; 24]); // cache type 0, reserved, scratch
        debug_assert_eq!(sb.len() as u64, SUPERBLOCK);
        let name = self.name();
        self.out
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.out.write_all(&sb))
            .with_context(|| format!("writing {name}"))?;
        Ok(self.out)
    }

    /// Writes the object headers of `g`'s members, then `g`'s; returns its address.
    fn write_group(
        &mut self,
        g: &BTreeMap<String, Node>,
        heap: u64,
        strings: &[(u32, u32)],
    ) -> Result<u64> {
        let mut links = Vec::new();
        for (name, node) in g {
            let addr = match node {
                Node::Group(m) => self.write_group(m, heap, strings)?,
                Node::Dataset {
                    dims,
                    datatype,
                    addr,
                    size,
                } => {
                    let oh = dataset_header(dims, datatype, *addr, *size);
                    self.write_header(&oh)?
                }
                Node::String(i) => {
                    let (len, idx) = strings[*i];
                    let data_addr = self.pos;
                    let mut d = len.to_le_bytes().to_vec();
                    d.extend(heap.to_le_bytes());
                    d.extend(idx.to_le_bytes());
                    self.write_bytes(&d)?;
                    let oh = dataset_header(&[], &vlen_utf8_type(), data_addr, 16);
                    self.write_header(&oh)?
                }
            };
            links.push((name.as_str(), addr));
        }
        let mut msgs = Vec::new();
        // Link info: no creation order, no dense storage.
        let mut linfo = vec![0u8, 0];
        linfo.extend(UNDEF.to_le_bytes());
        linfo.extend(UNDEF.to_le_bytes());
        msgs.push((0x02, 0u8, linfo));
        msgs.push((0x0A, 1, vec![0, 0])); // group info
        for (name, addr) in links {
            // Version 1; flags: name length in 2 bytes when needed, UTF-8 charset.
            let long = name.len() > 255;
            let mut l = vec![1u8, 0x10 | u8::from(long), 1];
            if long {
                l.extend((name.len() as u16).to_le_bytes());
            } else {
                l.push(name.len() as u8);
            }
            l.extend(name.as_bytes());
            l.extend(addr.to_le_bytes());
            msgs.push((0x06, 0, l));
        }
        self.write_header(&msgs)
    }

    /// Writes a version-1 object header of `msgs` (type, flags, body); returns its address.
    fn write_header(&mut self, msgs: &[(u16, u8, Vec<u8>)]) -> Result<u64> {
        // Object headers are 8-byte aligned.
        let pad = self.pos.next_multiple_of(8) - self.pos;
        self.write_bytes(&vec![0u8; pad as usize])?;
        let addr = self.pos;
        let mut body = Vec::new();
        for (t, flags, b) in msgs {
            let size = b.len().next_multiple_of(8);
            let size16 = u16::try_from(size)
                .map_err(|_| anyhow::anyhow!("{}: header message too large", self.name()))?;
            body.extend(t.to_le_bytes());
            body.extend(size16.to_le_bytes());
            body.extend([*flags, 0, 0, 0]);
            body.extend(b);
            body.resize(body.len() + size - b.len(), 0);
        }
        let n = u16::try_from(msgs.len())
            .map_err(|_| anyhow::anyhow!("{}: a group of more than 65535 members", self.name()))?;
        let size = u32::try_from(body.len())
            .map_err(|_| anyhow::anyhow!("{}: object header too large", self.name()))?;
        let mut h = vec![1u8, 0];
        h.extend(n.to_le_bytes());
        h.extend(1u32.to_le_bytes()); // reference count
        h.extend(size.to_le_bytes());
        h.extend([0u8; 4]);
        h.extend(body);
        self.write_bytes(&h)?;
        Ok(addr)
    }
}

/// The messages of a contiguous dataset: dataspace, datatype, fill value, layout.
fn dataset_header(dims: &[u64], datatype: &[u8], addr: u64, size: u64) -> Vec<(u16, u8, Vec<u8>)> {
    // Dataspace version 1 (rank 0 = scalar), with maximum dimensions equal to the dimensions.
    let mut space = vec![
        1u8,
        dims.len() as u8,
        u8::from(!dims.is_empty()),
        0,
        0,
        0,
        0,
        0,
    ];
    for _ in 0..2 {
        for d in dims {
            space.extend(d.to_le_bytes());
        }
    }
    if dims.is_empty() {
        space[2] = 0;
    }
    // Fill value version 2: allocation late, written if set, defined with no value.
    let fill = vec![2u8, 2, 2, 1, 0, 0, 0, 0];
    // Layout version 3, contiguous (no data: the undefined address, as libhdf5 requires).
    let mut layout = vec![3u8, 1];
    layout.extend(if size == 0 { UNDEF } else { addr }.to_le_bytes());
    layout.extend(size.to_le_bytes());
    vec![
        (0x01, 0, space),
        (0x03, 1, datatype.to_vec()),
        (0x05, 1, fill),
        (0x08, 0, layout),
    ]
}
