//! `CLIPTextEmbeddings`: token plus absolute position embeddings.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::{Device, Int, Tensor};

/// `CLIPTextEmbeddings` (its `position_ids` buffer is `0..L`, not stored).
#[derive(Module, Debug)]
pub struct ClipTextEmbeddings {
    /// `[vocab_size, C]`.
    pub token_embedding: Embedding,
    /// `[max_position_embeddings, C]`.
    pub position_embedding: Embedding,
}

impl ClipTextEmbeddings {
    /// Tables for `vocab_size` tokens and `max_positions` positions of width `hidden_size`.
    pub fn new(
        vocab_size: usize,
        max_positions: usize,
        hidden_size: usize,
        device: &Device,
    ) -> Self {
        Self {
            token_embedding: EmbeddingConfig::new(vocab_size, hidden_size).init(device),
            position_embedding: EmbeddingConfig::new(max_positions, hidden_size).init(device),
        }
    }

    /// `input_ids: [B, L]` (ids checked against the vocabulary, `L` against the positions by
    /// the caller) → `[B, L, C]`.
    pub fn forward(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, l] = input_ids.dims();
        let positions = self
            .position_embedding
            .weight
            .val()
            .slice(0..l)
            .unsqueeze::<3>();
        self.token_embedding.forward(input_ids) + positions
    }
}
