//! Contrastive training of a CLIP on captioned masked crops (InfoNCE, as CLIP was trained), for
//! the text-prompt demo: no pretrained CLIP can be downloaded here, so a tiny one learns the
//! synthetic shapes' captions ("a red triangle") from crops of their masks, made exactly as
//! SAM's text-prompt training makes its prompts (App. D.5: expanded square crop, pixels outside
//! the mask zeroed half of the time, the class token restricted to the object's patches).
//!
//! Captions repeat within a batch (two red triangles), so the targets are soft: every pair with
//! the same caption is a positive, weighted equally.

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sam_data::dataset::AnnotatedImage;

use crate::error::{ClipError, Result};
use crate::image_processor::{ClipImageProcessor, PixelValues};
use crate::masked_crop::{masked_crop, patch_mask};
use crate::model::ClipModel;
use crate::tokenizer::ClipTokenizer;

/// One training or evaluation example.
#[derive(Debug, Clone)]
pub struct CaptionedCrop {
    /// `[3, S, S]` pixels.
    pub pixels: PixelValues,
    /// The object's patches (the class token's restriction).
    pub patches: Vec<bool>,
    /// The caption.
    pub caption: String,
}

/// How crops are drawn from annotated images.
#[derive(Debug, Clone, PartialEq)]
pub struct CropConfig {
    /// Masks smaller than this (pixels) are left out (the paper: 100²).
    pub min_area: u64,
    /// Box expansion factors are drawn uniformly from this range (the paper: `[1, 2]`).
    pub expand: (f64, f64),
    /// Probability of zeroing the pixels outside the mask (the paper: 0.5).
    pub zero_outside_prob: f64,
}

impl Default for CropConfig {
    fn default() -> Self {
        Self {
            min_area: 100 * 100,
            expand: (1.0, 2.0),
            zero_outside_prob: 0.5,
        }
    }
}

impl CropConfig {
    /// Draws `(expand, zero_outside)` for one crop.
    pub fn draw(&self, rng: &mut impl Rng) -> (f64, bool) {
        let (lo, hi) = self.expand;
        let expand = if hi > lo {
            rng.random_range(lo..=hi)
        } else {
            lo
        };
        (
            expand,
            rng.random_bool(self.zero_outside_prob.clamp(0.0, 1.0)),
        )
    }
}

