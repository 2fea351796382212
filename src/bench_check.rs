//! The bench's `check` job: sam-burn on the committed tiny fixtures (the official model's
//! recorded outputs) on any device and dtype — how numerics are checked on a machine that has
//! a GPU but no Rust toolchain (the test binaries are too large to carry there).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use sam_model::{PointPrompt, Prompts, Sam, SamConfig, f32_values};
use serde::{Deserialize, Serialize};

use crate::cli::CliError;

type Result<T> = std::result::Result<T, CliError>;

/// Errors of one fixture model against the reference, relative to each tensor's max magnitude
/// (IoU: absolute).
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Always `check`.
    pub job: String,
    /// Device name.
    pub device: String,
    /// Fixture model.
    pub model: String,
    /// Compute type.
    pub dtype: String,
    /// Image embedding from the pixels.
    pub embedding_rel: f32,
    /// Worst low-res logits over the prompt cases (decoded from the reference embedding).
    pub logits_rel: f32,
    /// Worst IoU prediction.
    pub iou_abs: f32,
    /// Worst share of low-res mask pixels whose sign differs.
    pub mask_disagreement: f64,
    /// Prompt cases checked.
    pub cases: usize,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    points: bool,
    boxes: bool,
    masks: bool,
    multimask: bool,
}

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!("{}: {what}", path.display()))
}

/// The fixture folder: `SAM_MODEL_FIXTURES`, else the repository's.
pub fn fixtures() -> PathBuf {
    if let Some(dir) = std::env::var_os("SAM_MODEL_FIXTURES") {
        return PathBuf::from(dir);
    }
    let built = crate::cli::bundled("crates/sam-model/tests/fixtures");
    if built.is_dir() {
        built
    } else {
        // A binary carried to another machine, run from a checkout's root.
        PathBuf::from("crates/sam-model/tests/fixtures")
    }
}

pub(crate) struct Outputs(HashMap<String, (Vec<usize>, Vec<f32>)>);

impl Outputs {
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(path, e))?;
        let mut out = HashMap::new();
        for (key, view) in st.tensors() {
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::I64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()) as f32)
                    .collect(),
                _ => continue,
            };
            out.insert(key, (view.shape().to_vec(), values));
        }
        Ok(Self(out))
    }

    /// The keys starting with `prefix`, sorted.
    pub(crate) fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .0
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    pub(crate) fn get(&self, key: &str) -> Result<&(Vec<usize>, Vec<f32>)> {
        self.0
            .get(key)
            .ok_or_else(|| CliError::Usage(format!("fixture has no {key}")))
    }

    pub(crate) fn float<const D: usize>(&self, key: &str, device: &Device) -> Result<Tensor<D>> {
        let (shape, v) = self.get(key)?;
        Ok(Tensor::from_data(
            TensorData::new(v.clone(), shape.clone()),
            device,
        ))
    }

    pub(crate) fn int<const D: usize>(&self, key: &str, device: &Device) -> Result<Tensor<D, Int>> {
        let (shape, v) = self.get(key)?;
        let v: Vec<i64> = v.iter().map(|x| *x as i64).collect();
        Ok(Tensor::from_data(TensorData::new(v, shape.clone()), device))
    }

    /// Max |a − e| / max |e|, and the share of differing signs.
    pub(crate) fn compare<const D: usize>(
        &self,
        key: &str,
        actual: Tensor<D>,
    ) -> Result<(f32, f64)> {
        let (shape, expected) = self.get(key)?;
        if actual.dims().as_slice() != shape.as_slice() {
            return Err(CliError::Usage(format!(
                "{key}: shape {:?} but the reference has {shape:?}",
                actual.dims()
            )));
        }
        let actual = f32_values(actual);
        let flips = actual
            .iter()
            .zip(expected)
            .filter(|(a, e)| (**a > 0.0) != (**e > 0.0))
            .count();
        Ok((
            rel_error(&actual, expected),
            flips as f64 / expected.len().max(1) as f64,
        ))
    }
}

/// The larger of `m` and `x`, NaN if either is: an error measure must not skip a NaN, which
/// `f32::max` does (a backend that outputs NaN would otherwise score 0).
pub fn nan_max(m: f32, x: f32) -> f32 {
    if x.is_nan() || x > m { x } else { m }
}

/// Max |v| (NaN if any value is NaN).
pub fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0f32, |m, v| nan_max(m, v.abs()))
}

/// Max |a − e| / max |e| of values of one shape (NaN if any difference is).
pub fn rel_error(actual: &[f32], expected: &[f32]) -> f32 {
    let diff = actual
        .iter()
        .zip(expected)
        .fold(0f32, |m, (a, e)| nan_max(m, (a - e).abs()));
    diff / max_abs(expected).max(1e-12)
}

