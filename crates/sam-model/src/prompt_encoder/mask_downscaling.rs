//! The mask-prompt downscaler: two stride-2 convs with LayerNorm2d and GELU, then a 1×1 conv.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

use crate::common::LayerNorm2d;
use crate::gelu::gelu;

/// The reference's `mask_downscaling` `nn.Sequential` (indices 0, 1, 3, 4, 6 map to these fields
/// in `weights.rs`; 2 and 5 are the GELUs).
#[derive(Module, Debug)]
pub struct MaskDownscaling {
    /// `.0`: `1 → c/4`, k2 s2.
    pub conv1: Conv2d,
    /// `.1`.
    pub norm1: LayerNorm2d,
    /// `.3`: `c/4 → c`, k2 s2.
    pub conv2: Conv2d,
    /// `.4`.
    pub norm2: LayerNorm2d,
    /// `.6`: `c → embed_dim`, 1×1.
    pub conv3: Conv2d,
}

impl MaskDownscaling {
    /// `mask_in_chans` is the reference's `c`.
    pub fn new(mask_in_chans: usize, embed_dim: usize, device: &Device) -> Self {
        let quarter = mask_in_chans / 4;
        Self {
            conv1: Conv2dConfig::new([1, quarter], [2, 2])
                .with_stride([2, 2])
                .init(device),
            norm1: LayerNorm2d::new(quarter, device),
            conv2: Conv2dConfig::new([quarter, mask_in_chans], [2, 2])
                .with_stride([2, 2])
                .init(device),
            norm2: LayerNorm2d::new(mask_in_chans, device),
            conv3: Conv2dConfig::new([mask_in_chans, embed_dim], [1, 1]).init(device),
        }
    }

    /// `masks: [B, 1, 4E, 4E]` → `[B, embed_dim, E, E]`.
    pub fn forward(&self, masks: Tensor<4>) -> Tensor<4> {
        let masks = masks.cast(self.conv1.weight.val().dtype());
        let x = gelu(self.norm1.forward(self.conv1.forward(masks)));
        let x = gelu(self.norm2.forward(self.conv2.forward(x)));
        self.conv3.forward(x)
    }
}
