//! Parameter groups decided by parameter *names*: weight decay on/off, layer-wise learning-rate
//! scale, frozen.
//!
//! The rules follow BEiT/MAE/ViTDet practice for SAM's names:
//!
//! - **no weight decay** for biases, norm parameters (Burn `LayerNorm`'s `gamma`/`beta`, and the
//!   `weight` of a module whose name starts with `norm`, i.e. `LayerNorm2d`), absolute and
//!   relative position embeddings (`pos_embed`, `rel_pos_h`, `rel_pos_w`), the prompt encoder's
//!   embeddings and the decoder's tokens (`point_embeddings`, `not_a_point_embed`,
//!   `no_mask_embed`, `iou_token`, `mask_tokens`) and `positional_encoding_gaussian_matrix`;
//!   optionally also every parameter of rank ≤ 1 (timm's rule), plus user patterns;
//! - **layer id**: `image_encoder.patch_embed.*` and `image_encoder.pos_embed` → 0, encoder block
//!   `i` → `i + 1`, everything else (neck, prompt encoder, mask decoder) → `depth + 1`; the
//!   learning-rate scale is `layer_decay^(depth + 1 − layer_id)`, so the heads train at the full
//!   rate and the patch embedding at `layer_decay^(depth + 1)`;
//! - **frozen**: `positional_encoding_gaussian_matrix` (a buffer in the reference) and user
//!   patterns (regular expressions searched in the path, e.g. `^image_encoder\.`).

use std::collections::BTreeMap;

use burn::module::{ParamGroup, ParamId};
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result};
use crate::params::ParamInfo;

/// Last path components that never get weight decay.
const NO_DECAY_LEAVES: [&str; 7] = [
    "bias",
    "gamma",
    "beta",
    "pos_embed",
    "rel_pos_h",
    "rel_pos_w",
    "positional_encoding_gaussian_matrix",
];

/// Modules whose parameters are learned tokens or embeddings (no weight decay).
const TOKEN_MODULES: [&str; 5] = [
    "point_embeddings",
    "not_a_point_embed",
    "no_mask_embed",
    "iou_token",
    "mask_tokens",
];

/// Last path components that are always frozen (buffers in the reference implementation).
const ALWAYS_FROZEN_LEAVES: [&str; 1] = ["positional_encoding_gaussian_matrix"];

/// How parameters are grouped. `Default` is the seed recipe (layer decay 0.8, SAM's no-decay
/// names, nothing frozen beyond the random-feature matrix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupsConfig {
    /// Layer-wise learning-rate decay factor in (0, 1]; 1 turns it off.
    pub layer_decay: f64,
    /// Number of image-encoder blocks; `None` infers it from the largest block index present.
    pub encoder_depth: Option<usize>,
    /// Path prefix of the image encoder (its `patch_embed`, `pos_embed`, `blocks.<i>`).
    pub encoder_prefix: String,
    /// Apply the built-in SAM no-weight-decay names (see the module docs).
    pub sam_no_decay_names: bool,
    /// Also exempt every parameter of rank ≤ 1 from weight decay (needs shapes).
    pub no_decay_rank_le_1: bool,
    /// Extra regular expressions: matching parameters get no weight decay. Each must match.
    pub no_decay: Vec<String>,
    /// Regular expressions of frozen parameters: never updated, no optimizer state, excluded
    /// from the gradient norm. Each must match at least one parameter.
    pub frozen: Vec<String>,
    /// Regular expressions of the only parameters to train (e.g. `\.lora_` for LoRA
    /// adapters): when non-empty, every parameter matching none of them is frozen. Each must
    /// match at least one parameter.
    pub trainable: Vec<String>,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self {
            layer_decay: 0.8,
            encoder_depth: None,
            encoder_prefix: "image_encoder".to_string(),
            sam_no_decay_names: true,
            no_decay_rank_le_1: true,
            no_decay: Vec::new(),
            frozen: Vec::new(),
            trainable: Vec::new(),
        }
    }
}

