//! `CLIPTextModel`: the causal text transformer, pooled at the end-of-text token.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::ClipTextConfig;
use crate::encoder::ClipEncoder;
use crate::encoder_layer::LayerShape;
use crate::error::{ClipError, Result};
use crate::text_embeddings::ClipTextEmbeddings;

/// `CLIPTextModel` (in `CLIPModel` it is `text_model`).
#[derive(Module, Debug)]
pub struct ClipTextModel {
    /// Token and position embeddings.
    pub embeddings: ClipTextEmbeddings,
    /// Causal transformer.
    pub encoder: ClipEncoder,
    /// LayerNorm over every output token.
    pub final_layer_norm: LayerNorm,
    #[module(skip)]
    eos_token_id: i64,
    #[module(skip)]
    vocab_size: usize,
    #[module(skip)]
    max_positions: usize,
}

/// What the text tower returns (`BaseModelOutputWithPooling`).
#[derive(Debug, Clone)]
pub struct ClipTextOutput {
    /// `[B, L, C]` after `final_layer_norm` (`L` the longest sequence; shorter ones are padded
    /// after their end, where the causal mask keeps the padding out of every real token).
    pub last_hidden_state: Tensor<3>,
    /// `[B, C]`: each sequence's row at its end-of-text token.
    pub pooler_output: Tensor<2>,
}

impl ClipTextModel {
    /// The tower `config` describes (weights lazily random until loaded). Built through
    /// [`crate::ClipModel::new`], which validates the config first.
    pub(crate) fn new(config: &ClipTextConfig, device: &Device) -> Self {
        let shape = LayerShape {
            hidden_size: config.hidden_size,
            intermediate_size: config.intermediate_size,
            num_heads: config.num_attention_heads,
            hidden_act: config.hidden_act,
            layer_norm_eps: config.layer_norm_eps,
        };
        Self {
            embeddings: ClipTextEmbeddings::new(
                config.vocab_size,
                config.max_position_embeddings,
                config.hidden_size,
                device,
            ),
            encoder: ClipEncoder::new(config.num_hidden_layers, shape, device),
            final_layer_norm: LayerNormConfig::new(config.hidden_size)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            // `validate` guarantees an id.
            eos_token_id: config.eos_token_id.unwrap_or(2),
            vocab_size: config.vocab_size,
            max_positions: config.max_position_embeddings,
        }
    }

    /// The position `transformers` pools a sequence at.
    ///
    /// Configs written before transformers PR #24773 say `eos_token_id: 2`; for them the pooled
    /// token is the largest id (CLIP's end-of-text is the last vocabulary entry), the first one
    /// when it repeats, as `input_ids.argmax(-1)`. Other configs pool at the first
    /// `eos_token_id`; a sequence without one pools at position 0, where the argmax of an
    /// all-false comparison lands.
    pub fn pooled_index(&self, ids: &[u32]) -> usize {
        if self.eos_token_id == 2 {
            let mut best = 0;
            for (i, &t) in ids.iter().enumerate() {
                if t > ids[best] {
                    best = i;
                }
            }
            best
        } else {
            ids.iter()
                .position(|&t| i64::from(t) == self.eos_token_id)
                .unwrap_or(0)
        }
    }

    /// `input_ids`: one unpadded sequence per text, with its start and end tokens (as the
    /// tokenizer gives them) → hidden states and pooled rows. Each sequence is pooled as
    /// transformers pools it alone.
    pub fn forward(&self, input_ids: &[Vec<u32>]) -> Result<ClipTextOutput> {
        let device = self.final_layer_norm.gamma.val().device();
        let b = input_ids.len();
        let l = input_ids.iter().map(Vec::len).max().unwrap_or(0);
        if b == 0 || l == 0 {
            return Err(ClipError::InvalidInput(
                "no token ids (an empty batch or an empty sequence)".into(),
            ));
        }
        if l > self.max_positions {
            return Err(ClipError::InvalidInput(format!(
                "a sequence of {l} tokens is longer than max_position_embeddings {}",
                self.max_positions
            )));
        }
        let mut flat = vec![0i64; b * l];
        let mut pooled = Vec::with_capacity(b);
        for (row, ids) in input_ids.iter().enumerate() {
            if ids.is_empty() {
                return Err(ClipError::InvalidInput(format!("sequence {row} is empty")));
            }
            if let Some(&bad) = ids.iter().find(|&&t| t as usize >= self.vocab_size) {
                return Err(ClipError::InvalidInput(format!(
                    "token id {bad} in sequence {row} is outside the vocabulary of {}",
                    self.vocab_size
                )));
            }
            for (dst, &t) in flat[row * l..].iter_mut().zip(ids) {
                *dst = i64::from(t);
            }
            // Rows of the flattened [B·L, C] states.
            pooled.push((row * l + self.pooled_index(ids)) as i64);
        }
        let ids = Tensor::<2, Int>::from_data(TensorData::new(flat, [b, l]), &device);
        let hidden = self.embeddings.forward(ids);
        let hidden = self.encoder.forward(hidden, true);
        let last_hidden_state = self.final_layer_norm.forward(hidden);
        let c = last_hidden_state.dims()[2];
        let index = Tensor::<1, Int>::from_data(TensorData::new(pooled, [b]), &device);
        let pooler_output = last_hidden_state
            .clone()
            .reshape([b * l, c])
            .select(0, index);
        Ok(ClipTextOutput {
            last_hidden_state,
            pooler_output,
        })
    }
}
