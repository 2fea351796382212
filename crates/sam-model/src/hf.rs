//! Hugging Face `transformers` `SamModel` folders (`facebook/sam-vit-base`, `-large`, `-huge` and
//! their fine-tunes), read as published: `config.json` plus `model.safetensors`, sharded
//! `model-0000N-of-0000M.safetensors` with their index, or `pytorch_model.bin` (also sharded).
//!
//! The Hugging Face names differ from the reference's in prefixes, norm names and the MLP layout
//! (`proj_in`, `layers`, `proj_out` instead of one `layers` list). Every difference is in
//! [`hf_key_remaps`]; nothing is converted on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::store::{
    ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::Device;
use serde::Deserialize;

use crate::config::SamConfig;
use crate::error::{Result, SamError};
use crate::sam::Sam;
use crate::weights::{check_readable, store_shapes, strict, variant_mismatches};

/// The tied copy of the shared positional embedding some exports write next to the original.
const TIED_PE: &str = "prompt_encoder.shared_embedding.positional_embedding";

/// `vision_config` of a Hugging Face `SamConfig` (defaults are `SamVisionConfig`'s).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct HfVision {
    hidden_size: usize,
    output_channels: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_channels: usize,
    image_size: usize,
    patch_size: usize,
    hidden_act: String,
    layer_norm_eps: f64,
    qkv_bias: bool,
    mlp_ratio: f64,
    use_abs_pos: bool,
    use_rel_pos: bool,
    window_size: usize,
    global_attn_indexes: Vec<usize>,
    num_pos_feats: usize,
    mlp_dim: Option<usize>,
}

impl Default for HfVision {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            output_channels: 256,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 1024,
            patch_size: 16,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-6,
            qkv_bias: true,
            mlp_ratio: 4.0,
            use_abs_pos: true,
            use_rel_pos: true,
            window_size: 14,
            global_attn_indexes: vec![2, 5, 8, 11],
            num_pos_feats: 128,
            mlp_dim: None,
        }
    }
}

/// `prompt_encoder_config` (defaults are `SamPromptEncoderConfig`'s).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct HfPrompt {
    hidden_size: usize,
    image_size: usize,
    patch_size: usize,
    mask_input_channels: usize,
    num_point_embeddings: usize,
    hidden_act: String,
    image_embedding_size: Option<usize>,
}

impl Default for HfPrompt {
    fn default() -> Self {
        Self {
            hidden_size: 256,
            image_size: 1024,
            patch_size: 16,
            mask_input_channels: 16,
            num_point_embeddings: 4,
            hidden_act: "gelu".into(),
            image_embedding_size: None,
        }
    }
}

/// `mask_decoder_config` (defaults are `SamMaskDecoderConfig`'s).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct HfMaskDecoder {
    hidden_size: usize,
    hidden_act: String,
    mlp_dim: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    attention_downsample_rate: usize,
    num_multimask_outputs: usize,
    iou_head_depth: usize,
    iou_head_hidden_dim: usize,
    layer_norm_eps: f64,
}

impl Default for HfMaskDecoder {
    fn default() -> Self {
        Self {
            hidden_size: 256,
            hidden_act: "relu".into(),
            mlp_dim: 2048,
            num_hidden_layers: 2,
            num_attention_heads: 8,
            attention_downsample_rate: 2,
            num_multimask_outputs: 3,
            iou_head_depth: 3,
            iou_head_hidden_dim: 256,
            layer_norm_eps: 1e-6,
        }
    }
}

/// The top level of a Hugging Face SAM `config.json`.
#[derive(Debug, Clone, Deserialize)]
struct HfSamConfig {
    model_type: Option<String>,
    #[serde(default)]
    vision_config: HfVision,
    #[serde(default)]
    prompt_encoder_config: HfPrompt,
    #[serde(default)]
    mask_decoder_config: HfMaskDecoder,
}

