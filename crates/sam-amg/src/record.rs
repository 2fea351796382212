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
        let mut fields = self.measurements();
        fields.insert("segmentation".into(), segmentation);
        Value::Object(fields)
    }

    /// Every field but the segmentation.
    fn measurements(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("area".into(), json!(self.area));
        m.insert("bbox".into(), json!(self.bbox));
        m.insert("predicted_iou".into(), finite_or_null(self.predicted_iou));
        m.insert("point_coords".into(), json!([self.point_coords]));
        m.insert(
            "stability_score".into(),
            finite_or_null(self.stability_score),
        );
        m.insert("crop_box".into(), json!(self.crop_box));
        m
    }

    /// Writes [`Self::to_json`] (with `extra` fields added) to `out` without building the
    /// JSON tree of a binary mask: it goes out a digit at a time, where a tree would hold one
    /// JSON value (~32 bytes) per pixel, gigabytes for a photo's masks.
    pub fn write_json(
        &self,
        out: &mut impl std::io::Write,
        extra: &[(&str, Value)],
    ) -> std::io::Result<()> {
        let Segmentation::Binary { size, mask } = &self.segmentation else {
            let mut j = self.to_json();
            if let Some(obj) = j.as_object_mut() {
                for (k, v) in extra {
                    obj.insert((*k).to_string(), v.clone());
                }
            }
            return serde_json::to_writer(out, &j).map_err(std::io::Error::other);
        };
        let mut fields = self.measurements();
        for (k, v) in extra {
            fields.insert((*k).to_string(), v.clone());
        }
        write!(
            out,
            "{{\"segmentation\":{{\"size\":[{},{}],\"mask\":[",
            size[0], size[1]
        )?;
        for (i, &b) in mask.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(if b { b"1" } else { b"0" })?;
        }
        out.write_all(b"]}")?;
        for (k, v) in &fields {
            write!(out, ",{}:{v}", Value::String(k.clone()))?;
        }
        out.write_all(b"}")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed record is the JSON tree's record, extra fields added.
    #[test]
    fn streamed_records_parse_to_the_tree() {
        let binary = MaskRecord {
            segmentation: Segmentation::Binary {
                size: [2, 3],
                mask: vec![true, false, false, true, true, false],
            },
            area: 3,
            bbox: [0, 0, 1, 1],
            predicted_iou: f32::NAN,
            point_coords: [1.5, 0.5],
            stability_score: 0.9,
            crop_box: [0, 0, 3, 2],
        };
        let rle = MaskRecord {
            segmentation: Segmentation::CocoRle {
                size: [2, 3],
                counts: "0123".into(),
            },
            ..binary.clone()
        };
        for record in [binary, rle] {
            let extra = [("text_score", json!(0.25))];
            let mut out = Vec::new();
            record.write_json(&mut out, &extra).unwrap();
            let parsed: Value = serde_json::from_slice(&out).unwrap();
            let mut expected = record.to_json();
            expected
                .as_object_mut()
                .unwrap()
                .insert("text_score".into(), json!(0.25));
            assert_eq!(parsed, expected);
        }
    }
}