impl GroupsConfig {
    /// Checks the scalar fields and compiles the patterns; errors name the field as `groups.<name>`.
    pub fn validate(&self) -> Result<()> {
        if !(self.layer_decay > 0.0 && self.layer_decay <= 1.0) {
            return Err(OptimError::config(
                "groups.layer_decay",
                self.layer_decay,
                "must be in (0, 1] (1 disables layer-wise decay)",
            ));
        }
        if self.encoder_prefix.is_empty() {
            return Err(OptimError::config(
                "groups.encoder_prefix",
                &self.encoder_prefix,
                "must not be empty",
            ));
        }
        compile("groups.no_decay", &self.no_decay)?;
        compile("groups.frozen", &self.frozen)?;
        compile("groups.trainable", &self.trainable)?;
        Ok(())
    }
}

/// What the optimizer does with one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSettings {
    /// Layer id for layer-wise decay (0 = patch embedding, `depth + 1` = after the encoder).
    pub layer_id: usize,
    /// Multiplies the scheduled learning rate.
    pub lr_scale: f64,
    /// Whether weight decay applies.
    pub weight_decay: bool,
    /// Frozen: left untouched, no optimizer state.
    pub frozen: bool,
}

/// A set of parameters sharing settings, like one of PyTorch's `param_groups`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSummary {
    /// Multiplies the scheduled learning rate.
    pub lr_scale: f64,
    /// Whether weight decay applies.
    pub weight_decay: bool,
    /// Frozen group.
    pub frozen: bool,
    /// Member paths, sorted.
    pub params: Vec<String>,
}

/// The settings of every parameter of a model, resolved from names.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    depth: usize,
    settings: BTreeMap<String, ParamSettings>,
}

struct Pattern {
    source: String,
    group: ParamGroup,
}

fn compile(field: &str, patterns: &[String]) -> Result<Vec<Pattern>> {
    patterns
        .iter()
        .map(|p| {
            // Burn's ParamGroup carries the regex engine we need, so no extra dependency.
            ParamGroup::from_regex(p)
                .map(|group| Pattern {
                    source: p.clone(),
                    group,
                })
                .map_err(|e| OptimError::InvalidPattern {
                    field: field.to_string(),
                    pattern: p.clone(),
                    reason: format!("{e:?}"),
                })
        })
        .collect()
}

/// Whether the built-in SAM rules exempt `path` from weight decay.
pub fn sam_no_decay_name(path: &str) -> bool {
    let parts: Vec<&str> = path.split('.').collect();
    let Some((leaf, parents)) = parts.split_last() else {
        return false;
    };
    NO_DECAY_LEAVES.contains(leaf)
        || (*leaf == "weight" && parents.iter().any(|p| p.starts_with("norm")))
        || parents.iter().any(|p| TOKEN_MODULES.contains(p))
}

/// Whether `path` is frozen regardless of configuration.
pub fn always_frozen_name(path: &str) -> bool {
    path.rsplit('.')
        .next()
        .is_some_and(|leaf| ALWAYS_FROZEN_LEAVES.contains(&leaf))
}

/// The encoder block index of `path`, if it lies in `<prefix>.blocks.<i>.`.
fn block_index(prefix: &str, path: &str) -> Option<std::result::Result<usize, String>> {
    let rest = path.strip_prefix(prefix)?.strip_prefix(".blocks.")?;
    let index = rest.split('.').next().unwrap_or_default();
    Some(
        index
            .parse::<usize>()
            .map_err(|_| format!("`{index}` after `{prefix}.blocks.` is not a block index")),
    )
}

/// Layer id of `path` for an encoder of `depth` blocks under `prefix`.
pub fn layer_id(prefix: &str, depth: usize, path: &str) -> Result<usize> {
    let Some(rest) = path.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
        return Ok(depth + 1);
    };
    if rest.starts_with("patch_embed.") || rest == "pos_embed" {
        return Ok(0);
    }
    match block_index(prefix, path) {
        None => Ok(depth + 1),
        Some(Err(reason)) => Err(OptimError::Parameter {
            path: path.to_string(),
            reason,
        }),
        Some(Ok(i)) if i < depth => Ok(i + 1),
        Some(Ok(i)) => Err(OptimError::Parameter {
            path: path.to_string(),
            reason: format!("block {i} is beyond groups.encoder_depth = {depth}"),
        }),
    }
}

