//! `CLIPVisionModel`: the vision transformer, pooled at the class token.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Bool, Device, Tensor, TensorData};

use crate::config::ClipVisionConfig;
use crate::encoder::ClipEncoder;
use crate::encoder_layer::LayerShape;
use crate::error::{ClipError, Result};
use crate::vision_embeddings::ClipVisionEmbeddings;

/// `CLIPVisionModel` (in `CLIPModel` it is `vision_model`).
#[derive(Module, Debug)]
pub struct ClipVisionModel {
    /// Patch, class-token and position embeddings.
    pub embeddings: ClipVisionEmbeddings,
    /// LayerNorm before the transformer (transformers' spelling, `pre_layrnorm`, is the key).
    pub pre_layrnorm: LayerNorm,
    /// Bidirectional transformer.
    pub encoder: ClipEncoder,
    /// LayerNorm of the class token's output.
    pub post_layernorm: LayerNorm,
    #[module(skip)]
    image_size: usize,
}

/// What the vision tower returns (`BaseModelOutputWithPooling`).
#[derive(Debug, Clone)]
pub struct ClipVisionOutput {
    /// `[B, N + 1, C]`, the transformer's output (no norm: `post_layernorm` only sees the
    /// class token).
    pub last_hidden_state: Tensor<3>,
    /// `[B, C]`: `post_layernorm` of the class token.
    pub pooler_output: Tensor<2>,
}

impl ClipVisionModel {
    /// The tower `config` describes (weights lazily random until loaded). Built through
    /// [`crate::ClipModel::new`], which validates the config first.
    pub(crate) fn new(config: &ClipVisionConfig, device: &Device) -> Self {
        let shape = LayerShape {
            hidden_size: config.hidden_size,
            intermediate_size: config.intermediate_size,
            num_heads: config.num_attention_heads,
            hidden_act: config.hidden_act,
            layer_norm_eps: config.layer_norm_eps,
        };
        let norm = || {
            LayerNormConfig::new(config.hidden_size)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        Self {
            embeddings: ClipVisionEmbeddings::new(
                config.hidden_size,
                config.num_channels,
                config.patch_size,
                config.num_positions(),
                device,
            ),
            pre_layrnorm: norm(),
            encoder: ClipEncoder::new(config.num_hidden_layers, shape, device),
            post_layernorm: norm(),
            image_size: config.image_size,
        }
    }

    /// `pixel_values: [B, 3, S, S]` (as the image processor makes them, `S = image_size`) →
    /// hidden states and the pooled class token.
    pub fn forward(&self, pixel_values: Tensor<4>) -> Result<ClipVisionOutput> {
        self.forward_restricted(pixel_values, None)
    }

    /// [`ClipVisionModel::forward`] where, in the last layer, the class token attends only to
    /// itself and to the patches marked in `patches` (per image, the row-major patch grid,
    /// `true` = inside the object): the masked-crop prompt of SAM's text training (App. D.5). A row
    /// without any marked patch leaves the class token unrestricted.
    pub fn forward_restricted(
        &self,
        pixel_values: Tensor<4>,
        patches: Option<&[Vec<bool>]>,
    ) -> Result<ClipVisionOutput> {
        let [b, ch, h, w] = pixel_values.dims();
        let s = self.image_size;
        if b == 0 || ch != 3 || h != s || w != s {
            return Err(ClipError::InvalidInput(format!(
                "pixel values of shape [{b}, {ch}, {h}, {w}]; the model takes [B ≥ 1, 3, {s}, {s}]"
            )));
        }
        let hidden = self.embeddings.forward(pixel_values);
        let hidden = self.pre_layrnorm.forward(hidden);
        let n = hidden.dims()[1];
        let mask = match patches {
            None => None,
            Some(rows) => {
                if rows.len() != b || rows.iter().any(|r| r.len() + 1 != n) {
                    return Err(ClipError::InvalidInput(format!(
                        "patch masks of {:?} patches for {b} images of {} patches",
                        rows.iter().map(Vec::len).collect::<Vec<_>>(),
                        n - 1
                    )));
                }
                // `true` = not attended: only the class token's row (query 0) is restricted.
                let mut blocked = vec![false; b * n * n];
                for (k, row) in rows.iter().enumerate() {
                    if !row.iter().any(|&inside| inside) {
                        continue;
                    }
                    for (j, &inside) in row.iter().enumerate() {
                        blocked[k * n * n + 1 + j] = !inside;
                    }
                }
                Some(Tensor::<4, Bool>::from_data(
                    TensorData::new(blocked, [b, 1, n, n]),
                    &hidden.device(),
                ))
            }
        };
        let last_hidden_state = self.encoder.forward_last_masked(hidden, false, mask);
        let c = last_hidden_state.dims()[2];
        let class = last_hidden_state.clone().narrow(1, 0, 1).reshape([b, c]);
        let pooler_output = self.post_layernorm.forward(class);
        Ok(ClipVisionOutput {
            last_hidden_state,
            pooler_output,
        })
    }
}
