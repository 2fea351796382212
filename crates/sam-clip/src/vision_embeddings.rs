//! `CLIPVisionEmbeddings`: patch embedding, a learned class token in front, absolute position
//! embeddings.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::tensor::{Device, Tensor};

/// `CLIPVisionEmbeddings` (its `position_ids` buffer is `0..N+1`, not stored).
#[derive(Module, Debug)]
pub struct ClipVisionEmbeddings {
    /// The class token, `[C]`.
    pub class_embedding: Param<Tensor<1>>,
    /// `Conv2d(3 → C, kernel = stride = patch, no bias)`, weight `[C, 3, p, p]`.
    pub patch_embedding: Conv2d,
    /// `[N + 1, C]`: the class token's row, then the patches' in row-major order.
    pub position_embedding: Embedding,
}

impl ClipVisionEmbeddings {
    /// Embeddings of width `hidden_size` for `num_positions − 1` patches of side `patch_size`.
    pub fn new(
        hidden_size: usize,
        num_channels: usize,
        patch_size: usize,
        num_positions: usize,
        device: &Device,
    ) -> Self {
        Self {
            class_embedding: Initializer::Normal {
                mean: 0.0,
                std: 1.0,
            }
            .init([hidden_size], device),
            patch_embedding: Conv2dConfig::new([num_channels, hidden_size], [patch_size; 2])
                .with_stride([patch_size; 2])
                .with_bias(false)
                .init(device),
            position_embedding: EmbeddingConfig::new(num_positions, hidden_size).init(device),
        }
    }

    /// `pixel_values: [B, 3, S, S]` (`S` checked by the caller) → `[B, N + 1, C]`.
    pub fn forward(&self, pixel_values: Tensor<4>) -> Tensor<3> {
        let [b, _, _, _] = pixel_values.dims();
        // [B, C, g, g] → [B, C, g²] → [B, g², C]: `flatten(2).transpose(1, 2)`.
        let patches = self
            .patch_embedding
            .forward(pixel_values)
            .flatten::<3>(2, 3)
            .swap_dims(1, 2);
        let [_, _, c] = patches.dims();
        let class = self
            .class_embedding
            .val()
            .reshape([1, 1, c])
            .expand([b, 1, c]);
        let positions = self.position_embedding.weight.val().unsqueeze::<3>();
        Tensor::cat(vec![class, patches], 1) + positions
    }
}
