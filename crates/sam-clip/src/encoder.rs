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
        self.layers
            .iter()
            .fold(x, |x, layer| layer.forward(x, causal))
    }
}
