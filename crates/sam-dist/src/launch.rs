//! Who am I in the job: rank, world size and rendezvous address, read from the variables the
//! usual launchers set.

use crate::error::{DistError, Result};

/// Which launcher's variables were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchSource {
    /// `torchrun` (or anything exporting its variables): `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
    /// `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`.
    Torchrun,
    /// Slurm's `srun`: `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`,
    /// `SLURM_NTASKS_PER_NODE`; the rendezvous from `MASTER_ADDR`/`MASTER_PORT` (or
    /// `SLURM_LAUNCH_NODE_IPADDR`).
    Slurm,
    /// Open MPI's `mpirun`: `OMPI_COMM_WORLD_RANK`, `OMPI_COMM_WORLD_SIZE`,
    /// `OMPI_COMM_WORLD_LOCAL_RANK`, `OMPI_COMM_WORLD_LOCAL_SIZE`.
    OpenMpi,
    /// MPICH / Intel MPI (PMI): `PMI_RANK`, `PMI_SIZE`, `MPI_LOCALRANKID`, `MPI_LOCALNRANKS`.
    Pmi,
    /// No launcher: a single process.
    None,
}

/// A process's place in the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    /// Rank in the job, `0..world_size`.
    pub rank: usize,
    /// Processes in the job.
    pub world_size: usize,
    /// Rank among the processes of this node (the GPU index of a one-process-per-GPU job).
    pub local_rank: usize,
    /// Processes on this node.
    pub local_world_size: usize,
    /// Rank 0's rendezvous address (`MASTER_ADDR`, `MASTER_PORT`), when given.
    pub master: Option<(String, u16)>,
    /// Where the values came from.
    pub source: LaunchSource,
}

impl LaunchEnv {
    /// One process, no launcher.
    pub fn single() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            local_world_size: 1,
            master: None,
            source: LaunchSource::None,
        }
    }

    /// Reads the process environment (see [`LaunchEnv::from_vars`]).
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Reads the launcher variables through `get`, the innermost launcher first: `torchrun`'s,
    /// then Open MPI's, PMI's and Slurm's (an `mpirun` inside a Slurm allocation passes the
    /// batch step's `SLURM_*` values on to every process); none of them is a single process. A set variable that is not a number, a rank
    /// outside the world, or a half-given rendezvous address is an error naming the variable.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let master = master(&get)?;
        let sets: [(LaunchSource, [&str; 4]); 4] = [
            (
                LaunchSource::Torchrun,
                ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"],
            ),
            (
                LaunchSource::OpenMpi,
                [
                    "OMPI_COMM_WORLD_RANK",
                    "OMPI_COMM_WORLD_SIZE",
                    "OMPI_COMM_WORLD_LOCAL_RANK",
                    "OMPI_COMM_WORLD_LOCAL_SIZE",
                ],
            ),
            (
                LaunchSource::Pmi,
                ["PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"],
            ),
            (
                LaunchSource::Slurm,
                [
                    "SLURM_PROCID",
                    "SLURM_NTASKS",
                    "SLURM_LOCALID",
                    "SLURM_NTASKS_PER_NODE",
                ],
            ),
        ];
        for (source, [rank_var, size_var, local_var, local_size_var]) in sets {
            let Some(rank) = number(&get, rank_var)? else {
                continue;
            };
            let world_size = number(&get, size_var)?.ok_or_else(|| {
                DistError::launch(size_var, format!("not set, but {rank_var} is"))
            })?;
            // `srun --mpi=pmi2` sets PMI's rank and size too, equal to Slurm's: that launch is
            // Slurm's, whose variables also give the node-local rank.
            if source == LaunchSource::Pmi
                && number(&get, "SLURM_PROCID").ok().flatten() == Some(rank)
                && number(&get, "SLURM_NTASKS").ok().flatten() == Some(world_size)
            {
                continue;
            }
            if world_size == 0 || rank >= world_size {
                return Err(DistError::launch(
                    rank_var,
                    format!("rank {rank} is outside a world of {world_size} ({size_var})"),
                ));
            }
            let local_rank = number(&get, local_var)?.unwrap_or(0);
            // Slurm writes e.g. "4" or "4(x2)" per node; only a plain count is taken.
            let local_world_size = match source {
                LaunchSource::Slurm => get(local_size_var)
                    .and_then(|v| v.split('(').next().and_then(|n| n.trim().parse().ok()))
                    .unwrap_or(1),
                _ => number(&get, local_size_var)?.unwrap_or(1),
            };
            let master = match (master.clone(), source) {
                // Rank 0 runs on the step's first node (`SLURM_LAUNCH_NODE_IPADDR` is where
                // `srun` was typed, a login node for an interactive step).
                (None, LaunchSource::Slurm) => get("SLURM_STEP_NODELIST")
                    .or_else(|| get("SLURM_JOB_NODELIST"))
                    .and_then(|l| first_host(&l))
                    .or_else(|| get("SLURM_LAUNCH_NODE_IPADDR"))
                    .zip(master_port(&get)?),
                (m, _) => m,
            };
            return Ok(Self {
                rank,
                world_size,
                local_rank,
                local_world_size: local_world_size.max(local_rank + 1),
                master,
                source,
            });
        }
        Ok(Self {
            master,
            ..Self::single()
        })
    }

    /// Rank 0 of the job (writes checkpoints, logs, plots).
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }
}

