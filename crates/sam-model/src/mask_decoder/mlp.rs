//! The reference's `mask_decoder.MLP`: Linear layers with ReLU between them, none after the last.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Used for the hypernetworks (3 layers) and the IoU head.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `input → hidden → … → output`.
    pub layers: Vec<Linear>,
}

impl Mlp {
    /// `num_layers` Linear layers.
    pub fn new(
        input_dim: usize,
        hidden_dim: usize,
        output_dim: usize,
        num_layers: usize,
        device: &Device,
    ) -> Self {
        let layers = (0..num_layers)
            .map(|i| {
                let d_in = if i == 0 { input_dim } else { hidden_dim };
                let d_out = if i + 1 == num_layers {
                    output_dim
                } else {
                    hidden_dim
                };
                LinearConfig::new(d_in, d_out).init(device)
            })
            .collect();
        Self { layers }
    }

    /// `x: [.., input]` → `[.., output]` (no sigmoid: IoU predictions are unbounded).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(x, |x, (i, layer)| {
            let y = layer.forward(x);
            if i < last { relu(y) } else { y }
        })
    }
}
