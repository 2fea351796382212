//! Strict loading of a Hugging Face `CLIPModel` `model.safetensors`.
//!
//! Module fields carry transformers' names, so checkpoint keys map one to one; the only
//! conversions are Burn's layouts, done by burn-store's `PyTorchToBurnAdapter` (linear weights
//! transposed to `[in, out]`, LayerNorm `weight/bias` → `gamma/beta`). Before anything is
//! applied, every tensor of the file is compared with [`expected_tensors`]: a missing,
//! unexpected, mis-shaped or non-float tensor is a [`ClipError::Weights`] naming the key and
//! both shapes. The `position_ids` buffers older exports contain are accepted and ignored.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Param;
use burn::store::{
    ChainAdapter, FloatCastAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::{DType, Tensor, TensorData};

use crate::config::ClipConfig;
use crate::error::{ClipError, Result, TensorMismatch};
use crate::model::ClipModel;

/// Buffers of the embeddings (`arange` row vectors) that exports may include.
pub const IGNORED_BUFFERS: &[&str] = &[
    "text_model.embeddings.position_ids",
    "vision_model.embeddings.position_ids",
];

/// The checkpoint key of the logit scale, a 0-d tensor (ours is `[1]`: Burn has no 0-d
/// tensors), so it is read apart from the store.
const LOGIT_SCALE: &str = "logit_scale";

/// Every tensor of a `CLIPModel` checkpoint for `config`: key → shape in PyTorch layout.
pub fn expected_tensors(config: &ClipConfig) -> BTreeMap<String, Vec<usize>> {
    let mut out = BTreeMap::new();
    let mut put = |key: String, shape: Vec<usize>| {
        out.insert(key, shape);
    };
    let t = &config.text_config;
    let v = &config.vision_config;
    let tower = |put: &mut dyn FnMut(String, Vec<usize>), prefix: &str, layers, c, i| {
        for l in 0..layers {
            let p = format!("{prefix}.encoder.layers.{l}");
            for proj in ["k_proj", "v_proj", "q_proj", "out_proj"] {
                put(format!("{p}.self_attn.{proj}.weight"), vec![c, c]);
                put(format!("{p}.self_attn.{proj}.bias"), vec![c]);
            }
            for norm in ["layer_norm1", "layer_norm2"] {
                put(format!("{p}.{norm}.weight"), vec![c]);
                put(format!("{p}.{norm}.bias"), vec![c]);
            }
            put(format!("{p}.mlp.fc1.weight"), vec![i, c]);
            put(format!("{p}.mlp.fc1.bias"), vec![i]);
            put(format!("{p}.mlp.fc2.weight"), vec![c, i]);
            put(format!("{p}.mlp.fc2.bias"), vec![c]);
        }
    };
    let (ct, cv) = (t.hidden_size, v.hidden_size);
    put(
        "text_model.embeddings.token_embedding.weight".into(),
        vec![t.vocab_size, ct],
    );
    put(
        "text_model.embeddings.position_embedding.weight".into(),
        vec![t.max_position_embeddings, ct],
    );
    tower(
        &mut put,
        "text_model",
        t.num_hidden_layers,
        ct,
        t.intermediate_size,
    );
    put("text_model.final_layer_norm.weight".into(), vec![ct]);
    put("text_model.final_layer_norm.bias".into(), vec![ct]);

    put("vision_model.embeddings.class_embedding".into(), vec![cv]);
    put(
        "vision_model.embeddings.patch_embedding.weight".into(),
        vec![cv, v.num_channels, v.patch_size, v.patch_size],
    );
    put(
        "vision_model.embeddings.position_embedding.weight".into(),
        vec![v.num_positions(), cv],
    );
    for norm in ["pre_layrnorm", "post_layernorm"] {
        put(format!("vision_model.{norm}.weight"), vec![cv]);
        put(format!("vision_model.{norm}.bias"), vec![cv]);
    }
    tower(
        &mut put,
        "vision_model",
        v.num_hidden_layers,
        cv,
        v.intermediate_size,
    );
    put(
        "visual_projection.weight".into(),
        vec![config.projection_dim, cv],
    );
    put(
        "text_projection.weight".into(),
        vec![config.projection_dim, ct],
    );
    put(LOGIT_SCALE.into(), vec![]);
    out
}

/// The tensors of a safetensors file whose type is not one burn-store reads (nor a float),
/// from its JSON header; `None` when the header cannot be read.
fn exotic_dtypes(path: &Path) -> Option<Vec<TensorMismatch>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
    // A header is small; a huge length is a corrupt file, left to the store's own error.
    if len > 100 << 20 {
        return None;
    }
    let mut header = vec![0u8; len];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).ok()?;
    const READ: [&str; 11] = [
        "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "U32",
    ];
    Some(
        header
            .iter()
            .filter(|(key, _)| key.as_str() != "__metadata__")
            .filter_map(|(key, info)| {
                let dtype = info.get("dtype")?.as_str()?;
                (!READ.contains(&dtype)).then(|| TensorMismatch::Dtype {
                    key: key.clone(),
                    dtype: dtype.to_string(),
                })
            })
            .collect(),
    )
}

