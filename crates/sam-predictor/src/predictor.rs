//! The predictor itself.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use sam_data::ResizeLongestSide;
use sam_model::{PointPrompt, Prompts, Sam};

use crate::embedding::ImageEmbedding;
use crate::error::{PredictorError, Result};
use crate::prompt::Prompt;

/// Options of a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictOptions {
    /// Three masks for an ambiguous prompt (true), or the single-mask output.
    pub multimask_output: bool,
    /// Return full-resolution logits instead of thresholded masks.
    pub return_logits: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self {
            multimask_output: true,
            return_logits: false,
        }
    }
}

/// Masks at the original image size.
#[derive(Debug, Clone)]
pub enum MaskOutput {
    /// `logit > 0`, `[B, C, H, W]`.
    Binary(Tensor<4, Bool>),
    /// Logits, `[B, C, H, W]`.
    Logits(Tensor<4>),
}

impl MaskOutput {
    /// The binary masks (thresholding logits if needed).
    pub fn into_binary(self) -> Tensor<4, Bool> {
        match self {
            MaskOutput::Binary(m) => m,
            MaskOutput::Logits(l) => Sam::threshold(l),
        }
    }
}

/// The answer to a batch of `B` prompts, `C` masks each.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Masks at the original image size.
    pub masks: MaskOutput,
    /// Predicted IoU of each mask, `[B, C]`.
    pub iou_predictions: Tensor<2>,
    /// Low-resolution logits `[B, C, 4E, 4E]`, usable as a later `mask_input`.
    pub low_res_logits: Tensor<4>,
}

/// Embeds an image once and answers prompts against it.
#[derive(Debug)]
pub struct SamPredictor {
    model: Sam,
    transform: ResizeLongestSide,
    embedding: Option<ImageEmbedding>,
}

/// Channel order of an interleaved 8-bit image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// Red, green, blue (the model's own order).
    #[default]
    Rgb,
    /// Blue, green, red (OpenCV's `imread`).
    Bgr,
}

impl SamPredictor {
    /// A predictor around a loaded model.
    pub fn new(model: Sam) -> Self {
        let transform = ResizeLongestSide::new(model.config().image_size);
        Self {
            model,
            transform,
            embedding: None,
        }
    }

    /// The model.
    pub fn model(&self) -> &Sam {
        &self.model
    }

    /// The image transform (`ResizeLongestSide(image_size)`).
    pub fn transform(&self) -> ResizeLongestSide {
        self.transform
    }

    fn device(&self) -> Device {
        self.model.device()
    }

