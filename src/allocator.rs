//! Keeping freed tensor memory in the process (glibc's `malloc` on Linux).
//!
//! glibc serves every allocation above 32 MiB with its own `mmap` and unmaps it on `free`; the
//! next tensor of that size is page-faulted in again and zeroed by the kernel. Burn's CPU
//! backend allocates each op's output afresh, so a ViT-B training step at 1024² (global
//! attention scores of 12 × 4096² floats, 805 MB, several times per block and again in the
//! backward pass) spent over 45% of its time in the kernel's page clearing and faults
//! (`perf`, docs/performance.md): 62.5 s a step with glibc's defaults against 31 s with
//! freed memory kept for reuse. jemalloc (71 s) and mimalloc (56 s) did worse on the same step
//! because they too hand large freed blocks back to the kernel.

/// `M_TRIM_THRESHOLD` of −1: never trim (mallopt(3)); glibc reads the `int` as a `size_t`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const NEVER_TRIM: libc::c_int = -1;

/// Makes `malloc` reuse freed memory instead of returning it to the kernel: no `mmap` for large
/// blocks (they come from the heap, where a freed block serves the next one without page
/// faults) and no trimming of the heap's free top. The examples call it first; a program
/// using the crates can do the same, or start with
/// `GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=18446744073709551615`.
///
/// The cost is resident memory that stays with the process once freed (the ViT-B training
/// step's peak: 15.8 → 16.4 GB). Returns whether the settings were applied: `false` off Linux
/// glibc, where this does nothing.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes malloc's parameters; both calls are documented to be
        // valid at any time, from any thread.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, NEVER_TRIM) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    /// glibc accepts both settings; large blocks still allocate and free (from the heap now).
    #[test]
    fn settings_apply_on_linux_glibc() {
        let applied = super::keep_freed_memory();
        assert_eq!(applied, cfg!(all(target_os = "linux", target_env = "gnu")));
        for fill in 1..=3u8 {
            let block = vec![fill; 96 << 20];
            assert!(block.iter().step_by(4096).all(|&b| b == fill));
        }
    }
}
