//! The operations data-parallel training needs from an engine.

use std::time::Duration;

use crate::error::{DistError, Result};
use crate::launch::LaunchEnv;
use crate::single::SingleProcess;

/// A process group. Every rank must call the same operations in the same order with the same
/// buffer lengths; results are identical on every rank.
pub trait Communicator {
    /// The engine's name (`single`, `mpi`, `nccl`).
    fn engine(&self) -> &'static str;
    /// This process's rank, `0..world_size`.
    fn rank(&self) -> usize;
    /// Processes in the group.
    fn world_size(&self) -> usize;
    /// Rank among the processes on this node.
    fn local_rank(&self) -> usize;
    /// Element-wise sum over the ranks, in place.
    fn all_reduce_f32(&mut self, buf: &mut [f32]) -> Result<()>;
    /// Element-wise sum over the ranks, in place (statistics, counts).
    fn all_reduce_f64(&mut self, buf: &mut [f64]) -> Result<()>;
    /// Rank `root`'s bytes, on every rank (`buf` is replaced; its length may differ per rank).
    fn broadcast_bytes(&mut self, root: usize, buf: &mut Vec<u8>) -> Result<()>;
    /// Waits until every rank has arrived.
    fn barrier(&mut self) -> Result<()>;
    /// Ends the whole job after an error on this rank (MPI_Abort, or exiting for engines without
    /// one): leaving normally would make the other ranks wait for ever in their next collective.
    fn abort(&mut self, code: i32) -> !;

    /// Rank 0 (writes checkpoints, logs and plots).
    fn is_main(&self) -> bool {
        self.rank() == 0
    }

    /// Checks that every rank holds the same `value` (e.g. the configuration and resume step);
    /// the error names the first rank that differs from rank 0.
    fn check_same(&mut self, what: &str, value: &[u8]) -> Result<()> {
        let mut root = value.to_vec();
        self.broadcast_bytes(0, &mut root)?;
        let differs = f64::from(u8::from(root != value));
        let mut flags = vec![0.0; self.world_size()];
        flags[self.rank()] = differs;
        self.all_reduce_f64(&mut flags)?;
        match flags.iter().position(|&f| f != 0.0) {
            Some(r) => Err(DistError::Mismatch(format!(
                "rank {r}'s {what} differs from rank 0's"
            ))),
            None => Ok(()),
        }
    }
}

/// The engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One process; collectives are identities.
    Single,
    /// MPI (Open MPI, MPICH) through rsmpi; rank and size from MPI itself.
    Mpi,
    /// NCCL through cudarc, one process per GPU (`cuda:LOCAL_RANK`); rank, size and the
    /// rendezvous from [`LaunchEnv`].
    Nccl,
}

impl std::str::FromStr for Engine {
    type Err = DistError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "single" | "none" => Ok(Self::Single),
            "mpi" => Ok(Self::Mpi),
            "nccl" => Ok(Self::Nccl),
            other => Err(DistError::launch(
                "engine",
                format!("{other:?}: expected single, mpi or nccl"),
            )),
        }
    }
}

/// Joins the job with `engine`. `timeout` bounds every collective (and the NCCL rendezvous): a
/// rank that died or hangs stops this process with a message instead of a silent hang.
pub fn connect(engine: Engine, timeout: Duration) -> Result<Box<dyn Communicator>> {
    match engine {
        Engine::Single => Ok(Box::new(SingleProcess)),
        #[cfg(feature = "mpi")]
        Engine::Mpi => Ok(Box::new(crate::mpi_engine::MpiCommunicator::init(timeout)?)),
        #[cfg(not(feature = "mpi"))]
        Engine::Mpi => {
            let _ = timeout;
            Err(DistError::NotCompiled {
                engine: "mpi",
                feature: "mpi",
            })
        }
        #[cfg(feature = "nccl")]
        Engine::Nccl => Ok(Box::new(crate::nccl_engine::NcclCommunicator::init(
            &LaunchEnv::from_env()?,
            timeout,
        )?)),
        #[cfg(not(feature = "nccl"))]
        Engine::Nccl => {
            LaunchEnv::from_env()?;
            Err(DistError::NotCompiled {
                engine: "nccl",
                feature: "nccl",
            })
        }
    }
}
