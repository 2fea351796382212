//! Multi-head self-attention of the ViT blocks, with the decomposed relative position bias.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

use super::rel_pos::{add_decomposed_rel_pos, decomposed_rel_pos_terms};
use crate::lora::{LoraAdapter, forward_with};
use crate::softmax::softmax_last;

/// Largest score matrix (tokens²) run through the fused attention kernel (see `forward`).
const MAX_FUSED_SCORES: usize = 256 * 1024;

/// Score elements per query chunk of the global blocks in inference (see `forward`): 2M f32
/// (8 MB) stays in the last-level cache while it is biased, soft-maxed and multiplied by `v`.
const CHUNK_SCORES: usize = 2 * 1024 * 1024;

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

    /// `x: [B, H, W, C]` → q, k, v, each `[B·heads, HW, C/heads]`.
    fn split_qkv(&self, x: Tensor<4>) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
        let [b, h, w, c] = x.dims();
        let (heads, n) = (self.num_heads, h * w);
        let hd = c / heads;
        // [B, HW, 3, heads, hd] → [3, B·heads, HW, hd]
        let qkv = forward_with(&self.qkv, &self.lora_qkv, x)
            .reshape([b, n, 3, heads, hd])
            .permute([2, 0, 3, 1, 4])
            .reshape([3, b * heads, n, hd]);
        let q = qkv.clone().narrow(0, 0, 1).reshape([b * heads, n, hd]);
        let k = qkv.clone().narrow(0, 1, 1).reshape([b * heads, n, hd]);
        let v = qkv.narrow(0, 2, 1).reshape([b * heads, n, hd]);
        (q, k, v)
    }

    /// `x: [B, H, W, C]` → `[B, H, W, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_chunked(x, CHUNK_SCORES)
    }

    /// `forward` with at most about `chunk_scores` score elements per query chunk.
    fn forward_chunked(&self, x: Tensor<4>, chunk_scores: usize) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let heads = self.num_heads;
        let hd = c / heads;
        let n = h * w;
        let (q, k, v) = self.split_qkv(x);

        let scale = (hd as f64).powf(-0.5);
        // The rel-pos term uses the unscaled q.
        let (rel_h, rel_w) = decomposed_rel_pos_terms(
            q.clone(),
            self.rel_pos_h.val(),
            self.rel_pos_w.val(),
            (h, w),
            (h, w),
        );
        // The backend's fused kernel, with the rel-pos term as an additive bias, for inference
        // on window-sized grids on GPUs. On flex, fusing the 14×14 windows once took the
        // encoder from 18.7 to 18.1 s (ViT-B, 1024², 2 threads) and fusing the global blocks
        // (64×64 tokens, where flex switches to flash attention) made it 26.7 s; since the
        // softmax runs vectorised on the host values ([`softmax_last`]) and flex's fused
        // kernel still calls a scalar `expf`, the spelled-out windows are ~4% faster there
        // (7.6 vs 7.9 s, mean of 4 alternating runs each, noisy host). Training is spelled out
        // anyway (Burn's autodiff decomposes fused attention), and spelled out here so that the
        // softmax of a 16-bit pass runs in f32.
        let inference = !q.device().is_autodiff();
        let fused = inference && !crate::vector_math::host_maps(&q.device());
        let out = if fused && n * n <= MAX_FUSED_SCORES {
            // Accumulates in f32 for 16-bit inputs.
            let four = |t: Tensor<3>| t.reshape([b, heads, n, hd]);
            let bias = rel_h.reshape([b * heads, n, h, 1]) + rel_w.reshape([b * heads, n, 1, w]);
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
        } else {
            // The global blocks' scores (heads × 4096² at 1024²) would be written, biased,
            // soft-maxed and read back from memory several times over; in inference the queries
            // go in chunks whose scores stay in cache (the same sums, row by row).
            let rows = if inference {
                (chunk_scores / (b * heads * n)).clamp(1, n)
            } else {
                n
            };
            let q = q * scale;
            let kt = k.swap_dims(1, 2);
            let chunks: Vec<Tensor<3>> = (0..n)
                .step_by(rows)
                .map(|start| {
                    let len = rows.min(n - start);
                    let attn = q.clone().narrow(1, start, len).matmul(kt.clone());
                    let attn = add_decomposed_rel_pos(
                        attn,
                        rel_h.clone().narrow(1, start, len),
                        rel_w.clone().narrow(1, start, len),
                        (h, w),
                    );
                    softmax_last(attn, 1.0).matmul(v.clone())
                })
                .collect();
            if chunks.len() == 1 {
                chunks.into_iter().next().expect("one chunk")
            } else {
                Tensor::cat(chunks, 1)
            }
        };
        let out = out
            .reshape([b, heads, h, w, hd])
            .permute([0, 2, 3, 1, 4])
            .reshape([b, h, w, c]);
        forward_with(&self.proj, &self.lora_proj, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_encoder::rel_pos::decomposed_rel_pos_bias;
    use crate::precision::softmax;
    use burn::tensor::Distribution;

    fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    /// The reference's order: the whole score matrix, the materialised rel-pos bias, softmax.
    fn reference(attn: &Attention, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let heads = attn.num_heads;
        let hd = c / heads;
        let (q, k, v) = attn.split_qkv(x);
        let bias = decomposed_rel_pos_bias(
            q.clone(),
            attn.rel_pos_h.val(),
            attn.rel_pos_w.val(),
            (h, w),
            (h, w),
        );
        let scores = (q * (hd as f64).powf(-0.5)).matmul(k.swap_dims(1, 2)) + bias;
        let out = softmax(scores, 2)
            .matmul(v)
            .reshape([b, heads, h, w, hd])
            .permute([0, 2, 3, 1, 4])
            .reshape([b, h, w, c]);
        attn.proj.forward(out)
    }

    /// Query chunks (several, the last one short) give the whole matrix's result, with a
    /// non-zero rel-pos table, on a grid too large for the fused kernel.
    #[test]
    fn query_chunks_match_the_whole_score_matrix() {
        let device = Device::flex();
        let (c, heads, side) = (16, 2, 24);
        assert!(side * side * side * side > MAX_FUSED_SCORES);
        let mut attn = Attention::new(c, heads, (side, side), &device);
        attn.rel_pos_h = Param::from_tensor(random([2 * side - 1, c / heads], &device));
        attn.rel_pos_w = Param::from_tensor(random([2 * side - 1, c / heads], &device));
        let x = random([2, side, side, c], &device);
        let expected = reference(&attn, x.clone());
        let scale = expected.clone().abs().max().into_scalar::<f32>();
        let n = side * side;
        // 100 query rows per chunk: 5 full chunks and one of 76.
        for chunk_scores in [2 * heads * n * 100, usize::MAX] {
            let ours = attn.forward_chunked(x.clone(), chunk_scores);
            let diff = (ours - expected.clone()).abs().max().into_scalar::<f32>();
            assert!(
                diff <= 1e-5 * scale,
                "chunk {chunk_scores}: max diff {diff} (scale {scale})"
            );
        }
    }
}
