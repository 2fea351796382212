//! The generator's parameters, with the reference's defaults.

use crate::error::{AmgError, Result};

/// How each mask is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// A row-major boolean mask.
    BinaryMask,
    /// COCO uncompressed RLE (`counts` list).
    UncompressedRle,
    /// COCO compressed RLE (the string pycocotools writes).
    CocoRle,
}

impl OutputMode {
    /// Parses the reference's names `binary_mask`, `uncompressed_rle`, `coco_rle`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "binary_mask" => Ok(Self::BinaryMask),
            "uncompressed_rle" => Ok(Self::UncompressedRle),
            "coco_rle" => Ok(Self::CocoRle),
            other => Err(AmgError::InvalidConfig(format!(
                "output_mode {other:?} (expected binary_mask, uncompressed_rle or coco_rle)"
            ))),
        }
    }
}

/// Parameters of [`crate::SamAutomaticMaskGenerator`]; field names are the reference's.
#[derive(Debug, Clone, PartialEq)]
pub struct AmgConfig {
    /// Points along one side of the grid (`points_per_side²` prompts); `None` needs `point_grids`.
    pub points_per_side: Option<usize>,
    /// Points decoded together (bounds peak memory).
    pub points_per_batch: usize,
    /// Keep masks whose predicted IoU is `>` this (0 disables the filter).
    pub pred_iou_thresh: f32,
    /// Keep masks whose stability score is `>=` this (0 disables the filter).
    pub stability_score_thresh: f32,
    /// Logit offset of the stability score.
    pub stability_score_offset: f32,
    /// Box IoU above which a mask within a crop is a duplicate.
    pub box_nms_thresh: f64,
    /// Layers of crops (layer i has `(2^i)²` crops).
    pub crop_n_layers: usize,
    /// Box IoU above which masks of different crops are duplicates.
    pub crop_nms_thresh: f64,
    /// Overlap of neighbouring crops, as a fraction of the short side (layer 1).
    pub crop_overlap_ratio: f64,
    /// Points per side shrink by this factor each crop layer.
    pub crop_n_points_downscale_factor: usize,
    /// Explicit normalised `(x, y)` grids, one per layer (instead of `points_per_side`).
    pub point_grids: Option<Vec<Vec<[f64; 2]>>>,
    /// Fill holes and remove islands smaller than this many pixels (0 disables).
    pub min_mask_region_area: usize,
    /// Form of each record's `segmentation`.
    pub output_mode: OutputMode,
}

impl Default for AmgConfig {
    fn default() -> Self {
        Self {
            points_per_side: Some(32),
            points_per_batch: 64,
            pred_iou_thresh: 0.88,
            stability_score_thresh: 0.95,
            stability_score_offset: 1.0,
            box_nms_thresh: 0.7,
            crop_n_layers: 0,
            crop_nms_thresh: 0.7,
            crop_overlap_ratio: 512.0 / 1500.0,
            crop_n_points_downscale_factor: 1,
            point_grids: None,
            min_mask_region_area: 0,
            output_mode: OutputMode::BinaryMask,
        }
    }
}

/// The largest point grid side a config may ask for (the reference's default is 32).
pub const MAX_POINTS_PER_SIDE: usize = 1024;

/// The most crop layers a config may ask for; an image also bounds them (see
/// [`crate::SamAutomaticMaskGenerator::generate`]).
pub const MAX_CROP_LAYERS: usize = 16;

impl AmgConfig {
    /// Checks the settings, naming the one at fault.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(AmgError::InvalidConfig(m));
        match (&self.points_per_side, &self.point_grids) {
            (Some(_), Some(_)) | (None, None) => {
                return bad("exactly one of points_per_side or point_grids must be given".into());
            }
            (Some(0), _) => return bad("points_per_side must be positive".into()),
            (Some(n), _) if *n > MAX_POINTS_PER_SIDE => {
                return bad(format!(
                    "points_per_side {n} is more than {MAX_POINTS_PER_SIDE} (a grid of n² prompts)"
                ));
            }
            (None, Some(grids)) => {
                // As the reference, grids past the last layer are not used.
                if grids.len() < self.crop_n_layers + 1 {
                    return bad(format!(
                        "point_grids has {} grids, crop_n_layers {} needs {}",
                        grids.len(),
                        self.crop_n_layers,
                        self.crop_n_layers + 1
                    ));
                }
                if grids
                    .iter()
                    .flatten()
                    .any(|p| !(0.0..=1.0).contains(&p[0]) || !(0.0..=1.0).contains(&p[1]))
                {
                    return bad("point_grids coordinates must lie in [0, 1]".into());
                }
            }
            _ => {}
        }
        if self.crop_n_layers > MAX_CROP_LAYERS {
            return bad(format!(
                "crop_n_layers {} is more than {MAX_CROP_LAYERS} (layer i has 4^i crops)",
                self.crop_n_layers
            ));
        }
        if self.points_per_batch == 0 {
            return bad("points_per_batch must be positive".into());
        }
        if self.crop_n_points_downscale_factor == 0 {
            return bad("crop_n_points_downscale_factor must be positive".into());
        }
        for (name, v) in [
            ("pred_iou_thresh", self.pred_iou_thresh as f64),
            ("stability_score_thresh", self.stability_score_thresh as f64),
            ("stability_score_offset", self.stability_score_offset as f64),
            ("box_nms_thresh", self.box_nms_thresh),
            ("crop_nms_thresh", self.crop_nms_thresh),
            ("crop_overlap_ratio", self.crop_overlap_ratio),
        ] {
            if !v.is_finite() {
                return bad(format!("{name} must be finite, got {v}"));
            }
        }
        if !(0.0..1.0).contains(&self.crop_overlap_ratio) {
            return bad(format!(
                "crop_overlap_ratio must be in [0, 1), got {}",
                self.crop_overlap_ratio
            ));
        }
        Ok(())
    }
}
