//! `CLIPModel`: both towers, their projections into the joint space, and the logit scale.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::config::ClipConfig;
use crate::error::Result;
use crate::text_model::ClipTextModel;
use crate::vision_model::ClipVisionModel;

/// `CLIPModel`.
#[derive(Module, Debug)]
pub struct ClipModel {
    /// The causal text transformer.
    pub text_model: ClipTextModel,
    /// The vision transformer.
    pub vision_model: ClipVisionModel,
    /// `[C_vision] → [P]`, no bias.
    pub visual_projection: Linear,
    /// `[C_text] → [P]`, no bias.
    pub text_projection: Linear,
    /// `[1]`: the log of the softmax temperature's inverse (a 0-d tensor in checkpoints).
    pub logit_scale: Param<Tensor<1>>,
    #[module(skip)]
    config: ClipConfig,
}

/// Image–text similarity logits, as `CLIPModel.forward` computes them.
#[derive(Debug, Clone)]
pub struct ClipLogits {
    /// `[I, T]`.
    pub logits_per_image: Tensor<2>,
    /// `[T, I]`.
    pub logits_per_text: Tensor<2>,
}

impl ClipModel {
    /// The model `config` describes, validated; weights are random (lazily) until loaded with
    /// [`ClipModel::load_weights`] or built by [`ClipModel::load`].
    pub fn new(config: &ClipConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let t = &config.text_config;
        let v = &config.vision_config;
        Ok(Self {
            text_model: ClipTextModel::new(t, device),
            vision_model: ClipVisionModel::new(v, device),
            visual_projection: LinearConfig::new(v.hidden_size, config.projection_dim)
                .with_bias(false)
                .init(device),
            text_projection: LinearConfig::new(t.hidden_size, config.projection_dim)
                .with_bias(false)
                .init(device),
            logit_scale: Initializer::Constant {
                value: config.logit_scale_init_value,
            }
            .init([1], device),
            config: config.clone(),
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.logit_scale.val().device()
    }

    /// `get_text_features`: `text_projection` of the pooled text states, `[T, P]`, not
    /// normalised. `input_ids` are unpadded sequences with their start and end tokens (what
    /// [`crate::ClipTokenizer::encode`] returns).
    pub fn get_text_features(&self, input_ids: &[Vec<u32>]) -> Result<Tensor<2>> {
        let out = self.text_model.forward(input_ids)?;
        Ok(self.text_projection.forward(out.pooler_output))
    }

    /// `get_image_features`: `visual_projection` of the pooled class token, `[I, P]`, not
    /// normalised. `pixel_values: [I, 3, S, S]` from [`crate::ClipImageProcessor`].
    pub fn get_image_features(&self, pixel_values: Tensor<4>) -> Result<Tensor<2>> {
        let out = self.vision_model.forward(pixel_values)?;
        Ok(self.visual_projection.forward(out.pooler_output))
    }

    /// [`ClipModel::get_image_features`] with the class token restricted, in the last layer, to
    /// the patches inside each image's object (App. D.5; see
    /// [`crate::ClipVisionModel::forward_restricted`] and [`crate::masked_crop::patch_mask`]).
    pub fn get_image_features_restricted(
        &self,
        pixel_values: Tensor<4>,
        patches: &[Vec<bool>],
    ) -> Result<Tensor<2>> {
        let out = self
            .vision_model
            .forward_restricted(pixel_values, Some(patches))?;
        Ok(self.visual_projection.forward(out.pooler_output))
    }

    /// The logits of `CLIPModel.forward` from features: both normalised to unit length, their
    /// dot products scaled by `exp(logit_scale)`.
    pub fn logits(&self, image_embeds: Tensor<2>, text_embeds: Tensor<2>) -> ClipLogits {
        let unit = |x: Tensor<2>| {
            // `_get_vector_norm`: `pow(sum(pow(x, 2), -1, keepdim), 0.5)`.
            let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt();
            x / norm
        };
        let image = unit(image_embeds);
        let text = unit(text_embeds);
        let scale = self.logit_scale.val().exp().unsqueeze::<2>();
        let logits_per_text = text.matmul(image.transpose()) * scale;
        ClipLogits {
            logits_per_image: logits_per_text.clone().transpose(),
            logits_per_text,
        }
    }
}
