//! The prompt encoder (the reference's `modeling/prompt_encoder.py`): sparse embeddings for
//! points and box corners, dense embeddings for mask prompts.

mod mask_downscaling;
mod position_embedding_random;

pub use mask_downscaling::MaskDownscaling;
pub use position_embedding_random::PositionEmbeddingRandom;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};

use crate::error::{Result, SamError};

/// Sizes of a [`PromptEncoder`].
#[derive(Debug, Clone)]
pub struct PromptEncoderConfig {
    /// Embedding width C.
    pub embed_dim: usize,
    /// Side E of the image-embedding grid.
    pub image_embedding_size: usize,
    /// Side S of the padded model input.
    pub input_image_size: usize,
    /// Hidden channels of the mask downscaler.
    pub mask_in_chans: usize,
    /// Width of the external prompt embedding, when the model takes one.
    pub embedding_dim: Option<usize>,
}

impl PromptEncoderConfig {
    /// Builds the encoder (embeddings N(0, 1), as `nn.Embedding`).
    pub fn init(&self, device: &Device) -> PromptEncoder {
        let c = self.embed_dim;
        PromptEncoder {
            pe_layer: PositionEmbeddingRandom::new(c / 2, device),
            point_embeddings: (0..4)
                .map(|_| EmbeddingConfig::new(1, c).init(device))
                .collect(),
            not_a_point_embed: EmbeddingConfig::new(1, c).init(device),
            mask_downscaling: MaskDownscaling::new(self.mask_in_chans, c, device),
            no_mask_embed: EmbeddingConfig::new(1, c).init(device),
            embedding_proj: self
                .embedding_dim
                .map(|d| LinearConfig::new(d, c).init(device)),
            embed_dim: c,
            image_embedding_size: self.image_embedding_size,
            input_image_size: self.input_image_size,
        }
    }
}

/// Points with their labels, in pixels of the padded model input.
#[derive(Debug, Clone)]
pub struct PointPrompt {
    /// `[B, N, 2]` as `(x, y)`.
    pub coords: Tensor<3>,
    /// `[B, N]`: 1 foreground, 0 background, −1 padding (ignored).
    pub labels: Tensor<2, Int>,
}

/// What the prompt encoder produces for the mask decoder.
#[derive(Debug, Clone)]
pub struct PromptEmbeddings {
    /// `[B, N, C]`, points first, then box corners, then the embedding prompt's token; `None`
    /// when only a mask was given.
    pub sparse: Option<Tensor<3>>,
    /// `[B, C, E, E]`, or `[1, C, E, E]` (broadcast) when no mask was given.
    pub dense: Tensor<4>,
}

/// Encodes points, boxes and masks.
#[derive(Module, Debug)]
pub struct PromptEncoder {
    /// Random Fourier positional encoding.
    pub pe_layer: PositionEmbeddingRandom,
    /// Label embeddings: 0 negative point, 1 positive point, 2 box top-left, 3 box bottom-right.
    pub point_embeddings: Vec<Embedding>,
    /// Embedding of a padding point (label −1).
    pub not_a_point_embed: Embedding,
    /// Mask-prompt network.
    pub mask_downscaling: MaskDownscaling,
    /// Dense embedding used when there is no mask prompt.
    pub no_mask_embed: Embedding,
    /// External prompt embedding (CLIP) `[D] → [C]`: one more sparse token. Not in the
    /// reference; `None` for the official models.
    pub embedding_proj: Option<Linear>,
    #[module(skip)]
    embed_dim: usize,
    #[module(skip)]
    image_embedding_size: usize,
    #[module(skip)]
    input_image_size: usize,
}

impl PromptEncoder {
    /// The encoder for another input size: embedding grid side `E`, padded input side `S`.
    /// None of the weights depend on them.
    pub(crate) fn set_sizes(&mut self, image_embedding_size: usize, input_image_size: usize) {
        self.image_embedding_size = image_embedding_size;
        self.input_image_size = input_image_size;
    }

