//! The training configuration. `Default` is the seed's recipe for SAM ViT-L; [`TrainConfig::demo`]
//! is a small model that learns the synthetic shapes dataset on a CPU in minutes.

use std::path::Path;

use sam_data::augment::AugmentConfig;
use sam_data::{LoaderConfig, TrainSampleConfig};
use sam_losses::SamLossConfig;
use sam_model::SamConfig;
use sam_optim::{BatchConfig, Decay, SamOptimConfig, ScheduleConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The paper's interactive simulation (Appendix A, "Training algorithm").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InteractiveConfig {
    /// Rounds that add a click sampled from the error region (8 in the paper).
    pub point_rounds: usize,
    /// Rounds with the previous mask logits as the only new input (2 in the paper: one at a
    /// random place among the click rounds, one at the end).
    pub mask_only_rounds: usize,
    /// Probability that an object's first prompt is its noisy box rather than a point.
    pub box_probability: f64,
}

impl Default for InteractiveConfig {
    fn default() -> Self {
        Self {
            point_rounds: 8,
            mask_only_rounds: 2,
            box_probability: 0.5,
        }
    }
}

impl InteractiveConfig {
    /// `1 + point_rounds + mask_only_rounds`.
    pub fn total_rounds(&self) -> usize {
        1 + self.point_rounds + self.mask_only_rounds
    }
}

/// SAM's text-prompt training (paper App. D.5) as a mode of the interactive loop: objects at
/// least `min_area` large get, as their first prompt, the frozen CLIP image embedding of a crop
/// around their mask (box expanded by a factor drawn from `expand`, squared, pixels outside the
/// mask zeroed with probability `zero_outside_prob`, the class token restricted to the mask's
/// patches in CLIP's last layer), ℓ2-normalised; the usual click and mask-only rounds follow,
/// the embedding staying in the prompt. The embeddings come from a
/// [`crate::text_prompt::ObjectEmbedder`] given to the trainer; the model needs
/// `prompt_embedding_dim`. Other objects train as usual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextPromptConfig {
    /// Smallest mask (input pixels) prompted by its embedding; the paper's 100² is for 1024²
    /// inputs: scale it with the image size.
    pub min_area: u64,
    /// Range of the box expansion factor (the paper: `[1, 2]`).
    pub expand: (f64, f64),
    /// Probability of zeroing the pixels outside the mask (the paper: 0.5).
    pub zero_outside_prob: f64,
    /// Probability that an object large enough is prompted by its embedding (1: always).
    pub probability: f64,
}

impl Default for TextPromptConfig {
    fn default() -> Self {
        Self {
            min_area: 100 * 100,
            expand: (1.0, 2.0),
            zero_outside_prob: 0.5,
            probability: 1.0,
        }
    }
}

/// The type the forward and backward passes compute in. Parameters, gradients, AdamW moments,
/// the loss and the norms are f32 in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 throughout.
    #[default]
    F32,
    /// bf16 mixed precision: each step computes with a bf16 copy of the f32 master weights
    /// (see `sam_model::precision`). Needs a device with bf16 arithmetic (CUDA; not wgpu).
    Bf16,
    /// f16 mixed precision, likewise (no loss scaling: prefer bf16 where the device has it).
    F16,
}

impl Precision {
    /// The compute type, `None` for f32.
    pub fn half_dtype(self) -> Option<burn::tensor::FloatDType> {
        match self {
            Precision::F32 => None,
            Precision::Bf16 => Some(burn::tensor::FloatDType::BF16),
            Precision::F16 => Some(burn::tensor::FloatDType::F16),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "f16" | "fp16" => Ok(Precision::F16),
            _ => Err(format!(
                "unknown precision {s:?} (expected f32, bf16 or f16)"
            )),
        }
    }
}

