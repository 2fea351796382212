//! Shared helpers of the parity tests: fixture access, devices, comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};
use sam_model::{PointPrompt, Prompts, SamConfig};

/// The unit tests' seeded inputs, shared rather than copied.
#[path = "../../src/test_util.rs"]
pub mod test_util;

/// The committed fixtures; `SAM_MODEL_FIXTURES` points elsewhere (a test binary run on
/// another machine, where the build's source path does not exist).
pub fn fixtures() -> PathBuf {
    if let Some(dir) = std::env::var_os("SAM_MODEL_FIXTURES") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every model fixture the reference script writes.
pub const MODELS: &[&str] = &["sam_tiny", "sam_tiny_b"];

/// The CPU backend always; wgpu when compiled in (lavapipe in CI); CUDA when compiled in and
/// `SAM_TEST_CUDA` is set.
pub fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut devices = vec![("flex", Device::flex())];
    #[cfg(feature = "wgpu")]
    if std::env::var_os("SAM_SKIP_WGPU").is_none() {
        devices.push(("wgpu", Device::wgpu(Default::default())));
    }
    // Only on request: a build with `cuda` may run where there is no driver.
    #[cfg(feature = "cuda")]
    if std::env::var_os("SAM_TEST_CUDA").is_some() {
        devices.push(("cuda", Device::cuda(0)));
    }
    devices
}

pub fn config(name: &str) -> SamConfig {
    SamConfig::load(fixtures().join(format!("{name}.json"))).expect("fixture config")
}

/// A case of `NAME_cases.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Case {
    pub name: String,
    pub points: bool,
    pub boxes: bool,
    pub masks: bool,
    pub multimask: bool,
    pub full: bool,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Cases {
    pub input_size: [usize; 2],
    pub original_size: [usize; 2],
    pub cases: Vec<Case>,
}

pub fn cases(name: &str) -> Cases {
    let text = std::fs::read_to_string(fixtures().join(format!("{name}_cases.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The reference's recorded tensors of one model.
pub struct Outputs {
    tensors: HashMap<String, (Vec<usize>, TensorData)>,
}

impl Outputs {
    pub fn load(name: &str) -> Self {
        Self::from_path(&fixtures().join(format!("{name}_outputs.safetensors")))
    }

    /// Every tensor of a safetensors file.
    pub fn from_path(path: &std::path::Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        for (key, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let data = match view.dtype() {
                safetensors::Dtype::F32 => {
                    let v: Vec<f32> = view
                        .data()
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    TensorData::new(v, shape.clone())
                }
                safetensors::Dtype::I64 => {
                    let v: Vec<i64> = view
                        .data()
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    TensorData::new(v, shape.clone())
                }
                safetensors::Dtype::F64 => {
                    let v: Vec<f64> = view
                        .data()
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    TensorData::new(v, shape.clone())
                }
                safetensors::Dtype::U8 => TensorData::new(view.data().to_vec(), shape.clone()),
                other => panic!("unexpected dtype {other:?} for {key}"),
            };
            tensors.insert(key, (shape, data));
        }
        Self { tensors }
    }

    /// The keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.tensors.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// A tensor's shape.
    pub fn shape(&self, key: &str) -> Vec<usize> {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("fixture has no {key}"))
            .0
            .clone()
    }

    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    pub fn data(&self, key: &str) -> TensorData {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("fixture has no {key}"))
            .1
            .clone()
    }

    pub fn float<const D: usize>(&self, key: &str, device: &Device) -> Tensor<D> {
        Tensor::from_data(self.data(key), device)
    }

    pub fn int<const D: usize>(&self, key: &str, device: &Device) -> Tensor<D, Int> {
        Tensor::from_data(self.data(key), device)
    }

    pub fn values(&self, key: &str) -> Vec<f32> {
        self.data(key).try_to_vec::<f32>().expect("f32 data")
    }
}

/// Max |actual − expected| / max |expected|: the error relative to the tensor's scale.
pub fn rel_error<const D: usize>(
    actual: Tensor<D>,
    expected: &[f32],
    expected_shape: &[usize],
) -> f32 {
    assert_eq!(actual.dims().to_vec(), expected_shape, "shape");
    let actual = actual
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data");
    rel_error_of(&actual, expected)
}

/// [`rel_error`] of values of one shape.
pub fn rel_error_of(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "value count");
    let scale = max_abs(expected).max(1e-12);
    let diff = actual
        .iter()
        .zip(expected)
        .fold(0f32, |m, (a, e)| nan_max(m, (a - e).abs()));
    assert!(diff.is_finite(), "non-finite output");
    diff / scale
}

/// The larger of the two, NaN if either is: `f32::max` would drop a NaN difference, and a
/// NaN output would then pass every bound.
pub fn nan_max(m: f32, x: f32) -> f32 {
    if x.is_nan() || m.is_nan() {
        f32::NAN
    } else {
        m.max(x)
    }
}

/// Max |v| (NaN if any value is NaN).
pub fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0f32, |m, v| nan_max(m, v.abs()))
}

pub fn assert_close<const D: usize>(
    what: &str,
    actual: Tensor<D>,
    outputs: &Outputs,
    key: &str,
    tolerance: f32,
) -> f32 {
    let expected = outputs.values(key);
    let shape = outputs.tensors[key].0.clone();
    let err = rel_error(actual, &expected, &shape);
    assert!(
        err <= tolerance,
        "{what}: {key} max relative error {err:e} > {tolerance:e}"
    );
    err
}

/// Max absolute difference.
pub fn max_abs_diff<const D: usize>(actual: Tensor<D>, expected: &[f32]) -> f32 {
    let actual = actual
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data");
    assert_eq!(actual.len(), expected.len(), "value count");
    actual
        .iter()
        .zip(expected)
        .fold(0f32, |m, (a, e)| nan_max(m, (a - e).abs()))
}

/// Fraction of pixels whose `> 0` decision agrees (a non-finite output never does).
pub fn threshold_agreement<const D: usize>(actual: Tensor<D>, expected: &[f32]) -> f64 {
    let actual = actual
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data");
    let same = actual
        .iter()
        .zip(expected)
        .filter(|(a, e)| a.is_finite() && (**a > 0.0) == (**e > 0.0))
        .count();
    assert_eq!(actual.len(), expected.len(), "value count");
    same as f64 / expected.len() as f64
}

/// The prompts of a fixture case, as the reference script fed them.
pub fn case_prompts(out: &Outputs, case: &Case, device: &Device) -> Prompts {
    let key = format!("case/{}", case.name);
    Prompts {
        points: case.points.then(|| PointPrompt {
            coords: out.float(&format!("{key}/point_coords"), device),
            labels: out.int(&format!("{key}/point_labels"), device),
        }),
        boxes: case
            .boxes
            .then(|| out.float(&format!("{key}/boxes"), device)),
        masks: case
            .masks
            .then(|| out.float(&format!("{key}/mask_input"), device)),
        embeddings: None,
    }
}
