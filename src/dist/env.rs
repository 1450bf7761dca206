//! Which rank this process is, read from the environment a launcher set.
//!
//! Order: torchrun-style variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
//! `MASTER_ADDR`, `MASTER_PORT`; set by `seisfuse launch`, torchrun, and most launchers), then
//! Slurm's (`SLURM_PROCID`, `SLURM_STEP_NUM_TASKS`, `SLURM_LOCALID`, the first host of
//! `SLURM_STEP_NODELIST` / `SLURM_JOB_NODELIST` as master), else a single process.
//!
//! The environment is passed in as a lookup function so that tests need not touch the
//! process's own environment: `RankInfo::from_env(&|k| map.get(k).cloned())`.

use super::hostlist;
use anyhow::{bail, Context, Result};

/// torchrun's default rendezvous port, used by `seisfuse launch` for several nodes.
pub const DEFAULT_MASTER_PORT: u16 = 29500;

/// Where the rank information came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankSource {
    /// `RANK`/`WORLD_SIZE`/... (seisfuse launch, torchrun, or set by hand).
    Torchrun,
    /// A task of a Slurm job step (`srun`).
    Slurm,
    /// No launcher: one process, rank 0 of 1.
    Single,
}

/// This process's place in a (possibly) distributed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankInfo {
    /// Global rank, 0..world_size. Rank 0 writes logs and checkpoints.
    pub rank: usize,
    pub world_size: usize,
    /// Rank on this node; the GPU this rank uses is `cuda:local_rank`.
    pub local_rank: usize,
    /// Ranks on this node, when the launcher says.
    pub local_world_size: Option<usize>,
    /// Host of rank 0, where the rendezvous listens.
    pub master_addr: String,
    pub master_port: u16,
    pub source: RankSource,
    /// Something the user should know about how the environment was read (printed by
    /// `seisfuse doctor --dist` and, later, by the trainer), e.g. a Slurm batch script that
    /// runs seisfuse without `srun`.
    pub note: Option<String>,
}

impl RankInfo {
    /// Rank 0 of 1, no launcher.
    pub fn single() -> Self {
        RankInfo {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            local_world_size: Some(1),
            master_addr: "127.0.0.1".into(),
            master_port: 0,
            source: RankSource::Single,
            note: None,
        }
    }

    /// Reads the process environment.
    pub fn from_process_env() -> Result<Self> {
        Self::from_env(&|k| std::env::var(k).ok())
    }

