//! `CLIPEncoder`: the stack of layers of either tower.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::encoder_layer::{ClipEncoderLayer, LayerShape};

/// `CLIPEncoder`.
#[derive(Module, Debug)]
pub struct ClipEncoder {
    /// `config.num_hidden_layers` layers.
    pub layers: Vec<ClipEncoderLayer>,
}

impl ClipEncoder {
    /// `num_layers` layers of one shape.
    pub fn new(num_layers: usize, shape: LayerShape, device: &Device) -> Self {
        Self {
            layers: (0..num_layers)
                .map(|_| ClipEncoderLayer::new(shape, device))
                .collect(),
        }
    }

    /// `x: [B, N, C]` → `[B, N, C]`; `causal` for the text tower.
    pub fn forward(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        self.forward_last_masked(x, causal, None)
    }

    /// [`ClipEncoder::forward`] with an attention mask in the last layer only (`true` = not
    /// attended): SAM's text-prompt training restricts the class token there (App. D.5).
    pub fn forward_last_masked(
        &self,
        x: Tensor<3>,
        causal: bool,
        last: Option<Tensor<4, burn::tensor::Bool>>,
    ) -> Tensor<3> {
        let n = self.layers.len();
        let mut last = last;
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = if i + 1 == n {
                layer.forward_masked(x, causal, last.take())
            } else {
                layer.forward(x, causal)
            };
        }
        x
    }
}
