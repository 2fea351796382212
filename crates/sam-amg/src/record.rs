//! Output records, as the reference's dictionaries.

use sam_data::Rle;
use serde_json::{Value, json};

/// A mask in the configured output form.
#[derive(Debug, Clone, PartialEq)]
pub enum Segmentation {
    /// Row-major `h × w` mask.
    Binary {
        /// `[h, w]`.
        size: [usize; 2],
        /// `h · w` values.
        mask: Vec<bool>,
    },
    /// COCO uncompressed RLE.
    UncompressedRle(Rle),
    /// COCO compressed RLE.
    CocoRle {
        /// `[h, w]`.
        size: [usize; 2],
        /// pycocotools' string.
        counts: String,
    },
}

/// One generated mask and its measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskRecord {
    /// The mask.
    pub segmentation: Segmentation,
    /// Foreground pixels.
    pub area: u64,
    /// `[x, y, w, h]` with `w = x1 − x0` of the inclusive box (one less than the pixel extent, as
    /// the reference).
    pub bbox: [i64; 4],
    /// The model's predicted IoU.
    pub predicted_iou: f32,
    /// The prompt point, in image pixels.
    pub point_coords: [f64; 2],
    /// The stability score.
    pub stability_score: f32,
    /// The crop this mask came from, `[x, y, w, h]`.
    pub crop_box: [i64; 4],
}

fn finite_or_null(v: f32) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

impl MaskRecord {
    /// The record as the reference's JSON (what `scripts/amg.py` writes; RLE forms are what
    /// pycocotools reads).
    pub fn to_json(&self) -> Value {
        let segmentation = match &self.segmentation {
            Segmentation::Binary { size, mask } => json!({
                "size": size,
                "mask": mask.iter().map(|&b| b as u8).collect::<Vec<_>>(),
            }),
            Segmentation::UncompressedRle(rle) => json!({"size": rle.size, "counts": rle.counts}),
            Segmentation::CocoRle { size, counts } => json!({"size": size, "counts": counts}),
        };
        json!({
            "segmentation": segmentation,
            "area": self.area,
            "bbox": self.bbox,
            "predicted_iou": finite_or_null(self.predicted_iou),
            "point_coords": [self.point_coords],
            "stability_score": finite_or_null(self.stability_score),
            "crop_box": self.crop_box,
        })
    }

    /// The mask as a row-major boolean image.
    pub fn mask(&self) -> sam_data::Result<Vec<bool>> {
        match &self.segmentation {
            Segmentation::Binary { mask, .. } => Ok(mask.clone()),
            Segmentation::UncompressedRle(rle) => rle.to_mask(),
            Segmentation::CocoRle { size, counts } => {
                Rle::from_coco_string(counts, *size)?.to_mask()
            }
        }
    }
}
