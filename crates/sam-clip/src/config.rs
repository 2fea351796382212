//! `CLIPConfig`, `CLIPTextConfig` and `CLIPVisionConfig` of `transformers`
//! (`configuration_clip.py`): the same fields, names and defaults, read from a Hugging Face
//! `config.json` as `transformers` 5 reads it, with the presets of the OpenAI checkpoints.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::activation::HiddenAct;
use crate::error::{ClipError, Result};

/// `CLIPTextConfig` (defaults: `openai/clip-vit-base-patch32`'s text tower).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    /// Token embedding rows.
    pub vocab_size: usize,
    /// Width `C` of the transformer.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Unused by `CLIPModel` (the top-level `projection_dim` sizes the projections); kept so a
    /// config round-trips.
    pub projection_dim: Option<usize>,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads; `hidden_size` must be a multiple.
    pub num_attention_heads: usize,
    /// Context length: position embedding rows, and the tokenizer's truncation length.
    pub max_position_embeddings: usize,
    /// MLP activation.
    pub hidden_act: HiddenAct,
    /// Every LayerNorm's epsilon.
    pub layer_norm_eps: f64,
    /// Training only.
    pub attention_dropout: f64,
    /// Training only.
    pub initializer_range: f64,
    /// Training only.
    pub initializer_factor: f64,
    /// Padding token id (unused: sequences are not padded across the pooled position).
    pub pad_token_id: Option<i64>,
    /// Start-of-text token id.
    pub bos_token_id: Option<i64>,
    /// End-of-text token id; it picks the pooling rule (see `ClipTextModel::pooled_index`).
    pub eos_token_id: Option<i64>,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            projection_dim: Some(512),
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: HiddenAct::QuickGelu,
            layer_norm_eps: 1e-5,
            attention_dropout: 0.0,
            initializer_range: 0.02,
            initializer_factor: 1.0,
            pad_token_id: Some(1),
            bos_token_id: Some(49406),
            eos_token_id: Some(49407),
        }
    }
}

/// `CLIPVisionConfig` (defaults: `openai/clip-vit-base-patch32`'s vision tower).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    /// Width `C` of the transformer.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Unused by `CLIPModel` (see [`ClipTextConfig::projection_dim`]).
    pub projection_dim: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads; `hidden_size` must be a multiple.
    pub num_attention_heads: usize,
    /// Input channels (3: RGB).
    pub num_channels: usize,
    /// Input side in pixels; the model takes `image_size × image_size` only.
    pub image_size: usize,
    /// Patch side (the patch embedding's kernel and stride).
    pub patch_size: usize,
    /// MLP activation.
    pub hidden_act: HiddenAct,
    /// Every LayerNorm's epsilon.
    pub layer_norm_eps: f64,
    /// Training only.
    pub attention_dropout: f64,
    /// Training only.
    pub initializer_range: f64,
    /// Training only.
    pub initializer_factor: f64,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: HiddenAct::QuickGelu,
            layer_norm_eps: 1e-5,
            attention_dropout: 0.0,
            initializer_range: 0.02,
            initializer_factor: 1.0,
        }
    }
}

impl ClipVisionConfig {
    /// Patches per side, `image_size // patch_size` (the patch convolution drops a remainder).
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Tokens of the vision transformer: the class token and one per patch.
    pub fn num_positions(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

/// `CLIPConfig`: both towers and the shared embedding width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipConfig {
    /// The text tower.
    pub text_config: ClipTextConfig,
    /// The vision tower.
    pub vision_config: ClipVisionConfig,
    /// Width `P` of the joint embedding (both projections end there).
    pub projection_dim: usize,
    /// Initial `logit_scale` (a trained value is in the weights).
    pub logit_scale_init_value: f64,
    /// Training only.
    pub initializer_factor: f64,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            text_config: ClipTextConfig::default(),
            vision_config: ClipVisionConfig::default(),
            projection_dim: 512,
            logit_scale_init_value: 2.6592,
            initializer_factor: 1.0,
        }
    }
}

fn field_error(path: &Path, field: impl Into<String>, reason: impl Into<String>) -> ClipError {
    ClipError::ConfigField {
        path: path.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
    }
}

/// Deserialises `value` as `T`, naming the failing field as `prefix.field`.
fn typed<T: DeserializeOwned>(value: serde_json::Value, prefix: &str, path: &Path) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = match (prefix.is_empty(), inner == ".") {
            (true, _) => inner,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{inner}"),
        };
        field_error(path, field, e.into_inner().to_string())
    })
}

impl ClipConfig {
    /// `openai/clip-vit-base-patch32`.
    pub fn vit_b_32() -> Self {
        Self::default()
    }

    /// `openai/clip-vit-base-patch16`.
    pub fn vit_b_16() -> Self {
        let mut c = Self::default();
        c.vision_config.patch_size = 16;
        c
    }

