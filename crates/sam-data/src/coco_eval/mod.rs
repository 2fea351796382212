//! COCO mask AP: a port of pycocotools' `COCOeval` with `iouType='segm'` (pycocotools 2.0.11,
//! numpy 2), value for value: the same detection order under tied scores (numpy's stable
//! `mergesort`), the same float IoU thresholds (`np.linspace`), the same greedy matching and
//! crowd rules, the same precision interpolation and `searchsorted`, and means summed pairwise
//! as numpy does, so that the twelve summary numbers and the `precision`/`recall` arrays equal
//! pycocotools' (the parity test in `tests/coco_eval.rs` checks every entry).
//!
//! Two entry points: [`evaluate_files`] takes an instances JSON and a results JSON, as
//! `COCOeval(coco, coco.loadRes(results), 'segm')`; [`evaluate`] takes the same data as Rust
//! values ([`GroundTruth`], [`Detection`]), so a caller can score predicted masks without writing
//! JSON.
//!
//! Where pycocotools would crash or silently misbehave on malformed input, this returns an error
//! instead (see [`evaluate`]).

mod accumulate;
mod evaluate;
pub mod iou;
mod json;
mod summarize;

use std::collections::{HashMap, HashSet};
use std::path::Path;

pub use accumulate::Accumulated;
pub use json::{load_detections, load_ground_truth};
pub use summarize::Summary;

use crate::error::{DataError, Result};
use crate::rle::Rle;

/// pycocotools' area ranges `[0², 1e5²]`, `[0², 32²]`, `[32², 96²]`, `[96², 1e5²]`; both ends
/// are inclusive (an object is outside when `area < lo or area > hi`).
pub const AREA_RANGES: [[f64; 2]; 4] =
    [[0.0, 1e10], [0.0, 1024.0], [1024.0, 9216.0], [9216.0, 1e10]];

/// Labels of [`AREA_RANGES`], as `summarize` prints them.
pub const AREA_LABELS: [&str; 4] = ["all", "small", "medium", "large"];

/// numpy's `linspace(start, stop, num, endpoint=True)`: `i * step + start`, the last value
/// `stop` itself. Not `start + i * (stop - start) / (num - 1)`: the rounding differs, and the
/// thresholds must be pycocotools' bit for bit (`.75` must be found among them by `==`).
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// pycocotools' IoU thresholds, `.5:.05:.95` (10 values).
pub fn iou_thresholds() -> Vec<f64> {
    // int(np.round((0.95 - .5) / .05)) + 1 == 10
    linspace(0.5, 0.95, 10)
}

/// pycocotools' recall thresholds, `0:.01:1` (101 values).
pub fn recall_thresholds() -> Vec<f64> {
    linspace(0.0, 1.0, 101)
}

/// An entry of the instances file's `images`: what `annToRLE` needs to rasterise polygons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtImage {
    /// Image id.
    pub id: u64,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// A ground-truth object, its segmentation already an RLE of its image's size (as
/// `COCO.annToRLE` gives it; [`load_ground_truth`] converts polygons and uncompressed RLEs).
#[derive(Debug, Clone, PartialEq)]
pub struct GtObject {
    /// Annotation id (ids must be unique).
    pub id: u64,
    /// The image it belongs to.
    pub image_id: u64,
    /// Its category.
    pub category_id: u64,
    /// The mask.
    pub rle: Rle,
    /// The annotation's `area` field: COCOeval uses it, not the mask's area, for the area ranges.
    pub area: f64,
    /// A crowd region: ignored, matched by any number of detections, IoU over the detection's
    /// area alone.
    pub iscrowd: bool,
}

/// The ground truth: images, category ids and objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroundTruth {
    /// All images (`getImgIds()`), images without objects included.
    pub images: Vec<GtImage>,
    /// All category ids (`getCatIds()`), categories without objects included.
    pub category_ids: Vec<u64>,
    /// The objects, in file order (the order breaks ties in matching).
    pub annotations: Vec<GtObject>,
}

