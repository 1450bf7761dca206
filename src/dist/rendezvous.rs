//! The TCP rendezvous: rank 0 listens on `MASTER_ADDR:MASTER_PORT`, every other rank connects
//! (retrying until a deadline) and says which rank it is; rank 0 waits for all of them and, if
//! one does not come in time, fails naming it and tells the others why. The connections then
//! stay open as a star (rank 0 in the middle) that carries small collectives: broadcasting the
//! NCCL unique id, barriers, and the TCP communicator's all-reduce (`comm.rs`).
//!
//! Everything read from the network is bounded: the hello is fixed-size, and a collective's
//! payload must have exactly the length the receiver expects (all ranks pass buffers of the
//! same size), so a stray or hostile peer cannot make a rank allocate at will. A connection
//! to the rendezvous port that does not start with the seisfuse hello is dropped and ignored.

use super::env::RankInfo;
use anyhow::{anyhow, bail, Context, Result};
use bytemuck::Pod;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

#[cfg(not(target_endian = "little"))]
compile_error!("the seisfuse wire format sends little-endian values as they lie in memory");

/// First bytes of every hello and welcome: protocol name and version.
const MAGIC: [u8; 8] = *b"SFDIST\x00\x01";
/// Longest abort reason accepted from a peer.
const MAX_REASON: usize = 4096;
/// Payloads are read in chunks of at most this many bytes.
const CHUNK_BYTES: usize = 1 << 20;

/// Timeouts of the rendezvous and of the collectives after it.
#[derive(Clone, Debug)]
pub struct RendezvousOptions {
    /// How long rank 0 waits for all ranks, and each rank tries to reach rank 0.
    pub timeout: Duration,
    /// How long a rank waits for a peer's data during a collective before failing.
    pub op_timeout: Duration,
}

impl Default for RendezvousOptions {
    fn default() -> Self {
        RendezvousOptions {
            timeout: Duration::from_secs(300),
            op_timeout: Duration::from_secs(1800),
        }
    }
}

impl RendezvousOptions {
    pub fn with_timeout(timeout: Duration) -> Self {
        RendezvousOptions {
            timeout,
            ..Default::default()
        }
    }
}

/// Rank 0's fold of one incoming chunk: `(offset, acc, incoming)`.
pub(crate) type Fold<'a, T> = dyn FnMut(usize, &mut [T], &[T]) + 'a;

/// Declares the `#[repr(u8)]` enums of the frame header, each with `from_u8` (None for a byte
/// that is no variant) and `name`, the variant's word in messages.
macro_rules! header_enums {
    ($($(#[$doc:meta])* $enum:ident { $($variant:ident = $byte:literal => $name:literal,)* })*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            #[repr(u8)]
            pub(crate) enum $enum {
                $($variant = $byte,)*
            }

            impl $enum {
                fn from_u8(b: u8) -> Option<$enum> {
                    match b {
                        $($byte => Some($enum::$variant),)*
                        _ => None,
                    }
                }
                fn name(self) -> &'static str {
                    match self {
                        $($enum::$variant => $name,)*
                    }
                }
            }
        )*
    };
}

header_enums! {
    /// What a frame carries.
    Kind {
        AllReduce = 1 => "all-reduce",
        Broadcast = 2 => "broadcast",
        Barrier = 3 => "barrier",
        Abort = 4 => "abort",
    }
    /// Element type of a frame's payload.
    Wire {
        None = 0 => "nothing",
        U8 = 1 => "bytes",
        F32 = 2 => "f32",
        F64 = 3 => "f64",
        Bf16 = 4 => "bf16",
    }
}

/// A frame header: 16 bytes, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: u8,
    pub wire: u8,
    pub root: u16,
    pub seq: u32,
    pub len: u64,
}

