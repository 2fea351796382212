//! The ViT image encoder (the reference's `modeling/image_encoder.py`).

mod attention;
mod block;
mod neck;
mod patch_embed;
pub mod rel_pos;
pub mod window;

pub use attention::Attention;
pub use block::Block;
pub use neck::Neck;
pub use patch_embed::PatchEmbed;

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

/// Sizes of an [`ImageEncoderViT`].
#[derive(Debug, Clone)]
pub struct ImageEncoderViTConfig {
    /// Input side (pixels).
    pub img_size: usize,
    /// Patch side (pixels).
    pub patch_size: usize,
    /// Input channels (3).
    pub in_chans: usize,
    /// ViT width.
    pub embed_dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Heads per block.
    pub num_heads: usize,
    /// MLP width ratio.
    pub mlp_ratio: f64,
    /// Neck output channels.
    pub out_chans: usize,
    /// Window side of windowed blocks.
    pub window_size: usize,
    /// Blocks with global attention.
    pub global_attn_indexes: Vec<usize>,
}

impl ImageEncoderViTConfig {
    /// Builds the encoder with the reference's initial values for the position tables (zeros).
    pub fn init(&self, device: &Device) -> ImageEncoderViT {
        let grid = self.img_size / self.patch_size;
        ImageEncoderViT {
            patch_embed: PatchEmbed::new(self.patch_size, self.in_chans, self.embed_dim, device),
            pos_embed: Initializer::Zeros.init([1, grid, grid, self.embed_dim], device),
            blocks: (0..self.depth)
                .map(|i| {
                    let window = if self.global_attn_indexes.contains(&i) {
                        0
                    } else {
                        self.window_size
                    };
                    Block::new(
                        self.embed_dim,
                        self.num_heads,
                        self.mlp_ratio,
                        window,
                        (grid, grid),
                        device,
                    )
                })
                .collect(),
            neck: Neck::new(self.embed_dim, self.out_chans, device),
        }
    }
}

/// ViT-B/L/H backbone with windowed and global attention, and the conv neck.
#[derive(Module, Debug)]
pub struct ImageEncoderViT {
    /// Patch projection.
    pub patch_embed: PatchEmbed,
    /// Absolute position embedding, `[1, S/p, S/p, C]`.
    pub pos_embed: Param<Tensor<4>>,
    /// The transformer blocks.
    pub blocks: Vec<Block>,
    /// Channel reduction to the prompt width.
    pub neck: Neck,
}

impl ImageEncoderViT {
    /// Tokens after the patch embedding and the absolute position embedding: `[B, S/p, S/p, C]`.
    pub fn embed_patches(&self, x: Tensor<4>) -> Tensor<4> {
        let pos_embed = self.pos_embed.val();
        // The input arrives in f32; a 16-bit model computes from its first convolution on.
        self.patch_embed.forward(x.cast(pos_embed.dtype())) + pos_embed
    }

    /// Stochastic depth for training, as ViTDet / timm: block `i` of `n` drops its residual
    /// branches with probability `rate · i / (n − 1)` (0 for the first block). `rate` 0 turns
    /// it off; it is never active outside an autodiff device.
    pub fn set_drop_path(&mut self, rate: f64) -> crate::Result<()> {
        let n = self.blocks.len();
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let r = if n > 1 {
                rate * i as f64 / (n - 1) as f64
            } else {
                rate
            };
            block.set_drop_path(r)?;
        }
        Ok(())
    }

    /// `x: [B, 3, S, S]` (normalised, padded) → `[B, out_chans, S/p, S/p]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.embed_patches(x);
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        self.neck.forward(x.permute([0, 3, 1, 2]))
    }
}
