//! The rendezvous that starts an NCCL group: rank 0 listens on `MASTER_ADDR:MASTER_PORT` and
//! hands its bytes (NCCL's unique id) to every other rank, which connect and say who they are.
//! It moves one small message once; every collective then runs in NCCL.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::{DistError, Result};

/// A message header, so that a stray connection is refused instead of misread.
const MAGIC: &[u8; 8] = b"SAMDIST1";

fn err(addr: &str, reason: impl std::fmt::Display) -> DistError {
    DistError::Bootstrap {
        addr: addr.to_string(),
        reason: reason.to_string(),
    }
}

/// Rank 0's side: accepts `world_size - 1` ranks on `port` (all interfaces) and sends each of
/// them `payload`. Fails after `timeout` if some rank never came, naming which.
pub fn serve(port: u16, world_size: usize, payload: &[u8], timeout: Duration) -> Result<()> {
    let addr = format!("0.0.0.0:{port}");
    let listener = TcpListener::bind(&addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            err(
                &addr,
                format!(
                    "{e}: another program holds the port (a launcher's own store?); set \
                     SAM_DIST_PORT to a free port, the same on every rank"
                ),
            )
        } else {
            err(&addr, e)
        }
    })?;
    serve_on(listener, world_size, payload, timeout)
}

/// [`serve`] on a bound listener.
pub fn serve_on(
    listener: TcpListener,
    world_size: usize,
    payload: &[u8],
    timeout: Duration,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    listener.set_nonblocking(true).map_err(|e| err(&addr, e))?;
    let deadline = crate::watchdog::deadline_after(timeout);
    let mut seen = vec![false; world_size];
    seen[0] = true;
    while seen.iter().any(|s| !s) {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                stream.set_nonblocking(false).map_err(|e| err(&addr, e))?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| err(&addr, e))?;
                let mut hello = [0u8; 24];
                if stream.read_exact(&mut hello).is_err() || &hello[..8] != MAGIC {
                    // Not one of ours (a port scanner, a stale job): ignored.
                    continue;
                }
                let rank = u64::from_le_bytes(hello[8..16].try_into().unwrap_or_default()) as usize;
                let world =
                    u64::from_le_bytes(hello[16..24].try_into().unwrap_or_default()) as usize;
                if world != world_size {
                    return Err(err(
                        &addr,
                        format!(
                            "{peer} says the world has {world} ranks, rank 0 says {world_size}"
                        ),
                    ));
                }
                if rank == 0 || rank >= world_size || seen[rank] {
                    return Err(err(
                        &addr,
                        format!("{peer} claims rank {rank}, already taken or out of range"),
                    ));
                }
                seen[rank] = true;
                let mut msg = MAGIC.to_vec();
                msg.extend_from_slice(&(payload.len() as u64).to_le_bytes());
                msg.extend_from_slice(payload);
                stream.write_all(&msg).map_err(|e| err(&addr, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let missing: Vec<String> = seen
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| !**s)
                        .map(|(r, _)| r.to_string())
                        .collect();
                    return Err(err(
                        &addr,
                        format!(
                            "ranks {} did not connect within {:.0} s",
                            missing.join(", "),
                            timeout.as_secs_f64()
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(err(&addr, e)),
        }
    }
    Ok(())
}

/// Another rank's side: connects to rank 0 at `addr:port` (retrying until `timeout`: rank 0
/// may start later) and returns its payload.
pub fn join(
    addr: &str,
    port: u16,
    rank: usize,
    world_size: usize,
    timeout: Duration,
) -> Result<Vec<u8>> {
    let target = format!("{addr}:{port}");
    let deadline = crate::watchdog::deadline_after(timeout);
    let mut last = String::from("no address");
    let mut stream = loop {
        // A name that does not resolve yet (rank 0's pod still starting) is retried like a
        // refused connection.
        let resolved: Vec<_> = match target.to_socket_addrs() {
            Ok(addrs) => addrs.collect(),
            Err(e) => {
                last = format!("name lookup: {e}");
                Vec::new()
            }
        };
        let mut connected = None;
        for sa in resolved {
            match TcpStream::connect_timeout(&sa, Duration::from_secs(2)) {
                Ok(s) => {
                    connected = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        if let Some(s) = connected {
            break s;
        }
        if Instant::now() >= deadline {
            return Err(err(
                &target,
                format!(
                    "rank 0 not reachable within {:.0} s ({last})",
                    timeout.as_secs_f64()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| err(&target, e))?;
    let mut hello = MAGIC.to_vec();
    hello.extend_from_slice(&(rank as u64).to_le_bytes());
    hello.extend_from_slice(&(world_size as u64).to_le_bytes());
    stream.write_all(&hello).map_err(|e| err(&target, e))?;
    let mut head = [0u8; 16];
    stream
        .read_exact(&mut head)
        .map_err(|e| err(&target, format!("no answer from rank 0: {e}")))?;
    if &head[..8] != MAGIC {
        return Err(err(&target, "the answer is not a sam-dist rendezvous"));
    }
    let len = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default()) as usize;
    if len > 1 << 20 {
        return Err(err(
            &target,
            format!("an answer of {len} bytes is not a rendezvous payload"),
        ));
    }
    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .map_err(|e| err(&target, format!("truncated answer: {e}")))?;
    Ok(payload)
}