impl Header {
    fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.kind;
        b[1] = self.wire;
        b[2..4].copy_from_slice(&self.root.to_le_bytes());
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }
    fn decode(b: &[u8; 16]) -> Header {
        Header {
            kind: b[0],
            wire: b[1],
            root: u16::from_le_bytes([b[2], b[3]]),
            seq: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            len: u64::from_le_bytes(b[8..16].try_into().unwrap_or([0; 8])),
        }
    }
    fn describe(&self) -> String {
        match Kind::from_u8(self.kind) {
            Some(k) => format!(
                "{} #{} of {} bytes of {}",
                k.name(),
                self.seq,
                self.len,
                Wire::from_u8(self.wire).map_or("an unknown type", Wire::name)
            ),
            None => format!("an unknown message (kind {})", self.kind),
        }
    }
}

enum Links {
    /// World size 1: nothing to talk to.
    Alone,
    /// Rank 0: one stream per other rank, `peers[r - 1]` for rank r.
    Root { peers: Vec<TcpStream> },
    /// Other ranks: the stream to rank 0.
    Leaf { root: TcpStream },
}

/// An established rendezvous: every rank connected to rank 0.
pub struct Rendezvous {
    rank: usize,
    world_size: usize,
    links: Links,
    seq: u32,
    /// Where rank 0 listened (for messages).
    master: String,
}

/// Rank 0 after binding its port, before the other ranks have arrived.
pub struct Listening {
    listener: TcpListener,
    world_size: usize,
    opts: RendezvousOptions,
    addr: SocketAddr,
}

impl std::fmt::Debug for Rendezvous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Rendezvous {{ rank {} of {}, master {} }}",
            self.rank, self.world_size, self.master
        )
    }
}

impl Rendezvous {
    /// Joins the rendezvous as `info` says: rank 0 listens and waits, the others connect.
    /// World size 1 connects nothing.
    pub fn establish(info: &RankInfo, opts: &RendezvousOptions) -> Result<Rendezvous> {
        if info.world_size <= 1 {
            return Ok(Rendezvous::alone());
        }
        if info.rank == 0 {
            Listening::bind(info, opts)?.accept_all()
        } else {
            Rendezvous::connect(info, opts)
        }
    }

