//! Multi-head self-attention of the ViT blocks, with the decomposed relative position bias.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

use super::rel_pos::decomposed_rel_pos_bias;
use crate::lora::{LoraAdapter, forward_with};
use crate::precision::softmax;

/// Largest score matrix (tokens²) run through the fused attention kernel (see `forward`).
const MAX_FUSED_SCORES: usize = 256 * 1024;

/// The reference's `image_encoder.Attention`.
#[derive(Module, Debug)]
pub struct Attention {
    /// `[C] → [3C]`, with bias.
    pub qkv: Linear,
    /// `[C] → [C]`.
    pub proj: Linear,
    /// `[2·input_h − 1, head_dim]`.
    pub rel_pos_h: Param<Tensor<2>>,
    /// `[2·input_w − 1, head_dim]`.
    pub rel_pos_w: Param<Tensor<2>>,
    /// LoRA update of `qkv` (none in the reference).
    pub lora_qkv: Option<LoraAdapter>,
    /// LoRA update of `proj`.
    pub lora_proj: Option<LoraAdapter>,
    #[module(skip)]
    num_heads: usize,
}

impl Attention {
    /// `input_size` is the token grid the block attends over (a window, or the whole image).
    pub fn new(dim: usize, num_heads: usize, input_size: (usize, usize), device: &Device) -> Self {
        let head_dim = dim / num_heads;
        Self {
            qkv: LinearConfig::new(dim, 3 * dim).init(device),
            proj: LinearConfig::new(dim, dim).init(device),
            // Zero-initialised as the reference (`rel_pos_zero_init=True`).
            rel_pos_h: Initializer::Zeros.init([2 * input_size.0 - 1, head_dim], device),
            rel_pos_w: Initializer::Zeros.init([2 * input_size.1 - 1, head_dim], device),
            lora_qkv: None,
            lora_proj: None,
            num_heads,
        }
    }

    /// `x: [B, H, W, C]` → `[B, H, W, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let heads = self.num_heads;
        let hd = c / heads;
        let n = h * w;
        // [B, HW, 3, heads, hd] → [3, B·heads, HW, hd]
        let qkv = forward_with(&self.qkv, &self.lora_qkv, x)
            .reshape([b, n, 3, heads, hd])
            .permute([2, 0, 3, 1, 4])
            .reshape([3, b * heads, n, hd]);
        let q = qkv.clone().narrow(0, 0, 1).reshape([b * heads, n, hd]);
        let k = qkv.clone().narrow(0, 1, 1).reshape([b * heads, n, hd]);
        let v = qkv.narrow(0, 2, 1).reshape([b * heads, n, hd]);

        let scale = (hd as f64).powf(-0.5);
        // The rel-pos term uses the unscaled q.
        let bias = decomposed_rel_pos_bias(
            q.clone(),
            self.rel_pos_h.val(),
            self.rel_pos_w.val(),
            (h, w),
            (h, w),
        );
        // The backend's fused kernel, with the rel-pos term as an additive bias, for inference
        // on window-sized grids only: measured on flex (ViT-B, 1024², 2 threads), fusing the
        // 14×14 windows took the encoder from 18.7 to 18.1 s, while fusing the global blocks
        // (64×64 tokens, where flex switches to flash attention) made it 26.7 s. Training is
        // spelled out anyway (Burn's autodiff decomposes fused attention), and spelled out here
        // so that the softmax of a 16-bit pass runs in f32.
        let fused = !q.device().is_autodiff() && n * n <= MAX_FUSED_SCORES;
        let out = if !fused {
            let attn = (q * scale).matmul(k.swap_dims(1, 2)) + bias;
            softmax(attn, 2).matmul(v)
        } else {
            // Accumulates in f32 for 16-bit inputs.
            let four = |t: Tensor<3>| t.reshape([b, heads, n, hd]);
            attention(
                four(q),
                four(k),
                four(v),
                None,
                Some(bias.reshape([b, heads, n, n])),
                AttentionModuleOptions {
                    scale: Some(scale),
                    ..Default::default()
                },
            )
            .reshape([b * heads, n, hd])
        };
        let out = out
            .reshape([b, heads, h, w, hd])
            .permute([0, 2, 3, 1, 4])
            .reshape([b, h, w, c]);
        forward_with(&self.proj, &self.lora_proj, out)
    }
}
