//! Multi-head self-attention of the ViT blocks, with the decomposed relative position bias.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::{Device, Tensor};

#[cfg(any(feature = "flex", feature = "cube"))]
use super::rel_pos::get_rel_pos;
use super::rel_pos::{decomposed_rel_pos_terms, fold_rel_pos, softmax_with_rel_pos};
use crate::lora::{LoraAdapter, forward_with};

/// Largest score matrix (tokens²) spelled out on GPUs: the windows (14² tokens); the global
/// blocks (64² tokens at 1024²) take the flash kernel ([`Kernel::Folded`]).
const MAX_SPELLED_OUT: usize = 256 * 1024;

/// Score elements per piece in inference on the CPU (see [`Kernel::SpelledOut`]): 2M f32
/// (8 MB) stays in the last-level cache while it is biased, soft-maxed and multiplied by `v`.
const CHUNK_SCORES: usize = 2 * 1024 * 1024;

/// How [`Attention::forward`] computes the attention.
#[derive(Debug, Clone, Copy)]
enum Kernel {
    /// The backend's fused attention with neither bias nor scale, the rel-pos term folded into
    /// the queries and keys ([`fold_rel_pos`]): inference on the global blocks on GPUs, where
    /// it is a flash kernel that never materialises the heads × 4096² scores (Burn's CubeCL
    /// backends fall back to materialised scores when given a bias or a scale).
    Folded,
    /// Matrix products and the softmax, `slices` of the `B·heads` attention matrices and `rows`
    /// queries of each at a time: on the CPU, in training, and on GPUs for the windows (all
    /// at once).
    ///
    /// flex's fused kernel calls a scalar `expf`, while the softmax here runs vectorised on the
    /// host values ([`softmax_with_rel_pos`], which also adds the rel-pos terms in the same
    /// pass): spelling out the windows took the ViT-B encoder from 7.9 to 7.6 s (1024², 2
    /// threads, mean of 4 alternating runs), and fusing the global blocks (where flex switches
    /// to flash attention) had cost 18.7 → 26.7 s. The global blocks' scores (heads × 4096² at
    /// 1024²) would be written, biased, soft-maxed and read back from memory several times
    /// over; in inference they go in pieces of about [`CHUNK_SCORES`] that stay in cache: the
    /// same sums, row by row. A piece is whole matrices where one is small enough (windows),
    /// else rows of one matrix, so that each matrix product packs its keys and values once
    /// for as many queries as fit (pieces of a few rows across all heads re-packed every
    /// head's keys for each). Training takes everything at once (Burn's autodiff decomposes
    /// fused attention anyway), and the softmax of a 16-bit pass runs in f32.
    SpelledOut {
        /// Attention matrices (of `B·heads`) per piece.
        slices: usize,
        /// Queries per piece.
        rows: usize,
    },
}

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

    /// `x: [B, H, W, C]` → q, k, v stacked, `[3, B·heads, HW, C/heads]`.
    fn stacked_qkv(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let (heads, n) = (self.num_heads, h * w);
        let hd = c / heads;
        // [B, HW, 3, heads, hd] → [3, B·heads, HW, hd]
        forward_with(&self.qkv, &self.lora_qkv, x)
            .reshape([b, n, 3, heads, hd])
            .permute([2, 0, 3, 1, 4])
            .reshape([3, b * heads, n, hd])
    }

    /// `x: [B, H, W, C]` → q, k, v, each `[B·heads, HW, C/heads]`.
    #[cfg(test)]
    fn split_qkv(&self, x: Tensor<4>) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
        unstack_qkv(self.stacked_qkv(x))
    }

    /// The attention of `batch` grids of `h × w` tokens from the stacked
    /// `qkv: [3, batch·heads, h·w, hd]` → `[batch·heads, h·w, hd]`: in training one recorded
    /// operation (`crate::recorded_ops`, whose backward pass writes the three gradients into
    /// one tensor), else [`attend`](Self::attend).
    fn attend_stacked(
        &self,
        qkv: Tensor<4>,
        batch: usize,
        (h, w): (usize, usize),
        kernel: Kernel,
    ) -> Tensor<3> {
        #[cfg(any(feature = "flex", feature = "cube"))]
        if crate::recorded_ops::attention_applies(&qkv) {
            let hd = qkv.dims()[3];
            let rel_h = get_rel_pos(h, h, self.rel_pos_h.val());
            let rel_w = get_rel_pos(w, w, self.rel_pos_w.val());
            let scale = (hd as f64).powf(-0.5);
            return crate::recorded_ops::attention(qkv, rel_h, rel_w, scale, (h, w));
        }
        let (q, k, v) = unstack_qkv(qkv);
        self.attend(q, k, v, batch, (h, w), kernel)
    }

    /// `x: [B, H, W, C]` → `[B, H, W, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, _] = x.dims();
        let kernel = self.kernel(b, h * w, &x.device());
        self.forward_kernel(x, kernel)
    }

    /// The reference's `window_partition` → [`forward`](Self::forward) → `window_unpartition`
    /// with `window_size`-token windows: `x: [B, H, W, C]` → `[B, H, W, C]`.
    ///
    /// The same sums without projecting the padding: the reference pads the normalised tokens
    /// with zeros up to whole windows (64 → 70 per side at 1024², a fifth more tokens) and runs
    /// `qkv` and `proj` over all of them. A zero token's `qkv` is the bias (with any LoRA
    /// update of zero), so the real tokens are projected and the padding filled with the
    /// projection of one zero token; and `proj` is per token, so it runs after the padding is
    /// cropped. The window partition rides on the head split's copy.
    pub fn forward_windowed(&self, x: Tensor<4>, window_size: usize) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let ws = window_size;
        let (heads, hd) = (self.num_heads, c / self.num_heads);
        let (hp, wp) = (h.next_multiple_of(ws), w.next_multiple_of(ws));
        let (nh, nw) = (hp / ws, wp / ws);
        let device = x.device();
        let dtype = x.dtype();
        let padded = hp > h || wp > w;
        let qkv = forward_with(&self.qkv, &self.lora_qkv, x);
        let qkv = if padded {
            let zero = Tensor::<4>::zeros([1, 1, 1, c], (&device, dtype));
            let filler = forward_with(&self.qkv, &self.lora_qkv, zero);
            filler
                .expand([b, hp, wp, 3 * c])
                .slice_assign([0..b, 0..h, 0..w, 0..3 * c], qkv)
        } else {
            qkv
        };
        let batch = b * nh * nw;
        let n = ws * ws;
        // [B, nh, ws, nw, ws, 3, heads, hd] → [3, B, nh, nw, heads, ws, ws, hd]
        let qkv = qkv
            .reshape([b, nh, ws, nw, ws, 3, heads, hd])
            .permute([5, 0, 1, 3, 6, 2, 4, 7])
            .reshape([3, batch * heads, n, hd]);
        let kernel = self.kernel(batch, n, &device);
        let out = self.attend_stacked(qkv, batch, (ws, ws), kernel);
        // [B, nh, nw, heads, ws, ws, hd] → [B, nh, ws, nw, ws, heads, hd]
        let out = out
            .reshape([b, nh, nw, heads, ws, ws, hd])
            .permute([0, 1, 4, 2, 5, 3, 6])
            .reshape([b, hp, wp, c]);
        let out = if padded {
            out.slice([0..b, 0..h, 0..w, 0..c])
        } else {
            out
        };
        forward_with(&self.proj, &self.lora_proj, out)
    }

    /// How to attend over `batch` token grids of `n` tokens on `device`.
    fn kernel(&self, batch: usize, n: usize, device: &Device) -> Kernel {
        // Burn's autodiff records no fused attention: training spells it out.
        let inference = !device.is_autodiff();
        let gpu = inference && !crate::vector_math::host_maps(device);
        let all = batch * self.num_heads;
        if gpu && n * n > MAX_SPELLED_OUT {
            Kernel::Folded
        } else if inference && !gpu {
            if n * n <= CHUNK_SCORES {
                Kernel::SpelledOut {
                    slices: (CHUNK_SCORES / (n * n)).clamp(1, all),
                    rows: n,
                }
            } else {
                Kernel::SpelledOut {
                    slices: 1,
                    rows: (CHUNK_SCORES / n).clamp(1, n),
                }
            }
        } else {
            Kernel::SpelledOut {
                slices: all,
                rows: n,
            }
        }
    }

    /// `forward` computed the way `kernel` says.
    fn forward_kernel(&self, x: Tensor<4>, kernel: Kernel) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let qkv = self.stacked_qkv(x);
        let out = self
            .attend_stacked(qkv, b, (h, w), kernel)
            .reshape([b, self.num_heads, h, w, c / self.num_heads])
            .permute([0, 2, 3, 1, 4])
            .reshape([b, h, w, c]);
        forward_with(&self.proj, &self.lora_proj, out)
    }

    /// The attention of `batch` grids of `h × w` tokens, with the rel-pos bias:
    /// `q, k, v: [batch·heads, h·w, hd]` → `[batch·heads, h·w, hd]`.
    fn attend(
        &self,
        q: Tensor<3>,
        k: Tensor<3>,
        v: Tensor<3>,
        b: usize,
        (h, w): (usize, usize),
        kernel: Kernel,
    ) -> Tensor<3> {
        let heads = self.num_heads;
        let [_, n, hd] = q.dims();
        let scale = (hd as f64).powf(-0.5);
        // The rel-pos term uses the unscaled q.
        let (rel_h, rel_w) = decomposed_rel_pos_terms(
            q.clone(),
            self.rel_pos_h.val(),
            self.rel_pos_w.val(),
            (h, w),
            (h, w),
        );
        let four = |t: Tensor<3>| {
            let [_, n, d] = t.dims();
            t.reshape([b, heads, n, d])
        };
        match kernel {
            Kernel::Folded => {
                let (q, k) = fold_rel_pos(q, k, rel_h, rel_w, scale, (h, w));
                let out = attention(four(q), four(k), four(v), None, None, Default::default());
                out.reshape([b * heads, n, hd])
            }
            Kernel::SpelledOut { slices, rows } => {
                let q = q * scale;
                let kt = k.swap_dims(1, 2);
                let all = b * heads;
                let part = |t: &Tensor<3>, dim: usize, start: usize, len: usize| {
                    if len == t.dims()[dim] {
                        t.clone()
                    } else {
                        t.clone().narrow(dim, start, len)
                    }
                };
                let groups: Vec<Tensor<3>> = (0..all)
                    .step_by(slices)
                    .map(|first| {
                        let count = slices.min(all - first);
                        let [q, kt, v, rel_h, rel_w] =
                            [&q, &kt, &v, &rel_h, &rel_w].map(|t| part(t, 0, first, count));
                        let pieces: Vec<Tensor<3>> = (0..n)
                            .step_by(rows)
                            .map(|start| {
                                let len = rows.min(n - start);
                                let attn = part(&q, 1, start, len).matmul(kt.clone());
                                softmax_with_rel_pos(
                                    attn,
                                    part(&rel_h, 1, start, len),
                                    part(&rel_w, 1, start, len),
                                    (h, w),
                                )
                                .matmul(v.clone())
                            })
                            .collect();
                        concat(pieces, 1)
                    })
                    .collect();
                concat(groups, 0)
            }
        }
    }
}