    /// The rendezvous of a single process.
    pub fn alone() -> Rendezvous {
        Rendezvous {
            rank: 0,
            world_size: 1,
            links: Links::Alone,
            seq: 0,
            master: "(single process)".into(),
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// A rank other than 0 connects to rank 0, retrying until the deadline, and waits for
    /// rank 0's answer (which comes when every rank has arrived).
    pub fn connect(info: &RankInfo, opts: &RendezvousOptions) -> Result<Rendezvous> {
        let rank = info.rank;
        if rank == 0 {
            bail!("rank 0 listens for the rendezvous; it does not connect");
        }
        let master = info.master();
        let start = Instant::now();
        let deadline = start + opts.timeout;
        let mut pause = Duration::from_millis(10);
        let mut stream = loop {
            let attempt = (|| -> std::io::Result<TcpStream> {
                let addrs: Vec<SocketAddr> = (info.master_addr.as_str(), info.master_port)
                    .to_socket_addrs()?
                    .collect();
                let mut last = std::io::Error::new(ErrorKind::NotFound, "no address");
                for a in addrs {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match TcpStream::connect_timeout(
                        &a,
                        left.clamp(Duration::from_millis(10), Duration::from_secs(2)),
                    ) {
                        Ok(s) => return Ok(s),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            })();
            match attempt {
                Ok(s) => break s,
                Err(e) => {
                    if Instant::now() >= deadline {
                        bail!(
                            "rank {rank} could not reach rank 0 at {master} within {:.1} s ({e}). \
                             Is rank 0 running, is MASTER_ADDR an address of rank 0's node that \
                             this node can reach, and is MASTER_PORT the same for every rank?",
                            opts.timeout.as_secs_f64()
                        );
                    }
                    std::thread::sleep(
                        pause.min(deadline.saturating_duration_since(Instant::now())),
                    );
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
            }
        };
        stream.set_nodelay(true).ok();
        let mut hello = [0u8; 16];
        hello[..8].copy_from_slice(&MAGIC);
        hello[8..12].copy_from_slice(&(rank as u32).to_le_bytes());
        hello[12..16].copy_from_slice(&(info.world_size as u32).to_le_bytes());
        stream
            .set_write_timeout(Some(opts.timeout.max(Duration::from_secs(1))))
            .ok();
        stream
            .write_all(&hello)
            .with_context(|| format!("rank {rank}: sending its hello to rank 0 at {master}"))?;
        // Rank 0 answers when everyone has arrived, or with the reason it gave up; wait a
        // little longer than its own deadline so that its reason reaches us.
        let grace = (opts.timeout / 4).max(Duration::from_secs(2));
        let wait = deadline.saturating_duration_since(Instant::now()) + grace;
        stream.set_read_timeout(Some(wait)).ok();
        let mut head = [0u8; 13];
        if let Err(e) = stream.read_exact(&mut head) {
            let why = match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => format!(
                    "rank 0 did not answer within {:.1} s (it answers once every rank has arrived; \
                     another rank may not have started)",
                    wait.as_secs_f64()
                ),
                _ => format!("rank 0 closed the connection ({e})"),
            };
            bail!("rank {rank} reached rank 0 at {master}, but the rendezvous did not complete: {why}");
        }
        if head[..8] != MAGIC {
            bail!(
                "rank {rank}: {master} answered, but not as a seisfuse rendezvous (another \
                 program or job on that port? choose another MASTER_PORT)"
            );
        }
        let len = u32::from_le_bytes([head[9], head[10], head[11], head[12]]) as usize;
        if head[8] != 0 {
            let reason = read_reason(&mut stream, len);
            bail!("rank 0 gave up the rendezvous at {master}: {reason}");
        }
        stream.set_read_timeout(Some(opts.op_timeout)).ok();
        stream.set_write_timeout(Some(opts.op_timeout)).ok();
        Ok(Rendezvous {
            rank,
            world_size: info.world_size,
            links: Links::Leaf { root: stream },
            seq: 0,
            master,
        })
    }

    // ---- framing -------------------------------------------------------------------------

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Rank 0 tells every other rank why it stops (best effort) and returns the error.
    fn abort_all(&mut self, reason: String) -> anyhow::Error {
        if let Links::Root { peers } = &mut self.links {
            for p in peers.iter_mut() {
                let _ = send_abort(p, &reason);
            }
        }
        anyhow!(reason)
    }

    fn peer(&mut self, r: usize) -> &mut TcpStream {
        match &mut self.links {
            Links::Root { peers } => &mut peers[r - 1],
            Links::Leaf { root } => root,
            Links::Alone => unreachable!("no peers in a world of one"),
        }
    }

    /// Reads the header `want` from rank `from`; an abort frame or a mismatch is an error.
    fn expect_header(&mut self, from: usize, want: Header) -> Result<()> {
        let me = self.rank;
        let s = self.peer(from);
        let mut b = [0u8; 16];
        s.read_exact(&mut b)
            .map_err(|e| io_err(me, from, &want.describe(), e))?;
        let got = Header::decode(&b);
        if got.kind == Kind::Abort as u8 {
            let reason = read_reason(s, got.len as usize);
            bail!(
                "rank {me}: rank {from} aborted {}: {reason}",
                want.describe()
            );
        }
        if got != want {
            let reason = format!(
                "rank {from} sent {} while rank {me} expected {}: the ranks issued different \
                 collectives or buffer sizes (same model, configuration and step on every rank?)",
                got.describe(),
                want.describe()
            );
            return Err(if me == 0 {
                self.abort_all(reason)
            } else {
                anyhow!(reason)
            });
        }
        Ok(())
    }

    fn send_frame(&mut self, to: usize, h: Header, payload: &[u8]) -> Result<()> {
        let me = self.rank;
        let s = self.peer(to);
        let r = s.write_all(&h.encode()).and_then(|_| s.write_all(payload));
        r.map_err(|e| io_err(me, to, &h.describe(), e))
    }

    fn recv_payload(&mut self, from: usize, h: &Header, out: &mut [u8]) -> Result<()> {
        let me = self.rank;
        self.peer(from)
            .read_exact(out)
            .map_err(|e| io_err(me, from, &h.describe(), e))
    }

    // ---- collectives ---------------------------------------------------------------------

    /// All-reduce through rank 0: every rank sends its values, rank 0 folds them in rank
    /// order (rank 0's own first, then 1, 2, ...) and sends the result back, so every rank
    /// gets the same bits.
    ///
    /// On rank 0, `fold(offset, acc, incoming)` is called for each chunk of each other rank,
    /// in rank order, with `acc = &mut buf[offset..offset + incoming.len()]`; then
    /// `finish(buf)` may rewrite the result (e.g. round an f32 accumulator to bf16) before it
    /// is sent. The other ranks only send and receive.
    pub(crate) fn all_reduce_with<T: Pod>(
        &mut self,
        wire: Wire,
        buf: &mut [T],
        fold: &mut Fold<'_, T>,
        finish: &mut dyn FnMut(&mut [T]),
    ) -> Result<()> {
        let seq = self.next_seq();
        let bytes = std::mem::size_of_val(buf) as u64;
        let h = Header {
            kind: Kind::AllReduce as u8,
            wire: wire as u8,
            root: 0,
            seq,
            len: bytes,
        };
        match self.links {
            Links::Alone => {
                finish(buf);
                Ok(())
            }
            Links::Leaf { .. } => {
                self.send_frame(0, h, bytemuck::cast_slice(buf))?;
                self.expect_header(0, h)?;
                self.recv_payload(0, &h, bytemuck::cast_slice_mut(buf))
            }
            Links::Root { .. } => {
                let elem = std::mem::size_of::<T>().max(1);
                let chunk = (CHUNK_BYTES / elem).max(1).min(buf.len().max(1));
                let mut scratch: Vec<T> = vec![T::zeroed(); chunk];
                for r in 1..self.world_size {
                    self.expect_header(r, h)?;
                    let mut off = 0;
                    while off < buf.len() {
                        let n = chunk.min(buf.len() - off);
                        self.recv_payload(r, &h, bytemuck::cast_slice_mut(&mut scratch[..n]))?;
                        fold(off, &mut buf[off..off + n], &scratch[..n]);
                        off += n;
                    }
                }
                finish(buf);
                for r in 1..self.world_size {
                    self.send_frame(r, h, bytemuck::cast_slice(buf))?;
                }
                Ok(())
            }
        }
    }

    /// Copies `root`'s bytes into every rank's `buf` (all ranks pass the same length).
    pub fn broadcast(&mut self, buf: &mut [u8], root: usize) -> Result<()> {
        if root >= self.world_size {
            bail!(
                "broadcast from rank {root} in a world of {} ranks",
                self.world_size
            );
        }
        let seq = self.next_seq();
        let h = Header {
            kind: Kind::Broadcast as u8,
            wire: Wire::U8 as u8,
            root: root as u16,
            seq,
            len: buf.len() as u64,
        };
        match self.links {
            Links::Alone => Ok(()),
            Links::Leaf { .. } => {
                if self.rank == root {
                    self.send_frame(0, h, buf)
                } else {
                    self.expect_header(0, h)?;
                    self.recv_payload(0, &h, buf)
                }
            }
            Links::Root { .. } => {
                if root != 0 {
                    self.expect_header(root, h)?;
                    self.recv_payload(root, &h, buf)?;
                }
                for r in 1..self.world_size {
                    if r != root {
                        self.send_frame(r, h, buf)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Returns when every rank has called it.
    pub fn barrier(&mut self) -> Result<()> {
        let seq = self.next_seq();
        let h = Header {
            kind: Kind::Barrier as u8,
            wire: Wire::None as u8,
            root: 0,
            seq,
            len: 0,
        };
        match self.links {
            Links::Alone => Ok(()),
            Links::Leaf { .. } => {
                self.send_frame(0, h, &[])?;
                self.expect_header(0, h)
            }
            Links::Root { .. } => {
                for r in 1..self.world_size {
                    self.expect_header(r, h)?;
                }
                for r in 1..self.world_size {
                    self.send_frame(r, h, &[])?;
                }
                Ok(())
            }
        }
    }
}

impl Listening {
    /// Rank 0 binds `MASTER_PORT` (port 0: any free port, see [`Listening::local_addr`]).
    /// When `MASTER_ADDR` is a loopback address it listens there only, else on every
    /// interface (rank 0's name may resolve to an address other ranks cannot use).
    pub fn bind(info: &RankInfo, opts: &RendezvousOptions) -> Result<Listening> {
        if info.rank != 0 {
            bail!(
                "only rank 0 listens for the rendezvous (this is rank {})",
                info.rank
            );
        }
        let resolved: Vec<SocketAddr> = (info.master_addr.as_str(), info.master_port)
            .to_socket_addrs()
            .map(|a| a.collect())
            .unwrap_or_default();
        let bind_addr = match resolved.first() {
            Some(a) if resolved.iter().all(|a| a.ip().is_loopback()) => *a,
            Some(SocketAddr::V6(_)) if resolved.iter().all(|a| a.is_ipv6()) => {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), info.master_port)
            }
            _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), info.master_port),
        };
        let listener = TcpListener::bind(bind_addr).map_err(|e| {
            anyhow!(
                "rank 0 cannot listen for the rendezvous on {bind_addr} ({e}); {}",
                if e.kind() == ErrorKind::AddrInUse {
                    "another job or program uses this port: set MASTER_PORT (or --master-port) to a free one"
                } else {
                    "check MASTER_ADDR and MASTER_PORT"
                }
            )
        })?;
        let addr = listener.local_addr()?;
        Ok(Listening {
            listener,
            world_size: info.world_size,
            opts: opts.clone(),
            addr,
        })
    }

    /// The address actually bound (its port is the real one when MASTER_PORT was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until every rank has connected, or fails at the deadline naming the ranks that
    /// did not arrive (and tells the ones that did why the run stops).
    pub fn accept_all(self) -> Result<Rendezvous> {
        let world = self.world_size;
        let start = Instant::now();
        let deadline = start + self.opts.timeout;
        let mut peers: Vec<Option<TcpStream>> = (1..world).map(|_| None).collect();
        let mut arrived = 1usize;
        self.listener.set_nonblocking(true)?;
        let mut rdv = Rendezvous {
            rank: 0,
            world_size: world,
            links: Links::Root { peers: Vec::new() },
            seq: 0,
            master: self.addr.to_string(),
        };
        // Streams of arrived ranks are kept in `peers` until all are in; on failure they get
        // the reason through this helper.
        let fail = |peers: &mut Vec<Option<TcpStream>>, reason: String| -> anyhow::Error {
            for s in peers.iter_mut().flatten() {
                let _ = send_welcome(s, Some(&reason));
            }
            anyhow!(reason)
        };
        while arrived < world {
            match self.listener.accept() {
                Ok((mut s, from)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let hello = read_hello(
                        &mut s,
                        left.clamp(Duration::from_millis(50), Duration::from_secs(2)),
                    );
                    let (r, w) = match hello {
                        Ok(rw) => rw,
                        Err(e) => {
                            eprintln!(
                                "seisfuse rendezvous: ignored a connection from {from} to {}: {e}",
                                self.addr
                            );
                            continue;
                        }
                    };
                    let problem = if w != world {
                        Some(format!(
                            "rank {r} (from {from}) says the world has {w} ranks, rank 0 says {world}: \
                             every rank must be started with the same WORLD_SIZE / number of tasks"
                        ))
                    } else if r == 0 || r >= world {
                        Some(format!(
                            "a process at {from} claims rank {r}, which is not one of ranks 1..{}: \
                             check RANK / SLURM_PROCID",
                            world - 1
                        ))
                    } else if peers[r - 1].is_some() {
                        Some(format!(
                            "two processes claim rank {r} (the second from {from}): check RANK / \
                             SLURM_PROCID, or whether an earlier run still uses this MASTER_PORT"
                        ))
                    } else {
                        None
                    };
                    if let Some(reason) = problem {
                        let _ = send_welcome(&mut s, Some(&reason));
                        return Err(fail(&mut peers, reason));
                    }
                    s.set_nonblocking(false)?;
                    s.set_nodelay(true).ok();
                    peers[r - 1] = Some(s);
                    arrived += 1;
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    if Instant::now() >= deadline {
                        let missing: Vec<usize> =
                            (1..world).filter(|&r| peers[r - 1].is_none()).collect();
                        let mut here = vec![0];
                        here.extend((1..world).filter(|&r| peers[r - 1].is_some()));
                        let reason = format!(
                            "rendezvous timed out after {:.1} s: {} {} did not arrive at rank 0 \
                             ({}, world size {world}; arrived: {}). Check that every rank was \
                             started, with the same MASTER_ADDR/MASTER_PORT, and that this port \
                             is reachable from the other nodes",
                            self.opts.timeout.as_secs_f64(),
                            if missing.len() == 1 { "rank" } else { "ranks" },
                            ranges(&missing),
                            self.addr,
                            ranges(&here),
                        );
                        return Err(fail(&mut peers, reason));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    let reason = format!(
                        "rank 0: accepting rendezvous connections on {}: {e}",
                        self.addr
                    );
                    return Err(fail(&mut peers, reason));
                }
            }
        }
        let mut streams = Vec::with_capacity(world - 1);
        for (i, s) in peers.into_iter().enumerate() {
            let mut s = s.ok_or_else(|| anyhow!("rank {} missing after the rendezvous", i + 1))?;
            s.set_read_timeout(Some(self.opts.op_timeout)).ok();
            s.set_write_timeout(Some(self.opts.op_timeout)).ok();
            send_welcome(&mut s, None)
                .with_context(|| format!("rank 0: answering rank {} at the rendezvous", i + 1))?;
            streams.push(s);
        }
        rdv.links = Links::Root { peers: streams };
        Ok(rdv)
    }
}

fn read_hello(s: &mut TcpStream, timeout: Duration) -> Result<(usize, usize)> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(timeout))?;
    let mut b = [0u8; 16];
    s.read_exact(&mut b)
        .map_err(|e| anyhow!("no seisfuse hello ({e})"))?;
    if b[..8] != MAGIC {
        bail!("not a seisfuse hello (another program, or a different seisfuse version)");
    }
    let r = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
    let w = u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize;
    Ok((r, w))
}

/// The welcome: MAGIC, status (0 ok, 1 abort), u32 reason length, reason.
fn send_welcome(s: &mut TcpStream, abort: Option<&str>) -> std::io::Result<()> {
    let reason = abort.map(|r| truncate(r, MAX_REASON)).unwrap_or_default();
    let mut b = Vec::with_capacity(13 + reason.len());
    b.extend_from_slice(&MAGIC);
    b.push(abort.is_some() as u8);
    b.extend_from_slice(&(reason.len() as u32).to_le_bytes());
    b.extend_from_slice(reason.as_bytes());
    s.write_all(&b)
}

fn send_abort(s: &mut TcpStream, reason: &str) -> std::io::Result<()> {
    let reason = truncate(reason, MAX_REASON);
    let h = Header {
        kind: Kind::Abort as u8,
        wire: Wire::U8 as u8,
        root: 0,
        seq: 0,
        len: reason.len() as u64,
    };
    s.set_write_timeout(Some(Duration::from_secs(2))).ok();
    s.write_all(&h.encode())?;
    s.write_all(reason.as_bytes())
}

/// Reads an abort reason of `len` bytes (at most MAX_REASON; longer means a hostile peer).
fn read_reason(s: &mut TcpStream, len: usize) -> String {
    if len > MAX_REASON {
        return format!("(an over-long reason of {len} bytes, not read)");
    }
    let mut b = vec![0u8; len];
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    match s.read_exact(&mut b) {
        Ok(()) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => format!("(its reason could not be read: {e})"),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn io_err(me: usize, peer: usize, what: &str, e: std::io::Error) -> anyhow::Error {
    let why = match e.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            "the connection closed: did that rank stop? see its log".to_string()
        }
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            "no data within the collective timeout: that rank may be stuck, or slower than the timeout allows"
                .to_string()
        }
        _ => e.to_string(),
    };
    anyhow!("rank {me} lost rank {peer} during {what}: {why}")
}

/// "0-2, 5, 7-9" for a sorted list of ranks.
pub(crate) fn ranges(v: &[usize]) -> String {
    let out: Vec<String> = runs(v)
        .into_iter()
        .map(|(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect();
    out.join(", ")
}

/// The runs of consecutive numbers of a sorted list, as (first, last) pairs in order.
pub(crate) fn runs(v: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push((v[i], v[j]));
        i = j + 1;
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dist::env::RankSource;

    /// Rank `rank` of a loopback world of `world` ranks with rank 0 on `port`.
    pub(crate) fn info(rank: usize, world: usize, port: u16) -> RankInfo {
        RankInfo {
            rank,
            world_size: world,
            local_rank: rank,
            local_world_size: Some(world),
            master_addr: "127.0.0.1".into(),
            master_port: port,
            source: RankSource::Torchrun,
            note: None,
        }
    }

    /// Runs `f` on every rank of a loopback world (threads), rank 0 on an ephemeral port.
    fn world<T: Send + 'static>(
        n: usize,
        timeout: Duration,
        f: impl Fn(Rendezvous) -> Result<T> + Send + Sync + 'static,
    ) -> Vec<Result<T>> {
        let opts = RendezvousOptions::with_timeout(timeout);
        let l = Listening::bind(&info(0, n, 0), &opts).unwrap();
        let port = l.local_addr().port();
        let f = std::sync::Arc::new(f);
        let mut hs = Vec::new();
        for r in 1..n {
            let (f, opts) = (f.clone(), opts.clone());
            hs.push(std::thread::spawn(move || {
                f(Rendezvous::connect(&info(r, n, port), &opts)?)
            }));
        }
        let mut out = vec![l.accept_all().and_then(|rdv| f(rdv))];
        out.extend(hs.into_iter().map(|h| h.join().unwrap()));
        out
    }

    #[test]
    fn broadcast_barrier_and_sum() {
        let res = world(4, Duration::from_secs(5), |mut rdv| {
            let mut id = [0u8; 128];
            if rdv.rank() == 0 {
                id.iter_mut()
                    .enumerate()
                    .for_each(|(i, b)| *b = i as u8 ^ 0x5A);
            }
            rdv.broadcast(&mut id, 0)?;
            let mut from2 = [rdv.rank() as u8; 3];
            rdv.broadcast(&mut from2, 2)?;
            rdv.barrier()?;
            Ok((id, from2))
        });
        for r in res {
            let (id, from2) = r.unwrap();
            assert!(id.iter().enumerate().all(|(i, &b)| b == i as u8 ^ 0x5A));
            assert_eq!(from2, [2; 3]);
        }
    }

    #[test]
    fn missing_rank_is_named_by_everyone() {
        let opts = RendezvousOptions::with_timeout(Duration::from_millis(600));
        let l = Listening::bind(&info(0, 4, 0), &opts).unwrap();
        let port = l.local_addr().port();
        let hs: Vec<_> = [1, 3]
            .into_iter()
            .map(|r| {
                let opts = opts.clone();
                std::thread::spawn(move || Rendezvous::connect(&info(r, 4, port), &opts))
            })
            .collect();
        let t = Instant::now();
        let e = format!("{:#}", l.accept_all().unwrap_err());
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(e.contains("rank 2 did not arrive"), "{e}");
        assert!(e.contains("arrived: 0-1, 3"), "{e}");
        for h in hs {
            let e = format!("{:#}", h.join().unwrap().unwrap_err());
            assert!(e.contains("rank 2 did not arrive"), "{e}");
        }
    }

    #[test]
    fn nobody_listening() {
        // A port that was free a moment ago: connecting fails until the deadline.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = RendezvousOptions::with_timeout(Duration::from_millis(300));
        let e = format!(
            "{:#}",
            Rendezvous::connect(&info(1, 2, port), &opts).unwrap_err()
        );
        assert!(e.contains("rank 1 could not reach rank 0"), "{e}");
    }

    #[test]
    fn strangers_are_ignored_and_misconfigurations_named() {
        let opts = RendezvousOptions::with_timeout(Duration::from_secs(5));
        let l = Listening::bind(&info(0, 2, 0), &opts).unwrap();
        let addr = l.local_addr();
        let h = std::thread::spawn(move || {
            // A stranger that sends garbage, then one that sends nothing, then the real rank.
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let _silent = TcpStream::connect(addr).unwrap();
            let opts = RendezvousOptions::with_timeout(Duration::from_secs(5));
            Rendezvous::connect(&info(1, 2, addr.port()), &opts)
        });
        let mut root = l.accept_all().unwrap();
        let mut leaf = h.join().unwrap().unwrap();
        let t = std::thread::spawn(move || leaf.barrier());
        root.barrier().unwrap();
        t.join().unwrap().unwrap();

        // A rank with another world size: both sides say so.
        let l = Listening::bind(&info(0, 2, 0), &opts).unwrap();
        let port = l.local_addr().port();
        let h = std::thread::spawn(move || {
            let opts = RendezvousOptions::with_timeout(Duration::from_secs(5));
            Rendezvous::connect(&info(1, 3, port), &opts)
        });
        let e = format!("{:#}", l.accept_all().unwrap_err());
        assert!(e.contains("says the world has 3 ranks"), "{e}");
        let e = format!("{:#}", h.join().unwrap().unwrap_err());
        assert!(e.contains("says the world has 3 ranks"), "{e}");
    }

    #[test]
    fn mismatched_collectives_are_named() {
        // Rank 2 all-reduces 7 values where the others have 8: rank 0 names it and tells the
        // others, who were waiting for the result.
        let res = world(3, Duration::from_secs(5), |mut rdv| {
            let mut v = vec![1.0f32; if rdv.rank() == 2 { 7 } else { 8 }];
            rdv.all_reduce_with(
                Wire::F32,
                &mut v,
                &mut |_, acc, x| acc.iter_mut().zip(x).for_each(|(a, b)| *a += b),
                &mut |_| {},
            )
        });
        for (r, res) in res.iter().enumerate() {
            let e = format!("{:#}", res.as_ref().unwrap_err());
            assert!(
                e.contains("rank 2 sent all-reduce #1 of 28 bytes of f32"),
                "rank {r}: {e}"
            );
            if r > 0 {
                assert!(e.contains("rank 0 aborted"), "rank {r}: {e}");
            }
        }
    }

    #[test]
    fn rank_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8, 9]), "0-2, 5, 7-9");
        assert_eq!(ranges(&[3]), "3");
        assert_eq!(ranges(&[]), "");
    }
}