/// Everything a training run needs besides the data folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The model's sizes.
    pub model: SamConfig,
    /// AdamW, schedule, parameter groups, batch arithmetic, clipping.
    pub optim: SamOptimConfig,
    /// Resizing, augmentation and prompt sampling of each image.
    pub data: TrainSampleConfig,
    /// Loader threads and order (`batch_size` is one micro-batch on every device: it must
    /// equal `optim.batch.micro_batch_size × optim.batch.num_devices`).
    pub loader: LoaderConfig,
    /// Rounds of the interactive simulation.
    pub interactive: InteractiveConfig,
    /// Loss weights.
    pub loss: SamLossConfig,
    /// Optimizer steps to run (the schedule's length is `optim.schedule`'s own).
    pub steps: usize,
    /// Write a checkpoint every this many optimizer steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Run validation every this many optimizer steps when a validation set is given (0: only
    /// at the end).
    pub eval_every: usize,
    /// Optimizer steps that may be skipped for a non-finite loss; the run stops with an error
    /// at the next one.
    pub max_nonfinite_steps: usize,
    /// Freeze the image encoder (fine-tuning the prompt encoder and decoder).
    pub freeze_image_encoder: bool,
    /// Freeze the prompt encoder.
    pub freeze_prompt_encoder: bool,
    /// Recompute activations in the backward pass instead of keeping them (less memory).
    pub gradient_checkpointing: bool,
    /// Stochastic depth of the image encoder's blocks, rising linearly to this rate at the last
    /// block (0: none, the seed's recipe; 0.4 in the paper's variant). Inactive when the
    /// encoder is frozen.
    pub drop_path: f64,
    /// LoRA fine-tuning: adapters added to the loaded model, and only they train (the base is
    /// frozen, drop path off). The run's checkpoints hold base + adapters; `Sam::save_lora`
    /// writes the adapters alone, `Sam::merge_lora` folds them in.
    pub lora: Option<sam_model::LoraConfig>,
    /// Seed of the prompt simulation (the loader has its own in `loader.seed`).
    pub seed: u64,
    /// Compute type of the forward and backward passes (f32 master weights always).
    pub precision: Precision,
    /// Text-prompt training (App. D.5); `None`: the usual prompts only.
    pub text: Option<TextPromptConfig>,
}

impl Default for TrainConfig {
    /// The seed's recipe: ViT-L, AdamW lr 1e-4, weight decay 0.05, 2,500 warmup steps then
    /// cosine, global batch 256 by accumulation, flip + scale + colour jitter, 11 rounds.
    fn default() -> Self {
        let optim = SamOptimConfig::default();
        Self {
            model: SamConfig::vit_l(),
            loader: LoaderConfig {
                batch_size: optim.batch.micro_batch_size,
                ..LoaderConfig::default()
            },
            steps: optim.schedule.total_steps,
            optim,
            data: TrainSampleConfig::default(),
            interactive: InteractiveConfig::default(),
            loss: SamLossConfig::new(),
            checkpoint_every: 1000,
            eval_every: 1000,
            max_nonfinite_steps: 100,
            freeze_image_encoder: false,
            freeze_prompt_encoder: false,
            gradient_checkpointing: false,
            drop_path: 0.0,
            lora: None,
            seed: 0,
            precision: Precision::F32,
            text: None,
        }
    }
}

impl TrainConfig {
    /// The paper's variant: layer-wise decay, weight decay 0.1, lr 8e-4, step schedule, drop
    /// path 0.4.
    pub fn sam_paper() -> Self {
        let optim = SamOptimConfig::sam_paper();
        Self {
            steps: optim.schedule.total_steps,
            drop_path: 0.4,
            optim,
            ..Self::default()
        }
    }

    /// A small SAM (128² input, 8² embedding, 32² masks) that learns the synthetic shapes
    /// dataset on a 2-core CPU in minutes: lr 1e-3 with 50 warmup steps then cosine over 3,000
    /// steps of 4 images, at most 4 objects per image, 1 + 2 click + 1 mask-only rounds.
    pub fn demo() -> Self {
        let model = SamConfig {
            image_size: 128,
            patch_size: 16,
            encoder_embed_dim: 64,
            encoder_depth: 4,
            encoder_num_heads: 4,
            encoder_mlp_ratio: 4.0,
            window_size: 4,
            encoder_global_attn_indexes: vec![1, 3],
            prompt_embed_dim: 64,
            mask_in_chans: 8,
            decoder_depth: 2,
            decoder_mlp_dim: 256,
            decoder_num_heads: 4,
            num_multimask_outputs: 3,
            iou_head_depth: 3,
            iou_head_hidden_dim: 64,
            prompt_embedding_dim: None,
        };
        let steps = 3000;
        let mut optim = SamOptimConfig::default();
        optim.schedule = ScheduleConfig {
            peak_lr: 1e-3,
            warmup_steps: 50,
            total_steps: steps,
            decay: Decay::Cosine { min_lr: 1e-5 },
            ..optim.schedule.clone()
        };
        optim.groups.layer_decay = 1.0;
        optim.batch = BatchConfig {
            global_batch_size: 4,
            micro_batch_size: 4,
            num_devices: 1,
        };
        optim.max_grad_norm = Some(1.0);
        let data = TrainSampleConfig {
            image_size: 128,
            low_res_size: 32,
            augment: Some(AugmentConfig {
                target_size: 128,
                scale_range: (0.5, 1.5),
                ..AugmentConfig::default()
            }),
            prompts: sam_data::prompt_sampling::PromptSamplingConfig {
                max_masks_per_image: 4,
                ..Default::default()
            },
            keep_masks_min_area: None,
        };
        Self {
            model,
            loader: LoaderConfig {
                batch_size: 4,
                ..LoaderConfig::default()
            },
            optim,
            data,
            interactive: InteractiveConfig {
                point_rounds: 2,
                mask_only_rounds: 1,
                box_probability: 0.5,
            },
            steps,
            checkpoint_every: 250,
            eval_every: 250,
            ..Self::default()
        }
    }

