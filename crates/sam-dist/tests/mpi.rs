//! The MPI engine under `mpirun` (feature `mpi`; needs Open MPI's `mpirun`).
#![cfg(feature = "mpi")]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn example() -> PathBuf {
    // target/<profile>/deps/<test> → target/<profile>/examples/mpi_check
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("mpi_check")
}

fn mpirun(np: usize, args: &[&str]) -> (bool, String, Duration) {
    let start = Instant::now();
    let out = Command::new("mpirun")
        .args(["--oversubscribe", "-np", &np.to_string()])
        .arg(example())
        .args(args)
        // Containers run tests as root; Open MPI refuses that unless told.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("mpirun (Open MPI) must be installed for the `mpi` feature's tests");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, start.elapsed())
}

#[test]
fn collectives_sum_and_broadcast_over_three_ranks() {
    let (ok, text, _) = mpirun(3, &["ok"]);
    assert!(ok, "{text}");
    for rank in 0..3 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("rank {rank}/3")))
            .unwrap_or_else(|| panic!("no line from rank {rank}:\n{text}"));
        // Σ_r (10 r + i) over r = 0, 1, 2.
        assert!(
            line.contains("f32 [30.0, 33.0, 36.0, 39.0, 42.0]"),
            "{line}"
        );
        assert!(line.contains("f64 [4.5]"), "{line}");
        assert!(line.contains("bytes \"from rank 0\""), "{line}");
        assert!(
            line.contains("rank 1's rank differs from rank 0's"),
            "{line}"
        );
    }
}

#[test]
fn a_hanging_rank_ends_the_job_through_the_watchdog() {
    let (ok, text, took) = mpirun(2, &["hang", "3"]);
    assert!(!ok, "{text}");
    assert!(text.contains("did not complete within 3 s"), "{text}");
    assert!(took < Duration::from_secs(120), "{took:?}");
}

#[test]
fn a_dying_rank_ends_the_job() {
    let (ok, text, took) = mpirun(2, &["die", "3"]);
    assert!(!ok, "{text}");
    assert!(took < Duration::from_secs(120), "{took:?}");
}
