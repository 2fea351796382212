//! `Sam`: the three components tied together (the reference's `modeling/sam.py`).

use burn::module::Module;
use burn::tensor::ops::PadMode;
use burn::tensor::{Bool, Device, FloatDType, Tensor, TensorData};

use crate::config::SamConfig;
use crate::error::{Result, SamError};
use crate::image_encoder::ImageEncoderViT;
use crate::interpolate::{apply_separable, upscale_crop_resize_matrix};
use crate::mask_decoder::{MaskDecoder, MaskPrediction};
use crate::prompt_encoder::{PointPrompt, PromptEncoder};

/// SAM's pixel mean (RGB, 0–255 scale). Not stored in checkpoints.
pub const PIXEL_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
/// SAM's pixel standard deviation (RGB, 0–255 scale).
pub const PIXEL_STD: [f32; 3] = [58.395, 57.12, 57.375];
/// Logit threshold of a mask pixel (strictly greater is foreground).
pub const MASK_THRESHOLD: f32 = 0.0;

/// Segment Anything.
#[derive(Module, Debug)]
pub struct Sam {
    /// ViT backbone + neck.
    pub image_encoder: ImageEncoderViT,
    /// Points, boxes, masks → embeddings.
    pub prompt_encoder: PromptEncoder,
    /// Embeddings → masks and IoU predictions.
    pub mask_decoder: MaskDecoder,
    #[module(skip)]
    config: SamConfig,
    /// The LoRA adapters' settings, when the model has adapters.
    #[module(skip)]
    pub(crate) lora: Option<crate::lora::LoraConfig>,
}

/// Prompts for one image, in pixels of the resized (longest side = `image_size`) input.
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    /// Points and labels, `[B, N, 2]` and `[B, N]`.
    pub points: Option<PointPrompt>,
    /// Boxes `[B, 4]` as `x0, y0, x1, y1`.
    pub boxes: Option<Tensor<2>>,
    /// Low-res mask logits `[B, 1, 4E, 4E]`.
    pub masks: Option<Tensor<4>>,
    /// External prompt embeddings `[B, D]` (CLIP text or image embeddings), for a model with
    /// `prompt_embedding_dim = D`.
    pub embeddings: Option<Tensor<2>>,
}

impl Sam {
    /// Gives a model without an embedding prompt one (`prompt_embedding_dim = dim`): a fresh
    /// projection (PyTorch's `nn.Linear` initialisation, on the model's device) turns `[B, dim]`
    /// embeddings into a sparse prompt token, e.g. to train text prompts from a model trained
    /// without them. A model that has one of another size is an error.
    pub fn with_prompt_embedding(mut self, dim: usize) -> Result<Self> {
        match self.config.prompt_embedding_dim {
            Some(d) if d == dim => return Ok(self),
            Some(d) => {
                return Err(crate::SamError::InvalidConfig(format!(
                    "the model already takes {d}-d prompt embeddings, not {dim}"
                )));
            }
            None => {}
        }
        if dim == 0 {
            return Err(crate::SamError::InvalidConfig(
                "prompt_embedding_dim must be positive".into(),
            ));
        }
        let device = self.device();
        let c = self.config.prompt_embed_dim;
        let proj = burn::nn::LinearConfig::new(dim, c).init(&device);
        // In the model's float type, so that a model cast to 16 bits stays all 16-bit.
        let proj = match self.float_dtype() {
            FloatDType::F32 => proj,
            dtype => proj.map(&mut crate::precision::CastFloat(dtype)),
        };
        self.prompt_encoder.embedding_proj = Some(proj);
        self.config.prompt_embedding_dim = Some(dim);
        Ok(self)
    }

    pub(crate) fn new(config: &SamConfig, device: &Device) -> Self {
        Self {
            image_encoder: config.image_encoder().init(device),
            prompt_encoder: config.prompt_encoder().init(device),
            mask_decoder: config.mask_decoder().init(device),
            config: config.clone(),
            lora: None,
        }
    }

    /// The configuration this model was built with.
    pub fn config(&self) -> &SamConfig {
        &self.config
    }

    pub(crate) fn set_config(&mut self, config: SamConfig) {
        self.config = config;
    }

    /// The float type of the weights (f32 unless the model was cast).
    pub fn float_dtype(&self) -> FloatDType {
        self.image_encoder.pos_embed.val().dtype().into()
    }