/// The caption CLIP learns for a synthetic-shapes annotation: its caption without the size
/// word ("a small red circle" → "a red circle"), since a crop around the mask cannot show how
/// large the object is in its image.
pub fn shape_caption(caption: &str) -> String {
    caption
        .split_whitespace()
        .filter(|w| !matches!(*w, "small" | "medium" | "large"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One crop per captioned annotation of `item` at least `config.min_area` large, with captions
/// mapped by `caption`.
pub fn captioned_crops(
    item: &AnnotatedImage,
    processor: &ClipImageProcessor,
    grid: usize,
    config: &CropConfig,
    caption: impl Fn(&str) -> String,
    rng: &mut impl Rng,
) -> Result<Vec<CaptionedCrop>> {
    let (h, w) = (item.image.height() as usize, item.image.width() as usize);
    let mut out = Vec::new();
    for a in &item.annotations {
        let Some(text) = &a.caption else { continue };
        if (a.area as u64) < config.min_area {
            continue;
        }
        let mask = a
            .rle
            .to_mask()
            .map_err(|e| ClipError::InvalidInput(format!("annotation {}: {e}", a.id)))?;
        let (expand, zero) = config.draw(rng);
        let at = |e: ClipError| ClipError::InvalidInput(format!("annotation {}: {e}", a.id));
        let crop =
            masked_crop(item.image.as_raw(), w, h, &mask, expand, zero, processor).map_err(at)?;
        out.push(CaptionedCrop {
            patches: patch_mask(&mask, w, h, crop.crop_box, grid).map_err(at)?,
            pixels: crop.pixels,
            caption: caption(text),
        });
    }
    Ok(out)
}

/// Settings of [`train_contrastive`].
#[derive(Debug, Clone, PartialEq)]
pub struct ContrastiveConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Crops per step.
    pub batch_size: usize,
    /// Peak learning rate (linear warmup, then cosine to a tenth).
    pub lr: f64,
    /// Warmup steps.
    pub warmup_steps: usize,
    /// AdamW weight decay.
    pub weight_decay: f32,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for ContrastiveConfig {
    fn default() -> Self {
        Self {
            steps: 600,
            batch_size: 64,
            lr: 1e-3,
            warmup_steps: 50,
            weight_decay: 0.05,
            seed: 0,
        }
    }
}

/// The learning rate at `step`.
fn lr_at(config: &ContrastiveConfig, step: usize) -> f64 {
    if step < config.warmup_steps {
        return config.lr * (step + 1) as f64 / config.warmup_steps as f64;
    }
    let t = (step - config.warmup_steps) as f64
        / (config.steps.saturating_sub(config.warmup_steps)).max(1) as f64;
    let min = config.lr / 10.0;
    min + (config.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
}

/// The symmetric InfoNCE loss of a batch with soft targets (equal captions are positives):
/// `logits: [B, B]` image × text.
pub fn info_nce(logits: Tensor<2>, captions: &[String]) -> Tensor<1> {
    let b = captions.len();
    let mut targets = vec![0f32; b * b];
    for i in 0..b {
        let same: Vec<usize> = (0..b).filter(|&j| captions[j] == captions[i]).collect();
        for &j in &same {
            targets[i * b + j] = 1.0 / same.len() as f32;
        }
    }
    let t = Tensor::<2>::from_data(TensorData::new(targets, [b, b]), &logits.device());
    let image = -(log_softmax(logits.clone(), 1) * t.clone()).sum() / b as f64;
    let text = -(log_softmax(logits.transpose(), 1) * t).sum() / b as f64;
    (image + text) / 2.0
}

/// What [`train_contrastive`] reports after each step.
#[derive(Debug, Clone, Copy)]
pub struct ContrastiveStep {
    /// Step index.
    pub step: usize,
    /// The batch's loss.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// Trains `model` (on an autodiff device) on `crops` with InfoNCE; returns the trained model
/// (on the same device). Every crop's caption must tokenize.
pub fn train_contrastive(
    model: ClipModel,
    tokenizer: &ClipTokenizer,
    crops: &[CaptionedCrop],
    config: &ContrastiveConfig,
    mut on_step: impl FnMut(ContrastiveStep),
) -> Result<ClipModel> {
    if crops.len() < 2 || config.batch_size < 2 || config.steps == 0 {
        return Err(ClipError::InvalidInput(format!(
            "contrastive training needs ≥ 2 crops, a batch of ≥ 2 and ≥ 1 step (got {} crops, \
             batch {}, {} steps)",
            crops.len(),
            config.batch_size,
            config.steps
        )));
    }
    let device = model.device();
    let ids: Vec<Vec<u32>> =
        tokenizer.encode_batch(&crops.iter().map(|c| c.caption.as_str()).collect::<Vec<_>>())?;
    let mut optim = AdamWConfig::new()
        .with_weight_decay(config.weight_decay)
        .init();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..crops.len()).collect();
    let mut at = order.len();
    let mut model = model;
    for step in 0..config.steps {
        let mut batch = Vec::with_capacity(config.batch_size);
        while batch.len() < config.batch_size.min(crops.len()) {
            if at == order.len() {
                order.shuffle(&mut rng);
                at = 0;
            }
            batch.push(order[at]);
            at += 1;
        }
        let pixels: Vec<PixelValues> = batch.iter().map(|&i| crops[i].pixels.clone()).collect();
        let patches: Vec<Vec<bool>> = batch.iter().map(|&i| crops[i].patches.clone()).collect();
        let texts: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
        let captions: Vec<String> = batch.iter().map(|&i| crops[i].caption.clone()).collect();
        let image =
            model.get_image_features_restricted(PixelValues::batch(&pixels, &device)?, &patches)?;
        let text = model.get_text_features(&texts)?;
        let logits = model.logits(image, text).logits_per_image;
        let loss = info_nce(logits, &captions);
        let value = loss.clone().into_scalar::<f64>();
        if !value.is_finite() {
            return Err(ClipError::InvalidInput(format!(
                "contrastive loss is {value} at step {step}"
            )));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = lr_at(config, step);
        model = optim.step(lr, model, grads);
        // CLIP clamps the learned temperature at 100 after each step (`logit_scale` to
        // [0, ln 100]); the parameter keeps its id, so the optimizer's state stays with it.
        model.logit_scale = model
            .logit_scale
            .map(|t| t.clamp(0.0, 100f64.ln()).detach().require_grad());
        on_step(ContrastiveStep {
            step,
            loss: value,
            lr,
        });
    }
    Ok(model)
}

/// Caption retrieval accuracy: the share of `crops` whose most similar caption among
/// `captions` (by CLIP's cosine similarity) is their own. `model` may be on any device.
pub fn retrieval_accuracy(
    model: &ClipModel,
    tokenizer: &ClipTokenizer,
    crops: &[CaptionedCrop],
    captions: &[String],
) -> Result<f64> {
    if crops.is_empty() || captions.is_empty() {
        return Ok(0.0);
    }
    let device: Device = model.device();
    let ids = tokenizer.encode_batch(captions)?;
    let text = model.get_text_features(&ids)?;
    let mut correct = 0usize;
    for chunk in crops.chunks(64) {
        let pixels: Vec<PixelValues> = chunk.iter().map(|c| c.pixels.clone()).collect();
        let patches: Vec<Vec<bool>> = chunk.iter().map(|c| c.patches.clone()).collect();
        let image =
            model.get_image_features_restricted(PixelValues::batch(&pixels, &device)?, &patches)?;
        let logits = model.logits(image, text.clone()).logits_per_image;
        let best = logits.argmax(1).into_data().convert::<i64>();
        for (c, &k) in chunk
            .iter()
            .zip(best.iter::<i64>().collect::<Vec<_>>().iter())
        {
            if captions.get(k as usize) == Some(&c.caption) {
                correct += 1;
            }
        }
    }
    Ok(correct as f64 / crops.len() as f64)
}
