//! NCCL through cudarc, one process per GPU. Rank 0 creates the group's unique id and hands it
//! to the others through [`crate::bootstrap`] at `MASTER_ADDR:MASTER_PORT`.
//!
//! Buffers are host slices (the trainer's gradients after Burn's backward): each call copies
//! them to the GPU, reduces there with NCCL, and copies the result back.

use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{CudaContext, CudaStream, DeviceRepr};
use cudarc::nccl::safe::{Comm, Id, NcclType, ReduceOp};

use crate::bootstrap;
use crate::communicator::Communicator;
use crate::error::{DistError, Result};
use crate::launch::LaunchEnv;
use crate::watchdog::Watchdog;

/// A member of an NCCL group.
pub struct NcclCommunicator {
    watchdog: Watchdog,
    comm: Comm,
    stream: Arc<CudaStream>,
    rank: usize,
    world_size: usize,
    local_rank: usize,
}

fn fail(op: &str, e: impl std::fmt::Debug) -> DistError {
    DistError::engine("nccl", op, format!("{e:?}"))
}

impl NcclCommunicator {
    /// Joins the group described by `env` on GPU `env.local_rank`, or on the one GPU this
    /// process sees when the launcher gives each process its own (Slurm's
    /// `--gpus-per-task=1`), as the trainer's device is chosen.
    pub fn init(env: &LaunchEnv, timeout: Duration) -> Result<Self> {
        let watchdog = Watchdog::new(env.rank, "nccl", timeout);
        let count = CudaContext::device_count().map_err(|e| fail("device count", e))?;
        let gpu = match (count, env.local_rank) {
            (1, _) => 0,
            (n, r) if r < n as usize => r,
            (n, r) => {
                return Err(DistError::launch(
                    "LOCAL_RANK",
                    format!(
                        "rank {} has node-local rank {r} ({:?} launcher) but sees {n} GPU(s)",
                        env.rank, env.source
                    ),
                ));
            }
        };
        let ctx = CudaContext::new(gpu).map_err(|e| fail("cuda context", e))?;
        let stream = ctx.default_stream();
        let id = if env.world_size == 1 {
            Id::new().map_err(|e| fail("unique id", e))?
        } else {
            let (addr, port) = env.master.clone().ok_or_else(|| {
                DistError::launch("MASTER_ADDR", "needed by NCCL with more than one rank")
            })?;
            if env.rank == 0 {
                let id = Id::new().map_err(|e| fail("unique id", e))?;
                let bytes: Vec<u8> = id.internal().iter().map(|&c| c as u8).collect();
                bootstrap::serve(port, env.world_size, &bytes, timeout)?;
                id
            } else {
                let bytes = bootstrap::join(&addr, port, env.rank, env.world_size, timeout)?;
                let mut internal = [0 as core::ffi::c_char; 128];
                if bytes.len() != internal.len() {
                    return Err(DistError::Mismatch(format!(
                        "rank 0 sent a {}-byte NCCL id, expected 128",
                        bytes.len()
                    )));
                }
                for (d, s) in internal.iter_mut().zip(&bytes) {
                    *d = *s as core::ffi::c_char;
                }
                Id::uninit(internal)
            }
        };
        let comm = {
            let _w = watchdog.watch("init");
            Comm::from_rank(stream.clone(), env.rank, env.world_size, id)
                .map_err(|e| fail("init", e))?
        };
        Ok(Self {
            watchdog,
            comm,
            stream,
            rank: env.rank,
            world_size: env.world_size,
            local_rank: env.local_rank,
        })
    }

    fn reduce<T: DeviceRepr + NcclType + Copy>(&mut self, buf: &mut [T], what: &str) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let _w = self
            .watchdog
            .watch(format!("all_reduce of {} {what}", buf.len()));
        let mut dev = self
            .stream
            .clone_htod(buf)
            .map_err(|e| fail("copy to the GPU", e))?;
        self.comm
            .all_reduce_in_place(&mut dev, &ReduceOp::Sum)
            .map_err(|e| fail("all_reduce", e))?;
        self.stream
            .memcpy_dtoh(&dev, buf)
            .map_err(|e| fail("copy from the GPU", e))?;
        self.stream
            .synchronize()
            .map_err(|e| fail("synchronize", e))
    }
}

impl Communicator for NcclCommunicator {
    fn engine(&self) -> &'static str {
        "nccl"
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn all_reduce_f32(&mut self, buf: &mut [f32]) -> Result<()> {
        self.reduce(buf, "f32")
    }

    fn all_reduce_f64(&mut self, buf: &mut [f64]) -> Result<()> {
        self.reduce(buf, "f64")
    }

    fn broadcast_bytes(&mut self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
        if root >= self.world_size {
            return Err(DistError::engine(
                "nccl",
                "broadcast",
                format!("root {root} outside a world of {}", self.world_size),
            ));
        }
        // Lengths first (a sum where only the root contributes), then the bytes the same way,
        // so that the group needs no other primitive.
        let mut len = vec![0.0f64];
        if self.rank == root {
            len[0] = buf.len() as f64;
        }
        self.all_reduce_f64(&mut len)?;
        let n = len[0] as usize;
        let mut wide: Vec<f32> = if self.rank == root {
            buf.iter().map(|&b| f32::from(b)).collect()
        } else {
            vec![0.0; n]
        };
        self.all_reduce_f32(&mut wide)?;
        *buf = wide.iter().map(|&v| v as u8).collect();
        Ok(())
    }

    fn barrier(&mut self) -> Result<()> {
        let mut one = [0.0f32];
        self.all_reduce_f32(&mut one)
    }

    fn abort(&mut self, code: i32) -> ! {
        // Exiting makes the launcher end the job; the other ranks' watchdogs cover the rest.
        std::process::exit(code)
    }
}
