//! Timeouts for blocking collectives. MPI and NCCL calls cannot be interrupted, so a watchdog
//! thread ends the process when one outlives its limit; the launcher (`mpirun`, `srun`,
//! `torchrun`) then stops the other ranks. Without it a dead peer leaves the job hanging.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Exit status of a process stopped by its watchdog.
pub const TIMEOUT_EXIT_CODE: i32 = 124;

#[derive(Default)]
struct State {
    /// The operation in flight and when it must end.
    current: Option<(String, Instant)>,
    stop: bool,
}

/// Watches one operation at a time.
pub struct Watchdog {
    shared: Arc<(Mutex<State>, Condvar)>,
    timeout: Duration,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// An operation being watched; dropping it ends the watch.
pub struct Watch<'a> {
    dog: &'a Watchdog,
}

impl Watchdog {
    /// A watchdog that stops the process when a watched operation takes longer than `timeout`;
    /// `rank` and `engine` name the process in the message.
    pub fn new(rank: usize, engine: &'static str, timeout: Duration) -> Self {
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let inner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sam-dist-watchdog".into())
            .spawn(move || watch_loop(&inner, rank, engine, timeout))
            .ok();
        Self {
            shared,
            timeout,
            thread,
        }
    }

    /// Starts watching `op` until the returned guard is dropped.
    pub fn watch(&self, op: impl Into<String>) -> Watch<'_> {
        let (lock, cvar) = &*self.shared;
        if let Ok(mut s) = lock.lock() {
            s.current = Some((op.into(), deadline_after(self.timeout)));
        }
        cvar.notify_all();
        Watch { dog: self }
    }

    /// The limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.dog.shared;
        if let Ok(mut s) = lock.lock() {
            s.current = None;
        }
        cvar.notify_all();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.shared;
        if let Ok(mut s) = lock.lock() {
            s.stop = true;
        }
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch_loop(shared: &(Mutex<State>, Condvar), rank: usize, engine: &str, timeout: Duration) {
    let (lock, cvar) = shared;
    let Ok(mut state) = lock.lock() else { return };
    loop {
        if state.stop {
            return;
        }
        let wait = match &state.current {
            None => Duration::from_secs(3600),
            Some((op, deadline)) => {
                let now = Instant::now();
                if now >= *deadline {
                    eprintln!(
                        "error: rank {rank}: {engine} {op} did not complete within {:.0} s: \
                         another rank died or hangs; stopping this rank so the launcher ends \
                         the job",
                        timeout.as_secs_f64()
                    );
                    std::process::exit(TIMEOUT_EXIT_CODE);
                }
                *deadline - now
            }
        };
        state = match cvar.wait_timeout(state, wait) {
            Ok((s, _)) => s,
            Err(_) => return,
        };
    }
}

/// `now + timeout`, or a time beyond any run when that cannot be represented (a timeout given
/// as `Duration::MAX` means "wait for ever", not a panic).
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(1 << 32)))
        .unwrap_or(now)
}
