//! `SamConfig`: every size the reference's `build_sam.py` knows, plus fully custom ones.
//!
//! The JSON form is flat and uses the reference's constructor argument names, so a config can be
//! written by hand or by another tool.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SamError};
use crate::image_encoder::ImageEncoderViTConfig;
use crate::mask_decoder::MaskDecoderConfig;
use crate::prompt_encoder::PromptEncoderConfig;
use crate::sam::Sam;

/// Hyper-parameters of a Segment Anything model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamConfig {
    /// Side of the square, padded model input (1024 for the official models).
    pub image_size: usize,
    /// Side of a ViT patch (16).
    pub patch_size: usize,
    /// ViT width.
    pub encoder_embed_dim: usize,
    /// Number of ViT blocks.
    pub encoder_depth: usize,
    /// Attention heads in each ViT block.
    pub encoder_num_heads: usize,
    /// MLP hidden width as a multiple of the ViT width.
    pub encoder_mlp_ratio: f64,
    /// Window side of the windowed-attention blocks (in patches).
    pub window_size: usize,
    /// Blocks that attend globally instead of in windows.
    pub encoder_global_attn_indexes: Vec<usize>,
    /// Width of the prompt/mask-decoder embedding (also the neck's output channels).
    pub prompt_embed_dim: usize,
    /// Hidden channels of the mask-prompt downscaler.
    pub mask_in_chans: usize,
    /// Two-way transformer depth.
    pub decoder_depth: usize,
    /// Two-way transformer MLP width.
    pub decoder_mlp_dim: usize,
    /// Two-way transformer heads.
    pub decoder_num_heads: usize,
    /// Masks predicted for an ambiguous prompt (a single-mask token is added to these).
    pub num_multimask_outputs: usize,
    /// Layers of the IoU prediction head.
    pub iou_head_depth: usize,
    /// Hidden width of the IoU prediction head.
    pub iou_head_hidden_dim: usize,
    /// Width of an external prompt embedding (a CLIP image or text embedding: 768 for CLIP
    /// ViT-L/14) that a learned projection turns into one sparse prompt token, the paper's
    /// text prompt (§7.5). Absent in every official model, which then loads and runs exactly
    /// as the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_embedding_dim: Option<usize>,
}

/// The largest input side a config may ask for.
pub const MAX_IMAGE_SIZE: usize = 8192;

impl SamConfig {
    fn official(embed_dim: usize, depth: usize, heads: usize, global: [usize; 4]) -> Self {
        Self {
            image_size: 1024,
            patch_size: 16,
            encoder_embed_dim: embed_dim,
            encoder_depth: depth,
            encoder_num_heads: heads,
            encoder_mlp_ratio: 4.0,
            window_size: 14,
            encoder_global_attn_indexes: global.to_vec(),
            prompt_embed_dim: 256,
            mask_in_chans: 16,
            decoder_depth: 2,
            decoder_mlp_dim: 2048,
            decoder_num_heads: 8,
            num_multimask_outputs: 3,
            iou_head_depth: 3,
            iou_head_hidden_dim: 256,
            prompt_embedding_dim: None,
        }
    }

    /// ViT-B (`sam_vit_b_01ec64.pth`).
    pub fn vit_b() -> Self {
        Self::official(768, 12, 12, [2, 5, 8, 11])
    }

    /// ViT-L (`sam_vit_l_0b3195.pth`).
    pub fn vit_l() -> Self {
        Self::official(1024, 24, 16, [5, 11, 17, 23])
    }

    /// ViT-H (`sam_vit_h_4b8939.pth`).
    pub fn vit_h() -> Self {
        Self::official(1280, 32, 16, [7, 15, 23, 31])
    }

    /// A preset by its reference name: `vit_b`, `vit_l`, `vit_h` (`default` is `vit_h`, as in
    /// the reference's registry).
    pub fn from_model_type(name: &str) -> Result<Self> {
        match name {
            "vit_b" => Ok(Self::vit_b()),
            "vit_l" => Ok(Self::vit_l()),
            "vit_h" | "default" => Ok(Self::vit_h()),
            other => Err(SamError::InvalidConfig(format!(
                "unknown model type {other:?} (expected vit_b, vit_l or vit_h)"
            ))),
        }
    }

