//! The mask decoder (the reference's `modeling/mask_decoder.py`).

pub mod attention;
#[cfg(feature = "flex")]
mod image_to_token_on_host;
mod mlp;
mod output_upscaling;
mod two_way_transformer;
#[cfg(feature = "flex")]
mod upscaling_on_host;

pub use attention::Attention;
pub use mlp::Mlp;
pub use output_upscaling::{OutputUpscaling, pixels_to_image};
pub use two_way_transformer::{SharedImageSide, TwoWayAttentionBlock, TwoWayTransformer};

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::{DType, Device, FloatDType, Tensor};

use rayon::prelude::*;

use crate::error::{Result, SamError};

/// Sizes of a [`MaskDecoder`].
#[derive(Debug, Clone)]
pub struct MaskDecoderConfig {
    /// Width C.
    pub transformer_dim: usize,
    /// Two-way transformer depth.
    pub transformer_depth: usize,
    /// Two-way transformer MLP width.
    pub transformer_mlp_dim: usize,
    /// Two-way transformer heads.
    pub transformer_num_heads: usize,
    /// Masks for ambiguous prompts.
    pub num_multimask_outputs: usize,
    /// IoU head depth.
    pub iou_head_depth: usize,
    /// IoU head width.
    pub iou_head_hidden_dim: usize,
}

impl MaskDecoderConfig {
    /// Builds the decoder.
    pub fn init(&self, device: &Device) -> MaskDecoder {
        let c = self.transformer_dim;
        let num_mask_tokens = self.num_multimask_outputs + 1;
        MaskDecoder {
            transformer: TwoWayTransformer::new(
                self.transformer_depth,
                c,
                self.transformer_num_heads,
                self.transformer_mlp_dim,
                device,
            ),
            iou_token: EmbeddingConfig::new(1, c).init(device),
            mask_tokens: EmbeddingConfig::new(num_mask_tokens, c).init(device),
            output_upscaling: OutputUpscaling::new(c, device),
            output_hypernetworks_mlps: (0..num_mask_tokens)
                .map(|_| Mlp::new(c, c, c / 8, 3, device))
                .collect(),
            iou_prediction_head: Mlp::new(
                c,
                self.iou_head_hidden_dim,
                num_mask_tokens,
                self.iou_head_depth,
                device,
            ),
        }
    }
}

/// Masks and their predicted quality.
#[derive(Debug, Clone)]
pub struct MaskPrediction {
    /// `[B, M, 4E, 4E]` mask logits.
    pub low_res_masks: Tensor<4>,
    /// `[B, M]` predicted IoU (unbounded).
    pub iou_predictions: Tensor<2>,
}

/// Predicts masks from image and prompt embeddings.
#[derive(Module, Debug)]
pub struct MaskDecoder {
    /// Two-way transformer.
    pub transformer: TwoWayTransformer,
    /// Learned IoU output token, `[1, C]`.
    pub iou_token: Embedding,
    /// Learned mask output tokens, `[M+1, C]`.
    pub mask_tokens: Embedding,
    /// 4× upscaler of the image tokens.
    pub output_upscaling: OutputUpscaling,
    /// One hypernetwork per mask token, `C → C/8`.
    pub output_hypernetworks_mlps: Vec<Mlp>,
    /// IoU head, `C → M+1`.
    pub iou_prediction_head: Mlp,
}

impl MaskDecoder {
    /// Number of mask tokens (multimask outputs + the single-mask token).
    pub fn num_mask_tokens(&self) -> usize {
        self.output_hypernetworks_mlps.len()
    }

