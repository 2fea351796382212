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

/// A device by name: `flex` (CPU; `cpu` is the same), `wgpu` (`wgpu:N` for the N-th adapter
/// wgpu finds, of any kind), `cuda` (`cuda:N`), `cubecl-cpu` (CubeCL's JIT CPU backend, for
/// comparisons). A GPU that is not there is an error here, not a panic at the first operation.
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
        // `cpu` is flex's alias; the feature is `flex`.
        name: if kind == "cpu" { "flex" } else { kind }.to_string(),
        available: available().join(", "),
    };
    #[allow(unused_variables)]
    let unavailable = |reason: String| BackendError::Unavailable {
        name: name.to_string(),
        reason,
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
            {
                // Burn creates the device lazily and panics at the first operation when there
                // is no adapter, so look first.
                let adapters = Device::enumerate(burn::tensor::DeviceType::Wgpu);
                if adapters.is_empty() {
                    return Err(unavailable(
                        "wgpu finds no adapter (no Vulkan/Metal/DX12 driver; on Linux without a \
                         GPU, install mesa-vulkan-drivers for lavapipe)"
                            .into(),
                    ));
                }
                return match index {
                    None => Ok(Device::wgpu(Default::default())),
                    Some(i) => adapters.get(i).cloned().ok_or_else(|| {
                        unavailable(format!(
                            "wgpu finds {} adapter(s), numbered from 0",
                            adapters.len()
                        ))
                    }),
                };
            }
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
                // Burn loads these lazily and panics in a worker thread when they are missing,
                // or at the first operation on a device that is not there.
                cuda_libraries_present().map_err(unavailable)?;
                let count = Device::enumerate(burn::tensor::DeviceType::Cuda).len();
                let i = index.unwrap_or(0);
                if i >= count {
                    return Err(unavailable(format!(
                        "the CUDA driver finds {count} GPU(s), numbered from 0"
                    )));
                }
                return Ok(Device::cuda(i));
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

/// How many devices of a GPU backend (`wgpu`, `cuda`) this process sees; `None` for another
/// name or a backend not compiled in.
pub fn device_count(kind: &str) -> Option<usize> {
    match kind {
        #[cfg(feature = "wgpu")]
        "wgpu" => Some(Device::enumerate(burn::tensor::DeviceType::Wgpu).len()),
        #[cfg(feature = "cuda")]
        "cuda" => Some(if cuda_libraries_present().is_ok() {
            Device::enumerate(burn::tensor::DeviceType::Cuda).len()
        } else {
            0
        }),
        _ => None,
    }
}

/// The device of a multi-process run's rank for a bare `kind` (`cuda`, `wgpu`): the node-local
/// rank's GPU, or the one GPU the process sees when the launcher gives each process its own
/// (Slurm's `--gpus-per-task=1` sets `CUDA_VISIBLE_DEVICES` so). Other names are used as given.
pub fn device_for_local_rank(kind: &str, local_rank: usize) -> Result<Device, BackendError> {
    match device_count(kind) {
        Some(1) if local_rank > 0 => device(&format!("{kind}:0")),
        Some(_) => device(&format!("{kind}:{local_rank}")),
        None => device(kind),
    }
}
