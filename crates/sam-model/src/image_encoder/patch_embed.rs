//! Image to patch embedding (the reference's `PatchEmbed`).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

/// A `patch × patch` convolution with stride `patch`, with bias, giving channels-last tokens.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    /// `[embed_dim, in_chans, patch, patch]`.
    pub proj: Conv2d,
}

impl PatchEmbed {
    /// Builds the projection.
    pub fn new(patch_size: usize, in_chans: usize, embed_dim: usize, device: &Device) -> Self {
        Self {
            proj: Conv2dConfig::new([in_chans, embed_dim], [patch_size, patch_size])
                .with_stride([patch_size, patch_size])
                .init(device),
        }
    }

    /// `x: [B, 3, S, S]` → `[B, S/p, S/p, C]` (channels last, as the whole ViT trunk).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.proj.forward(x).permute([0, 2, 3, 1])
    }
}
