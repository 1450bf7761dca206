//! `seisfuse launch`: starts one process per local GPU running a seisfuse command, like
//! torchrun. Each child gets `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
//! `GROUP_RANK`, `MASTER_ADDR` and `MASTER_PORT` (`CUDA_VISIBLE_DEVICES` is left alone; rank
//! `l` of a node uses `cuda:l`). Output lines are prefixed with the rank; SIGINT, SIGTERM,
//! SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to the ranks; when a rank fails, the
//! others are stopped (SIGTERM, then SIGKILL after `--grace` seconds) and the launcher exits
//! with an error naming the rank.
//!
//! The children run in their own process group, so that a Ctrl-C or a Slurm signal reaches
//! them once, through the launcher; and they get SIGTERM if the launcher dies.

use crate::dist::env::DEFAULT_MASTER_PORT;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  seisfuse launch --nproc-per-node 8 -- train --config run.toml\n  \
                  seisfuse launch --nproc-per-node 4 -- doctor --dist\n  \
                  # two nodes, on each (NODE = 0 or 1):\n  \
                  seisfuse launch --nproc-per-node 8 --nnodes 2 --node-rank $NODE --master-addr node01 -- train ..."
)]
pub struct Args {
    /// Processes (ranks) to start on this node, normally one per GPU.
    #[arg(long)]
    pub nproc_per_node: usize,
    /// Nodes taking part (each runs its own `seisfuse launch`).
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,
    /// This node's index, 0..nnodes (node 0 hosts rank 0).
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// Address of node 0 that every node can reach (default 127.0.0.1 on one node; needed
    /// with several).
    #[arg(long)]
    pub master_addr: Option<String>,
    /// Rendezvous port on node 0 (default: a free port on one node, 29500 with several).
    #[arg(long)]
    pub master_port: Option<u16>,
    /// Seconds the ranks get to stop after SIGTERM before they are killed.
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
    /// Pass the ranks' output through as it is, without the "[rank N] " prefix.
    #[arg(long)]
    pub no_prefix: bool,
    /// The seisfuse command every rank runs, after `--`.
    #[arg(last = true, required = true, num_args = 1.., value_name = "SEISFUSE ARGS")]
    pub command: Vec<String>,
}

/// Signals forwarded to the ranks; the first four also stop the launch.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Signals received and not yet forwarded, one bit per signal number.
static PENDING: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    if (0..64).contains(&sig) {
        PENDING.fetch_or(1 << sig, Ordering::SeqCst);
    }
}

/// Installs the forwarding handler; returns the previous handlers to restore.
fn install_handlers() -> Vec<(libc::c_int, libc::sigaction)> {
    let mut old = Vec::new();
    for &sig in &FORWARDED {
        // SAFETY: a zeroed sigaction is valid; the handler only touches an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            let mut prev: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, &sa, &mut prev) == 0 {
                old.push((sig, prev));
            }
        }
    }
    old
}

fn restore_handlers(old: &[(libc::c_int, libc::sigaction)]) {
    for (sig, prev) in old {
        // SAFETY: restoring what sigaction returned.
        unsafe {
            libc::sigaction(*sig, prev, std::ptr::null_mut());
        }
    }
}

pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        n => format!("signal {n}"),
    }
}

fn describe(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("was killed by {}", signal_name(s)),
        _ => format!("ended ({st})"),
    }
}

/// A free TCP port on the loopback interface (for a one-node launch).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .context("finding a free port for the rendezvous")?;
    Ok(l.local_addr()?.port())
}