impl HfSamConfig {
    /// The equivalent [`SamConfig`], or every setting our (the reference's) architecture cannot
    /// represent.
    fn to_sam_config(&self) -> std::result::Result<SamConfig, String> {
        let v = &self.vision_config;
        let p = &self.prompt_encoder_config;
        let m = &self.mask_decoder_config;
        let mut bad = Vec::new();
        if let Some(t) = &self.model_type
            && t != "sam"
        {
            bad.push(format!("model_type is {t:?}, not \"sam\""));
        }
        let mut need = |ok: bool, what: String| {
            if !ok {
                bad.push(what);
            }
        };
        need(
            v.hidden_act == "gelu",
            format!(
                "vision_config.hidden_act {:?} (only \"gelu\")",
                v.hidden_act
            ),
        );
        need(
            p.hidden_act == "gelu",
            format!(
                "prompt_encoder_config.hidden_act {:?} (only \"gelu\")",
                p.hidden_act
            ),
        );
        need(
            m.hidden_act == "relu",
            format!(
                "mask_decoder_config.hidden_act {:?} (only \"relu\")",
                m.hidden_act
            ),
        );
        need(v.use_abs_pos, "vision_config.use_abs_pos false".into());
        need(v.use_rel_pos, "vision_config.use_rel_pos false".into());
        need(v.qkv_bias, "vision_config.qkv_bias false".into());
        need(
            v.num_channels == 3,
            format!("vision_config.num_channels {} (only 3)", v.num_channels),
        );
        need(
            v.layer_norm_eps == 1e-6,
            format!(
                "vision_config.layer_norm_eps {} (only 1e-6)",
                v.layer_norm_eps
            ),
        );
        need(
            m.layer_norm_eps == 1e-6,
            format!(
                "mask_decoder_config.layer_norm_eps {} (only 1e-6)",
                m.layer_norm_eps
            ),
        );
        need(
            m.attention_downsample_rate == 2,
            format!(
                "mask_decoder_config.attention_downsample_rate {} (only 2)",
                m.attention_downsample_rate
            ),
        );
        need(
            p.num_point_embeddings == 4,
            format!(
                "prompt_encoder_config.num_point_embeddings {} (only 4)",
                p.num_point_embeddings
            ),
        );
        need(
            v.output_channels == p.hidden_size && p.hidden_size == m.hidden_size,
            format!(
                "vision_config.output_channels {}, prompt_encoder_config.hidden_size {} and \
                 mask_decoder_config.hidden_size {} differ",
                v.output_channels, p.hidden_size, m.hidden_size
            ),
        );
        need(
            2 * v.num_pos_feats == p.hidden_size,
            format!(
                "vision_config.num_pos_feats {} is not half the prompt width {}",
                v.num_pos_feats, p.hidden_size
            ),
        );
        need(
            v.image_size == p.image_size && v.patch_size == p.patch_size,
            format!(
                "vision_config image_size/patch_size {}/{} differ from prompt_encoder_config's {}/{}",
                v.image_size, v.patch_size, p.image_size, p.patch_size
            ),
        );
        if let Some(e) = p.image_embedding_size
            && v.patch_size > 0
        {
            need(
                e * v.patch_size == v.image_size,
                format!(
                    "prompt_encoder_config.image_embedding_size {e} is not image_size / patch_size"
                ),
            );
        }
        let mlp_ratio = match v.mlp_dim {
            Some(d) if v.hidden_size > 0 => {
                let ratio = d as f64 / v.hidden_size as f64;
                // Our width is `(C · ratio) as usize`: the ratio must give `mlp_dim` back.
                if (v.hidden_size as f64 * ratio) as usize != d {
                    bad.push(format!(
                        "vision_config.mlp_dim {d} is not a multiple of hidden_size ratio"
                    ));
                }
                ratio
            }
            _ => v.mlp_ratio,
        };
        if !bad.is_empty() {
            return Err(format!("unsupported settings: {}", bad.join("; ")));
        }
        let config = SamConfig {
            image_size: v.image_size,
            patch_size: v.patch_size,
            encoder_embed_dim: v.hidden_size,
            encoder_depth: v.num_hidden_layers,
            encoder_num_heads: v.num_attention_heads,
            encoder_mlp_ratio: mlp_ratio,
            window_size: v.window_size,
            encoder_global_attn_indexes: v.global_attn_indexes.clone(),
            prompt_embed_dim: p.hidden_size,
            mask_in_chans: p.mask_input_channels,
            decoder_depth: m.num_hidden_layers,
            decoder_mlp_dim: m.mlp_dim,
            decoder_num_heads: m.num_attention_heads,
            num_multimask_outputs: m.num_multimask_outputs,
            iou_head_depth: m.iou_head_depth,
            iou_head_hidden_dim: m.iou_head_hidden_dim,
            prompt_embedding_dim: None,
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

fn hf_error(path: &Path, reason: impl ToString) -> SamError {
    SamError::HfFolder {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads a Hugging Face SAM `config.json` (the file, or the folder holding it).
pub fn hf_config(path: impl AsRef<Path>) -> Result<SamConfig> {
    let mut path = path.as_ref().to_path_buf();
    if path.is_dir() {
        path = path.join("config.json");
    }
    let text = std::fs::read_to_string(&path).map_err(|e| hf_error(&path, e))?;
    let raw: HfSamConfig =
        crate::config::parse_json(&text).map_err(|e| hf_error(&path, format!("bad JSON: {e}")))?;
    raw.to_sam_config().map_err(|e| hf_error(&path, e))
}

/// True when `path` is a folder with a `config.json` (a Hugging Face model folder).
pub fn is_hf_folder(path: impl AsRef<Path>) -> bool {
    let path = path.as_ref();
    path.is_dir() && path.join("config.json").is_file()
}

/// Hugging Face parameter names → ours, in application order (each applies to the result of
/// the previous ones). The MLP renumbering depends on the IoU head's depth.
pub fn hf_key_remaps(config: &SamConfig) -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = [
        (
            r"^vision_encoder\.patch_embed\.projection\.",
            "image_encoder.patch_embed.proj.",
        ),
        (
            r"^vision_encoder\.layers\.(\d+)\.layer_norm(\d)\.",
            "image_encoder.blocks.$1.norm$2.",
        ),
        (r"^vision_encoder\.layers\.", "image_encoder.blocks."),
        (
            r"^vision_encoder\.neck\.layer_norm(\d)\.",
            "image_encoder.neck.norm$1.",
        ),
        (r"^vision_encoder\.", "image_encoder."),
        (
            r"^shared_image_embedding\.positional_embedding$",
            "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
        ),
        (
            r"^prompt_encoder\.point_embed\.",
            "prompt_encoder.point_embeddings.",
        ),
        (
            r"^prompt_encoder\.mask_embed\.layer_norm(\d)\.",
            "prompt_encoder.mask_downscaling.norm$1.",
        ),
        (
            r"^prompt_encoder\.mask_embed\.",
            "prompt_encoder.mask_downscaling.",
        ),
        (
            r"^mask_decoder\.transformer\.layers\.(\d+)\.layer_norm(\d)\.",
            "mask_decoder.transformer.layers.$1.norm$2.",
        ),
        (
            r"^mask_decoder\.transformer\.layer_norm_final_attn\.",
            "mask_decoder.transformer.norm_final_attn.",
        ),
        (
            r"^mask_decoder\.upscale_conv(\d)\.",
            "mask_decoder.output_upscaling.conv$1.",
        ),
        (
            r"^mask_decoder\.upscale_layer_norm\.",
            "mask_decoder.output_upscaling.norm.",
        ),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    // `proj_in, layers[0..n-2], proj_out` → `layers[0..n]`. Shifts run from the last hidden
    // layer down so that no renamed key is matched again.
    let mut mlp = |pattern: &str, replacement: &str, depth: usize| {
        for j in (0..depth.saturating_sub(2)).rev() {
            r.push((
                format!(r"^{pattern}\.layers\.{j}\."),
                format!("{replacement}.layers.{}.", j + 1),
            ));
        }
        r.push((
            format!(r"^{pattern}\.proj_out\."),
            format!("{replacement}.layers.{}.", depth.saturating_sub(1)),
        ));
        r.push((
            format!(r"^{pattern}\.proj_in\."),
            format!("{replacement}.layers.0."),
        ));
    };
    // The hypernetwork MLPs always have three layers.
    mlp(
        r"mask_decoder\.output_hypernetworks_mlps\.(\d+)",
        "mask_decoder.output_hypernetworks_mlps.${1}",
        3,
    );
    mlp(
        r"mask_decoder\.iou_prediction_head",
        "mask_decoder.iou_prediction_head",
        config.iou_head_depth,
    );
    r
}

/// The weight files of a folder, in the order of preference Hugging Face uses.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    for index in [
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ] {
        let path = dir.join(index);
        if path.is_file() {
            return shard_files(&path);
        }
    }
    let bin = dir.join("pytorch_model.bin");
    if bin.is_file() {
        return Ok(vec![bin]);
    }
    Err(hf_error(
        dir,
        "no weights: expected model.safetensors, model.safetensors.index.json (sharded), \
         pytorch_model.bin or pytorch_model.bin.index.json",
    ))
}

/// The shard files an index names (`weight_map`: tensor → file), each checked to exist.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    #[derive(Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|e| hf_error(index, e))?;
    let parsed: Index =
        serde_json::from_str(&text).map_err(|e| hf_error(index, format!("bad JSON: {e}")))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let names: BTreeSet<&String> = parsed.weight_map.values().collect();
    if names.is_empty() {
        return Err(hf_error(index, "the index's weight_map is empty"));
    }
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        // Shards live beside the index; a name with a path in it would escape the folder.
        if name.contains('/') || name.contains('\\') || name == ".." {
            return Err(hf_error(
                index,
                format!("shard name {name:?} is not a file name"),
            ));
        }
        let file = dir.join(name);
        if file.is_file() {
            files.push(file);
        } else {
            missing.push(name.clone());
        }
    }
    if !missing.is_empty() {
        return Err(hf_error(
            index,
            format!(
                "shards named by the index are missing: {}",
                missing.join(", ")
            ),
        ));
    }
    Ok(files)
}

/// A store for one weight file with the Hugging Face names mapped to ours.
enum HfStore {
    Safetensors(SafetensorsStore),
    Pytorch(PytorchStore),
}

impl HfStore {
    fn open(path: &Path, remaps: &[(String, String)]) -> Self {
        let is_bin = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("bin") || e.eq_ignore_ascii_case("pth"));
        if is_bin {
            Self::Pytorch(
                remaps.iter().fold(
                    PytorchStore::from_file(path)
                        .allow_partial(true)
                        .validate(false)
                        .map_indices_contiguous(false),
                    |s, (a, b)| s.with_key_remapping(a, b.clone()),
                ),
            )
        } else {
            Self::Safetensors(
                remaps.iter().fold(
                    SafetensorsStore::from_file(path)
                        .with_from_adapter(PyTorchToBurnAdapter)
                        .allow_partial(true)
                        .validate(false)
                        .map_indices_contiguous(false),
                    |s, (a, b)| s.with_key_remapping(a, b.clone()),
                ),
            )
        }
    }