    /// The preset name this config equals, if any.
    pub fn preset_name(&self) -> Option<&'static str> {
        [
            ("vit_b", Self::vit_b()),
            ("vit_l", Self::vit_l()),
            ("vit_h", Self::vit_h()),
        ]
        .into_iter()
        .find(|(_, c)| c == self)
        .map(|(n, _)| n)
    }

    /// Side of the image-embedding grid (64 for the official models).
    pub fn embedding_size(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Side of the low-resolution masks and of a mask prompt (256 for the official models).
    pub fn mask_input_size(&self) -> usize {
        4 * self.embedding_size()
    }

    /// Parses and validates the flat JSON form.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: Self = parse_json(text).map_err(SamError::InvalidConfig)?;
        config.validate()?;
        Ok(config)
    }

    /// The flat JSON form.
    pub fn to_json(&self) -> String {
        // Serialising plain numbers and vectors cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads and validates a JSON config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| SamError::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_json(&text).map_err(|e| SamError::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Writes the JSON form.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json()).map_err(|e| SamError::Save {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Checks that the sizes describe a model this crate can build and run; each refusal names
    /// the field and value. (Stricter than the reference in places where it would floor a
    /// width, e.g. `prompt_embed_dim` not a multiple of 8, or build an empty stack.)
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(SamError::InvalidConfig(msg));
        let positive = [
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
            ("encoder_embed_dim", self.encoder_embed_dim),
            ("encoder_depth", self.encoder_depth),
            ("encoder_num_heads", self.encoder_num_heads),
            ("prompt_embed_dim", self.prompt_embed_dim),
            ("mask_in_chans", self.mask_in_chans),
            ("decoder_depth", self.decoder_depth),
            ("decoder_mlp_dim", self.decoder_mlp_dim),
            ("decoder_num_heads", self.decoder_num_heads),
            ("iou_head_depth", self.iou_head_depth),
            ("iou_head_hidden_dim", self.iou_head_hidden_dim),
        ];
        for (name, value) in positive {
            if value == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if self.prompt_embedding_dim == Some(0) {
            return bad("prompt_embedding_dim must be positive when given".into());
        }
        // A sanity bound (8× the official 1024): past it the global attention alone would need
        // terabytes, and a mistyped size should be an error, not an allocation abort.
        if self.image_size > MAX_IMAGE_SIZE {
            return bad(format!(
                "image_size {} is more than {MAX_IMAGE_SIZE}",
                self.image_size
            ));
        }
        if !self.image_size.is_multiple_of(self.patch_size) {
            return bad(format!(
                "image_size {} is not a multiple of patch_size {}",
                self.image_size, self.patch_size
            ));
        }
        if !self
            .encoder_embed_dim
            .is_multiple_of(self.encoder_num_heads)
        {
            return bad(format!(
                "encoder_embed_dim {} is not divisible by encoder_num_heads {}",
                self.encoder_embed_dim, self.encoder_num_heads
            ));
        }
        if !(self.encoder_mlp_ratio.is_finite() && self.encoder_mlp_ratio > 0.0) {
            return bad(format!(
                "encoder_mlp_ratio must be a positive number, got {}",
                self.encoder_mlp_ratio
            ));
        }
        if let Some(&i) = self
            .encoder_global_attn_indexes
            .iter()
            .find(|&&i| i >= self.encoder_depth)
        {
            return bad(format!(
                "encoder_global_attn_indexes contains {i}, past encoder_depth {}",
                self.encoder_depth
            ));
        }
        if !self.prompt_embed_dim.is_multiple_of(2) {
            return bad(format!(
                "prompt_embed_dim {} must be even (random Fourier features are sin/cos pairs)",
                self.prompt_embed_dim
            ));
        }
        if !self.prompt_embed_dim.is_multiple_of(8) {
            return bad(format!(
                "prompt_embed_dim {} must be a multiple of 8 (output upscaling to C/8 channels)",
                self.prompt_embed_dim
            ));
        }
        let cross_dim = self.prompt_embed_dim / 2;
        if !self.prompt_embed_dim.is_multiple_of(self.decoder_num_heads)
            || !cross_dim.is_multiple_of(self.decoder_num_heads)
        {
            return bad(format!(
                "prompt_embed_dim {} (and its half {cross_dim}, the cross-attention width) must be divisible by decoder_num_heads {}",
                self.prompt_embed_dim, self.decoder_num_heads
            ));
        }
        if !self.mask_in_chans.is_multiple_of(4) {
            return bad(format!(
                "mask_in_chans {} must be a multiple of 4",
                self.mask_in_chans
            ));
        }
        Ok(())
    }

    /// Builds a model with freshly initialised weights (use the loaders for checkpoints).
    pub fn init(&self, device: &Device) -> Result<Sam> {
        self.validate()?;
        Ok(Sam::new(self, device))
    }

    pub(crate) fn image_encoder(&self) -> ImageEncoderViTConfig {
        ImageEncoderViTConfig {
            img_size: self.image_size,
            patch_size: self.patch_size,
            in_chans: 3,
            embed_dim: self.encoder_embed_dim,
            depth: self.encoder_depth,
            num_heads: self.encoder_num_heads,
            mlp_ratio: self.encoder_mlp_ratio,
            out_chans: self.prompt_embed_dim,
            window_size: self.window_size,
            global_attn_indexes: self.encoder_global_attn_indexes.clone(),
        }
    }

    pub(crate) fn prompt_encoder(&self) -> PromptEncoderConfig {
        PromptEncoderConfig {
            embed_dim: self.prompt_embed_dim,
            image_embedding_size: self.embedding_size(),
            input_image_size: self.image_size,
            mask_in_chans: self.mask_in_chans,
            embedding_dim: self.prompt_embedding_dim,
        }
    }

    pub(crate) fn mask_decoder(&self) -> MaskDecoderConfig {
        MaskDecoderConfig {
            transformer_dim: self.prompt_embed_dim,
            transformer_depth: self.decoder_depth,
            transformer_mlp_dim: self.decoder_mlp_dim,
            transformer_num_heads: self.decoder_num_heads,
            num_multimask_outputs: self.num_multimask_outputs,
            iou_head_depth: self.iou_head_depth,
            iou_head_hidden_dim: self.iou_head_hidden_dim,
        }
    }
}

/// Parses JSON text, naming the field a value fails on (`encoder_global_attn_indexes[2]`)
/// besides serde's line and column.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    text: &str,
) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text)).map_err(|e| {
        let field = e.path().to_string();
        if field == "." {
            e.into_inner().to_string()
        } else {
            format!("field `{field}`: {}", e.into_inner())
        }
    })
}
