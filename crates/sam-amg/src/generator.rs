//! `SamAutomaticMaskGenerator`.

use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;
use sam_data::Rle;
use sam_model::{MASK_THRESHOLD, PointPrompt, Prompts, Sam};
use sam_predictor::{ImageEmbedding, SamPredictor};

use crate::config::{AmgConfig, OutputMode};
use crate::crops::generate_crop_boxes;
use crate::error::{AmgError, Result};
use crate::mask_ops::{batched_mask_to_box, is_box_near_crop_edge};
use crate::mask_postprocess::{MaskUpscaler, Placement, Scratch};
use crate::nms::nms;
use crate::point_grid::build_all_layer_point_grids;
use crate::record::{MaskRecord, Segmentation};
use crate::small_regions::{RegionMode, remove_small_regions};

/// A candidate mask, kept as an RLE of the full image to bound memory.
#[derive(Debug, Clone)]
struct Candidate {
    rle: Rle,
    /// Inclusive `[x0, y0, x1, y1]` in image pixels.
    bbox: [i64; 4],
    iou: f32,
    point: [f64; 2],
    stability: f32,
    crop_box: [usize; 4],
}

/// Generates masks for a whole image.
#[derive(Debug)]
pub struct SamAutomaticMaskGenerator {
    predictor: SamPredictor,
    config: AmgConfig,
    point_grids: Vec<Vec<[f64; 2]>>,
}

fn as_box_f32(b: &[i64; 4]) -> [f32; 4] {
    b.map(|v| v as f32)
}

fn xyxy_to_xywh(b: [i64; 4]) -> [i64; 4] {
    [b[0], b[1], b[2] - b[0], b[3] - b[1]]
}

impl SamAutomaticMaskGenerator {
    /// A generator around a loaded model.
    pub fn new(model: Sam, config: AmgConfig) -> Result<Self> {
        config.validate()?;
        let point_grids = match (&config.points_per_side, &config.point_grids) {
            (Some(n), _) => build_all_layer_point_grids(
                *n,
                config.crop_n_layers,
                config.crop_n_points_downscale_factor,
            ),
            (None, Some(grids)) => grids.clone(),
            (None, None) => unreachable!("validated above"),
        };
        Ok(Self {
            predictor: SamPredictor::new(model),
            config,
            point_grids,
        })
    }

    /// The settings.
    pub fn config(&self) -> &AmgConfig {
        &self.config
    }

    /// Masks for an RGB image, in the reference's output order (of equal-score masks, as long
    /// as no NMS sees more than 1,000 of them: see [`crate::nms`]). An image where nothing
    /// survives gives an empty list (the reference raises an `IndexError` there with crops).
    /// More crop layers than the image can be cut into is an error.
    pub fn generate(&self, image: &image::RgbImage) -> Result<Vec<MaskRecord>> {
        self.generate_with_progress(image, |_, _| {})
    }

    /// [`Self::generate`], calling `progress(done, total)` after each decoded batch.
    pub fn generate_with_progress(
        &self,
        image: &image::RgbImage,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<MaskRecord>> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        if w == 0 || h == 0 {
            return Err(AmgError::Data(sam_data::DataError::InvalidImage(
                "image has zero size".into(),
            )));
        }
        // Layer i cuts each side into 2^i crops: past the image's short side they are empty
        // (the reference fails on them in `set_image`), and their number would explode.
        let n_layers = self.config.crop_n_layers;
        if (1usize << n_layers) > w.min(h) {
            return Err(AmgError::InvalidConfig(format!(
                "crop_n_layers {n_layers} is too many for a {w}×{h} image (layer {n_layers} \
                 cuts a side into {} crops)",
                1usize << n_layers
            )));
        }
        let (crop_boxes, layers) =
            generate_crop_boxes((h, w), n_layers, self.config.crop_overlap_ratio);
        if let Some((b, l)) = crop_boxes
            .iter()
            .zip(&layers)
            .find(|(b, _)| b[2] <= b[0] || b[3] <= b[1])
        {
            return Err(AmgError::InvalidConfig(format!(
                "crop_n_layers {n_layers} is too many for a {w}×{h} image: layer {l}'s crop \
                 {b:?} is empty"
            )));
        }
        let total: usize = layers
            .iter()
            .map(|&l| {
                self.point_grids[l]
                    .len()
                    .div_ceil(self.config.points_per_batch)
            })
            .sum();
        let mut done = 0;
        let mut data = Vec::new();
        for (crop_box, &layer) in crop_boxes.iter().zip(&layers) {
            let crop = self.process_crop(image, *crop_box, layer, (h, w), &mut |n| {
                done += n;
                progress(done, total);
            })?;
            data.extend(crop);
        }
        if crop_boxes.len() > 1 && !data.is_empty() {
            // Prefer masks from smaller crops.
            let boxes: Vec<[f32; 4]> = data.iter().map(|c| as_box_f32(&c.bbox)).collect();
            let scores: Vec<f32> = data
                .iter()
                .map(|c| {
                    let b = c.crop_box;
                    1.0 / (((b[2] - b[0]) * (b[3] - b[1])) as f32)
                })
                .collect();
            let keep = nms(&boxes, &scores, self.config.crop_nms_thresh);
            data = keep.into_iter().map(|i| data[i].clone()).collect();
        }
        if self.config.min_mask_region_area > 0 {
            data = self.postprocess_small_regions(data)?;
        }
        data.into_iter().map(|c| self.record(c)).collect()
    }