    fn shapes(&mut self, path: &Path) -> Result<BTreeMap<String, Vec<usize>>> {
        match self {
            Self::Safetensors(s) => store_shapes(path, s),
            Self::Pytorch(s) => store_shapes(path, s),
        }
    }

    fn apply(&mut self, path: &Path, model: &mut Sam) -> Result<ApplyResult> {
        let read = |e: String| SamError::CheckpointRead {
            path: path.to_path_buf(),
            reason: e,
        };
        match self {
            Self::Safetensors(s) => model.load_from(s).map_err(|e| read(e.to_string())),
            Self::Pytorch(s) => model.load_from(s).map_err(|e| read(e.to_string())),
        }
    }
}

impl Sam {
    /// Builds the model a Hugging Face `SamModel` folder describes and loads its weights,
    /// strictly.
    pub fn load_hf(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = hf_config(dir)?;
        let mut model = config.init(device)?;
        model.load_hf_weights(dir)?;
        Ok(model)
    }

    /// Loads the weights of a Hugging Face `SamModel` folder into this model, strictly: over all
    /// shards together, every parameter must be found once, with its shape, and no tensor may
    /// be left over (the tied copy of the shared positional embedding excepted).
    pub fn load_hf_weights(&mut self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(hf_error(dir, "not a folder"));
        }
        let files = weight_files(dir)?;
        let mut remaps = hf_key_remaps(self.config());
        let mut shapes = BTreeMap::new();
        // Each file is parsed once: the stores that listed the shapes also apply the tensors.
        let mut stores = Vec::with_capacity(files.len());
        for file in &files {
            check_readable(file)?;
            let mut store = HfStore::open(file, &remaps);
            shapes.extend(store.shapes(file)?);
            stores.push(store);
        }
        // Exports keep the shared positional embedding under its own name, its tied copy under
        // the prompt encoder's, or both; the copy is used only when the original is absent.
        let pe = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix";
        let tied_only = shapes.contains_key(TIED_PE) && !shapes.contains_key(pe);
        if tied_only {
            remaps.push((format!("^{}$", TIED_PE.replace('.', r"\.")), pe.into()));
            if let Some(s) = shapes.remove(TIED_PE) {
                shapes.insert(pe.into(), s);
            }
            // The new name must be in the stores' key maps: only this rare layout re-reads.
            stores = files.iter().map(|f| HfStore::open(f, &remaps)).collect();
        }
        let mismatches = variant_mismatches(self.config(), &shapes);
        if !mismatches.is_empty() {
            return Err(SamError::VariantMismatch {
                path: dir.to_path_buf(),
                reason: mismatches.join("; "),
            });
        }
        let mut total = ApplyResult {
            applied: Vec::new(),
            skipped: Vec::new(),
            missing: Vec::new(),
            unused: Vec::new(),
            errors: Vec::new(),
        };
        let mut still_missing: Option<BTreeSet<String>> = None;
        let mut missing_detail = BTreeMap::new();
        for (file, store) in files.iter().zip(&mut stores) {
            let result = store.apply(file, self)?;
            let missing: BTreeSet<String> = result.missing.iter().map(|(k, _)| k.clone()).collect();
            for (k, c) in result.missing {
                missing_detail.insert(k, c);
            }
            still_missing = Some(match still_missing {
                None => missing,
                Some(prev) => prev.intersection(&missing).cloned().collect(),
            });
            total.applied.extend(result.applied);
            total
                .unused
                .extend(result.unused.into_iter().filter(|k| k != TIED_PE));
            total.errors.extend(result.errors);
        }
        total.missing = still_missing
            .unwrap_or_default()
            .into_iter()
            .map(|k| {
                let c = missing_detail.remove(&k).unwrap_or_default();
                (k, c)
            })
            .collect();
        let mut seen = BTreeSet::new();
        let duplicated: Vec<String> = total
            .applied
            .iter()
            .filter(|k| !seen.insert(k.as_str()))
            .cloned()
            .collect();
        if !duplicated.is_empty() {
            return Err(SamError::Mismatch {
                path: dir.to_path_buf(),
                details: format!("tensors found in several shards: {}", duplicated.join(", ")),
            });
        }
        strict(dir, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_vit_b() {
        let raw: HfSamConfig = serde_json::from_str(r#"{"model_type": "sam"}"#).unwrap();
        assert_eq!(raw.to_sam_config().unwrap(), SamConfig::vit_b());
    }

    #[test]
    fn unsupported_settings_are_named() {
        let raw: HfSamConfig = serde_json::from_str(
            r#"{"vision_config": {"use_rel_pos": false, "hidden_act": "relu"},
                "mask_decoder_config": {"attention_downsample_rate": 4}}"#,
        )
        .unwrap();
        let err = raw.to_sam_config().unwrap_err();
        for part in [
            "use_rel_pos",
            "vision_config.hidden_act",
            "attention_downsample_rate",
        ] {
            assert!(err.contains(part), "{err}");
        }
    }

    #[test]
    fn mlp_layers_are_renumbered_without_chaining() {
        let mut config = SamConfig::vit_b();
        config.iou_head_depth = 4;
        let remaps = hf_key_remaps(&config);
        let apply = |key: &str| {
            remaps
                .iter()
                .fold(key.to_string(), |k, (a, b)| regex_lite_replace(&k, a, b))
        };
        assert_eq!(
            apply("mask_decoder.iou_prediction_head.proj_in.weight"),
            "mask_decoder.iou_prediction_head.layers.0.weight"
        );
        assert_eq!(
            apply("mask_decoder.iou_prediction_head.layers.0.weight"),
            "mask_decoder.iou_prediction_head.layers.1.weight"
        );
        assert_eq!(
            apply("mask_decoder.iou_prediction_head.layers.1.weight"),
            "mask_decoder.iou_prediction_head.layers.2.weight"
        );
        assert_eq!(
            apply("mask_decoder.iou_prediction_head.proj_out.weight"),
            "mask_decoder.iou_prediction_head.layers.3.weight"
        );
        assert_eq!(
            apply("mask_decoder.output_hypernetworks_mlps.2.layers.0.bias"),
            "mask_decoder.output_hypernetworks_mlps.2.layers.1.bias"
        );
        assert_eq!(
            apply("vision_encoder.layers.11.layer_norm2.weight"),
            "image_encoder.blocks.11.norm2.weight"
        );
    }

    /// The remapper's semantics: each pattern in turn, on the result of the previous ones.
    fn regex_lite_replace(key: &str, from: &str, to: &str) -> String {
        regex::Regex::new(from)
            .unwrap()
            .replace_all(key, to)
            .to_string()
    }
}
