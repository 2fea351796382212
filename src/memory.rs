//! Peak memory of a benchmark job: the process's resident set on the CPU, the device pool on
//! GPUs. Used by the `bench` example and the criterion benches.

use burn::tensor::Device;

/// Peak resident set of this process since it started or since [`reset_peak_rss`] (Linux
/// `VmHWM`), bytes; `None` elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Lowers the peak resident set to the current one (Linux: `5` into `/proc/self/clear_refs`),
/// so that the next [`peak_rss_bytes`] is one job's own peak rather than the process's;
/// `false` where the kernel does not allow it (the peak then covers earlier jobs too).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One line for a job's memory: the peak resident set and, on GPU backends, the bytes the
/// device pool holds.
pub fn describe(device: &Device) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut out = match peak_rss_bytes() {
        Some(b) => format!("peak resident set {:.0} MiB", mib(b)),
        None => "peak resident set unknown".to_string(),
    };
    if let Some(pool) = device.memory_pool_usage() {
        out += &format!(", device pool {:.0} MiB reserved", mib(pool.bytes_reserved));
    }
    out
}

/// Runs `job` with the peak reset before it, then prints `memory: {label}: …` ([`describe`]):
/// the criterion benches' memory report.
pub fn measured(label: &str, device: &Device, job: impl FnOnce()) {
    device.memory_cleanup();
    reset_peak_rss();
    job();
    println!("memory: {label}: {}", describe(device));
}

#[cfg(test)]
mod tests {
    // A unit test of the library, not of tests/bench.rs: the peak counters are the whole
    // process's, and the integration tests there run models on other threads meanwhile.
    #[cfg(target_os = "linux")]
    #[test]
    fn peak_memory_is_reset_per_job() {
        use super::{peak_rss_bytes, reset_peak_rss};
        // A peak well above the current resident set, then freed.
        let big = vec![1u8; 512 << 20];
        std::hint::black_box(&big);
        drop(big);
        let before = peak_rss_bytes().unwrap();
        assert!(reset_peak_rss(), "clear_refs is writable on Linux");
        let after = peak_rss_bytes().unwrap();
        assert!(
            after + (256 << 20) < before,
            "peak {before} → {after} after the reset"
        );
    }
}