fn read_error(path: &Path, reason: impl ToString) -> ClipError {
    ClipError::WeightsRead {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
}

/// The mismatches between a file's tensors (`key → (shape, dtype)`) and `expected`: missing
/// first, then shapes, dtypes, and unexpected keys, each group in key order.
pub fn compare(
    expected: &BTreeMap<String, Vec<usize>>,
    found: &BTreeMap<String, (Vec<usize>, DType)>,
) -> Vec<TensorMismatch> {
    let mut missing = Vec::new();
    let mut shapes = Vec::new();
    let mut dtypes = Vec::new();
    for (key, shape) in expected {
        match found.get(key) {
            None => missing.push(TensorMismatch::Missing {
                key: key.clone(),
                expected: shape.clone(),
            }),
            Some((s, _)) if s != shape => shapes.push(TensorMismatch::Shape {
                key: key.clone(),
                expected: shape.clone(),
                found: s.clone(),
            }),
            Some((_, d)) if !is_float(*d) => dtypes.push(TensorMismatch::Dtype {
                key: key.clone(),
                dtype: format!("{d:?}"),
            }),
            Some(_) => {}
        }
    }
    let unexpected = found
        .iter()
        .filter(|(k, _)| !expected.contains_key(*k) && !IGNORED_BUFFERS.contains(&k.as_str()))
        .map(|(k, (s, _))| TensorMismatch::Unexpected {
            key: k.clone(),
            shape: s.clone(),
        });
    missing
        .into_iter()
        .chain(shapes)
        .chain(dtypes)
        .chain(unexpected)
        .collect()
}

impl ClipModel {
    /// Loads `model.safetensors` (a Hugging Face `CLIPModel` export) into this model, strictly
    /// (see the module doc). Half-precision files are widened to f32 on load.
    ///
    /// On error nothing has been applied when the error is [`ClipError::Weights`]; after a
    /// [`ClipError::WeightsRead`] the model may hold part of the file: discard it.
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| read_error(path, e))?;
        if !meta.is_file() {
            return Err(read_error(path, "not a regular file"));
        }
        if meta.len() == 0 {
            return Err(read_error(path, "the file is empty"));
        }
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(ChainAdapter::new(
                PyTorchToBurnAdapter,
                FloatCastAdapter::to(DType::F32),
            ))
            .with_predicate(|key, _| key != LOGIT_SCALE)
            .allow_partial(true)
            .validate(false)
            .map_indices_contiguous(false);
        let tensors = store.get_all_tensors().map_err(|e| {
            // burn-store refuses a whole file for one tensor of a type it does not read (fp8,
            // u16 …) without naming it: name the tensors from the file's header.
            match exotic_dtypes(path) {
                Some(mismatches) if !mismatches.is_empty() => ClipError::Weights {
                    path: path.to_path_buf(),
                    mismatches,
                },
                _ => read_error(path, e),
            }
        })?;
        let found: BTreeMap<String, (Vec<usize>, DType)> = tensors
            .iter()
            .map(|(k, t)| (k.clone(), (t.shape.to_vec(), t.dtype)))
            .collect();
        let mismatches = compare(&expected_tensors(self.config()), &found);
        if !mismatches.is_empty() {
            return Err(ClipError::Weights {
                path: path.to_path_buf(),
                mismatches,
            });
        }
        let logit_scale = tensors
            .get(LOGIT_SCALE)
            .ok_or_else(|| read_error(path, "no logit_scale"))?;
        let bytes = logit_scale.to_bytes().map_err(|e| read_error(path, e))?;
        let value = TensorData::from_bytes_vec(bytes.to_vec(), [1], logit_scale.dtype)
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| read_error(path, format!("logit_scale: {e:?}")))?;

        let result = self
            .load_from(&mut store)
            .map_err(|e| read_error(path, e))?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            // The comparison above should make this unreachable; report it rather than run
            // with random weights.
            let missing: Vec<String> = result.missing.iter().map(|(k, _)| k.clone()).collect();
            let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
            return Err(read_error(
                path,
                format!(
                    "not applied: missing {}; errors {}",
                    missing.join(", "),
                    errors.join("; ")
                ),
            ));
        }
        let device = self.device();
        self.logit_scale =
            Param::from_tensor(Tensor::from_data(TensorData::new(value, [1]), &device));
        Ok(())
    }
}

