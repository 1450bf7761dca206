//! `seisfuse launch`: ranks started with their environment and prefixed output, a failing
//! rank stops the others and is named, SIGTERM to the launcher reaches the ranks, and
//! `bench allreduce` runs under it over TCP.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_seisfuse");

fn launch(args: &[&str]) -> Command {
    let mut c = Command::new(EXE);
    c.arg("launch").args(args);
    for k in [
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "SLURM_PROCID",
    ] {
        c.env_remove(k);
    }
    c.env("RAYON_NUM_THREADS", "1");
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn three_ranks_meet_with_prefixed_output() {
    let o = launch(&[
        "--nproc-per-node",
        "3",
        "--",
        "--device",
        "cpu",
        "doctor",
        "--dist",
    ])
    .args(["--dist-backend", "tcp", "--dist-timeout", "30"])
    .output()
    .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    for r in 0..3 {
        assert!(
            out.contains(&format!(
                "[rank {r}] rank {r}: rank {r} of 3 (local {r} of 3) from RANK/WORLD_SIZE"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!("[rank {r}] rank {r}: all-reduce of")),
            "{out}"
        );
    }
    assert!(err.contains("[launch] all 3 ranks finished"), "{err}");
}

#[test]
fn a_failing_rank_stops_the_others_and_is_named() {
    let t = Instant::now();
    // Rank 1 fails at once; ranks 0 and 2 would wait 60 s for it at the rendezvous.
    let o = launch(&["--nproc-per-node", "3", "--grace", "5", "--"])
        .args([
            "--device",
            "cpu",
            "doctor",
            "--dist",
            "--dist-backend",
            "tcp",
        ])
        .args(["--dist-timeout", "60", "--dist-fail-rank", "1"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}\n{err}");
    assert!(t.elapsed() < Duration::from_secs(9), "{:?}", t.elapsed());
    assert!(
        err.contains("[rank 1] error: rank 1: failing on purpose"),
        "{err}"
    );
    assert!(
        err.contains("rank 1 (local rank 1) exited with code 1; the other ranks were stopped"),
        "{err}"
    );
}

#[test]
fn sigterm_is_forwarded_to_the_ranks() {
    // Node 0 of 2: its ranks wait for node 1, which never comes, until the launcher is told
    // to stop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = launch(&["--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "0"])
        .args([
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            &port.to_string(),
            "--grace",
            "5",
        ])
        .args([
            "--",
            "--device",
            "cpu",
            "doctor",
            "--dist",
            "--dist-backend",
            "tcp",
            "--dist-timeout",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut lines = Vec::new();
    let mut pids = Vec::new();
    while pids.len() < 2 {
        let l = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("launcher output");
        if let Some(rest) = l.strip_prefix("[launch] rank ") {
            if let Some((_, pid)) = rest.split_once(": pid ") {
                pids.push(pid.trim().parse::<i32>().unwrap());
            }
        }
        lines.push(l);
    }
    // Let the ranks reach the rendezvous.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "launcher still running: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        lines.push(l);
    }
    let err = lines.join("\n");
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("SIGTERM received: forwarding it to the ranks"),
        "{err}"
    );
    assert!(err.contains("stopped by SIGTERM"), "{err}");
    for pid in pids {
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "rank process {pid} still exists");
    }
}

#[test]
fn bench_allreduce_runs_under_the_launcher() {
    let o = launch(&[
        "--nproc-per-node",
        "2",
        "--",
        "--device",
        "cpu",
        "bench",
        "allreduce",
    ])
    .args([
        "--sizes", "1K,64K", "--iters", "3", "--warmup", "1", "--dtype", "fp32",
    ])
    .output()
    .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("[rank 0] # seisfuse bench allreduce: 2 ranks, backend tcp"),
        "{out}"
    );
    assert!(out.contains("busbw"), "{out}");
    assert!(out.contains("65536"), "{out}");
    assert!(out.contains("Out of bounds values : 0 OK"), "{out}");
    assert!(
        !out.contains("[rank 1] #"),
        "only rank 0 prints the table: {out}"
    );
}

#[test]
fn bad_launches_say_why() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--nproc-per-node", "0", "--", "doctor"],
            "--nproc-per-node must be at least 1",
        ),
        (
            &["--nproc-per-node", "1", "--nnodes", "2", "--", "doctor"],
            "--master-addr is needed",
        ),
        (
            &[
                "--nproc-per-node",
                "1",
                "--nnodes",
                "2",
                "--node-rank",
                "2",
                "--master-addr",
                "h",
                "--",
                "doctor",
            ],
            "--node-rank 2 is not below",
        ),
        (
            &["--nproc-per-node", "1", "--", "launch"],
            "launchers inside launchers",
        ),
    ];
    for (args, want) in cases {
        let o = launch(args).output().unwrap();
        let (_, err) = text(&o);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
    }
    // The command after `--` is required.
    let o = launch(&["--nproc-per-node", "1"]).output().unwrap();
    assert!(!o.status.success());
}