/// A detection, as `loadRes` keeps it. Its id is its position in the list plus one.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The image (must be one of the ground truth's).
    pub image_id: u64,
    /// Its category.
    pub category_id: u64,
    /// The predicted mask, of its image's size.
    pub rle: Rle,
    /// Confidence; higher first. NaN is refused.
    pub score: f64,
    /// The area compared with the area ranges: the mask's (`maskUtils.area`), except for result
    /// files whose first entry has a `bbox`, where `loadRes` takes `w · h` of each box.
    pub area: f64,
}

impl Detection {
    /// A detection with its mask's area, as `loadRes` sets it for segmentation results.
    pub fn new(image_id: u64, category_id: u64, rle: Rle, score: f64) -> Self {
        let area = rle.area() as f64;
        Self {
            image_id,
            category_id,
            rle,
            score,
            area,
        }
    }
}

/// `COCOeval.params`, the parts that can be changed (IoU and recall thresholds and area ranges
/// are pycocotools' defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalParams {
    /// Images to evaluate; `None`: all of the ground truth's. Sorted and deduplicated, as
    /// `np.unique` does.
    pub img_ids: Option<Vec<u64>>,
    /// Categories; `None`: all of the ground truth's, sorted. With `use_cats` sorted and
    /// deduplicated; without, kept in the given order (it is the order objects are pooled in).
    pub cat_ids: Option<Vec<u64>>,
    /// `useCats`: match detections to objects of their own category only. Without it, all
    /// objects and detections of `cat_ids` are pooled per image.
    pub use_cats: bool,
    /// Maximum detections per image; sorted. At least three, distinct: `summarize` reads
    /// `maxDets[0..3]`.
    pub max_dets: Vec<usize>,
}

impl Default for EvalParams {
    fn default() -> Self {
        Self {
            img_ids: None,
            cat_ids: None,
            use_cats: true,
            max_dets: vec![1, 10, 100],
        }
    }
}

/// The parameters an evaluation ran with, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedParams {
    /// Images, sorted.
    pub img_ids: Vec<u64>,
    /// Categories (sorted when `use_cats`).
    pub cat_ids: Vec<u64>,
    /// See [`EvalParams::use_cats`].
    pub use_cats: bool,
    /// Sorted.
    pub max_dets: Vec<usize>,
    /// [`iou_thresholds`].
    pub iou_thrs: Vec<f64>,
    /// [`recall_thresholds`].
    pub rec_thrs: Vec<f64>,
}

/// The result of [`evaluate`]: `COCOeval.eval` and `COCOeval.stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoEval {
    /// What was evaluated.
    pub params: ResolvedParams,
    /// `precision`, `recall` and `scores`.
    pub accumulated: Accumulated,
    /// The twelve numbers of `summarize()`.
    pub summary: Summary,
    /// AP@[.5:.95] of each category (area `all`, the largest `maxDets`), as detectron2 reports
    /// it; -1 where the category has no non-crowd object. Empty without `use_cats`.
    pub per_category_ap: Vec<(u64, f64)>,
}

/// Evaluates instances file `gt_path` against results file `dt_path`, as
/// `COCOeval(COCO(gt), COCO(gt).loadRes(dt), 'segm')` with `params`. Errors name the file at
/// fault ([`DataError::DatasetFile`]); see [`load_ground_truth`], [`load_detections`].
pub fn evaluate_files(
    gt_path: impl AsRef<Path>,
    dt_path: impl AsRef<Path>,
    params: &EvalParams,
) -> Result<CocoEval> {
    let gt = load_ground_truth(gt_path)?;
    let dts = load_detections(dt_path, &gt)?;
    evaluate(&gt, &dts, params)
}