fn number(get: &impl Fn(&str) -> Option<String>, var: &str) -> Result<Option<usize>> {
    match get(var) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| DistError::launch(var, format!("{v:?} is not a non-negative integer"))),
    }
}

fn master(get: &impl Fn(&str) -> Option<String>) -> Result<Option<(String, u16)>> {
    let addr = get("MASTER_ADDR").filter(|a| !a.trim().is_empty());
    match (addr, master_port(get)?) {
        (Some(a), Some(p)) => Ok(Some((a.trim().to_string(), p))),
        (Some(_), None) => Err(DistError::launch(
            "MASTER_PORT",
            "not set, but MASTER_ADDR is",
        )),
        _ => Ok(None),
    }
}

/// The rendezvous port `MASTER_PORT` stands for (see [`rendezvous_port`]), when it is set.
fn master_port(get: &impl Fn(&str) -> Option<String>) -> Result<Option<u16>> {
    let Some(p) = get("MASTER_PORT") else {
        return Ok(None);
    };
    let port = p
        .trim()
        .parse::<u16>()
        .map_err(|_| DistError::launch("MASTER_PORT", format!("{p:?} is not a port number")))?;
    Ok(Some(rendezvous_port(get, port)?))
}

/// The port rank 0 listens on for sam-dist's rendezvous: `SAM_DIST_PORT` when set; else
/// `MASTER_PORT`, except under a `torchrun` whose agent keeps its own store open on
/// `MASTER_PORT` (it says so with `TORCHELASTIC_USE_AGENT_STORE=True`, its default), where
/// the port after it is taken.
fn rendezvous_port(get: &impl Fn(&str) -> Option<String>, master_port: u16) -> Result<u16> {
    if let Some(p) = get("SAM_DIST_PORT") {
        return p.trim().parse::<u16>().map_err(|_| {
            DistError::launch("SAM_DIST_PORT", format!("{p:?} is not a port number"))
        });
    }
    if get("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True") {
        return master_port.checked_add(1).ok_or_else(|| {
            DistError::launch(
                "MASTER_PORT",
                "65535 is torchrun's store port and leaves none after it: set SAM_DIST_PORT",
            )
        });
    }
    Ok(master_port)
}

/// The first host of a Slurm host list: `gpu[07-12,20],cpu1` → `gpu07`.
pub(crate) fn first_host(list: &str) -> Option<String> {
    let list = list.trim();
    let end = list.find([',', '[']).unwrap_or(list.len());
    let prefix = &list[..end];
    if !list[end..].starts_with('[') {
        return (!prefix.is_empty()).then(|| prefix.to_string());
    }
    let inside = &list[end + 1..];
    let first = inside.split([',', '-', ']']).next()?.trim();
    let suffix_at = inside.find(']')? + 1;
    // A suffix after the brackets (`n[1-2]-ib`) belongs to every host.
    let suffix = inside[suffix_at..].split(',').next().unwrap_or("");
    (!first.is_empty()).then(|| format!("{prefix}{first}{suffix}"))
}