    /// `openai/clip-vit-large-patch14`.
    pub fn vit_l_14() -> Self {
        Self {
            text_config: ClipTextConfig {
                hidden_size: 768,
                intermediate_size: 3072,
                projection_dim: Some(768),
                num_attention_heads: 12,
                ..ClipTextConfig::default()
            },
            vision_config: ClipVisionConfig {
                hidden_size: 1024,
                intermediate_size: 4096,
                projection_dim: 768,
                num_hidden_layers: 24,
                num_attention_heads: 16,
                patch_size: 14,
                ..ClipVisionConfig::default()
            },
            projection_dim: 768,
            ..Self::default()
        }
    }

    /// `openai/clip-vit-large-patch14-336` (the CLIP of SAM's text prompts, paper §7.5).
    pub fn vit_l_14_336() -> Self {
        let mut c = Self::vit_l_14();
        c.vision_config.image_size = 336;
        c
    }

    /// A preset by name: `vit_b_32`, `vit_b_16`, `vit_l_14`, `vit_l_14_336`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "vit_b_32" => Ok(Self::vit_b_32()),
            "vit_b_16" => Ok(Self::vit_b_16()),
            "vit_l_14" => Ok(Self::vit_l_14()),
            "vit_l_14_336" => Ok(Self::vit_l_14_336()),
            other => Err(field_error(
                Path::new("<preset>"),
                "name",
                format!("unknown preset {other:?} (vit_b_32, vit_b_16, vit_l_14, vit_l_14_336)"),
            )),
        }
    }

    /// Reads a `config.json` (the file, or the folder holding it) as `transformers` 5 does,
    /// then [`validate`](Self::validate)s it.
    ///
    /// Legacy files with `text_config_dict` / `vision_config_dict` (the OpenAI uploads) are
    /// read as `CLIPConfig.__post_init__` reads them: the `*_dict` tower, completed with the
    /// class defaults, replaces `text_config` / `vision_config` field by field.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let (path, text) = read_json_file(path.as_ref(), "config.json")?;
        Self::from_json_str(&text, &path)
    }

    /// [`load`](Self::load) on JSON text; errors name `path`.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let root = parse_json(text, path)?;
        let serde_json::Value::Object(mut root) = root else {
            return Err(field_error(path, "(root)", "not a JSON object"));
        };
        if let Some(t) = root.get("model_type")
            && t.as_str() != Some("clip")
        {
            return Err(field_error(
                path,
                "model_type",
                format!("{t} is not \"clip\" (a CLIPModel config)"),
            ));
        }
        // The tower's value and the key it came from, so that errors name the key in the file.
        let mut tower = |name: &str| -> (serde_json::Value, String) {
            let legacy_key = format!("{name}_dict");
            let legacy = root.remove(&legacy_key);
            let current = root.remove(name);
            match (legacy, current) {
                (Some(v), _) if !v.is_null() => (v, legacy_key),
                (_, Some(v)) if !v.is_null() => (v, name.to_string()),
                _ => (
                    serde_json::Value::Object(Default::default()),
                    name.to_string(),
                ),
            }
        };
        let (text, text_key) = tower("text_config");
        let text_config: ClipTextConfig = typed(text, &text_key, path)?;
        let (vision, vision_key) = tower("vision_config");
        let vision_config: ClipVisionConfig = typed(vision, &vision_key, path)?;
        // The remaining top-level fields; unknown ones (architectures, dtype …) are ignored.
        let mut top: ClipConfig = typed(serde_json::Value::Object(root), "", path)?;
        top.text_config = text_config;
        top.vision_config = vision_config;
        top.validate_at(path, &text_key, &vision_key)?;
        Ok(top)
    }

    /// The config as JSON in the `config.json` layout (what [`from_json_str`](Self::from_json_str)
    /// reads back).
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("model_type".into(), "clip".into());
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// Checks that the config describes a model this implementation builds, naming the first
    /// field that does not.
    pub fn validate(&self) -> Result<()> {
        self.validate_at(Path::new("<config>"), "text_config", "vision_config")
    }

    /// `text_key`/`vision_key` are the keys the towers were read from (`text_config` or the
    /// legacy `text_config_dict`), so that errors name the field as it is spelt in the file.
    fn validate_at(&self, path: &Path, text_key: &str, vision_key: &str) -> Result<()> {
        let err = |field: &str, reason: String| Err(field_error(path, field, reason));
        let t = &self.text_config;
        let v = &self.vision_config;
        for (tower, hidden, heads, inter, eps) in [
            (
                text_key,
                t.hidden_size,
                t.num_attention_heads,
                t.intermediate_size,
                t.layer_norm_eps,
            ),
            (
                vision_key,
                v.hidden_size,
                v.num_attention_heads,
                v.intermediate_size,
                v.layer_norm_eps,
            ),
        ] {
            if hidden == 0 {
                return err(&format!("{tower}.hidden_size"), "must be positive".into());
            }
            if heads == 0 || hidden % heads != 0 {
                return err(
                    &format!("{tower}.num_attention_heads"),
                    format!("{heads} does not divide hidden_size {hidden}"),
                );
            }
            if inter == 0 {
                return err(
                    &format!("{tower}.intermediate_size"),
                    "must be positive".into(),
                );
            }
            if !(eps.is_finite() && eps > 0.0) {
                return err(
                    &format!("{tower}.layer_norm_eps"),
                    format!("{eps} is not a positive number"),
                );
            }
        }
        if t.vocab_size == 0 {
            return err(&format!("{text_key}.vocab_size"), "must be positive".into());
        }
        if t.max_position_embeddings < 2 {
            return err(
                &format!("{text_key}.max_position_embeddings"),
                format!(
                    "{} leaves no room for the start and end tokens",
                    t.max_position_embeddings
                ),
            );
        }
        match t.eos_token_id {
            None => {
                return err(
                    &format!("{text_key}.eos_token_id"),
                    "is required (pooling)".into(),
                );
            }
            Some(id) if id < 0 => {
                return err(&format!("{text_key}.eos_token_id"), format!("{id} < 0"));
            }
            _ => {}
        }
        if v.num_channels != 3 {
            return err(
                &format!("{vision_key}.num_channels"),
                format!("{} (only 3: RGB)", v.num_channels),
            );
        }
        if v.patch_size == 0 || v.image_size < v.patch_size {
            return err(
                &format!("{vision_key}.patch_size"),
                format!("{} does not fit image_size {}", v.patch_size, v.image_size),
            );
        }
        if self.projection_dim == 0 {
            return err("projection_dim", "must be positive".into());
        }
        Ok(())
    }
}

