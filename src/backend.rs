//! Backend selection: the only place that names concrete devices.

use burn::tensor::Device;

/// The backends compiled into this build, by name.
pub fn available() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "flex") {
        names.push("flex");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    if cfg!(feature = "cubecl-cpu") {
        names.push("cubecl-cpu");
    }
    names
}

/// Errors choosing a device.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend at all.
    #[error("unknown device {0:?} (expected flex, wgpu, cuda or cubecl-cpu)")]
    Unknown(String),
    /// The backend is compiled in but this machine cannot run it.
    #[error("device {name:?} is unavailable: {reason}")]
    Unavailable {
        /// The requested backend.
        name: String,
        /// What is missing.
        reason: String,
    },
    /// The backend exists but was not compiled in.
    #[error(
        "device {name:?} is not compiled into this build (available: {available}); rebuild with `--features {name}`"
    )]
    NotCompiled {
        /// The requested backend.
        name: String,
        /// What this build has.
        available: String,
    },
}

/// A device by name: `flex` (CPU; `cpu` is the same), `wgpu` (`wgpu:N` for the N-th discrete
/// GPU), `cuda` (`cuda:N`), `cubecl-cpu` (CubeCL's JIT CPU backend, for comparisons).
pub fn device(name: &str) -> Result<Device, BackendError> {
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => (
            k,
            Some(
                i.parse::<usize>()
                    .map_err(|_| BackendError::Unknown(name.to_string()))?,
            ),
        ),
        None => (name, None),
    };
    // Unused when every backend is compiled in.
    #[allow(unused_variables)]
    let not_compiled = || BackendError::NotCompiled {
        name: kind.to_string(),
        available: available().join(", "),
    };
    match kind {
        "flex" | "cpu" => {
            #[cfg(feature = "flex")]
            return Ok(Device::flex());
            #[allow(unreachable_code)]
            Err(not_compiled())
        }
        "wgpu" => {
            #[cfg(feature = "wgpu")]
            return Ok(match index {
                Some(i) => Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(i)),
                None => Device::wgpu(Default::default()),
            });
            #[allow(unreachable_code)]
            Err(not_compiled())
        }
        "cubecl-cpu" => {
            #[cfg(feature = "cubecl-cpu")]
            return Ok(Device::cpu());
            #[allow(unreachable_code)]
            Err(not_compiled())
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            {
                // Burn loads these lazily and panics in a worker thread when they are missing.
                cuda_libraries_present().map_err(|reason| BackendError::Unavailable {
                    name: name.to_string(),
                    reason,
                })?;
                return Ok(Device::cuda(index.unwrap_or(0)));
            }
            #[allow(unreachable_code)]
            Err(not_compiled())
        }
        _ => {
            let _ = index;
            Err(BackendError::Unknown(name.to_string()))
        }
    }
}

/// Whether the CUDA driver and NVRTC (which compiles Burn's kernels) can be loaded.
#[cfg(feature = "cuda")]
fn cuda_libraries_present() -> Result<(), String> {
    let loads = |names: &[&str]| {
        names.iter().any(|n| {
            // SAFETY: loading a system library runs its initialisers; these are NVIDIA's own
            // libraries, which cudarc would load the same way a moment later.
            unsafe { libloading::Library::new(*n) }.is_ok()
        })
    };
    if !loads(&["libcuda.so.1", "libcuda.so", "nvcuda.dll"]) {
        return Err("no CUDA driver found (libcuda.so.1); is an NVIDIA driver installed?".into());
    }
    let nvrtc = [
        "libnvrtc.so",
        "libnvrtc.so.13",
        "libnvrtc.so.12",
        "nvrtc64_130_0.dll",
        "nvrtc64_120_0.dll",
    ];
    if !loads(&nvrtc) {
        return Err(
            "NVRTC not found (libnvrtc.so): install the CUDA toolkit or the nvidia-cuda-nvrtc \
             wheel and add its lib folder to LD_LIBRARY_PATH"
                .into(),
        );
    }
    Ok(())
}
