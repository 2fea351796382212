//! `CLIPMLP`: `fc1 → activation → fc2`.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::activation::HiddenAct;

/// `CLIPMLP`.
#[derive(Module, Debug)]
pub struct ClipMlp {
    /// `[C] → [intermediate]`, with bias.
    pub fc1: Linear,
    /// `[intermediate] → [C]`, with bias.
    pub fc2: Linear,
    #[module(skip)]
    activation_fn: HiddenAct,
}

impl ClipMlp {
    /// An MLP of width `hidden_size` with `intermediate_size` hidden units.
    pub fn new(
        hidden_size: usize,
        intermediate_size: usize,
        activation_fn: HiddenAct,
        device: &Device,
    ) -> Self {
        Self {
            fc1: LinearConfig::new(hidden_size, intermediate_size).init(device),
            fc2: LinearConfig::new(intermediate_size, hidden_size).init(device),
            activation_fn,
        }
    }

    /// `x: [B, N, C]` → `[B, N, C]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.fc2
            .forward(self.activation_fn.forward(self.fc1.forward(x)))
    }
}