    /// Predicts masks.
    ///
    /// - `image_embeddings: [1 | B, C, E, E]`: one image shared by all prompts, or one per prompt;
    /// - `image_pe: [1, C, E, E]`;
    /// - `sparse_prompt_embeddings: [B, N, C]` (or `None` for a mask-only prompt);
    /// - `dense_prompt_embeddings: [1 | B, C, E, E]`;
    /// - `multimask_output`: the 3 ambiguity-aware masks, else the single-mask token's.
    pub fn forward(
        &self,
        image_embeddings: Tensor<4>,
        image_pe: Tensor<4>,
        sparse_prompt_embeddings: Option<Tensor<3>>,
        dense_prompt_embeddings: Tensor<4>,
        multimask_output: bool,
    ) -> Result<MaskPrediction> {
        let (masks, iou_pred) = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
        )?;
        let t = self.num_mask_tokens();
        if multimask_output && t < 2 {
            return Err(SamError::InvalidInput(
                "multimask output asked of a decoder without multimask tokens (num_multimask_outputs = 0)".into(),
            ));
        }
        let (start, len) = if multimask_output { (1, t - 1) } else { (0, 1) };
        Ok(MaskPrediction {
            low_res_masks: masks.narrow(1, start, len),
            iou_predictions: iou_pred.narrow(1, start, len),
        })
    }

    /// All mask tokens' masks `[B, M+1, 4E, 4E]` and IoU predictions `[B, M+1]`.
    pub fn predict_masks(
        &self,
        image_embeddings: Tensor<4>,
        image_pe: Tensor<4>,
        sparse_prompt_embeddings: Option<Tensor<3>>,
        dense_prompt_embeddings: Tensor<4>,
    ) -> Result<(Tensor<4>, Tensor<2>)> {
        self.predict_masks_in(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            None,
        )
    }

    /// [`Self::predict_masks`], decoding `plan.0` prompts at a time and sharing the first
    /// block's image side if `plan.1` (`None`: as the device and batch suggest).
    fn predict_masks_in(
        &self,
        image_embeddings: Tensor<4>,
        image_pe: Tensor<4>,
        sparse_prompt_embeddings: Option<Tensor<3>>,
        dense_prompt_embeddings: Tensor<4>,
        plan: Option<(usize, bool)>,
    ) -> Result<(Tensor<4>, Tensor<2>)> {
        let [bi, c, h, w] = image_embeddings.dims();
        let [bd, cd, hd, wd] = dense_prompt_embeddings.dims();
        if [cd, hd, wd] != [c, h, w] {
            return Err(SamError::InvalidInput(format!(
                "dense prompt embeddings [{bd}, {cd}, {hd}, {wd}] do not match the image embeddings [{bi}, {c}, {h}, {w}]"
            )));
        }
        let pe_dims = image_pe.dims();
        if pe_dims != [1, c, h, w] {
            return Err(SamError::InvalidInput(format!(
                "the positional encoding is {pe_dims:?}, but the image embeddings [{bi}, {c}, {h}, {w}] need [1, {c}, {h}, {w}]"
            )));
        }
        if let Some(sparse) = &sparse_prompt_embeddings {
            let [bs, n, cs] = sparse.dims();
            if cs != c {
                return Err(SamError::InvalidInput(format!(
                    "sparse prompt embeddings [{bs}, {n}, {cs}] are not {c} wide like the image embeddings"
                )));
            }
        }
        let bs = sparse_prompt_embeddings.as_ref().map(|s| s.dims()[0]);
        let batch = bs.unwrap_or(1).max(bi).max(bd);
        if [bi, bd].contains(&0) || bs == Some(0) {
            return Err(SamError::InvalidInput(format!(
                "empty batch: image embeddings {bi}, dense prompts {bd}, sparse prompts {bs:?}"
            )));
        }
        for (what, b) in [("image embeddings", bi), ("dense prompts", bd)]
            .into_iter()
            .chain(bs.map(|b| ("sparse prompts", b)))
        {
            if b != 1 && b != batch {
                return Err(SamError::InvalidInput(format!(
                    "{what} have batch {b}, but the prompt batch is {batch}"
                )));
            }
        }

        let t = self.num_mask_tokens();
        // A 16-bit decoder takes embeddings made in any precision and answers in f32, so
        // that losses and post-processing never see the 16-bit type.
        let dtype = self.iou_token.weight.val().dtype();
        let image_embeddings = image_embeddings.cast(dtype);
        let image_pe = image_pe.cast(dtype);
        let dense_prompt_embeddings = dense_prompt_embeddings.cast(dtype);
        // One prompt set for several images is that set for each of them.
        let sparse_prompt_embeddings = sparse_prompt_embeddings.map(|s| {
            let [b, n, _] = s.dims();
            let s = s.cast(dtype);
            if b == batch {
                s
            } else {
                s.expand([batch, n, c])
            }
        });
        let output_tokens = Tensor::cat(
            vec![self.iou_token.weight.val(), self.mask_tokens.weight.val()],
            0,
        )
        .unsqueeze::<3>()
        .expand([batch, 1 + t, c]);
        let tokens = match sparse_prompt_embeddings {
            Some(sparse) => Tensor::cat(vec![output_tokens, sparse], 1),
            None => output_tokens,
        };

        // Broadcasting add: the image embedding is never copied per prompt.
        let src = image_embeddings + dense_prompt_embeddings;
        let (keys, key_pe) = TwoWayTransformer::flatten(src, image_pe);
        let (chunk, share) = plan.unwrap_or_else(|| {
            (
                prompt_chunk(&tokens.device(), batch, h * w * c),
                batch >= SHARE_FROM,
            )
        });
        let one_image = keys.dims()[0] == 1;
        let shared = if one_image && share {
            self.transformer
                .share_image_side(keys.clone(), key_pe.clone())
        } else {
            None
        };
        let shared = shared.as_ref();
        let chunk = chunk.max(1);
        if chunk >= batch {
            return self.decode(keys, key_pe, tokens, shared, (h, w), dtype);
        }
        let starts: Vec<usize> = (0..batch).step_by(chunk).collect();
        let run = |&start: &usize| {
            let len = chunk.min(batch - start);
            let keys = if one_image {
                keys.clone()
            } else {
                keys.clone().narrow(0, start, len)
            };
            self.decode(
                keys,
                key_pe.clone(),
                tokens.clone().narrow(0, start, len),
                shared,
                (h, w),
                dtype,
            )
        };
        // The chunks run side by side, a thread each where there are threads to spare: one
        // prompt's elementwise steps (1M values) are too short to split across threads without
        // the hand-offs costing more than they save (ViT-B, 64 prompts: 1.27-1.37 s in turn,
        // 0.76-1.06 s side by side on 2 cores).
        let outs: Vec<Result<(Tensor<4>, Tensor<2>)>> = starts.par_iter().map(run).collect();
        let mut masks = Vec::with_capacity(outs.len());
        let mut ious = Vec::with_capacity(outs.len());
        for out in outs {
            let (m, i) = out?;
            masks.push(m);
            ious.push(i);
        }
        Ok((Tensor::cat(masks, 0), Tensor::cat(ious, 0)))
    }

    /// The transformer and the output heads for one batch of prompts: `keys: [B|1, hw, C]`
    /// (image tokens plus dense prompts), `key_pe: [1, hw, C]`, `tokens: [B, Nt, C]`.
    fn decode(
        &self,
        keys: Tensor<3>,
        key_pe: Tensor<3>,
        tokens: Tensor<3>,
        shared: Option<&SharedImageSide>,
        (h, w): (usize, usize),
        dtype: DType,
    ) -> Result<(Tensor<4>, Tensor<2>)> {
        let (hs, src) = self.transformer.forward_flat(keys, key_pe, tokens, shared);
        let iou_token_out = hs.clone().narrow(1, 0, 1).squeeze_dim::<2>(1);

        let hyper_in = Tensor::cat(
            self.output_hypernetworks_mlps
                .iter()
                .enumerate()
                .map(|(i, mlp)| mlp.forward(hs.clone().narrow(1, 1 + i, 1)))
                .collect(),
            1,
        ); // [B, T, C/8]
        let masks = self.masks(src, hyper_in, (h, w));
        let iou_pred = self.iou_prediction_head.forward(iou_token_out);
        if crate::precision::is_half(dtype) {
            Ok((masks.cast(FloatDType::F32), iou_pred.cast(FloatDType::F32)))
        } else {
            Ok((masks, iou_pred))
        }
    }

    /// The transformer's image tokens `src: [B, hw, C]` upscaled and dotted with the
    /// hypernetworks' outputs `hyper_in: [B, T, C/8]` → masks `[B, T, 4h, 4w]`.
    fn masks(&self, src: Tensor<3>, hyper_in: Tensor<3>, (h, w): (usize, usize)) -> Tensor<4> {
        #[cfg(feature = "flex")]
        if upscaling_on_host::applies(&self.output_upscaling, &src, &hyper_in) {
            return upscaling_on_host::masks(&self.output_upscaling, src, hyper_in, (h, w));
        }
        // Channels-last all the way: the transformer's image tokens are already rows.
        let upscaled = self.output_upscaling.forward_tokens(src); // [B, 16hw, C/8]
        pixels_to_image(hyper_in.matmul(upscaled.swap_dims(1, 2)), (h, w))
    }
}