    /// The model with every float parameter cast to `dtype` (bf16 or f16 for reduced-precision
    /// compute; see [`crate::precision`] for what stays f32). Errors when the device cannot
    /// compute in that type (bf16 on wgpu/Vulkan, for one).
    ///
    /// On an autodiff device the cast is part of the graph: gradients of a loss computed with
    /// the cast model flow back to the parameters of `self` (mixed precision with f32 masters).
    pub fn cast_float(&self, dtype: FloatDType) -> Result<Self> {
        if let Some(reason) = crate::precision::unsupported(&self.device(), dtype) {
            return Err(SamError::InvalidConfig(reason));
        }
        Ok(self.clone().map(&mut crate::precision::CastFloat(dtype)))
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.image_encoder.pos_embed.val().device()
    }

    /// Normalises with SAM's pixel mean/std and pads bottom/right with zeros to the square input.
    ///
    /// `x: [B, 3, h, w]` on the 0–255 scale, `h, w ≤ image_size` → `[B, 3, S, S]`.
    pub fn preprocess(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        let [b, c, h, w] = x.dims();
        let s = self.config.image_size;
        if b == 0 || c != 3 || h == 0 || w == 0 || h > s || w > s {
            return Err(SamError::InvalidInput(format!(
                "image tensor must be [B, 3, h, w] with B > 0 and 0 < h, w <= {s}, got [{b}, {c}, {h}, {w}]"
            )));
        }
        let device = x.device();
        let per_channel = |v: [f32; 3]| {
            Tensor::<1>::from_data(TensorData::new(v.to_vec(), [3]), &device).reshape([1, 3, 1, 1])
        };
        let x = (x - per_channel(PIXEL_MEAN)) / per_channel(PIXEL_STD);
        Ok(x.pad(
            [(0, 0), (0, 0), (0, s - h), (0, s - w)],
            PadMode::Constant(0.0),
        ))
    }

    /// Image embeddings of preprocessed input: `[B, 3, S, S]` → `[B, C, E, E]`.
    pub fn image_embeddings(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        let [b, c, h, w] = x.dims();
        let s = self.config.image_size;
        if b == 0 || c != 3 || h != s || w != s {
            return Err(SamError::InvalidInput(format!(
                "encoder input must be [B, 3, {s}, {s}] with B > 0, got [{b}, {c}, {h}, {w}]"
            )));
        }
        Ok(self.image_encoder.forward(x))
    }

    /// Low-resolution masks for a batch of prompts against one image embedding `[1, C, E, E]`
    /// (or one embedding per prompt set, `[B, C, E, E]`).
    pub fn predict(
        &self,
        image_embeddings: Tensor<4>,
        prompts: Prompts,
        multimask_output: bool,
    ) -> Result<MaskPrediction> {
        let embeddings = self.prompt_encoder.forward_with_embedding(
            prompts.points,
            prompts.boxes,
            prompts.masks,
            prompts.embeddings,
        )?;
        self.mask_decoder.forward(
            image_embeddings,
            self.prompt_encoder.get_dense_pe(),
            embeddings.sparse,
            embeddings.dense,
            multimask_output,
        )
    }

    /// Upscales low-res mask logits to the original image, as the reference: bilinear to
    /// `S × S`, crop the padding to `input_size`, bilinear to `original_size`
    /// (align_corners = false, no antialias). The three steps run as one separable product.
    ///
    /// `masks: [B, M, 4E, 4E]` → `[B, M, H, W]` logits.
    pub fn postprocess_masks(
        &self,
        masks: Tensor<4>,
        input_size: (usize, usize),
        original_size: (usize, usize),
    ) -> Result<Tensor<4>> {
        let s = self.config.image_size;
        let (ih, iw) = input_size;
        let (oh, ow) = original_size;
        if ih == 0 || iw == 0 || ih > s || iw > s || oh == 0 || ow == 0 {
            return Err(SamError::InvalidInput(format!(
                "postprocess sizes must satisfy 0 < input <= {s} and original > 0, got input {input_size:?}, original {original_size:?}"
            )));
        }
        let [b, m, lh, lw] = masks.dims();
        if b == 0 || m == 0 || lh == 0 || lw == 0 {
            return Err(SamError::InvalidInput(format!(
                "masks to postprocess must be non-empty, got [{b}, {m}, {lh}, {lw}]"
            )));
        }
        let device = masks.device();
        let mh = upscale_crop_resize_matrix(lh, s, ih, oh, &device);
        let mw = upscale_crop_resize_matrix(lw, s, iw, ow, &device);
        Ok(apply_separable(masks, mh, mw))
    }

    /// Binary masks from logits (`> 0`).
    pub fn threshold(logits: Tensor<4>) -> Tensor<4, Bool> {
        logits.greater_elem(MASK_THRESHOLD)
    }
}