    /// Reads an environment given as a lookup (`None` = unset). Empty values count as unset.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if get("RANK").is_some() || get("WORLD_SIZE").is_some() {
            return torchrun(&get);
        }
        if get("SLURM_PROCID").is_some() {
            if get("SLURM_STEP_NUM_TASKS").is_some() || get("SLURM_STEP_ID").is_some() {
                return slurm(&get);
            }
            // The batch script itself (or an salloc shell): Slurm sets SLURM_PROCID=0 and
            // SLURM_NTASKS there too, but no other task runs beside this process.
            let mut info = RankInfo::single();
            if let Some(n) = get("SLURM_NTASKS").filter(|n| n != "1") {
                info.note = Some(format!(
                    "SLURM_NTASKS={n} but this process is not a task of an srun step: running \
                     as a single process. Start the ranks with `srun seisfuse ...` (one task \
                     per GPU) or `seisfuse launch`"
                ));
            }
            return Ok(info);
        }
        Ok(RankInfo::single())
    }

    /// True for the rank that writes logs and checkpoints.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    pub fn is_distributed(&self) -> bool {
        self.world_size > 1
    }

    /// The CUDA device this rank trains on, given how many GPUs the process sees: its local
    /// rank (all of the node's GPUs visible, as `seisfuse launch` and a plain `srun` leave
    /// them), or 0 when the launcher made exactly one GPU visible per rank (Slurm's
    /// `--gpus-per-task=1` / `--gpu-bind`, or `CUDA_VISIBLE_DEVICES` set per rank).
    pub fn cuda_device(&self, visible_gpus: usize) -> Result<usize> {
        match visible_gpus {
            0 => bail!("rank {}: no GPU is visible to this process", self.rank),
            1 => Ok(0),
            n if self.local_rank < n => Ok(self.local_rank),
            n => bail!(
                "rank {} has local rank {} but this process sees {n} GPUs (cuda:0..{}): start at \
                 most one rank per GPU on a node (--nproc-per-node, --ntasks-per-node)",
                self.rank,
                self.local_rank,
                n - 1
            ),
        }
    }

    /// `host:port` of the rendezvous (IPv6 addresses in brackets).
    pub fn master(&self) -> String {
        if self.master_addr.contains(':') && !self.master_addr.starts_with('[') {
            format!("[{}]:{}", self.master_addr, self.master_port)
        } else {
            format!("{}:{}", self.master_addr, self.master_port)
        }
    }

    /// One line for logs: "rank 3 of 8 (local 3 of 4) from Slurm, master node01:29500".
    pub fn describe(&self) -> String {
        let local = match self.local_world_size {
            Some(n) => format!("local {} of {n}", self.local_rank),
            None => format!("local {}", self.local_rank),
        };
        let src = match self.source {
            RankSource::Torchrun => "RANK/WORLD_SIZE",
            RankSource::Slurm => "Slurm",
            RankSource::Single => "no launcher",
        };
        format!(
            "rank {} of {} ({local}) from {src}, master {}",
            self.rank,
            self.world_size,
            self.master()
        )
    }
}

type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

fn parse_usize(get: Get, key: &str, what: &str) -> Result<Option<usize>> {
    match get(key) {
        None => Ok(None),
        Some(v) => v.parse::<usize>().map(Some).map_err(|_| {
            anyhow::anyhow!("{key}='{v}' is not a whole number (it should be {what})")
        }),
    }
}

fn parse_port(get: Get, key: &str) -> Result<Option<u16>> {
    match get(key) {
        None => Ok(None),
        Some(v) => v.parse::<u16>().map(Some).map_err(|_| {
            anyhow::anyhow!(
                "{key}='{v}' is not a port number (0-65535, e.g. {DEFAULT_MASTER_PORT})"
            )
        }),
    }
}

fn check(info: &RankInfo, vars: &str) -> Result<()> {
    if info.world_size == 0 {
        bail!("{vars}: the world size is 0; it should be the number of processes (at least 1)");
    }
    if info.rank >= info.world_size {
        bail!(
            "{vars}: rank {} is not below the world size {} (ranks run from 0 to {})",
            info.rank,
            info.world_size,
            info.world_size - 1
        );
    }
    if let Some(l) = info.local_world_size {
        if l == 0 || info.local_rank >= l {
            bail!(
                "{vars}: local rank {} is not below the local world size {l}",
                info.local_rank
            );
        }
        if l > info.world_size {
            bail!(
                "{vars}: the local world size {l} is larger than the world size {}",
                info.world_size
            );
        }
    }
    if info.local_rank > info.rank {
        bail!(
            "{vars}: local rank {} is larger than the global rank {} (the ranks of one node \
             are numbered within the global ranks)",
            info.local_rank,
            info.rank
        );
    }
    Ok(())
}

