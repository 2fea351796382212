//! COCO mask AP with SAM as the mask head (the paper's §7.4 protocol): each box prompt —
//! ground-truth boxes, or a detector's boxes with their scores — gives one mask (single-mask
//! output), scored by its box's score, and COCOeval (`iouType='segm'`, the exact port in
//! `sam_data::coco_eval`) rates the masks against the instances file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Bool, Tensor};
use sam_data::coco_eval::{CocoEval, Detection, EvalParams, evaluate, load_ground_truth};
use sam_data::dataset::{CocoDataset, Dataset};
use sam_data::{DataError, Rle};
use sam_model::Sam;
use sam_predictor::{PredictOptions, Prompt, SamPredictor};
use serde::Deserialize;

use crate::error::{Result, TrainError};

/// Where the box prompts come from.
#[derive(Debug, Clone, PartialEq)]
pub enum BoxSource {
    /// Every non-crowd ground-truth object's `bbox`, with score 1 (an upper bound: perfect
    /// detection).
    GroundTruth,
    /// A detector's results file: `[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`.
    Detections(PathBuf),
}

/// How to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApConfig {
    /// Box prompts.
    pub boxes: BoxSource,
    /// Evaluate the first this many images of the instances file (all when `None`); AP is then
    /// computed over those images alone.
    pub max_images: Option<usize>,
    /// Boxes per decoder pass.
    pub prompts_per_batch: usize,
}

impl Default for ApConfig {
    fn default() -> Self {
        Self {
            boxes: BoxSource::GroundTruth,
            max_images: None,
            prompts_per_batch: 64,
        }
    }
}

/// One detector result.
#[derive(Debug, Clone, Deserialize)]
struct BoxResult {
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
    score: f64,
}

/// A box prompt in `[x, y, w, h]` pixels with its category and score.
type BoxPrompt = (u64, [f64; 4], f64);

fn read_detections(path: &Path) -> Result<HashMap<u64, Vec<BoxPrompt>>> {
    let err = |reason: String| {
        TrainError::Data(DataError::DatasetFile {
            path: path.to_path_buf(),
            reason,
        })
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let results: Vec<BoxResult> =
        serde_json::from_str(&text).map_err(|e| err(format!("not a COCO results list: {e}")))?;
    let mut by_image: HashMap<u64, Vec<BoxPrompt>> = HashMap::new();
    for (i, r) in results.into_iter().enumerate() {
        let [x, y, w, h] = r.bbox;
        if ![x, y, w, h, r.score].iter().all(|v| v.is_finite()) || w < 0.0 || h < 0.0 {
            return Err(err(format!(
                "result {i} (image {}): bbox {:?} / score {} must be finite with w, h ≥ 0",
                r.image_id, r.bbox, r.score
            )));
        }
        by_image
            .entry(r.image_id)
            .or_default()
            .push((r.category_id, r.bbox, r.score));
    }
    Ok(by_image)
}

/// Masks for `boxes` on the predictor's image, as RLEs of the image's size.
fn box_masks(predictor: &SamPredictor, boxes: &[BoxPrompt], per_batch: usize) -> Result<Vec<Rle>> {
    let mut out = Vec::with_capacity(boxes.len());
    for chunk in boxes.chunks(per_batch.max(1)) {
        let prompts: Vec<Prompt> = chunk
            .iter()
            .map(|(_, [x, y, w, h], _)| Prompt::default().with_box([*x, *y, x + w, y + h]))
            .collect();
        let pred = predictor.predict_batch(
            &prompts,
            PredictOptions {
                multimask_output: false,
                return_logits: false,
            },
        )?;
        let masks: Tensor<4, Bool> = pred.masks.into_binary();
        let [b, _, h, w] = masks.dims();
        let bits: Vec<bool> = masks
            .into_data()
            .try_to_vec()
            .map_err(|e| TrainError::config("masks", format!("{e:?}")))?;
        for k in 0..b {
            out.push(Rle::from_mask(&bits[k * h * w..(k + 1) * h * w], h, w)?);
        }
    }
    Ok(out)
}

/// Predicts a mask per box prompt on every image of the COCO instances file `instances` (images
/// in `images_dir`) and evaluates them with COCOeval.
pub fn coco_mask_ap(
    sam: Sam,
    instances: impl AsRef<Path>,
    images_dir: impl AsRef<Path>,
    config: &ApConfig,
) -> Result<CocoEval> {
    let instances = instances.as_ref();
    let gt = load_ground_truth(instances)?;
    let dataset = CocoDataset::open(instances, images_dir)?;
    let detections = match &config.boxes {
        BoxSource::GroundTruth => None,
        BoxSource::Detections(path) => {
            let by_image = read_detections(path)?;
            let known: std::collections::HashSet<u64> = gt.images.iter().map(|i| i.id).collect();
            if let Some(id) = by_image.keys().find(|id| !known.contains(id)) {
                return Err(TrainError::Data(DataError::DatasetFile {
                    path: path.clone(),
                    reason: format!(
                        "a result is on image {id}, which {} lacks",
                        instances.display()
                    ),
                }));
            }
            Some(by_image)
        }
    };
    let n = config
        .max_images
        .map_or(dataset.len(), |m| m.min(dataset.len()));
    let mut predictor = SamPredictor::new(sam);
    let mut dets = Vec::new();
    let mut evaluated = Vec::with_capacity(n);
    for index in 0..n {
        let item = dataset.get(index)?;
        evaluated.push(item.image_id);
        let boxes: Vec<BoxPrompt> = match &detections {
            None => item
                .annotations
                .iter()
                .filter(|a| !a.iscrowd)
                .map(|a| (a.category_id.unwrap_or(0), a.bbox, 1.0))
                .collect(),
            Some(by_image) => by_image.get(&item.image_id).cloned().unwrap_or_default(),
        };
        if boxes.is_empty() {
            continue;
        }
        predictor.set_image(&item.image)?;
        let masks = box_masks(&predictor, &boxes, config.prompts_per_batch)?;
        for ((category, _, score), rle) in boxes.iter().zip(masks) {
            dets.push(Detection::new(item.image_id, *category, rle, *score));
        }
    }
    let params = EvalParams {
        img_ids: config.max_images.map(|_| evaluated),
        ..EvalParams::default()
    };
    Ok(evaluate(&gt, &dets, &params)?)
}
