//! `CLIPAttention`: multi-head self-attention with separate q/k/v projections, causal in the
//! text tower.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

/// `CLIPAttention`.
#[derive(Module, Debug)]
pub struct ClipAttention {
    /// `[C] → [C]`, with bias.
    pub k_proj: Linear,
    /// `[C] → [C]`, with bias.
    pub v_proj: Linear,
    /// `[C] → [C]`, with bias.
    pub q_proj: Linear,
    /// `[C] → [C]`, with bias.
    pub out_proj: Linear,
    #[module(skip)]
    num_heads: usize,
}

impl ClipAttention {
    /// Attention of width `embed_dim` over `num_heads` heads (`embed_dim` a multiple).
    pub fn new(embed_dim: usize, num_heads: usize, device: &Device) -> Self {
        let linear = || LinearConfig::new(embed_dim, embed_dim).init(device);
        Self {
            k_proj: linear(),
            v_proj: linear(),
            q_proj: linear(),
            out_proj: linear(),
            num_heads,
        }
    }

    /// `x: [B, N, C]` → `[B, N, C]`; with `causal`, token `i` attends to tokens `0..=i` only
    /// (transformers' causal mask: the masked scores are −inf or the dtype's minimum, both
    /// give them weight exactly 0).
    pub fn forward(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        self.forward_masked(x, causal, None)
    }

    /// [`ClipAttention::forward`] with `mask: [B, 1, N, N]`, `true` where a query may not attend
    /// to a key (broadcast over the heads).
    pub fn forward_masked(
        &self,
        x: Tensor<3>,
        causal: bool,
        mask: Option<Tensor<4, burn::tensor::Bool>>,
    ) -> Tensor<3> {
        let [b, n, c] = x.dims();
        let h = self.num_heads;
        let d = c / h;
        // [B, N, C] → [B, heads, N, head_dim], as `view(hidden_shape).transpose(1, 2)`.
        let heads = |t: Tensor<3>| t.reshape([b, n, h, d]).swap_dims(1, 2);
        let q = heads(self.q_proj.forward(x.clone()));
        let k = heads(self.k_proj.forward(x.clone()));
        let v = heads(self.v_proj.forward(x));
        // The default scale is 1/√head_dim, transformers' `head_dim**-0.5`; leaving it unset
        // keeps the fused (flash) kernel eligible on GPUs.
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: causal,
        };
        let mask = mask.map(|m| m.expand([b, h, n, n]));
        let out = attention(q, k, v, mask, None, options)
            .swap_dims(1, 2)
            .reshape([b, n, c]);
        self.out_proj.forward(out)
    }
}