    /// Resizes an RGB `height × width × 3` buffer: `[1, 3, h, w]` on the 0–255 scale, with the
    /// resized size.
    pub fn prepare_image(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<(Tensor<4>, (usize, usize))> {
        let (resized, (h, w)) = self.transform.apply_image(rgb, width, height)?;
        let values: Vec<f32> = resized.iter().map(|&v| v as f32).collect();
        let hwc = Tensor::<3>::from_data(TensorData::new(values, [h, w, 3]), &self.device());
        Ok((hwc.permute([2, 0, 1]).unsqueeze::<4>(), (h, w)))
    }

    /// Embeds an image (RGB, any size) and caches the embedding.
    pub fn set_image(&mut self, image: &image::RgbImage) -> Result<()> {
        let (w, h) = image.dimensions();
        self.set_image_rgb(image.as_raw(), w as usize, h as usize)
    }

    /// [`SamPredictor::set_image`] for a raw interleaved buffer in RGB or BGR (OpenCV's) channel
    /// order: the reference's `set_image(image, image_format)`.
    pub fn set_image_with_format(
        &mut self,
        pixels: &[u8],
        width: usize,
        height: usize,
        format: ImageFormat,
    ) -> Result<()> {
        match format {
            ImageFormat::Rgb => self.set_image_rgb(pixels, width, height),
            ImageFormat::Bgr => {
                // A length that is not whole pixels is left for `apply_image` to report.
                let mut rgb = pixels.to_vec();
                rgb.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
                self.set_image_rgb(&rgb, width, height)
            }
        }
    }

    /// [`SamPredictor::set_image`] for a raw interleaved RGB buffer.
    pub fn set_image_rgb(&mut self, rgb: &[u8], width: usize, height: usize) -> Result<()> {
        self.embedding = None;
        let embedding = self.embed_rgb(rgb, width, height)?;
        self.embedding = Some(embedding);
        Ok(())
    }

    /// Embeds an image without caching it.
    pub fn embed_rgb(&self, rgb: &[u8], width: usize, height: usize) -> Result<ImageEmbedding> {
        let (x, input_size) = self.prepare_image(rgb, width, height)?;
        let features = self.model.image_embeddings(self.model.preprocess(x)?)?;
        Ok(ImageEmbedding {
            features,
            original_size: (height, width),
            input_size,
        })
    }

    /// Embeds several images in one encoder batch; use [`SamPredictor::set_embedding`] to prompt
    /// each.
    pub fn embed_images(&self, images: &[&image::RgbImage]) -> Result<Vec<ImageEmbedding>> {
        let mut inputs = Vec::with_capacity(images.len());
        let mut sizes = Vec::with_capacity(images.len());
        for image in images {
            let (w, h) = image.dimensions();
            let (x, input_size) = self.prepare_image(image.as_raw(), w as usize, h as usize)?;
            inputs.push(self.model.preprocess(x)?);
            sizes.push(((h as usize, w as usize), input_size));
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let features = self.model.image_embeddings(Tensor::cat(inputs, 0))?;
        Ok(sizes
            .into_iter()
            .enumerate()
            .map(|(i, (original_size, input_size))| ImageEmbedding {
                features: features.clone().narrow(0, i, 1),
                original_size,
                input_size,
            })
            .collect())
    }

    /// Uses a previously computed (or loaded) embedding.
    pub fn set_embedding(&mut self, embedding: ImageEmbedding) -> Result<()> {
        let c = self.model.config();
        let e = c.embedding_size();
        let dims = embedding.features.dims();
        if dims != [1, c.prompt_embed_dim, e, e] {
            return Err(PredictorError::Model(sam_model::SamError::InvalidInput(
                format!(
                    "image embedding is {dims:?}, the model expects [1, {}, {e}, {e}]",
                    c.prompt_embed_dim
                ),
            )));
        }
        self.embedding = Some(embedding);
        Ok(())
    }

    /// The cached embedding, if an image is set.
    pub fn embedding(&self) -> Option<&ImageEmbedding> {
        self.embedding.as_ref()
    }

    /// Forgets the image.
    pub fn reset_image(&mut self) {
        self.embedding = None;
    }

    /// Masks for one prompt (`B = 1`).
    pub fn predict(&self, prompt: &Prompt, options: PredictOptions) -> Result<Prediction> {
        self.predict_batch(std::slice::from_ref(prompt), options)
    }

    /// Masks for many prompts against the cached embedding in one decoder batch. All prompts
    /// must have the same shape: the same number of points, all or none with a box, all or none
    /// with a mask input. The embedding is shared, never copied per prompt.
    pub fn predict_batch(&self, prompts: &[Prompt], options: PredictOptions) -> Result<Prediction> {
        let embedding = self.embedding.as_ref().ok_or(PredictorError::NoImage)?;
        let batch = self.batch_prompts(prompts, embedding)?;
        let pred =
            self.model
                .predict(embedding.features.clone(), batch, options.multimask_output)?;
        let logits = self.model.postprocess_masks(
            pred.low_res_masks.clone(),
            embedding.input_size,
            embedding.original_size,
        )?;
        let masks = if options.return_logits {
            MaskOutput::Logits(logits)
        } else {
            MaskOutput::Binary(Sam::threshold(logits))
        };
        Ok(Prediction {
            masks,
            iou_predictions: pred.iou_predictions,
            low_res_logits: pred.low_res_masks,
        })
    }

    /// Validates the prompts and turns them into model-frame tensors.
    fn batch_prompts(&self, prompts: &[Prompt], embedding: &ImageEmbedding) -> Result<Prompts> {
        let bad = |m: String| Err(PredictorError::InvalidPrompt(m));
        let Some(first) = prompts.first() else {
            return bad("no prompts given".into());
        };
        let mask_side = self.model.config().mask_input_size();
        let (n, has_box, has_mask) = (
            first.points.len(),
            first.bbox.is_some(),
            first.mask_input.is_some(),
        );
        let embedding_len = first.embedding.as_ref().map(Vec::len);
        if let Some(len) = embedding_len {
            match self.model.config().prompt_embedding_dim {
                None => {
                    return bad(
                        "this model takes no embedding prompt (its config has no prompt_embedding_dim)"
                            .into(),
                    );
                }
                Some(d) if d != len => {
                    return bad(format!(
                        "embedding prompt has {len} values, the model expects {d}"
                    ));
                }
                Some(_) => {}
            }
        }
        for (i, p) in prompts.iter().enumerate() {
            p.validate(mask_side).map_err(|e| match e {
                PredictorError::InvalidPrompt(m) if prompts.len() > 1 => {
                    PredictorError::InvalidPrompt(format!("prompt {i}: {m}"))
                }
                other => other,
            })?;
            let shape = (p.points.len(), p.bbox.is_some(), p.mask_input.is_some());
            if shape != (n, has_box, has_mask)
                || p.embedding.as_ref().map(Vec::len) != embedding_len
            {
                return bad(format!(
                    "prompt {i} differs in shape from prompt 0 (points, box, mask and embedding must match across a batch)"
                ));
            }
        }
        let b = prompts.len();
        if n == 0 && !has_box && !has_mask && embedding_len.is_none() && b > 1 {
            return bad(format!(
                "{b} empty prompts: an empty prompt can only be given alone"
            ));
        }
        let device = self.device();
        let original = embedding.original_size;

        // Coordinates far outside the image are valid prompts, but not past f32's range once
        // rescaled: they would reach the encoder as infinities.
        let too_large = |what: String| {
            bad(format!(
                "{what} is beyond f32's range once rescaled to the model's input"
            ))
        };
        let mut points = None;
        if n > 0 {
            let mut coords = Vec::with_capacity(b * n * 2);
            let mut labels = Vec::with_capacity(b * n);
            for p in prompts {
                let xy: Vec<[f64; 2]> = p.points.iter().map(|q| [q.x, q.y]).collect();
                for [x, y] in self.transform.apply_coords(&xy, original) {
                    // The reference transforms in f64 and then casts to f32.
                    coords.extend([x as f32, y as f32]);
                }
                labels.extend(p.points.iter().map(|q| q.label));
            }
            if let Some(at) = coords.iter().position(|v| !v.is_finite()) {
                let (k, j) = (at / (2 * n), at / 2 % n);
                let q = &prompts[k].points[j];
                return too_large(format!("prompt {k}: point {j} ({:?}, {:?})", q.x, q.y));
            }
            points = Some(PointPrompt {
                coords: Tensor::from_data(TensorData::new(coords, [b, n, 2]), &device),
                labels: Tensor::<2, Int>::from_data(TensorData::new(labels, [b, n]), &device),
            });
        }
        let mut boxes = None;
        if has_box {
            let raw: Vec<[f64; 4]> = prompts.iter().filter_map(|p| p.bbox).collect();
            let values: Vec<f32> = self
                .transform
                .apply_boxes(&raw, original)
                .into_iter()
                .flat_map(|bx| bx.map(|v| v as f32))
                .collect();
            if let Some(at) = values.iter().position(|v| !v.is_finite()) {
                return too_large(format!("prompt {}: box {:?}", at / 4, raw[at / 4]));
            }
            boxes = Some(Tensor::<2>::from_data(
                TensorData::new(values, [b, 4]),
                &device,
            ));
        }
        let masks = has_mask.then(|| {
            let values: Vec<f32> = prompts
                .iter()
                .filter_map(|p| p.mask_input.as_ref())
                .flat_map(|m| m.logits.iter().copied())
                .collect();
            Tensor::<4>::from_data(
                TensorData::new(values, [b, 1, mask_side, mask_side]),
                &device,
            )
        });
        let embeddings = embedding_len.map(|d| {
            let values: Vec<f32> = prompts
                .iter()
                .filter_map(|p| p.embedding.as_ref())
                .flat_map(|e| e.iter().copied())
                .collect();
            Tensor::<2>::from_data(TensorData::new(values, [b, d]), &device)
        });
        Ok(Prompts {
            points,
            boxes,
            masks,
            embeddings,
        })
    }
}