/// `evaluate()`, `accumulate()` and `summarize()` of pycocotools' `COCOeval` for masks.
///
/// Errors ([`DataError::InvalidValue`], naming the id) where pycocotools would assert, crash or
/// compare masks of different sizes: a detection on an image the ground truth lacks, two images
/// or two objects with one id, an object on an unknown image, a mask whose size is not its
/// image's, a NaN score, fewer than three or repeated `max_dets`.
pub fn evaluate(gt: &GroundTruth, dts: &[Detection], params: &EvalParams) -> Result<CocoEval> {
    let params = resolve(gt, params)?;
    check(gt, dts)?;
    let eval_imgs = evaluate::evaluate_images(gt, dts, &params);
    let accumulated = accumulate::accumulate(&eval_imgs, &params);
    let summary = summarize::summarize(&accumulated, &params);
    let per_category_ap = if params.use_cats {
        params
            .cat_ids
            .iter()
            .enumerate()
            .map(|(k, &c)| (c, summarize::category_ap(&accumulated, k)))
            .collect()
    } else {
        Vec::new()
    };
    Ok(CocoEval {
        params,
        accumulated,
        summary,
        per_category_ap,
    })
}

fn invalid(reason: String) -> DataError {
    DataError::InvalidValue(format!("COCO evaluation: {reason}"))
}

fn resolve(gt: &GroundTruth, params: &EvalParams) -> Result<ResolvedParams> {
    let mut img_ids = match &params.img_ids {
        Some(ids) => ids.clone(),
        None => gt.images.iter().map(|i| i.id).collect(),
    };
    img_ids.sort_unstable();
    img_ids.dedup();
    let cat_ids = match &params.cat_ids {
        Some(ids) if !params.use_cats => ids.clone(),
        Some(ids) => sorted_unique(ids),
        None => sorted_unique(&gt.category_ids),
    };
    let mut max_dets = params.max_dets.clone();
    max_dets.sort_unstable();
    if max_dets.len() < 3 || max_dets.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(format!(
            "max_dets {:?}: summarize needs at least three distinct values",
            params.max_dets
        )));
    }
    Ok(ResolvedParams {
        img_ids,
        cat_ids,
        use_cats: params.use_cats,
        max_dets,
        iou_thrs: iou_thresholds(),
        rec_thrs: recall_thresholds(),
    })
}

fn sorted_unique(ids: &[u64]) -> Vec<u64> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Checks what pycocotools takes on trust.
fn check(gt: &GroundTruth, dts: &[Detection]) -> Result<()> {
    let mut sizes = HashMap::with_capacity(gt.images.len());
    for image in &gt.images {
        if sizes
            .insert(image.id, [image.height, image.width])
            .is_some()
        {
            return Err(invalid(format!("image id {} appears twice", image.id)));
        }
    }
    let mut ids = HashSet::with_capacity(gt.annotations.len());
    for o in &gt.annotations {
        if !ids.insert(o.id) {
            return Err(invalid(format!("annotation id {} appears twice", o.id)));
        }
        let size = sizes.get(&o.image_id).ok_or_else(|| {
            invalid(format!(
                "annotation {} refers to image {}, which is not in the ground truth",
                o.id, o.image_id
            ))
        })?;
        if o.rle.size != *size {
            return Err(invalid(format!(
                "annotation {}: mask size {:?}, but image {} is {size:?}",
                o.id, o.rle.size, o.image_id
            )));
        }
        o.rle
            .validate()
            .map_err(|e| invalid(format!("annotation {}: {e}", o.id)))?;
    }
    for (i, d) in dts.iter().enumerate() {
        let size = sizes.get(&d.image_id).ok_or_else(|| {
            invalid(format!(
                "detection {i} is on image {}, which is not in the ground truth",
                d.image_id
            ))
        })?;
        if d.rle.size != *size {
            return Err(invalid(format!(
                "detection {i}: mask size {:?}, but image {} is {size:?}",
                d.rle.size, d.image_id
            )));
        }
        if d.score.is_nan() {
            return Err(invalid(format!("detection {i} has a NaN score")));
        }
        d.rle
            .validate()
            .map_err(|e| invalid(format!("detection {i}: {e}")))?;
    }
    Ok(())
}
