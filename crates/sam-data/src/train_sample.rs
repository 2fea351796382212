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

use crate::augment::{AugmentConfig, Geometry, check_image, color_jitter};
use crate::dataset::{AnnotatedImage, Annotation};
use crate::error::{DataError, Result};
use crate::mask_resample::{ColumnSpans, NearestGrid};
use crate::prompt_sampling::{PromptSamplingConfig, noisy_box, select_masks};
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
    /// Objects at least this large (input pixels) keep their mask at the input resolution
    /// ([`TrainObject::mask`]), e.g. for the masked crops of text-prompt training; `None` keeps
    /// none (the masks of 64 objects at 1024² would be 64 MB per image).
    #[serde(default)]
    pub keep_masks_min_area: Option<u64>,
}

impl Default for TrainSampleConfig {
    fn default() -> Self {
        Self {
            image_size: 1024,
            low_res_size: 256,
            augment: Some(AugmentConfig::default()),
            prompts: PromptSamplingConfig::default(),
            keep_masks_min_area: None,
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
    /// The mask on the resized input (`height × width`, row-major), when
    /// [`TrainSampleConfig::keep_masks_min_area`] asks for it.
    pub mask: Option<Vec<bool>>,
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
/// augments or resizes, and draws each object's first prompts.
///
/// The result is that of decoding the chosen masks with [`AnnotatedImage::to_sample`], then
/// [`augment`] (or [`Sample::resize`] when not augmenting), and per object [`mask_box`],
/// [`sample_positive_point`], [`low_res_mask`] and [`noisy_box`], with the same random draws
/// (`tests/train_sample_equivalence.rs` holds that pipeline and checks it). It is computed
/// without full-resolution masks, though: each RLE goes straight to the output grid, and the
/// image is flipped, resized and cropped in one pass, which is what makes SA-1B-sized images
/// with 64 masks affordable.
///
/// [`augment`]: crate::augment::augment
/// [`Sample::resize`]: crate::augment::Sample::resize
/// [`mask_box`]: crate::prompt_sampling::mask_box
/// [`sample_positive_point`]: crate::prompt_sampling::sample_positive_point
/// [`low_res_mask`]: crate::augment::low_res_mask
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
    config.prompts.validate()?;
    let (h, w) = item.size();
    let chosen = select_masks(&item.mask_areas(), (h * w) as u64, &config.prompts, rng);
    let annotations = item.chosen(&chosen)?;
    let geometry = draw_geometry((w, h), config, rng)?;
    let masks = resample_masks(&annotations, (w, h), &geometry);
    let mut image = geometry.apply_to_image(item.image.as_raw(), w, h);
    if let Some(a) = &config.augment {
        color_jitter(&mut image, a, rng);
    }
    let [_, _, w, h] = geometry.window();
    let mut objects = Vec::with_capacity(masks.len());
    for mask in &masks {
        // Resizing down can erase a thin mask; such an object has nothing left to segment.
        let (Some(b), Some(click)) = (mask.bbox(), mask.positive_point(rng)) else {
            continue;
        };
        objects.push(TrainObject {
            gt_low_res: mask.low_res(s, config.low_res_size)?,
            bbox: b.map(|v| v as f64),
            noisy_box: noisy_box(b, h, w, &config.prompts, rng),
            point: [click.x, click.y],
            area: mask.area(),
            mask: config
                .keep_masks_min_area
                .filter(|&min| mask.area() >= min)
                .map(|_| mask.to_bitmap()),
        });
    }
    Ok(TrainSample {
        image_id: item.image_id,
        image,
        width: w,
        height: h,
        objects,
    })
}

/// The flip, resize and crop of `config.augment` for a `w × h` image (checked as `augment`
/// checks them, and drawn as it draws them), or the plain resize to `image_size`.
fn draw_geometry(
    (w, h): (usize, usize),
    config: &TrainSampleConfig,
    rng: &mut impl Rng,
) -> Result<Geometry> {
    let s = config.image_size;
    let Some(a) = &config.augment else {
        let (nh, nw) = ResizeLongestSide::new(s).get_preprocess_shape(h, w);
        if w > 0 && h > 0 && (nh == 0 || nw == 0) {
            // As `ResizeLongestSide::apply_image` (and Pillow) refuse it. (An image without
            // pixels stays an empty sample.)
            return Err(DataError::InvalidImage(format!(
                "a {w}×{h} image resized to longest side {s} would have zero size"
            )));
        }
        return Ok(Geometry {
            flip: false,
            resized: (nw, nh),
            crop: None,
        });
    };
    if a.target_size != s {
        return Err(DataError::InvalidValue(format!(
            "augment.target_size {} differs from image_size {s}",
            a.target_size
        )));
    }
    check_image(w * h * 3, w, h)?;
    a.validate()?;
    Ok(Geometry::draw(w, h, a, rng))
}

/// The chosen masks on the output grid of `geometry`, for a `w × h` source.
fn resample_masks(
    annotations: &[&Annotation],
    (w, h): (usize, usize),
    geometry: &Geometry,
) -> Vec<ColumnSpans> {
    // An image without pixels has no mask to choose, and no grid to map.
    if annotations.is_empty() {
        return Vec::new();
    }
    let grid = NearestGrid::new((w, h), geometry.flip, geometry.resized, geometry.window());
    annotations.iter().map(|a| grid.resample(&a.rle)).collect()
}
