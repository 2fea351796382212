//! The decoder's attention layer, with optional down-projection of the internal width
//! (the reference's `transformer.Attention`).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

use crate::lora::{LoraAdapter, forward_with};

/// Multi-head attention over `embedding_dim / downsample_rate` internal channels.
#[derive(Module, Debug)]
pub struct Attention {
    /// `[C] → [C/r]`.
    pub q_proj: Linear,
    /// `[C] → [C/r]`.
    pub k_proj: Linear,
    /// `[C] → [C/r]`.
    pub v_proj: Linear,
    /// `[C/r] → [C]`.
    pub out_proj: Linear,
    /// LoRA updates of the four projections (none in the reference).
    pub lora_q: Option<LoraAdapter>,
    /// See `lora_q`.
    pub lora_k: Option<LoraAdapter>,
    /// See `lora_q`.
    pub lora_v: Option<LoraAdapter>,
    /// See `lora_q`.
    pub lora_out: Option<LoraAdapter>,
    #[module(skip)]
    num_heads: usize,
}

impl Attention {
    /// `downsample_rate` 1 for self-attention, 2 for the cross-attentions.
    pub fn new(
        embedding_dim: usize,
        num_heads: usize,
        downsample_rate: usize,
        device: &Device,
    ) -> Self {
        let internal = embedding_dim / downsample_rate;
        Self {
            q_proj: LinearConfig::new(embedding_dim, internal).init(device),
            k_proj: LinearConfig::new(embedding_dim, internal).init(device),
            v_proj: LinearConfig::new(embedding_dim, internal).init(device),
            out_proj: LinearConfig::new(internal, embedding_dim).init(device),
            lora_q: None,
            lora_k: None,
            lora_v: None,
            lora_out: None,
            num_heads,
        }
    }

    /// `[B, N, c] → [B, heads, N, c/heads]`.
    fn separate_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, n, c] = x.dims();
        x.reshape([b, n, self.num_heads, c / self.num_heads])
            .swap_dims(1, 2)
    }

    /// `q: [B, Nq, C]`, `k: [B, Nk, C]`, `v: [B, Nk, C]` → `[B, Nq, C]`.
    ///
    /// Batches of 1 broadcast against larger ones (one image embedding, many prompts).
    pub fn forward(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let q = self.separate_heads(forward_with(&self.q_proj, &self.lora_q, q));
        let k = self.separate_heads(forward_with(&self.k_proj, &self.lora_k, k));
        let v = self.separate_heads(forward_with(&self.v_proj, &self.lora_v, v));
        let [bq, heads, nq, ch] = q.dims();
        let [bk, _, nk, _] = k.dims();
        let b = bq.max(bk);
        let (q, k, v) = if bq == bk {
            (q, k, v)
        } else if bq == 1 {
            (q.expand([b, heads, nq, ch]), k, v)
        } else {
            (
                q,
                k.expand([b, heads, nk, ch]),
                v.expand([b, heads, nk, ch]),
            )
        };
        // softmax(q·kᵀ / √ch)·v; Burn's fused kernel where the backend has one.
        let out = attention(q, k, v, None, None, AttentionModuleOptions::default());
        forward_with(
            &self.out_proj,
            &self.lora_out,
            out.swap_dims(1, 2).reshape([b, nq, heads * ch]),
        )
    }
}