/// The text of `path`, or of `path/file_name` when `path` is a folder (the forms a Hugging Face
/// folder's JSON files are given in), with the path actually read.
pub(crate) fn read_json_file(path: &Path, file_name: &str) -> Result<(PathBuf, String)> {
    let path = if path.is_dir() {
        path.join(file_name)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ClipError::ConfigFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok((path, text))
}

/// JSON text read from `path`, parsed; a syntax error names the file.
pub(crate) fn parse_json(text: &str, path: &Path) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| ClipError::ConfigFile {
        path: path.to_path_buf(),
        reason: format!("bad JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ClipConfig> {
        ClipConfig::from_json_str(json, Path::new("config.json"))
    }

    fn field_of(r: Result<ClipConfig>) -> String {
        match r {
            Err(ClipError::ConfigField { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_vit_b_32_and_presets_round_trip() {
        assert_eq!(parse("{}").unwrap(), ClipConfig::vit_b_32());
        for name in ["vit_b_32", "vit_b_16", "vit_l_14", "vit_l_14_336"] {
            let c = ClipConfig::preset(name).unwrap();
            c.validate().unwrap();
            assert_eq!(parse(&c.to_json()).unwrap(), c, "{name}");
        }
        assert_eq!(
            ClipConfig::vit_l_14_336().vision_config.num_positions(),
            577
        );
        assert_eq!(ClipConfig::vit_b_32().vision_config.num_positions(), 50);
    }

    #[test]
    fn legacy_dicts_replace_the_towers_with_class_defaults() {
        let c = parse(
            r#"{"text_config": {"hidden_size": 64, "eos_token_id": 2, "vocab_size": 99},
                "text_config_dict": {"hidden_size": 768},
                "vision_config": {"image_size": 336}}"#,
        )
        .unwrap();
        assert_eq!(c.text_config.hidden_size, 768);
        // Fields the dict lacks take CLIPTextConfig's defaults, not text_config's values.
        assert_eq!(c.text_config.eos_token_id, Some(49407));
        assert_eq!(c.text_config.vocab_size, 49408);
        assert_eq!(c.vision_config.image_size, 336);
    }

    #[test]
    fn bad_fields_are_named() {
        // (JSON, the field its error names); range errors in the legacy `*_config_dict` towers
        // name the key the file spells.
        let cases = [
            (
                r#"{"text_config": {"hidden_size": "wide"}}"#,
                "text_config.hidden_size",
            ),
            (
                r#"{"vision_config": {"hidden_act": "relu"}}"#,
                "vision_config.hidden_act",
            ),
            (
                r#"{"text_config": {"num_attention_heads": 7}}"#,
                "text_config.num_attention_heads",
            ),
            (
                r#"{"vision_config": {"layer_norm_eps": -1.0}}"#,
                "vision_config.layer_norm_eps",
            ),
            (r#"{"projection_dim": -3}"#, "projection_dim"),
            (r#"{"model_type": "sam"}"#, "model_type"),
            (
                r#"{"text_config": {"eos_token_id": null}}"#,
                "text_config.eos_token_id",
            ),
            (
                r#"{"text_config_dict": {"num_attention_heads": 7}}"#,
                "text_config_dict.num_attention_heads",
            ),
            (
                r#"{"text_config_dict": {"vocab_size": 0}}"#,
                "text_config_dict.vocab_size",
            ),
            (
                r#"{"vision_config_dict": {"num_channels": 1}}"#,
                "vision_config_dict.num_channels",
            ),
            (
                r#"{"vision_config_dict": {"hidden_size": 0}}"#,
                "vision_config_dict.hidden_size",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(field_of(parse(json)), field, "{json}");
        }
        assert!(matches!(
            parse("{not json"),
            Err(ClipError::ConfigFile { .. })
        ));
    }
}
