//! MPI through rsmpi: `mpirun -np N` (or `srun --mpi=pmix`) starts the ranks; MPI itself says
//! who is who.

use std::time::Duration;

use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};

use crate::communicator::Communicator;
use crate::error::{DistError, Result};
use crate::launch::LaunchEnv;
use crate::watchdog::Watchdog;

/// A member of `MPI_COMM_WORLD`.
pub struct MpiCommunicator {
    // Field order: the watchdog stops before MPI is finalised by the universe's drop.
    watchdog: Watchdog,
    world: SimpleCommunicator,
    local_rank: usize,
    _universe: Universe,
}

impl MpiCommunicator {
    /// Initialises MPI (once per process; calls to MPI are made from this thread only).
    pub fn init(timeout: Duration) -> Result<Self> {
        let (universe, _threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| {
                DistError::engine("mpi", "init", "MPI was already initialised in this process")
            })?;
        let world = universe.world();
        let rank = world.rank() as usize;
        // The node-local rank from a shared-memory split, so it is right under any launcher.
        let local_rank = world.split_shared(0).rank() as usize;
        // MPI needs no launcher variables; ones that disagree with it point at a launch gone
        // wrong (or variables left over from another job), so they are named.
        if let Ok(env) = LaunchEnv::from_env()
            && env.source != crate::LaunchSource::None
            && env.world_size != world.size() as usize
        {
            return Err(DistError::Mismatch(format!(
                "the {:?} launcher's variables say {} processes, MPI says {}",
                env.source,
                env.world_size,
                world.size()
            )));
        }
        Ok(Self {
            watchdog: Watchdog::new(rank, "mpi", timeout),
            world,
            local_rank,
            _universe: universe,
        })
    }
}

impl Drop for MpiCommunicator {
    fn drop(&mut self) {
        // A panic unwinding through here would reach `MPI_Finalize`, which waits for every
        // rank, while the others wait in their next collective: end the whole job at once.
        if std::thread::panicking() {
            eprintln!("error: rank {} panicked; aborting the MPI job", self.rank());
            self.world.abort(101);
        }
    }
}

impl Communicator for MpiCommunicator {
    fn engine(&self) -> &'static str {
        "mpi"
    }

    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn world_size(&self) -> usize {
        self.world.size() as usize
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn all_reduce_f32(&mut self, buf: &mut [f32]) -> Result<()> {
        let _w = self
            .watchdog
            .watch(format!("all_reduce of {} f32", buf.len()));
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }

    fn all_reduce_f64(&mut self, buf: &mut [f64]) -> Result<()> {
        let _w = self
            .watchdog
            .watch(format!("all_reduce of {} f64", buf.len()));
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }

    fn broadcast_bytes(&mut self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
        if root >= self.world_size() {
            return Err(DistError::engine(
                "mpi",
                "broadcast",
                format!("root {root} outside a world of {}", self.world_size()),
            ));
        }
        let _w = self.watchdog.watch("broadcast");
        let origin = self.world.process_at_rank(root as i32);
        let mut len = buf.len() as u64;
        origin.broadcast_into(&mut len);
        buf.resize(len as usize, 0);
        origin.broadcast_into(&mut buf[..]);
        Ok(())
    }

    fn barrier(&mut self) -> Result<()> {
        let _w = self.watchdog.watch("barrier");
        self.world.barrier();
        Ok(())
    }

    fn abort(&mut self, code: i32) -> ! {
        self.world.abort(code)
    }
}
