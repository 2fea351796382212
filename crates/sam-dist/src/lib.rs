//! Multi-process data parallelism for sam-burn, on the engines clusters already run: no
//! collective is written here.
//!
//! - [`Communicator`]: what the trainer needs from an engine (rank, world size, element-wise
//!   sums of host buffers, broadcast, barrier, abort);
//! - engines: MPI through rsmpi (feature `mpi`; `mpirun -np N`), NCCL through cudarc (feature
//!   `nccl`; one process per GPU), and [`SingleProcess`] (world size 1);
//! - [`LaunchEnv`]: rank, world size and rendezvous read from a `torchrun`-style environment
//!   (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), Slurm's
//!   (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`) or the MPI launcher's;
//! - [`bootstrap`]: the TCP rendezvous that hands NCCL's unique id from rank 0 to the others;
//! - [`Watchdog`]: collectives that outlive their timeout (a rank died or hangs) stop the
//!   process with a message naming the operation, so the launcher ends the job instead of
//!   letting it hang.

#![warn(missing_docs)]

pub mod bootstrap;
mod communicator;
mod error;
mod launch;
#[cfg(feature = "mpi")]
mod mpi_engine;
#[cfg(feature = "nccl")]
mod nccl_engine;
mod single;
mod watchdog;

pub use communicator::{Communicator, Engine, connect};
pub use error::{DistError, Result};
pub use launch::{LaunchEnv, LaunchSource};
#[cfg(feature = "mpi")]
pub use mpi_engine::MpiCommunicator;
#[cfg(feature = "nccl")]
pub use nccl_engine::NcclCommunicator;
pub use single::SingleProcess;
pub use watchdog::Watchdog;