fn torchrun(get: Get) -> Result<RankInfo> {
    const VARS: &str =
        "torchrun-style environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)";
    let rank = parse_usize(get, "RANK", "this process's global rank, from 0")?;
    let world = parse_usize(get, "WORLD_SIZE", "the number of processes")?;
    let (rank, world_size) = match (rank, world) {
        (Some(r), Some(w)) => (r, w),
        (Some(_), None) => bail!("{VARS}: RANK is set but WORLD_SIZE is not; set both"),
        (None, Some(_)) => bail!("{VARS}: WORLD_SIZE is set but RANK is not; set both"),
        (None, None) => unreachable!("torchrun() is called when one of them is set"),
    };
    let local_rank = parse_usize(get, "LOCAL_RANK", "the rank on this node, from 0")?;
    let local_world_size =
        parse_usize(get, "LOCAL_WORLD_SIZE", "the number of ranks on this node")?;
    let local_rank = match local_rank {
        Some(l) => l,
        None if world_size == 1 => 0,
        None => bail!(
            "{VARS}: LOCAL_RANK is not set (WORLD_SIZE={world_size}); set it to this process's \
             index on its node (its GPU), as torchrun and `seisfuse launch` do"
        ),
    };
    let master_addr = get("MASTER_ADDR");
    let master_port = parse_port(get, "MASTER_PORT")?;
    let (master_addr, master_port) = if world_size > 1 {
        let Some(addr) = master_addr else {
            bail!(
                "{VARS}: MASTER_ADDR is not set (WORLD_SIZE={world_size}); set it to the host \
                 of rank 0 that every rank can reach"
            )
        };
        let Some(port) = master_port else {
            bail!(
                "{VARS}: MASTER_PORT is not set (WORLD_SIZE={world_size}); set it to a free port \
                 on rank 0's host, the same for every rank (e.g. {DEFAULT_MASTER_PORT})"
            )
        };
        if port == 0 && rank != 0 {
            bail!("{VARS}: MASTER_PORT=0 on rank {rank}: the other ranks need rank 0's real port");
        }
        (addr, port)
    } else {
        (
            master_addr.unwrap_or_else(|| "127.0.0.1".into()),
            master_port.unwrap_or(0),
        )
    };
    let info = RankInfo {
        rank,
        world_size,
        local_rank,
        local_world_size,
        master_addr,
        master_port,
        source: RankSource::Torchrun,
        note: None,
    };
    check(&info, VARS)?;
    Ok(info)
}

fn slurm(get: Get) -> Result<RankInfo> {
    const VARS: &str = "Slurm environment (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID)";
    let rank = parse_usize(get, "SLURM_PROCID", "this task's rank, from 0")?.unwrap_or(0);
    let world_size = match parse_usize(get, "SLURM_STEP_NUM_TASKS", "the tasks of this step")? {
        Some(n) => n,
        None => parse_usize(get, "SLURM_NTASKS", "the number of tasks")?.with_context(|| {
            format!("{VARS}: neither SLURM_STEP_NUM_TASKS nor SLURM_NTASKS is set")
        })?,
    };
    let local_rank = parse_usize(get, "SLURM_LOCALID", "the task's index on its node")?
        .with_context(|| format!("{VARS}: SLURM_LOCALID is not set"))?;
    let local_world_size = get("SLURM_STEP_TASKS_PER_NODE")
        .or_else(|| get("SLURM_TASKS_PER_NODE"))
        .and_then(|t| {
            let node = parse_usize(get, "SLURM_NODEID", "").ok().flatten();
            tasks_on_node(&t, node)
        });
    let master_addr = match get("MASTER_ADDR") {
        Some(a) => a,
        None => {
            let (key, list) = [
                "SLURM_STEP_NODELIST",
                "SLURM_JOB_NODELIST",
                "SLURM_NODELIST",
            ]
            .iter()
            .find_map(|k| get(k).map(|v| (*k, v)))
            .with_context(|| {
                format!(
                    "{VARS}: no node list (SLURM_STEP_NODELIST, SLURM_JOB_NODELIST) to take \
                         rank 0's host from; set MASTER_ADDR"
                )
            })?;
            hostlist::first_host(&list).with_context(|| format!("reading {key}"))?
        }
    };
    // Every task of the step must agree on the port without talking: MASTER_PORT when set,
    // else one derived from the job id (so that two jobs sharing a node differ).
    let master_port = match parse_port(get, "MASTER_PORT")? {
        Some(p) => p,
        None => match parse_usize(get, "SLURM_JOB_ID", "the job id")? {
            Some(id) => 15000 + (id % 20000) as u16,
            None => DEFAULT_MASTER_PORT,
        },
    };
    let info = RankInfo {
        rank,
        world_size,
        local_rank,
        local_world_size,
        master_addr,
        master_port,
        source: RankSource::Slurm,
        note: None,
    };
    check(&info, VARS)?;
    Ok(info)
}