    /// Checks every part and that the parts agree; errors name the field.
    pub fn validate(&self) -> Result<()> {
        self.model
            .validate()
            .map_err(|e| TrainError::config("model", e.to_string()))?;
        // Named by their place in this config, so that a file's error points at the key.
        self.optim.validate().map_err(|e| match e {
            sam_optim::OptimError::InvalidConfig {
                field,
                value,
                reason,
            } => TrainError::config(&format!("optim.{field}"), format!("{value}: {reason}")),
            e => TrainError::config("optim", e.to_string()),
        })?;
        self.loss
            .init()
            .map_err(|e| TrainError::config("loss", e.to_string()))?;
        self.data
            .prompts
            .validate()
            .map_err(|e| TrainError::config("data.prompts", e.to_string()))?;
        if let Some(a) = &self.data.augment {
            a.validate()
                .map_err(|e| TrainError::config("data.augment", e.to_string()))?;
        }
        let s = self.model.image_size;
        if self.data.image_size != s {
            return Err(TrainError::config(
                "data.image_size",
                format!("{} differs from model.image_size {s}", self.data.image_size),
            ));
        }
        if self.data.low_res_size != self.model.mask_input_size() {
            return Err(TrainError::config(
                "data.low_res_size",
                format!(
                    "{} differs from the decoder's mask size {}",
                    self.data.low_res_size,
                    self.model.mask_input_size()
                ),
            ));
        }
        // One loader batch is one micro-batch on every data-parallel device.
        let per_step = self.optim.batch.micro_batch_size * self.optim.batch.num_devices;
        if self.loader.batch_size != per_step {
            return Err(TrainError::config(
                "loader.batch_size",
                format!(
                    "{} differs from optim.batch.micro_batch_size × num_devices = {} × {}",
                    self.loader.batch_size,
                    self.optim.batch.micro_batch_size,
                    self.optim.batch.num_devices
                ),
            ));
        }
        let p = self.interactive.box_probability;
        if !(0.0..=1.0).contains(&p) {
            return Err(TrainError::config(
                "interactive.box_probability",
                format!("{p} is not a probability"),
            ));
        }
        if self.steps == 0 {
            return Err(TrainError::config("steps", "must be ≥ 1"));
        }
        if let Some(lora) = &self.lora {
            lora.validate()
                .map_err(|e| TrainError::config("lora", e.to_string()))?;
        }
        if let Some(t) = &self.text {
            if self.model.prompt_embedding_dim.is_none() {
                return Err(TrainError::config(
                    "text",
                    "text-prompt training needs model.prompt_embedding_dim (the CLIP \
                     embedding's size)",
                ));
            }
            let (lo, hi) = t.expand;
            if !(1.0 <= lo && lo <= hi && hi <= 2.0) {
                return Err(TrainError::config(
                    "text.expand",
                    format!("{:?} is not a range within [1, 2]", t.expand),
                ));
            }
            for (field, p) in [
                ("text.zero_outside_prob", t.zero_outside_prob),
                ("text.probability", t.probability),
            ] {
                if !(0.0..=1.0).contains(&p) {
                    return Err(TrainError::config(
                        field,
                        format!("{p} is not a probability"),
                    ));
                }
            }
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(TrainError::config(
                "drop_path",
                format!("{} is not in [0, 1)", self.drop_path),
            ));
        }
        Ok(())
    }

    /// Parses and validates a JSON config (missing fields take the seed recipe's values).
    pub fn from_json(text: &str) -> Result<Self> {
        let config: Self =
            serde_json::from_str(text).map_err(|e| TrainError::config("(json)", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates a JSON config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::file(path, e))?;
        Self::from_json(&text).map_err(|e| match e {
            TrainError::InvalidConfig { field, reason } => TrainError::InvalidConfig {
                field: format!("{}: {field}", path.display()),
                reason,
            },
            e => e,
        })
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
