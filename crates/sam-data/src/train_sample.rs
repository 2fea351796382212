//! What a training step consumes per image: the model input (resized, possibly augmented) and,
//! per object, the ground truth at the decoder's low resolution with the first prompts drawn
//! from the exact mask. Produced by [`train_sample`], the transform a [`DataLoader`] runs.
//!
//! Full-resolution masks are not kept (64 objects × 1024² would be 64 MB per image): the loss
//! and the corrective clicks of later rounds work on the low-resolution ground truth.
//!
//! [`DataLoader`]: crate::loader::DataLoader

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentConfig, augment, low_res_mask};
use crate::dataset::AnnotatedImage;
use crate::error::{DataError, Result};
use crate::prompt_sampling::{
    PromptSamplingConfig, mask_box, noisy_box, sample_positive_point, select_masks,
};
use crate::transforms::ResizeLongestSide;

/// How images become training samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSampleConfig {
    /// The model's input side (the longest image side after resizing).
    pub image_size: usize,
    /// The side of the decoder's low-resolution masks (`4 ×` the embedding side).
    pub low_res_size: usize,
    /// Flip, scale and colour jitter; `None` resizes the longest side to `image_size` only, as
    /// inference does (evaluation).
    pub augment: Option<AugmentConfig>,
    /// Mask selection and box noise.
    pub prompts: PromptSamplingConfig,
}

impl Default for TrainSampleConfig {
    fn default() -> Self {
        Self {
            image_size: 1024,
            low_res_size: 256,
            augment: Some(AugmentConfig::default()),
            prompts: PromptSamplingConfig::default(),
        }
    }
}

/// One object of a [`TrainSample`]. Coordinates are pixels of the resized input.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainObject {
    /// Ground truth on the padded `image_size²` input averaged to `low_res_size²`, row-major
    /// fractions in `[0, 1]`.
    pub gt_low_res: Vec<f32>,
    /// The mask's exact box `[x0, y0, x1, y1]` (exclusive ends).
    pub bbox: [f64; 4],
    /// The box with the paper's noise, for a box prompt.
    pub noisy_box: [f64; 4],
    /// A foreground pixel drawn uniformly, for a first point prompt.
    pub point: [f64; 2],
    /// The mask's area in input pixels.
    pub area: u64,
}

/// One image ready for a training step.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSample {
    /// The source image's id.
    pub image_id: u64,
    /// Resized RGB, `height × width × 3`, both sides ≤ `image_size` (normalisation and padding
    /// are the model's `preprocess`).
    pub image: Vec<u8>,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// The objects to train on (possibly none, e.g. when every mask was cropped away).
    pub objects: Vec<TrainObject>,
}

/// Selects up to `prompts.max_masks_per_image` objects (dropping those over the area limit),
/// decodes their masks, augments or resizes, and draws each object's first prompts.
pub fn train_sample(
    item: AnnotatedImage,
    config: &TrainSampleConfig,
    rng: &mut impl Rng,
) -> Result<TrainSample> {
    let s = config.image_size;
    if s == 0 || config.low_res_size == 0 || !s.is_multiple_of(config.low_res_size) {
        return Err(DataError::InvalidValue(format!(
            "image_size {s} must be a positive multiple of low_res_size {}",
            config.low_res_size
        )));
    }
    let (h, w) = item.size();
    let chosen = select_masks(&item.mask_areas(), (h * w) as u64, &config.prompts, rng);
    let mut sample = item.to_sample(&chosen)?;
    sample = match &config.augment {
        Some(a) => {
            if a.target_size != s {
                return Err(DataError::InvalidValue(format!(
                    "augment.target_size {} differs from image_size {s}",
                    a.target_size
                )));
            }
            augment(sample, a, rng)?
        }
        None => {
            let (nh, nw) = ResizeLongestSide::new(s).get_preprocess_shape(h, w);
            sample.resize(nw, nh);
            sample
        }
    };
    let (w, h) = (sample.width, sample.height);
    let mut objects = Vec::with_capacity(sample.masks.len());
    for mask in &sample.masks {
        // Resizing down can erase a thin mask; such an object has nothing left to segment.
        let (Some(b), Some(click)) = (mask_box(mask, w), sample_positive_point(mask, w, rng))
        else {
            continue;
        };
        objects.push(TrainObject {
            gt_low_res: low_res_mask(mask, h, w, s, config.low_res_size)?,
            bbox: b.map(|v| v as f64),
            noisy_box: noisy_box(b, h, w, &config.prompts, rng),
            point: [click.x, click.y],
            area: mask.iter().filter(|&&m| m).count() as u64,
        });
    }
    Ok(TrainSample {
        image_id: item.image_id,
        image: sample.image,
        width: w,
        height: h,
        objects,
    })
}