/// Tasks on one node from Slurm's `SLURM_STEP_TASKS_PER_NODE` ("4(x2),3"): the node's entry
/// when `node` is known, else the common value when every node has the same.
fn tasks_on_node(spec: &str, node: Option<usize>) -> Option<usize> {
    let mut per_node = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        let (n, times) = match item.split_once("(x") {
            Some((n, rest)) => (n, rest.strip_suffix(')')?.parse::<usize>().ok()?),
            None => (item, 1),
        };
        let n: usize = n.parse().ok()?;
        if per_node.len() + times > 1 << 20 {
            return None;
        }
        per_node.extend(std::iter::repeat_n(n, times));
    }
    match node {
        Some(i) if i < per_node.len() => Some(per_node[i]),
        _ => {
            let first = *per_node.first()?;
            per_node.iter().all(|&n| n == first).then_some(first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<RankInfo> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RankInfo::from_env(&|k| m.get(k).cloned())
    }

    fn err(vars: &[(&str, &str)]) -> String {
        format!("{:#}", read(vars).unwrap_err())
    }

    #[test]
    fn nothing_set_is_a_single_process() {
        let i = read(&[]).unwrap();
        assert_eq!(i, RankInfo::single());
        assert!(i.is_main() && !i.is_distributed());
    }

    #[test]
    fn torchrun_style() {
        let i = read(&[
            ("RANK", "5"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "4"),
            ("MASTER_ADDR", "node01"),
            ("MASTER_PORT", "29500"),
        ])
        .unwrap();
        assert_eq!(
            (i.rank, i.world_size, i.local_rank, i.local_world_size),
            (5, 8, 1, Some(4))
        );
        assert_eq!(i.master(), "node01:29500");
        assert_eq!(i.source, RankSource::Torchrun);
        assert!(i.describe().contains("rank 5 of 8 (local 1 of 4)"));
        // One process needs neither a master nor a local rank.
        let i = read(&[("RANK", "0"), ("WORLD_SIZE", "1")]).unwrap();
        assert_eq!((i.world_size, i.local_rank), (1, 0));
        // IPv6 masters are bracketed.
        let i = read(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "::1"),
            ("MASTER_PORT", "1234"),
        ])
        .unwrap();
        assert_eq!(i.master(), "[::1]:1234");
    }

    #[test]
    fn torchrun_wins_over_slurm() {
        let i = read(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "3"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "4000"),
            ("SLURM_PROCID", "0"),
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_STEP_NODELIST", "n[1-2]"),
        ])
        .unwrap();
        assert_eq!((i.rank, i.source), (3, RankSource::Torchrun));
    }

    #[test]
    fn torchrun_errors() {
        let base = [
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "0"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "1"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v: Vec<(&str, &str)> = base.to_vec();
            for (k, val) in extra {
                v.retain(|(kk, _)| kk != k);
                v.push((k, val));
            }
            err(&v)
        };
        assert!(with(&[("RANK", "4")]).contains("rank 4 is not below the world size 4"));
        assert!(with(&[("RANK", "x")]).contains("RANK='x' is not a whole number"));
        assert!(with(&[("RANK", "-1")]).contains("not a whole number"));
        assert!(with(&[("RANK", "1"), ("MASTER_PORT", "70000")]).contains("not a port number"));
        assert!(with(&[("RANK", "1"), ("WORLD_SIZE", "0")]).contains("world size is 0"));
        assert!(with(&[("RANK", "2"), ("LOCAL_RANK", "3")]).contains("larger than the global"));
        assert!(with(&[
            ("RANK", "2"),
            ("LOCAL_RANK", "2"),
            ("LOCAL_WORLD_SIZE", "2")
        ])
        .contains("not below the local world size"));
        assert!(err(&[("RANK", "1")]).contains("WORLD_SIZE is not"));
        assert!(err(&[("WORLD_SIZE", "2")]).contains("RANK is not"));
        assert!(err(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "1")
        ])
        .contains("LOCAL_RANK is not set"));
        assert!(err(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_PORT", "1")
        ])
        .contains("MASTER_ADDR is not set"));
        assert!(err(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "h")
        ])
        .contains("MASTER_PORT is not set"));
        assert!(with(&[("RANK", "1"), ("MASTER_PORT", "0")]).contains("MASTER_PORT=0 on rank 1"));
        // Rank 0 may ask for any free port (tests, `seisfuse launch` on one node).
        assert!(read(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "0"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "0"),
        ])
        .is_ok());
    }

    #[test]
    fn slurm_step() {
        let i = read(&[
            ("SLURM_PROCID", "9"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_STEP_NUM_TASKS", "16"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_STEP_NODELIST", "gpu-a[07-08]-ib"),
            ("SLURM_JOB_NODELIST", "other[1-9]"),
            ("SLURM_STEP_TASKS_PER_NODE", "8(x2)"),
            ("SLURM_JOB_ID", "123456"),
        ])
        .unwrap();
        assert_eq!(i.source, RankSource::Slurm);
        assert_eq!(
            (i.rank, i.world_size, i.local_rank, i.local_world_size),
            (9, 16, 1, Some(8))
        );
        assert_eq!(i.master_addr, "gpu-a07-ib");
        assert_eq!(i.master_port, 15000 + (123456 % 20000) as u16);
        // The job's node list when the step's is missing; MASTER_ADDR/PORT override.
        let i = read(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_STEP_ID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_JOB_NODELIST", "r[3-4]n[01-02]"),
        ])
        .unwrap();
        assert_eq!((i.world_size, i.master_addr.as_str()), (2, "r3n01"));
        assert_eq!(i.master_port, DEFAULT_MASTER_PORT);
        let i = read(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_STEP_NODELIST", "n1"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "6000"),
        ])
        .unwrap();
        assert_eq!(i.master(), "10.0.0.1:6000");
    }

    #[test]
    fn slurm_errors_and_batch_script() {
        assert!(err(&[
            ("SLURM_PROCID", "2"),
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_STEP_NODELIST", "n1"),
        ])
        .contains("rank 2 is not below the world size 2"));
        assert!(err(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("SLURM_LOCALID", "0"),
        ])
        .contains("set MASTER_ADDR"));
        assert!(err(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_STEP_NODELIST", "n[1-"),
        ])
        .contains("SLURM_STEP_NODELIST"));
        assert!(err(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_STEP_NUM_TASKS", "two"),
            ("SLURM_LOCALID", "0"),
        ])
        .contains("SLURM_STEP_NUM_TASKS='two'"));
        // In the batch script itself: one process, with a note.
        let i = read(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_JOB_NODELIST", "n1"),
        ])
        .unwrap();
        assert_eq!((i.world_size, i.source), (1, RankSource::Single));
        assert!(i.note.unwrap().contains("srun"));
    }

    #[test]
    fn cuda_device_of_a_rank() {
        let mut i = RankInfo::single();
        i.rank = 5;
        i.local_rank = 2;
        assert_eq!(i.cuda_device(8).unwrap(), 2);
        assert_eq!(i.cuda_device(1).unwrap(), 0);
        assert!(format!("{:#}", i.cuda_device(2).unwrap_err()).contains("sees 2 GPUs"));
        assert!(i.cuda_device(0).is_err());
    }

    #[test]
    fn tasks_per_node() {
        assert_eq!(tasks_on_node("8(x4)", None), Some(8));
        assert_eq!(tasks_on_node("4(x2),3", Some(2)), Some(3));
        assert_eq!(tasks_on_node("4(x2),3", Some(1)), Some(4));
        assert_eq!(tasks_on_node("4(x2),3", None), None);
        assert_eq!(tasks_on_node("garbage", None), None);
    }
}
