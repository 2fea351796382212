//! Evaluation: mIoU after 1..N simulated clicks (each at the most interior cell of the error
//! region, the usual deterministic protocol) and with exact box prompts, on any dataset.
//! Validation during training runs the same code.

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use sam_data::dataset::AnnotatedImage;
use sam_data::{DataError, DataLoader, LoaderConfig, TrainSampleConfig, train_sample};
use sam_model::Sam;
use serde::{Deserialize, Serialize};

use crate::batch::{Targets, model_input};
use crate::error::{Result, TrainError};
use crate::interactive::{ClickPolicy, RoundKind, Simulation};

/// The most clicks per object an evaluation simulates.
pub const MAX_CLICKS: usize = 100;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Clicks per object (mIoU is reported after each).
    pub clicks: usize,
    /// Also measure box prompts.
    pub boxes: bool,
    /// Evaluate at most this many images (in dataset order).
    pub max_images: Option<usize>,
    /// Objects per image at most (masks over 90% of the image are left out, as in training).
    pub max_objects: usize,
    /// Images per encoder pass.
    pub batch_size: usize,
    /// Loader threads.
    pub num_workers: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            clicks: 5,
            boxes: true,
            max_images: None,
            max_objects: 64,
            batch_size: 4,
            num_workers: 2,
        }
    }
}

/// mIoU figures of a run (IoU on the decoder's low-resolution grid, over the image's cells).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Images evaluated.
    pub images: usize,
    /// Objects evaluated.
    pub objects: usize,
    /// `miou_clicks[k]`: mIoU after `k + 1` clicks.
    pub miou_clicks: Vec<f64>,
    /// mIoU with the exact box as the prompt.
    pub miou_box: Option<f64>,
    /// Items that could not be read (skipped and counted).
    pub skipped: u64,
}

/// Runs `config` on `dataset` with `sam` (on an inference device: call `valid()` on a training
/// model first). Images are resized as at inference (no augmentation).
///
/// At most [`MAX_CLICKS`] clicks: each is one more decoder pass per object.
pub fn evaluate(
    sam: &Sam,
    dataset: Arc<dyn sam_data::dataset::Dataset<AnnotatedImage, DataError>>,
    config: &EvalConfig,
) -> Result<EvalReport> {
    if !(1..=MAX_CLICKS).contains(&config.clicks) {
        return Err(TrainError::config(
            "eval.clicks",
            format!("{} is not in 1..={MAX_CLICKS}", config.clicks),
        ));
    }
    let s = sam.config().image_size;
    let side = sam.config().mask_input_size();
    let mut data = TrainSampleConfig {
        image_size: s,
        low_res_size: side,
        augment: None,
        ..TrainSampleConfig::default()
    };
    data.prompts.max_masks_per_image = config.max_objects;
    let loader = DataLoader::new(
        dataset,
        move |item, rng| train_sample(item, &data, rng),
        LoaderConfig {
            batch_size: config.batch_size.max(1),
            num_workers: config.num_workers,
            shuffle: false,
            seed: 0,
            drop_last: false,
            skip_errors: true,
            prefetch_batches: 1,
        },
    )?;
    let device = sam.device();
    let mut click_sums = vec![0.0; config.clicks];
    let mut box_sum = 0.0;
    let (mut images, mut objects) = (0, 0);
    let limit = config.max_images.unwrap_or(usize::MAX);
    let mut rounds = vec![RoundKind::Initial];
    rounds.extend(std::iter::repeat_n(RoundKind::Click, config.clicks - 1));
    'outer: for batch in loader.epoch(0)? {
        let batch = batch?;
        let samples: Vec<_> = batch
            .items
            .into_iter()
            .filter(|s| !s.objects.is_empty())
            .collect();
        if samples.is_empty() {
            continue;
        }
        let embeddings = sam.image_embeddings(model_input(sam, &samples, &device)?)?;
        for (b, sample) in samples.iter().enumerate() {
            if images >= limit {
                break 'outer;
            }
            let targets = Targets::new(sample, s, side);
            let embedding = embeddings.clone().narrow(0, b, 1);
            let all: Vec<usize> = (0..sample.objects.len()).collect();
            let sim = |first_box| Simulation {
                sam,
                embedding: embedding.clone(),
                objects: &sample.objects,
                targets: &targets,
                which: all.clone(),
                first_box,
                embeddings: None,
                policy: ClickPolicy::Center,
            };
            // The centre policy draws nothing; the RNG only satisfies the signature.
            let mut rng = StdRng::seed_from_u64(0);
            let points = sim(false).run(&rounds, None, &mut rng)?;
            for (k, round) in points.ious.iter().enumerate() {
                click_sums[k] += round.iter().sum::<f64>();
            }
            if config.boxes {
                let boxes = sim(true).run(&[RoundKind::Initial], None, &mut rng)?;
                box_sum += boxes.ious[0].iter().sum::<f64>();
            }
            images += 1;
            objects += sample.objects.len();
        }
    }
    if objects == 0 {
        // An mIoU over nothing would read as a score of 0 (or 1); say what happened instead.
        return Err(TrainError::config(
            "data",
            format!(
                "no object to evaluate in {images} images ({} unreadable items skipped)",
                loader.skipped_count()
            ),
        ));
    }
    let n = objects as f64;
    Ok(EvalReport {
        images,
        objects,
        miou_clicks: click_sums.iter().map(|v| v / n).collect(),
        miou_box: config.boxes.then_some(box_sum / n),
        skipped: loader.skipped_count(),
    })
}