    /// Positional encoding of the image-embedding grid: `[1, C, E, E]`.
    pub fn get_dense_pe(&self) -> Tensor<4> {
        let e = self.image_embedding_size;
        self.pe_layer.forward(e, e).unsqueeze::<4>()
    }

    /// Side of a mask prompt (`4E`).
    pub fn mask_input_size(&self) -> usize {
        4 * self.image_embedding_size
    }

    fn embedding_row(embedding: &Embedding) -> Tensor<3> {
        // `[1, C]` table → `[1, 1, C]`, broadcast over batch and points.
        embedding.weight.val().unsqueeze::<3>()
    }

    /// `coords: [B, N, 2]`, `labels: [B, N]` → `[B, N (+1 pad), C]`.
    fn embed_points(&self, points: PointPrompt, pad: bool) -> Tensor<3> {
        let PointPrompt { coords, labels } = points;
        let [b, _, _] = coords.dims();
        let device = coords.device();
        let mut coords = coords + 0.5;
        let mut labels = labels;
        if pad {
            coords = Tensor::cat(vec![coords, Tensor::zeros([b, 1, 2], &device)], 1);
            labels = Tensor::cat(vec![labels, Tensor::full([b, 1], -1, &device)], 1);
        }
        let s = self.input_image_size;
        let pe = self.pe_layer.forward_with_coords(coords, (s, s));
        let label_mask = |value: i64| {
            labels
                .clone()
                .equal_elem(value)
                .float()
                .unsqueeze_dim::<3>(2)
        };
        let dtype = pe.dtype();
        let label_mask = |value: i64| label_mask(value).cast(dtype);
        let is_pad = label_mask(-1);
        let is_neg = label_mask(0);
        let is_pos = label_mask(1);
        // Padding points lose their positional encoding entirely.
        pe * (is_pad.clone().neg() + 1.0)
            + is_pad * Self::embedding_row(&self.not_a_point_embed)
            + is_neg * Self::embedding_row(&self.point_embeddings[0])
            + is_pos * Self::embedding_row(&self.point_embeddings[1])
    }

    /// `boxes: [B, 4]` as `(x0, y0, x1, y1)` → `[B, 2, C]`.
    fn embed_boxes(&self, boxes: Tensor<2>) -> Tensor<3> {
        let [b, _] = boxes.dims();
        let coords = (boxes + 0.5).reshape([b, 2, 2]);
        let s = self.input_image_size;
        let pe = self.pe_layer.forward_with_coords(coords, (s, s));
        let corners = Tensor::cat(
            vec![
                Self::embedding_row(&self.point_embeddings[2]),
                Self::embedding_row(&self.point_embeddings[3]),
            ],
            1,
        );
        pe + corners
    }

    /// Embeds any combination of points, boxes and masks, as the reference. The batch size
    /// comes from the points, else the boxes, else the masks, else 1; all given prompts must
    /// agree on it.
    ///
    /// `masks: [B, 1, 4E, 4E]` low-resolution logits (e.g. a previous prediction).
    pub fn forward(
        &self,
        points: Option<PointPrompt>,
        boxes: Option<Tensor<2>>,
        masks: Option<Tensor<4>>,
    ) -> Result<PromptEmbeddings> {
        self.forward_with_embedding(points, boxes, masks, None)
    }