impl GroupPlan {
    /// Resolves the settings of every parameter in `params` (names must be unique).
    ///
    /// Fails on an invalid config, on a user pattern that matches nothing, and on names that
    /// cannot be placed (e.g. a block index ≥ `encoder_depth`).
    pub fn resolve(config: &GroupsConfig, params: &[ParamInfo]) -> Result<Self> {
        config.validate()?;
        let no_decay = compile("groups.no_decay", &config.no_decay)?;
        let frozen = compile("groups.frozen", &config.frozen)?;
        let trainable = compile("groups.trainable", &config.trainable)?;
        // Path matchers ignore the id, so any id serves for matching names alone.
        let any_id = ParamId::new();
        let matches = |p: &Pattern, path: &str| p.group.matches(&any_id, Some(path));

        for (field, patterns) in [
            ("groups.no_decay", &no_decay),
            ("groups.frozen", &frozen),
            ("groups.trainable", &trainable),
        ] {
            for p in patterns.iter() {
                if !params.iter().any(|info| matches(p, &info.path)) {
                    return Err(OptimError::PatternMatchesNothing {
                        field: field.to_string(),
                        pattern: p.source.clone(),
                    });
                }
            }
        }

        let prefix = config.encoder_prefix.as_str();
        let depth = match config.encoder_depth {
            Some(d) => d,
            None => {
                let mut depth = 0;
                for info in params {
                    if let Some(index) = block_index(prefix, &info.path) {
                        let i = index.map_err(|reason| OptimError::Parameter {
                            path: info.path.clone(),
                            reason,
                        })?;
                        depth = depth.max(i + 1);
                    }
                }
                depth
            }
        };

        let mut settings = BTreeMap::new();
        for info in params {
            let path = info.path.as_str();
            let layer_id = layer_id(prefix, depth, path)?;
            let exempt = (config.sam_no_decay_names && sam_no_decay_name(path))
                || (config.no_decay_rank_le_1 && !info.shape.is_empty() && info.shape.len() <= 1)
                || no_decay.iter().any(|p| matches(p, path));
            let is_frozen = always_frozen_name(path)
                || frozen.iter().any(|p| matches(p, path))
                || (!trainable.is_empty() && !trainable.iter().any(|p| matches(p, path)));
            let s = ParamSettings {
                layer_id,
                lr_scale: config.layer_decay.powi((depth + 1 - layer_id) as i32),
                weight_decay: !exempt,
                frozen: is_frozen,
            };
            if settings.insert(info.path.clone(), s).is_some() {
                return Err(OptimError::Parameter {
                    path: info.path.clone(),
                    reason: "appears twice".to_string(),
                });
            }
        }
        Ok(Self { depth, settings })
    }

    /// The encoder depth used (configured or inferred).
    pub fn encoder_depth(&self) -> usize {
        self.depth
    }

    /// Settings of one parameter.
    pub fn get(&self, path: &str) -> Option<&ParamSettings> {
        self.settings.get(path)
    }

    /// All parameters and their settings, by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamSettings)> {
        self.settings.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Paths of the frozen parameters.
    pub fn frozen_paths(&self) -> Vec<String> {
        self.iter()
            .filter(|(_, s)| s.frozen)
            .map(|(p, _)| p.to_string())
            .collect()
    }

    /// Parameters grouped by (lr scale, weight decay, frozen), ordered by lr scale then flags:
    /// the PyTorch `param_groups` equivalent, for logging.
    pub fn summary(&self) -> Vec<GroupSummary> {
        let mut groups: Vec<GroupSummary> = Vec::new();
        for (path, s) in self.iter() {
            match groups.iter_mut().find(|g| {
                g.lr_scale == s.lr_scale && g.weight_decay == s.weight_decay && g.frozen == s.frozen
            }) {
                Some(g) => g.params.push(path.to_string()),
                None => groups.push(GroupSummary {
                    lr_scale: s.lr_scale,
                    weight_decay: s.weight_decay,
                    frozen: s.frozen,
                    params: vec![path.to_string()],
                }),
            }
        }
        groups.sort_by(|a, b| {
            a.lr_scale
                .total_cmp(&b.lr_scale)
                .then(a.weight_decay.cmp(&b.weight_decay))
                .then(a.frozen.cmp(&b.frozen))
        });
        groups
    }
}