/// Copies `from` to `to` line by line, each line prefixed (lines over 64 KiB are cut).
fn pump(from: impl Read + Send + 'static, prefix: String, to_stderr: bool) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 16, from);
        let mut line: Vec<u8> = Vec::new();
        loop {
            let (done, used) = match r.fill_buf() {
                Ok([]) => (true, 0),
                Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        line.extend_from_slice(&buf[..=i]);
                        (false, i + 1)
                    }
                    None => {
                        line.extend_from_slice(buf);
                        (false, buf.len())
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => (true, 0),
            };
            r.consume(used);
            let complete = line.last() == Some(&b'\n') || line.len() >= 1 << 16;
            if (complete || done) && !line.is_empty() {
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                let mut out: Vec<u8> = Vec::with_capacity(prefix.len() + line.len());
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(&line);
                // A closed stdout of the launcher does not stop the ranks.
                let _ = if to_stderr {
                    std::io::stderr().lock().write_all(&out)
                } else {
                    let mut o = std::io::stdout().lock();
                    o.write_all(&out).and_then(|_| o.flush())
                };
                line.clear();
            }
            if done {
                break;
            }
        }
    })
}

struct Rank {
    rank: usize,
    child: Child,
    status: Option<ExitStatus>,
}

fn signal_all(ranks: &[Rank], sig: libc::c_int) {
    for r in ranks.iter().filter(|r| r.status.is_none()) {
        // SAFETY: kill(2) on our own child's pid (not reaped yet, so not reused).
        unsafe {
            libc::kill(r.child.id() as libc::pid_t, sig);
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let n = args.nproc_per_node;
    if n == 0 {
        bail!("--nproc-per-node must be at least 1");
    }
    if args.nnodes == 0 {
        bail!("--nnodes must be at least 1");
    }
    if args.node_rank >= args.nnodes {
        bail!(
            "--node-rank {} is not below --nnodes {} (nodes are numbered from 0)",
            args.node_rank,
            args.nnodes
        );
    }
    if !(args.grace.is_finite() && args.grace >= 0.0) {
        bail!("--grace must be a number of seconds (0 or more)");
    }
    let master_addr = match (&args.master_addr, args.nnodes) {
        (Some(a), _) => a.clone(),
        (None, 1) => "127.0.0.1".to_string(),
        (None, k) => bail!(
            "--master-addr is needed with --nnodes {k}: the address of node 0 (where rank 0 runs) \
             that every node can reach"
        ),
    };
    let master_port = match (args.master_port, args.nnodes) {
        (Some(p), _) => p,
        (None, 1) => free_port()?,
        (None, _) => DEFAULT_MASTER_PORT,
    };
    if args.command.first().map(String::as_str) == Some("launch") {
        bail!("`seisfuse launch -- launch ...` would start launchers inside launchers; give the command the ranks run, e.g. `-- train ...`");
    }
    let exe = std::env::current_exe().context("finding the seisfuse executable to start")?;
    let world = n * args.nnodes;
    // One rank per GPU shares the node's cores: unless the user chose, give each rank its
    // share of rayon's threads instead of every rank starting one per core.
    let threads = std::env::var_os("RAYON_NUM_THREADS").is_none().then(|| {
        let cores = std::thread::available_parallelism()
            .map(|c| c.get())
            .unwrap_or(1);
        (cores / n).max(1)
    });
    eprintln!(
        "[launch] {n} rank{} on this node (node {} of {}, ranks {}..{}), world size {world}, master {master_addr}:{master_port}{}",
        if n == 1 { "" } else { "s" },
        args.node_rank,
        args.nnodes,
        args.node_rank * n,
        args.node_rank * n + n - 1,
        threads.map(|t| format!(", RAYON_NUM_THREADS={t}")).unwrap_or_default()
    );

    let old_handlers = install_handlers();
    let mut ranks: Vec<Rank> = Vec::with_capacity(n);
    let mut pumps: Vec<JoinHandle<()>> = Vec::new();
    for local in 0..n {
        let rank = args.node_rank * n + local;
        let mut cmd = Command::new(&exe);
        cmd.args(&args.command)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("LOCAL_WORLD_SIZE", n.to_string())
            .env("GROUP_RANK", args.node_rank.to_string())
            .env("MASTER_ADDR", &master_addr)
            .env("MASTER_PORT", master_port.to_string())
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(t) = threads {
            cmd.env("RAYON_NUM_THREADS", t.to_string());
        }
        if !args.no_prefix {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        #[cfg(target_os = "linux")]
        // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and
        // exec. The child gets SIGTERM when the launcher's thread (this one) dies.
        unsafe {
            let parent = libc::getpid();
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::getppid() != parent {
                    libc::raise(libc::SIGTERM);
                }
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                signal_all(&ranks, libc::SIGKILL);
                for r in &mut ranks {
                    let _ = r.child.wait();
                }
                restore_handlers(&old_handlers);
                return Err(anyhow!(
                    "starting rank {rank} ({} {}): {e}",
                    exe.display(),
                    args.command.join(" ")
                ));
            }
        };
        if !args.no_prefix {
            let prefix = format!("[rank {rank}] ");
            if let Some(o) = child.stdout.take() {
                pumps.push(pump(o, prefix.clone(), false));
            }
            if let Some(e) = child.stderr.take() {
                pumps.push(pump(e, prefix, true));
            }
        }
        eprintln!("[launch] rank {rank}: pid {}", child.id());
        ranks.push(Rank {
            rank,
            child,
            status: None,
        });
    }

    let grace = Duration::from_secs_f64(args.grace);
    let mut stop_at: Option<Instant> = None;
    let mut killed = false;
    let mut stopped_by: Option<i32> = None;
    let mut failed: Option<(usize, usize, ExitStatus)> = None;
    loop {
        let pending = PENDING.swap(0, Ordering::SeqCst);
        for &sig in &FORWARDED {
            if pending & (1 << sig) != 0 {
                eprintln!(
                    "[launch] {} received: forwarding it to the ranks",
                    signal_name(sig)
                );
                signal_all(&ranks, sig);
                if [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT].contains(&sig) {
                    stopped_by.get_or_insert(sig);
                    stop_at.get_or_insert(Instant::now() + grace);
                }
            }
        }
        for i in 0..ranks.len() {
            if ranks[i].status.is_some() {
                continue;
            }
            match ranks[i].child.try_wait() {
                Ok(Some(st)) => {
                    ranks[i].status = Some(st);
                    if !st.success() && failed.is_none() && stopped_by.is_none() {
                        failed = Some((ranks[i].rank, i, st));
                        let live = ranks.iter().filter(|r| r.status.is_none()).count();
                        eprintln!(
                            "[launch] rank {} {}; stopping the other {live} rank{}",
                            ranks[i].rank,
                            describe(&st),
                            if live == 1 { "" } else { "s" }
                        );
                        signal_all(&ranks, libc::SIGTERM);
                        stop_at.get_or_insert(Instant::now() + grace);
                    }
                }
                Ok(None) => {}
                Err(e) => eprintln!("[launch] waiting for rank {}: {e}", ranks[i].rank),
            }
        }
        if ranks.iter().all(|r| r.status.is_some()) {
            break;
        }
        if let Some(t) = stop_at {
            if !killed && Instant::now() >= t {
                eprintln!(
                    "[launch] ranks still running after {:.0} s: killing them",
                    grace.as_secs_f64()
                );
                signal_all(&ranks, libc::SIGKILL);
                killed = true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    restore_handlers(&old_handlers);
    for p in pumps {
        let _ = p.join();
    }
    if let Some((rank, local, st)) = failed {
        bail!(
            "rank {rank} (local rank {local}) {}; the other ranks were stopped (its messages are \
             above, prefixed [rank {rank}])",
            describe(&st)
        );
    }
    if let Some(sig) = stopped_by {
        bail!(
            "stopped by {} (forwarded to the {n} ranks)",
            signal_name(sig)
        );
    }
    eprintln!("[launch] all {n} ranks finished");
    Ok(())
}
