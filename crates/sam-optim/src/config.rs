//! The whole recipe in one configuration; `Default` is the seed recipe.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::accumulate::BatchConfig;
use crate::adamw::AdamWConfig;
use crate::error::{OptimError, Result};
use crate::groups::GroupsConfig;
use crate::schedule::ScheduleConfig;

/// Optimizer, schedule, parameter groups, batch arithmetic and clipping of a SAM training run.
///
/// `Default` is the seed recipe: AdamW (β 0.9/0.999, eps 1e-8, weight decay 0.05), peak lr 1e-4
/// after 2,500 linear warmup steps from 1e-7, cosine to 1e-6 at 90,000 steps, layer-wise decay
/// 0.8, global batch 256, no clipping. [`SamOptimConfig::sam_paper`] is the paper's variant.
/// The JSON form mirrors the fields; missing fields take their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SamOptimConfig {
    /// AdamW hyper-parameters.
    pub adamw: AdamWConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Name-based parameter groups.
    pub groups: GroupsConfig,
    /// How the global batch is split.
    pub batch: BatchConfig,
    /// Global L2 gradient-norm clipping threshold (`clip_grad_norm_`); `None` disables it.
    pub max_grad_norm: Option<f64>,
}

impl SamOptimConfig {
    /// The SAM paper's recipe (§ A): AdamW with weight decay 0.1, peak lr 8e-4, 250 warmup steps,
    /// ×0.1 at 60k and 86,666 of 90k steps, layer-wise decay 0.8, global batch 256.
    pub fn sam_paper() -> Self {
        Self {
            adamw: AdamWConfig {
                weight_decay: 0.1,
                ..AdamWConfig::default()
            },
            schedule: ScheduleConfig::sam_paper(),
            ..Self::default()
        }
    }

    /// Checks every field; the error names the first field at fault as a dotted path.
    pub fn validate(&self) -> Result<()> {
        self.adamw.validate()?;
        self.schedule.validate()?;
        self.groups.validate()?;
        self.batch.accumulation_steps()?;
        if let Some(max) = self.max_grad_norm
            && !(max.is_finite() && max > 0.0)
        {
            return Err(OptimError::config(
                "max_grad_norm",
                max,
                "must be finite and > 0 (or absent to disable clipping)",
            ));
        }
        Ok(())
    }

    /// Micro-batches to accumulate per optimizer step (see [`BatchConfig`]).
    pub fn accumulation_steps(&self) -> Result<usize> {
        self.batch.accumulation_steps()
    }

    /// Parses and validates a JSON config.
    pub fn from_json(json: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let config: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let reason = if field == "." {
                e.into_inner().to_string()
            } else {
                format!("field `{field}`: {}", e.into_inner())
            };
            OptimError::Json { reason }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The config as pretty JSON.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads and validates a JSON config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| OptimError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| e.in_file(path))
    }
}