/// `[3, N, n, hd]` → its three `[N, n, hd]` parts.
fn unstack_qkv(qkv: Tensor<4>) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
    let [_, batch, n, hd] = qkv.dims();
    let part = |i| qkv.clone().narrow(0, i, 1).reshape([batch, n, hd]);
    (part(0), part(1), part(2))
}

/// `parts` joined along `dim` (no copy for one part).
fn concat(mut parts: Vec<Tensor<3>>, dim: usize) -> Tensor<3> {
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Tensor::cat(parts, dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_encoder::rel_pos::decomposed_rel_pos_bias;
    use crate::precision::softmax;
    use crate::test_util::Draws;

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

    /// The windowed entry point is the reference's partition → attention → unpartition, on
    /// grids that need padding on one side, on both, and on none, with a LoRA update (whose
    /// zero-token value the padding must include too).
    #[test]
    fn windowed_attention_is_partition_attend_unpartition() {
        use crate::image_encoder::window::{window_partition, window_unpartition};
        use crate::lora::{LoraAdapter, LoraConfig};
        let device = Device::flex();
        let draws = Draws::new(1);
        let (c, heads, ws) = (16, 2, 4);
        let mut attn = Attention::new(c, heads, (ws, ws), &device);
        attn.rel_pos_h = Param::from_tensor(draws.standard([2 * ws - 1, c / heads], &device));
        attn.rel_pos_w = Param::from_tensor(draws.standard([2 * ws - 1, c / heads], &device));
        let mut with_lora = attn.clone();
        let config = LoraConfig::default();
        let mut adapter = LoraAdapter::new(c, 3 * c, &config, &device);
        // Non-zero, unlike a fresh adapter's.
        adapter.b.weight = Param::from_tensor(draws.standard([config.rank, 3 * c], &device));
        with_lora.lora_qkv = Some(adapter);
        for (h, w) in [(10, 9), (8, 11), (8, 12), (3, 3)] {
            for attn in [&attn, &with_lora] {
                let x = draws.standard([2, h, w, c], &device);
                let (windows, pad_hw) = window_partition(x.clone(), ws);
                let expected = window_unpartition(attn.forward(windows), ws, pad_hw, (h, w));
                let ours = attn.forward_windowed(x, ws);
                assert_eq!(ours.dims(), [2, h, w, c]);
                let scale = expected.clone().abs().max().into_scalar::<f32>();
                let diff = (ours - expected).abs().max().into_scalar::<f32>();
                assert!(
                    diff <= 1e-6 * scale,
                    "{h}×{w}: max diff {diff} (scale {scale})"
                );
            }
        }
    }

    /// Pieces (of rows, of matrices, of both) and the folded rel-pos through Burn's fused
    /// kernel give the whole matrix's result, with non-zero rel-pos tables, on a grid GPUs run
    /// through the fused kernel.
    #[test]
    fn every_kernel_matches_the_whole_score_matrix() {
        let device = Device::flex();
        let draws = Draws::new(1);
        let (c, heads, side) = (16, 2, 24);
        assert!(side * side * side * side > MAX_SPELLED_OUT);
        let mut attn = Attention::new(c, heads, (side, side), &device);
        attn.rel_pos_h = Param::from_tensor(draws.standard([2 * side - 1, c / heads], &device));
        attn.rel_pos_w = Param::from_tensor(draws.standard([2 * side - 1, c / heads], &device));
        let x = draws.standard([2, side, side, c], &device);
        let expected = reference(&attn, x.clone());
        let scale = expected.clone().abs().max().into_scalar::<f32>();
        let n = side * side;
        // 100 query rows per piece: 5 full pieces and one of 76; 3 of the 4 matrices per
        // piece: one full group and one of 1.
        for kernel in [
            Kernel::SpelledOut {
                slices: 1,
                rows: 100,
            },
            Kernel::SpelledOut { slices: 3, rows: n },
            Kernel::SpelledOut {
                slices: 3,
                rows: 100,
            },
            Kernel::SpelledOut {
                slices: 2 * heads,
                rows: n,
            },
            Kernel::Folded,
        ] {
            let ours = attn.forward_kernel(x.clone(), kernel);
            let diff = (ours - expected.clone()).abs().max().into_scalar::<f32>();
            assert!(
                diff <= 1e-5 * scale,
                "{kernel:?}: max diff {diff} (scale {scale})"
            );
        }
    }
}