    fn record(&self, c: Candidate) -> Result<MaskRecord> {
        let area = c.rle.area();
        let segmentation = match self.config.output_mode {
            OutputMode::BinaryMask => Segmentation::Binary {
                size: c.rle.size,
                mask: c.rle.to_mask()?,
            },
            OutputMode::UncompressedRle => Segmentation::UncompressedRle(c.rle),
            OutputMode::CocoRle => Segmentation::CocoRle {
                size: c.rle.size,
                counts: c.rle.to_coco_string(),
            },
        };
        let cb = c.crop_box.map(|v| v as i64);
        Ok(MaskRecord {
            segmentation,
            area,
            bbox: xyxy_to_xywh(c.bbox),
            predicted_iou: c.iou,
            point_coords: c.point,
            stability_score: c.stability,
            crop_box: xyxy_to_xywh(cb),
        })
    }

    fn process_crop(
        &self,
        image: &image::RgbImage,
        crop_box: [usize; 4],
        layer: usize,
        orig_size: (usize, usize),
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Candidate>> {
        let [x0, y0, x1, y1] = crop_box;
        let (cw, ch) = (x1 - x0, y1 - y0);
        let mut rgb = Vec::with_capacity(cw * ch * 3);
        let raw = image.as_raw();
        let iw = image.width() as usize;
        for y in y0..y1 {
            rgb.extend_from_slice(&raw[(y * iw + x0) * 3..(y * iw + x1) * 3]);
        }
        let embedding = self.predictor.embed_rgb(&rgb, cw, ch)?;
        let points: Vec<[f64; 2]> = self.point_grids[layer]
            .iter()
            .map(|p| [p[0] * cw as f64, p[1] * ch as f64])
            .collect();
        let model = self.predictor.model();
        let low = model.config().mask_input_size();
        let upscaler = MaskUpscaler::new(
            (low, low),
            model.config().image_size,
            embedding.input_size,
            (ch, cw),
        );
        let mut data = Vec::new();
        for batch in points.chunks(self.config.points_per_batch) {
            data.extend(self.process_batch(batch, &embedding, &upscaler, crop_box, orig_size)?);
            progress(1);
        }
        let boxes: Vec<[f32; 4]> = data.iter().map(|c| as_box_f32(&c.bbox)).collect();
        let scores: Vec<f32> = data.iter().map(|c| c.iou).collect();
        let keep = nms(&boxes, &scores, self.config.box_nms_thresh);
        Ok(keep
            .into_iter()
            .map(|i| {
                let mut c = data[i].clone();
                // Boxes and points were in crop coordinates until now.
                c.bbox = [
                    c.bbox[0] + x0 as i64,
                    c.bbox[1] + y0 as i64,
                    c.bbox[2] + x0 as i64,
                    c.bbox[3] + y0 as i64,
                ];
                c.point = [c.point[0] + x0 as f64, c.point[1] + y0 as f64];
                c
            })
            .collect())
    }

    fn process_batch(
        &self,
        points: &[[f64; 2]],
        embedding: &ImageEmbedding,
        upscaler: &MaskUpscaler,
        crop_box: [usize; 4],
        (orig_h, orig_w): (usize, usize),
    ) -> Result<Vec<Candidate>> {
        let model = self.predictor.model();
        let device = model.device();
        let n = points.len();
        let transformed = self
            .predictor
            .transform()
            .apply_coords(points, embedding.original_size);
        let coords: Vec<f32> = transformed
            .iter()
            .flat_map(|p| [p[0] as f32, p[1] as f32])
            .collect();
        let prompts = Prompts {
            points: Some(PointPrompt {
                coords: Tensor::from_data(TensorData::new(coords, [n, 1, 2]), &device),
                labels: Tensor::<2, Int>::ones([n, 1], &device),
            }),
            ..Default::default()
        };
        // One embedding, n single-point prompts, three masks each: nothing is copied per point.
        let pred = model.predict(embedding.features.clone(), prompts, true)?;
        let [_, m, lh, lw] = pred.low_res_masks.dims();
        if upscaler.low() != (lh, lw) {
            return Err(AmgError::Model(sam_model::SamError::InvalidInput(format!(
                "the decoder's masks are {lh}×{lw}, the model's config says {:?}",
                upscaler.low()
            ))));
        }
        let ious = sam_model::f32_values(pred.iou_predictions);
        // The IoU filter commutes with upscaling (each mask is upscaled on its own), so only the
        // masks that pass it are brought to the host.
        let kept: Vec<usize> = (0..n * m)
            .filter(|&k| {
                self.config.pred_iou_thresh <= 0.0 || ious[k] > self.config.pred_iou_thresh
            })
            .collect();
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(
                kept.iter().map(|&k| k as i64).collect::<Vec<_>>(),
                [kept.len()],
            ),
            &device,
        );
        let low = pred
            .low_res_masks
            .reshape([n * m, lh * lw])
            .select(0, index);
        let low = sam_model::f32_values(low);
        let place = Placement {
            origin: (crop_box[0], crop_box[1]),
            image_size: (orig_h, orig_w),
        };
        // Each mask is brought to full resolution and summarised on its own, in parallel; the
        // order of the results is the masks' order.
        let summaries: Vec<_> = low
            .par_chunks(lh * lw)
            .map_init(Scratch::default, |scratch, logits| {
                upscaler.summarise(
                    logits,
                    MASK_THRESHOLD,
                    self.config.stability_score_offset,
                    place,
                    scratch,
                )
            })
            .collect();
        let mut out = Vec::new();
        for (summary, &k) in summaries.into_iter().zip(&kept) {
            // NaN (an empty mask at both thresholds) fails the filter, as in the reference.
            let passes = summary
                .stability
                .partial_cmp(&self.config.stability_score_thresh)
                .is_some_and(|o| o.is_ge());
            if self.config.stability_score_thresh > 0.0 && !passes {
                continue;
            }
            if is_box_near_crop_edge(summary.bbox, crop_box, [0, 0, orig_w, orig_h]) {
                continue;
            }
            out.push(Candidate {
                rle: summary.rle,
                bbox: summary.bbox,
                iou: ious[k],
                point: points[k / m],
                stability: summary.stability,
                crop_box,
            });
        }
        Ok(out)
    }

