//! The item every dataset yields: a decoded image with its objects as RLEs. Masks stay
//! run-length encoded until a training transform picks the objects it uses, because an SA-1B
//! image holds ~100 masks of ~3 Mpx each.

use std::path::PathBuf;

use crate::augment::Sample;
use crate::error::{DataError, Result};
use crate::rle::Rle;

/// One object of an annotated image, as SA-1B and COCO describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// The annotation's id in its file.
    pub id: u64,
    /// The mask at the image's size (`size == [height, width]`).
    pub rle: Rle,
    /// `[x, y, w, h]` as written in the file.
    pub bbox: [f64; 4],
    /// Pixel area as written in the file.
    pub area: f64,
    /// COCO's crowd flag (always false in SA-1B).
    pub iscrowd: bool,
    /// COCO category (none in SA-1B).
    pub category_id: Option<u64>,
    /// SA-1B: the data engine's predicted IoU.
    pub predicted_iou: Option<f64>,
    /// SA-1B: the data engine's stability score.
    pub stability_score: Option<f64>,
    /// SA-1B: the point(s) that produced the mask, `(x, y)`.
    pub point_coords: Vec<[f64; 2]>,
    /// SA-1B: the crop the mask was generated in, `[x, y, w, h]`.
    pub crop_box: Option<[f64; 4]>,
    /// A caption of the object where the file has one (the synthetic shapes dataset does,
    /// e.g. "a small red circle"); SA-1B and COCO have none.
    pub caption: Option<String>,
}

/// A decoded RGB image and its objects.
#[derive(Clone)]
pub struct AnnotatedImage {
    /// The image's id in its annotation file.
    pub image_id: u64,
    /// The image file it was decoded from.
    pub path: PathBuf,
    /// 8-bit RGB pixels.
    pub image: image::RgbImage,
    /// The objects, in file order.
    pub annotations: Vec<Annotation>,
}

// Pixels and masks would flood any log; the summary is what a reader of a failure needs.
impl std::fmt::Debug for AnnotatedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnotatedImage")
            .field("image_id", &self.image_id)
            .field("path", &self.path)
            .field("size", &(self.image.width(), self.image.height()))
            .field("annotations", &self.annotations.len())
            .finish()
    }
}

impl AnnotatedImage {
    /// `(height, width)` of the image.
    pub fn size(&self) -> (usize, usize) {
        (self.image.height() as usize, self.image.width() as usize)
    }

    /// Areas of the objects' masks (from the RLEs, not the file's `area` field), for
    /// `prompt_sampling::select_masks`.
    pub fn mask_areas(&self) -> Vec<u64> {
        self.annotations.iter().map(|a| a.rle.area()).collect()
    }

    /// A [`Sample`] holding the chosen objects, masks decoded. Boxes become `[x0, y0, x1, y1]`
    /// with exclusive ends, taken from the decoded mask so that they agree with it exactly;
    /// points are the annotation's `point_coords`.
    pub fn to_sample(&self, objects: &[usize]) -> Result<Sample> {
        let chosen = self.chosen(objects)?;
        let (h, w) = self.size();
        let mut sample = Sample {
            image: self.image.as_raw().clone(),
            width: w,
            height: h,
            masks: Vec::with_capacity(objects.len()),
            boxes: Vec::with_capacity(objects.len()),
            points: Vec::with_capacity(objects.len()),
        };
        for a in chosen {
            let mask = a.rle.to_mask()?;
            let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
            for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
                let (x, y) = (i % w, i / w);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
            let bbox = if x1 > x0 {
                [x0 as f64, y0 as f64, x1 as f64, y1 as f64]
            } else {
                [0.0; 4]
            };
            sample.masks.push(mask);
            sample.boxes.push(bbox);
            sample.points.push(a.point_coords.clone());
        }
        Ok(sample)
    }

    /// The annotations `objects` names, in that order, once every mask is known to have the
    /// image's size and each chosen RLE to be valid. Fails as [`to_sample`](Self::to_sample)
    /// fails, at the same object.
    pub(crate) fn chosen(&self, objects: &[usize]) -> Result<Vec<&Annotation>> {
        self.check_sizes()?;
        objects
            .iter()
            .map(|&i| {
                let a = self
                    .annotations
                    .get(i)
                    .ok_or_else(|| DataError::DatasetFile {
                        path: self.path.clone(),
                        reason: format!(
                            "object {i} requested, the image has {}",
                            self.annotations.len()
                        ),
                    })?;
                a.rle.validate()?;
                Ok(a)
            })
            .collect()
    }

    /// Checks that every mask has the image's size; `Err` names the file and the annotation.
    pub fn check_sizes(&self) -> Result<()> {
        let (h, w) = self.size();
        for a in &self.annotations {
            if a.rle.size != [h, w] {
                return Err(DataError::DatasetFile {
                    path: self.path.clone(),
                    reason: format!(
                        "annotation {}: mask size {:?} but the image is {h}×{w}",
                        a.id, a.rle.size
                    ),
                });
            }
        }
        Ok(())
    }
}
