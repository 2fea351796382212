//! Fixture access and comparisons shared by the parity tests
//! (fixtures from `tools/reference/make_clip_fixtures.py`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor};

/// The committed fixtures; `SAM_CLIP_FIXTURES` points elsewhere (a test binary run on another
/// machine, where the build's source path does not exist).
pub fn fixtures() -> PathBuf {
    if let Some(dir) = std::env::var_os("SAM_CLIP_FIXTURES") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The two fixture folders.
pub const FOLDERS: &[&str] = &["clip_tiny", "clip_tiny_legacy"];

/// The CPU backend always; wgpu when compiled in (lavapipe in CI), unless `SAM_SKIP_WGPU`.
pub fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut devices = vec![("flex", Device::flex())];
    #[cfg(feature = "wgpu")]
    if std::env::var_os("SAM_SKIP_WGPU").is_none() {
        devices.push(("wgpu", Device::wgpu(Default::default())));
    }
    devices
}

/// `clip_cases.json`.
#[derive(Debug, serde::Deserialize)]
pub struct Cases {
    pub texts: Vec<String>,
    pub input_ids: Vec<Vec<u32>>,
    pub images: Vec<String>,
    pub sot: u32,
    pub eot: u32,
}

pub fn cases() -> Cases {
    let text = std::fs::read_to_string(fixtures().join("clip_cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// transformers' recorded tensors, as f32 (or i64 ids) with their shapes.
pub struct Outputs {
    floats: HashMap<String, (Vec<usize>, Vec<f32>)>,
    ints: HashMap<String, (Vec<usize>, Vec<i64>)>,
}

impl Outputs {
    pub fn load() -> Self {
        let bytes = std::fs::read(fixtures().join("clip_outputs.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (mut floats, mut ints) = (HashMap::new(), HashMap::new());
        for (key, view) in st.tensors() {
            let shape = view.shape().to_vec();
            match view.dtype() {
                safetensors::Dtype::F32 => {
                    let v = view
                        .data()
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    floats.insert(key, (shape, v));
                }
                safetensors::Dtype::I64 => {
                    let v = view
                        .data()
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    ints.insert(key, (shape, v));
                }
                other => panic!("unexpected dtype {other:?} for {key}"),
            }
        }
        Self { floats, ints }
    }

    pub fn float(&self, key: &str) -> &(Vec<usize>, Vec<f32>) {
        self.floats
            .get(key)
            .unwrap_or_else(|| panic!("fixture has no {key}"))
    }

    pub fn int(&self, key: &str) -> &(Vec<usize>, Vec<i64>) {
        self.ints
            .get(key)
            .unwrap_or_else(|| panic!("fixture has no {key}"))
    }
}

/// `max |actual − expected| / max |expected|`, after checking the shapes agree.
pub fn relative_error<const D: usize>(
    what: &str,
    actual: Tensor<D>,
    expected: &(Vec<usize>, Vec<f32>),
) -> f32 {
    assert_eq!(actual.dims().to_vec(), expected.0, "{what}: shape");
    let a: Vec<f32> = actual.into_data().convert::<f32>().iter::<f32>().collect();
    let scale = expected.1.iter().fold(0f32, |m, v| nan_max(m, v.abs()));
    let diff = a
        .iter()
        .zip(&expected.1)
        .fold(0f32, |m, (x, y)| nan_max(m, (x - y).abs()));
    assert!(a.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    diff / scale
}

/// The larger of the two, NaN if either is (`f32::max` drops a NaN, so a NaN output would pass).
pub fn nan_max(m: f32, x: f32) -> f32 {
    if x.is_nan() || m.is_nan() {
        f32::NAN
    } else {
        m.max(x)
    }
}
