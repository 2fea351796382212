//! A ViT block with windowed or global attention (the reference's `image_encoder.Block`).

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};

use super::attention::Attention;
use super::window::{window_partition, window_unpartition};
use crate::common::{Activation, MlpBlock};

/// Pre-norm transformer block; `window_size == 0` means global attention.
#[derive(Module, Debug)]
pub struct Block {
    /// LayerNorm, eps 1e-6.
    pub norm1: LayerNorm,
    /// Self-attention with decomposed rel-pos.
    pub attn: Attention,
    /// LayerNorm, eps 1e-6.
    pub norm2: LayerNorm,
    /// GELU MLP.
    pub mlp: MlpBlock,
    #[module(skip)]
    window_size: usize,
}

impl Block {
    /// `input_size` is the full token grid (used for rel-pos when attending globally).
    pub fn new(
        dim: usize,
        num_heads: usize,
        mlp_ratio: f64,
        window_size: usize,
        input_size: (usize, usize),
        device: &Device,
    ) -> Self {
        let attn_size = if window_size == 0 {
            input_size
        } else {
            (window_size, window_size)
        };
        Self {
            norm1: LayerNormConfig::new(dim).with_epsilon(1e-6).init(device),
            attn: Attention::new(dim, num_heads, attn_size, device),
            norm2: LayerNormConfig::new(dim).with_epsilon(1e-6).init(device),
            mlp: MlpBlock::new(
                dim,
                (dim as f64 * mlp_ratio) as usize,
                Activation::Gelu,
                device,
            ),
            window_size,
        }
    }

    /// Whether this block attends over the whole image.
    pub fn is_global(&self) -> bool {
        self.window_size == 0
    }

    /// `x: [B, H, W, C]` → `[B, H, W, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let x = self.norm1.forward(x);
        let x = if self.window_size > 0 {
            let [_, h, w, _] = x.dims();
            let (windows, pad_hw) = window_partition(x, self.window_size);
            let windows = self.attn.forward(windows);
            window_unpartition(windows, self.window_size, pad_hw, (h, w))
        } else {
            self.attn.forward(x)
        };
        let x = shortcut + x;
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}