/// Prompts on one image from which the first block's image-side projections are made once
/// for the batch ([`TwoWayTransformer::share_image_side`]): the three shared projections cost
/// about what two prompts' own (reordered) first-block cross-attentions do.
const SHARE_FROM: usize = 3;

/// Image-token values (`hw·C` per prompt) that one CPU decoding step works on at most.
///
/// Every prompt updates its own copy of the image tokens (`[hw, C]`, 4 MiB at SAM's 64×64×256),
/// and the upscaler makes 16× as many pixels from them. Decoding the whole batch at once on the
/// CPU makes each elementwise step a pass over hundreds of MB, out of cache and freshly
/// page-faulted; one prompt at a time keeps them in cache (ViT-B, 64 prompts, flex: 2.56 →
/// 1.74 s). The shared work (the image plus dense prompts, flattened) is done once. On other
/// devices (and for autodiff) the batch stays whole: GPUs want the wide kernels.
const CPU_CHUNK_VALUES: usize = 1 << 20;

/// How many prompts to decode at once on `device`: `batch` but on the CPU.
fn prompt_chunk(device: &Device, batch: usize, values_per_prompt: usize) -> usize {
    if crate::vector_math::host_maps(device) {
        (CPU_CHUNK_VALUES / values_per_prompt.max(1)).clamp(1, batch.max(1))
    } else {
        batch.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::Draws;

    /// Decoding in chunks of prompts, with the first block's image side shared, gives the
    /// whole batch's reference-order result; so does one image per prompt in chunks.
    #[test]
    fn chunks_and_the_shared_image_side_match_the_whole_batch() {
        let device = Device::flex();
        let config = MaskDecoderConfig {
            transformer_dim: 32,
            transformer_depth: 2,
            transformer_mlp_dim: 64,
            transformer_num_heads: 4,
            num_multimask_outputs: 3,
            iou_head_depth: 3,
            iou_head_hidden_dim: 32,
        };
        let decoder = config.init(&device);
        let draws = Draws::new(1);
        let random = |shape: [usize; 4]| draws.standard(shape, &device);
        let (b, e) = (5, 8);
        let pe = random([1, 32, e, e]);
        let sparse = draws.standard([b, 3, 32], &device);
        for (image, dense) in [
            (random([1, 32, e, e]), random([1, 32, e, e])),
            (random([b, 32, e, e]), random([b, 32, e, e])),
        ] {
            let run = |plan| {
                decoder
                    .predict_masks_in(
                        image.clone(),
                        pe.clone(),
                        Some(sparse.clone()),
                        dense.clone(),
                        Some(plan),
                    )
                    .unwrap()
            };
            let (masks, iou) = run((b, false));
            for plan in [(2, true), (1, false), (b, true)] {
                let (m, i) = run(plan);
                assert_eq!(m.dims(), masks.dims());
                let scale = masks.clone().abs().max().into_scalar::<f32>();
                let dm = (m - masks.clone()).abs().max().into_scalar::<f32>();
                let di = (i - iou.clone()).abs().max().into_scalar::<f32>();
                assert!(
                    dm <= 1e-5 * scale && di <= 1e-5,
                    "{plan:?}: masks {dm}, iou {di}"
                );
            }
        }
    }
}
