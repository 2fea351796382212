//! The encoder's neck: 1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d (no biases, no activation).

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

use crate::common::LayerNorm2d;

/// The reference's `neck` `nn.Sequential` (indices 0–3 map to these fields in `weights.rs`).
#[derive(Module, Debug)]
pub struct Neck {
    /// `neck.0`: 1×1 conv, `embed_dim → out_chans`.
    pub conv1: Conv2d,
    /// `neck.1`.
    pub norm1: LayerNorm2d,
    /// `neck.2`: 3×3 conv, padding 1.
    pub conv2: Conv2d,
    /// `neck.3`.
    pub norm2: LayerNorm2d,
}

impl Neck {
    /// Builds the neck.
    pub fn new(embed_dim: usize, out_chans: usize, device: &Device) -> Self {
        Self {
            conv1: Conv2dConfig::new([embed_dim, out_chans], [1, 1])
                .with_bias(false)
                .init(device),
            norm1: LayerNorm2d::new(out_chans, device),
            conv2: Conv2dConfig::new([out_chans, out_chans], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device),
            norm2: LayerNorm2d::new(out_chans, device),
        }
    }

    /// `x: [B, C, H, W]` → `[B, out_chans, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.norm1.forward(self.conv1.forward(x));
        self.norm2.forward(self.conv2.forward(x))
    }
}
