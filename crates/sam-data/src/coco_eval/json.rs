//! Reading the instances file (as `COCO(file)` + `annToRLE`) and a results file (as `loadRes`).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{Detection, GroundTruth, GtImage, GtObject};
use crate::error::{DataError, Result};
use crate::polygon::Segmentation;
use crate::rle::Rle;

#[derive(Deserialize)]
struct RawImage {
    id: u64,
    height: usize,
    width: usize,
}

#[derive(Deserialize)]
struct RawCategory {
    id: u64,
}

#[derive(Deserialize)]
struct RawAnnotation {
    id: u64,
    image_id: u64,
    category_id: u64,
    segmentation: Value,
    area: f64,
    #[serde(default)]
    iscrowd: Value,
}

#[derive(Deserialize)]
struct RawGt {
    images: Vec<RawImage>,
    #[serde(default)]
    annotations: Vec<RawAnnotation>,
    #[serde(default)]
    categories: Vec<RawCategory>,
}

#[derive(Deserialize)]
struct RawDetection {
    image_id: u64,
    category_id: u64,
    #[serde(default)]
    segmentation: Option<Value>,
    score: f64,
    #[serde(default)]
    bbox: Option<Vec<f64>>,
}

fn file_error(path: &Path, reason: String) -> DataError {
    DataError::DatasetFile {
        path: path.to_path_buf(),
        reason,
    }
}

/// `iscrowd` as pycocotools reads it (truthiness); absent is 0.
fn crowd_flag(v: &Value) -> Option<bool> {
    match v {
        Value::Null => Some(false),
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|x| x != 0.0),
        _ => None,
    }
}

/// Reads a COCO instances file: `images` (`id`, `height`, `width`), `categories` (`id`) and
/// `annotations` (`id`, `image_id`, `category_id`, `segmentation`, `area`, `iscrowd`; other
/// fields ignored), each segmentation rasterised as `COCO.annToRLE` does (polygons with the
/// image's size, uncompressed and compressed RLEs as they are).
///
/// Errors ([`DataError::DatasetFile`] naming the file, and the annotation where one is at
/// fault): unreadable or malformed JSON, duplicate image or annotation ids, an annotation of an
/// unknown image, a segmentation that does not fit its image, an `iscrowd` that is not a flag.
pub fn load_ground_truth(path: impl AsRef<Path>) -> Result<GroundTruth> {
    let path = path.as_ref();
    let err = |reason: String| file_error(path, reason);
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let raw: RawGt = crate::json::from_slice(&bytes)
        .map_err(|e| err(format!("malformed COCO instances JSON: {e}")))?;
    drop(bytes);
    let images: Vec<GtImage> = raw
        .images
        .iter()
        .map(|i| GtImage {
            id: i.id,
            height: i.height,
            width: i.width,
        })
        .collect();
    let mut sizes = std::collections::HashMap::with_capacity(images.len());
    for i in &images {
        if sizes.insert(i.id, (i.height, i.width)).is_some() {
            return Err(err(format!("image id {} appears twice", i.id)));
        }
    }
    let mut ids = std::collections::HashSet::with_capacity(raw.annotations.len());
    let annotations = raw
        .annotations
        .into_iter()
        .map(|a| {
            let at = |reason: String| err(format!("annotation {}: {reason}", a.id));
            if !ids.insert(a.id) {
                return Err(at("the id appears twice".into()));
            }
            let &(h, w) = sizes
                .get(&a.image_id)
                .ok_or_else(|| at(format!("image {} is not in `images`", a.image_id)))?;
            let rle = Segmentation::from_json(&a.segmentation)
                .and_then(|s| s.to_rle(h, w))
                .map_err(|e| at(e.to_string()))?;
            let iscrowd = crowd_flag(&a.iscrowd)
                .ok_or_else(|| at(format!("iscrowd {} is not a flag", a.iscrowd)))?;
            Ok(GtObject {
                id: a.id,
                image_id: a.image_id,
                category_id: a.category_id,
                rle,
                area: a.area,
                iscrowd,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GroundTruth {
        images,
        category_ids: raw.categories.iter().map(|c| c.id).collect(),
        annotations,
    })
}

/// Reads a results file as `gt.loadRes(path)` does for masks: a list of `{image_id,
/// category_id, segmentation: {size, counts: "<compressed RLE>"}, score}` (other fields
/// ignored). Detections are numbered from 1 in file order.
///
/// As `loadRes`, when the first entry has a non-empty `bbox`, each detection's area is its
/// box's `w · h`, not its mask's (drop the boxes from the file to get mask areas, as
/// detectron2 does).
///
/// Errors ([`DataError::DatasetFile`] naming the file, and the entry where one is at fault):
/// unreadable or malformed JSON, not a list, a detection on an image `gt` lacks (pycocotools
/// asserts), a segmentation that is not a compressed RLE of its image's size, a missing or
/// short `bbox` when the first entry has one.
pub fn load_detections(path: impl AsRef<Path>, gt: &GroundTruth) -> Result<Vec<Detection>> {
    let path = path.as_ref();
    let err = |reason: String| file_error(path, reason);
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let raw: Vec<RawDetection> = crate::json::from_slice(&bytes).map_err(|e| {
        err(format!(
            "malformed results JSON (a list of detections): {e}"
        ))
    })?;
    drop(bytes);
    let sizes: std::collections::HashMap<u64, [usize; 2]> = gt
        .images
        .iter()
        .map(|i| (i.id, [i.height, i.width]))
        .collect();
    let box_areas = raw
        .first()
        .is_some_and(|d| d.bbox.as_ref().is_some_and(|b| !b.is_empty()));
    raw.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let at = |reason: String| err(format!("detection {i}: {reason}"));
            let size = sizes.get(&d.image_id).ok_or_else(|| {
                at(format!(
                    "image {} is not in the ground truth (results do not correspond to it)",
                    d.image_id
                ))
            })?;
            let seg = d
                .segmentation
                .as_ref()
                .ok_or_else(|| at("no segmentation".into()))?;
            let rle = match Segmentation::from_json(seg).map_err(|e| at(e.to_string()))? {
                Segmentation::Compressed { size: s, counts } => {
                    if s != *size {
                        return Err(at(format!(
                            "mask size {s:?}, but image {} is {size:?}",
                            d.image_id
                        )));
                    }
                    Rle::from_coco_string(&counts, s).map_err(|e| at(e.to_string()))?
                }
                _ => return Err(at("segmentation is not a compressed RLE".into())),
            };
            let mut det = Detection::new(d.image_id, d.category_id, rle, d.score);
            if box_areas {
                det.area = match d.bbox.as_deref() {
                    Some([_, _, w, h, ..]) => w * h,
                    _ => {
                        return Err(at(
                            "no [x, y, w, h] bbox, though the first detection has one".into(),
                        ));
                    }
                };
            }
            Ok(det)
        })
        .collect()
}