    fn postprocess_small_regions(&self, data: Vec<Candidate>) -> Result<Vec<Candidate>> {
        if data.is_empty() {
            return Ok(data);
        }
        let min_area = self.config.min_mask_region_area as f64;
        let nms_thresh = self.config.box_nms_thresh.max(self.config.crop_nms_thresh);
        let mut masks = Vec::with_capacity(data.len());
        let mut scores = Vec::with_capacity(data.len());
        let mut boxes = Vec::with_capacity(data.len());
        for c in &data {
            let [h, w] = c.rle.size;
            let mask = c.rle.to_mask()?;
            let (mask, changed_holes) =
                remove_small_regions(&mask, h, w, min_area, RegionMode::Holes);
            let (mask, changed_islands) =
                remove_small_regions(&mask, h, w, min_area, RegionMode::Islands);
            scores.push(if changed_holes || changed_islands {
                0.0
            } else {
                1.0
            });
            boxes.push(batched_mask_to_box(&mask, h, w));
            masks.push(mask);
        }
        let keep = nms(
            &boxes.iter().map(as_box_f32).collect::<Vec<_>>(),
            &scores,
            nms_thresh,
        );
        keep.into_iter()
            .map(|i| {
                let mut c = data[i].clone();
                if scores[i] == 0.0 {
                    let [h, w] = c.rle.size;
                    c.rle = Rle::from_mask(&masks[i], h, w)?;
                    c.bbox = boxes[i];
                }
                Ok(c)
            })
            .collect()
    }
}