/// Runs the check on both fixture models.
pub fn check(
    device: &Device,
    device_name: &str,
    dtype: Option<burn::tensor::FloatDType>,
) -> Result<Vec<CheckReport>> {
    let dir = fixtures();
    let mut reports = Vec::new();
    for name in ["sam_tiny", "sam_tiny_b"] {
        let config = SamConfig::load(dir.join(format!("{name}.json")))?;
        let sam = Sam::load(dir.join(format!("{name}.pth")), &config, device)?;
        let sam = match dtype {
            Some(d) => sam.cast_float(d)?,
            None => sam,
        };
        let out = Outputs::load(&dir.join(format!("{name}_outputs.safetensors")))?;
        let cases_path = dir.join(format!("{name}_cases.json"));
        let text = std::fs::read_to_string(&cases_path).map_err(|e| bad(&cases_path, e))?;
        let cases: Cases = serde_json::from_str(&text).map_err(|e| bad(&cases_path, e))?;

        let x = sam.preprocess(out.float("image/input", device)?)?;
        let emb = sam.image_embeddings(x)?;
        let (embedding_rel, _) = out.compare("encoder/embedding", emb)?;
        let reference = out.float::<4>("encoder/embedding", device)?;
        let (mut logits_rel, mut iou_abs, mut mask_disagreement) = (0f32, 0f32, 0f64);
        crate::bench::progress(format_args!("{name}: embedding checked"));
        for case in &cases.cases {
            crate::bench::progress(format_args!("{name}: case {}", case.name));
            let key = format!("case/{}", case.name);
            let prompts = Prompts {
                points: if case.points {
                    Some(PointPrompt {
                        coords: out.float(&format!("{key}/point_coords"), device)?,
                        labels: out.int(&format!("{key}/point_labels"), device)?,
                    })
                } else {
                    None
                },
                boxes: if case.boxes {
                    Some(out.float(&format!("{key}/boxes"), device)?)
                } else {
                    None
                },
                masks: if case.masks {
                    Some(out.float(&format!("{key}/mask_input"), device)?)
                } else {
                    None
                },
                embeddings: None,
            };
            let pred = sam.predict(reference.clone(), prompts, case.multimask)?;
            let (l, flips) = out.compare(&format!("{key}/low_res_masks"), pred.low_res_masks)?;
            let (_, iou_ref) = out.get(&format!("{key}/iou_predictions"))?;
            let iou = f32_values(pred.iou_predictions);
            let e = iou
                .iter()
                .zip(iou_ref)
                .fold(0f32, |m, (a, b)| nan_max(m, (a - b).abs()));
            logits_rel = nan_max(logits_rel, l);
            iou_abs = nan_max(iou_abs, e);
            mask_disagreement = mask_disagreement.max(flips);
        }
        reports.push(CheckReport {
            job: "check".into(),
            device: device_name.into(),
            model: name.into(),
            dtype: format!("{:?}", dtype.unwrap_or(burn::tensor::FloatDType::F32)).to_lowercase(),
            embedding_rel,
            logits_rel,
            iou_abs,
            mask_disagreement,
            cases: cases.cases.len(),
        });
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NaN output is the worst error there is, not a perfect score (`f32::max` skips NaN).
    #[test]
    fn nan_outputs_are_not_hidden() {
        assert!(rel_error(&[f32::NAN, 1.0], &[1.0, 1.0]).is_nan());
        assert!(rel_error(&[1.0, f32::NAN], &[1.0, 1.0]).is_nan());
        assert!(max_abs(&[0.5, f32::NAN, 2.0]).is_nan());
        assert_eq!(rel_error(&[1.0, 2.5], &[1.0, 2.0]), 0.25);
    }

    /// A missing or corrupt fixture file is an error naming it, and a missing key names the key.
    #[test]
    fn bad_fixture_files_are_named() {
        let dir = std::env::temp_dir().join(format!("sam-burn-bench-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.safetensors");
        let err = Outputs::load(&missing).err().expect("a missing file");
        assert!(err.to_string().contains("missing.safetensors"), "{err}");
        let corrupt = dir.join("corrupt.safetensors");
        std::fs::write(&corrupt, b"not a safetensors file").unwrap();
        let err = Outputs::load(&corrupt).err().expect("a corrupt file");
        assert!(err.to_string().contains("corrupt.safetensors"), "{err}");
        let fixture = fixtures().join("sam_tiny_grad_grads.safetensors");
        let out = Outputs::load(&fixture).unwrap();
        let err = out.get("grad/no_such_key").expect_err("a missing key");
        assert!(err.to_string().contains("grad/no_such_key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