/// `model.safetensors` bytes of `model`, as transformers writes them: its keys, PyTorch layouts
/// (linear weights `[out, in]`, LayerNorm `weight`/`bias`), f32, and a 0-d `logit_scale`.
pub fn to_safetensors(model: &ClipModel) -> Result<Vec<u8>> {
    let fail = |e: &dyn std::fmt::Display| ClipError::InvalidInput(format!("writing weights: {e}"));
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(burn::store::BurnToPyTorchAdapter)
        .skip_enum_variants(true);
    model.save_into(&mut store).map_err(|e| fail(&e))?;
    let bytes = store.get_bytes().map_err(|e| fail(&e))?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| fail(&e))?;
    let scale = model.logit_scale.val().into_data().convert::<f32>();
    let scale_bytes: Vec<u8> = scale.iter::<f32>().flat_map(|v| v.to_le_bytes()).collect();
    let mut views = Vec::new();
    for (name, view) in file.tensors() {
        if name == LOGIT_SCALE {
            continue;
        }
        views.push((name, view));
    }
    let scale_view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![], &scale_bytes)
            .map_err(|e| fail(&e))?;
    views.push((LOGIT_SCALE.to_string(), scale_view));
    safetensors::serialize(views, None).map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::store::BurnToPyTorchAdapter;
    use burn::tensor::Device;

    /// The hand-written key list is the model's own parameter list in PyTorch layout (the
    /// logit scale aside: `[]` in checkpoints, `[1]` here).
    #[test]
    fn expected_tensors_are_the_module_parameters() {
        let mut config = ClipConfig::vit_b_32();
        let (t, v) = (&mut config.text_config, &mut config.vision_config);
        (t.vocab_size, t.hidden_size, t.intermediate_size) = (50, 16, 24);
        (
            t.num_hidden_layers,
            t.num_attention_heads,
            t.max_position_embeddings,
        ) = (2, 2, 9);
        (v.hidden_size, v.intermediate_size, v.num_hidden_layers) = (8, 12, 3);
        (v.num_attention_heads, v.image_size, v.patch_size) = (2, 20, 6);
        config.projection_dim = 5;
        let device = Device::flex();
        let model = ClipModel::new(&config, &device).unwrap();
        let collected: BTreeMap<String, Vec<usize>> = model
            .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
            .into_iter()
            .map(|t| {
                let shape = if t.name == LOGIT_SCALE {
                    vec![]
                } else {
                    t.shape.to_vec()
                };
                (t.name, shape)
            })
            .collect();
        assert_eq!(collected, expected_tensors(&config));
        assert_eq!(
            collected["vision_model.embeddings.position_embedding.weight"],
            vec![10, 8]
        );
    }
}