    /// [`forward`](Self::forward) plus an external prompt embedding `[B, D]` (a CLIP text or
    /// image embedding), alone or with the others; only for a model built with
    /// `prompt_embedding_dim = D`. Points are padded exactly when there are no boxes, as the
    /// reference, so an embedding does not change how the other prompts are encoded.
    pub fn forward_with_embedding(
        &self,
        points: Option<PointPrompt>,
        boxes: Option<Tensor<2>>,
        masks: Option<Tensor<4>>,
        embeddings: Option<Tensor<2>>,
    ) -> Result<PromptEmbeddings> {
        let batch = self.check_prompts(points.as_ref(), boxes.as_ref(), masks.as_ref())?;
        let given = points.is_some() || boxes.is_some() || masks.is_some();
        self.check_embedding(embeddings.as_ref(), given.then_some(batch))?;
        let pad = boxes.is_none();
        let mut parts = Vec::new();
        if let Some(points) = points {
            parts.push(self.embed_points(points, pad));
        }
        if let Some(boxes) = boxes {
            parts.push(self.embed_boxes(boxes));
        }
        if let (Some(e), Some(proj)) = (embeddings, &self.embedding_proj) {
            let e = e.cast(proj.weight.val().dtype());
            parts.push(proj.forward(e).unsqueeze_dim::<3>(1));
        }
        let sparse = (!parts.is_empty()).then(|| Tensor::cat(parts, 1));
        let dense = match masks {
            Some(masks) => self.mask_downscaling.forward(masks),
            None => {
                let e = self.image_embedding_size;
                // One broadcast row for the whole batch: the decoder adds it without copies.
                self.no_mask_embed
                    .weight
                    .val()
                    .reshape([1, self.embed_dim, 1, 1])
                    .expand([1, self.embed_dim, e, e])
            }
        };
        Ok(PromptEmbeddings { sparse, dense })
    }

    /// Validates the embedding prompt against the model and against `others`, the batch size
    /// of the point/box/mask prompts when any were given.
    fn check_embedding(&self, embeddings: Option<&Tensor<2>>, others: Option<usize>) -> Result<()> {
        let Some(e) = embeddings else {
            return Ok(());
        };
        let [b, d] = e.dims();
        let Some(proj) = &self.embedding_proj else {
            return Err(SamError::InvalidInput(
                "this model takes no embedding prompt (its config has no prompt_embedding_dim)"
                    .into(),
            ));
        };
        let [expected, _] = proj.weight.dims();
        if d != expected {
            return Err(SamError::InvalidInput(format!(
                "embedding prompt must be [B, {expected}], got [{b}, {d}]"
            )));
        }
        if let Some(others) = others
            && others != b
        {
            return Err(SamError::InvalidInput(format!(
                "{b} embedding prompts but a batch of {others} point/box/mask prompts"
            )));
        }
        Ok(())
    }

    /// Validates shapes and returns the batch size.
    fn check_prompts(
        &self,
        points: Option<&PointPrompt>,
        boxes: Option<&Tensor<2>>,
        masks: Option<&Tensor<4>>,
    ) -> Result<usize> {
        let bad = |msg: String| Err(SamError::InvalidInput(msg));
        let mut batch = None;
        if let Some(p) = points {
            let [b, n, two] = p.coords.dims();
            if two != 2 {
                return bad(format!(
                    "point coords must be [B, N, 2], got [{b}, {n}, {two}]"
                ));
            }
            let [lb, ln] = p.labels.dims();
            if [lb, ln] != [b, n] {
                return bad(format!(
                    "point labels [{lb}, {ln}] do not match point coords [{b}, {n}, 2]"
                ));
            }
            if n == 0 {
                return bad("point prompt with zero points".into());
            }
            batch = Some(b);
        }
        if let Some(bx) = boxes {
            let [b, four] = bx.dims();
            if four != 4 {
                return bad(format!("boxes must be [B, 4], got [{b}, {four}]"));
            }
            if let Some(pb) = batch
                && pb != b
            {
                return bad(format!(
                    "{b} boxes but {pb} point sets: the batch sizes must agree"
                ));
            }
            batch = Some(b);
        }
        if let Some(m) = masks {
            let [b, c, h, w] = m.dims();
            let s = self.mask_input_size();
            if c != 1 || h != s || w != s {
                return bad(format!(
                    "mask prompt must be [B, 1, {s}, {s}], got [{b}, {c}, {h}, {w}]"
                ));
            }
            if let Some(pb) = batch
                && pb != b
            {
                return bad(format!(
                    "{b} mask prompts but a batch of {pb} point/box prompts"
                ));
            }
            batch = Some(b);
        }
        match batch {
            // Nothing to decode; an empty batch would reach the products as zero-sized
            // operands, which not every backend handles.
            Some(0) => bad("a prompt batch of B = 0: B > 0 prompt sets are needed".into()),
            b => Ok(b.unwrap_or(1)),
        }
    }
}
