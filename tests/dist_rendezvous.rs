//! The rendezvous between processes: 4 `seisfuse doctor --dist` processes over loopback
//! (rank 0 on an ephemeral port that it prints), and a world where one rank never arrives:
//! every started rank fails within the timeout, naming the missing rank.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_seisfuse");

/// Starts rank `rank` of `world`; its stdout and stderr lines arrive on the receiver.
fn start(rank: usize, world: usize, port: u16, timeout: f64) -> (Child, Receiver<String>) {
    let mut cmd = Command::new(EXE);
    cmd.args([
        "--device",
        "cpu",
        "doctor",
        "--dist",
        "--dist-backend",
        "tcp",
    ])
    .args(["--dist-timeout", &timeout.to_string()]);
    for k in [
        "SLURM_PROCID",
        "SLURM_STEP_NUM_TASKS",
        "SLURM_STEP_ID",
        "SLURM_NTASKS",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("LOCAL_WORLD_SIZE", world.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start seisfuse");
    let (tx, rx) = channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send(l);
        }
    });
    (child, rx)
}

/// Rank 0 on port 0: reads the port it printed.
fn start_root(world: usize, timeout: f64) -> (Child, Receiver<String>, u16, Vec<String>) {
    let (child, rx) = start(0, world, 0, timeout);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(l) = rx.recv_timeout(Duration::from_secs(20)) else {
            break;
        };
        if let Some(addr) = l.strip_prefix("rank 0: listening on ") {
            let port = addr.rsplit(':').next().unwrap().trim().parse().unwrap();
            seen.push(l);
            return (child, rx, port, seen);
        }
        seen.push(l);
    }
    panic!("rank 0 did not say where it listens: {seen:?}");
}

/// Waits for the process (at most `limit`) and collects its remaining output.
fn finish(
    mut c: Child,
    rx: Receiver<String>,
    mut lines: Vec<String>,
    limit: Duration,
) -> (bool, String, Duration) {
    let t = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > limit {
            let _ = c.kill();
            let _ = c.wait();
            panic!("process still running after {limit:?}: {lines:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let waited = t.elapsed();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        lines.push(l);
    }
    (status.success(), lines.join("\n"), waited)
}

#[test]
fn four_processes_meet_and_all_reduce() {
    let (c0, rx0, port, seen) = start_root(4, 20.0);
    let others: Vec<_> = (1..4).map(|r| start(r, 4, port, 20.0)).collect();
    let (ok, out, _) = finish(c0, rx0, seen, Duration::from_secs(30));
    assert!(ok, "{out}");
    assert!(out.contains("rank 0: rendezvous of 4 ranks"), "{out}");
    assert!(out.contains("over tcp ok"), "{out}");
    assert!(out.contains("sum of ranks 1..4 = 10"), "{out}");
    for (r, (c, rx)) in others.into_iter().enumerate() {
        let (ok, out, _) = finish(c, rx, Vec::new(), Duration::from_secs(30));
        assert!(ok, "rank {}: {out}", r + 1);
        assert!(out.contains("over tcp ok"), "{out}");
    }
}

#[test]
fn a_rank_that_never_arrives_is_named_within_the_timeout() {
    let timeout = 2.0;
    let start_t = Instant::now();
    let (c0, rx0, port, seen) = start_root(4, timeout);
    // Ranks 1 and 2 come; rank 3 never does.
    let others: Vec<_> = (1..3).map(|r| start(r, 4, port, timeout)).collect();
    let (ok, out, _) = finish(c0, rx0, seen, Duration::from_secs(15));
    let elapsed = start_t.elapsed();
    assert!(!ok, "{out}");
    assert!(out.contains("rank 3 did not arrive"), "{out}");
    assert!(out.contains("arrived: 0-2"), "{out}");
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    for (c, rx) in others {
        let (ok, out, _) = finish(c, rx, Vec::new(), Duration::from_secs(15));
        assert!(!ok, "{out}");
        assert!(out.contains("rank 0 gave up the rendezvous"), "{out}");
        assert!(out.contains("rank 3 did not arrive"), "{out}");
    }
}

#[test]
fn bad_environment_is_a_clear_error() {
    let out = Command::new(EXE)
        .args(["--device", "cpu", "doctor", "--dist"])
        .env("RANK", "4")
        .env("WORLD_SIZE", "4")
        .env("LOCAL_RANK", "0")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rank 4 is not below the world size 4"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
