//! One mask's post-processing on the host: the reference's `postprocess_masks` (upscale the
//! low-res logits to the model's padded input, keep the valid part, resize to the crop's size),
//! then its stability score, the binary mask's box, and the RLE of the mask placed in the full
//! image, all read from one column-major pass over the full-resolution logits.
//!
//! Why not [`sam_model::Sam::postprocess_masks`] over the whole batch: 64 points × 3 masks of a
//! 1600×1200 image are 1.5 GB of f32 logits, written (page faults), copied to the host and
//! scanned three times, and the dense resize products cost ~600 MFLOP per mask. The composite
//! resize weights are banded (each output reads at most a handful of low-res values), so one
//! mask takes ~10 M multiply-adds and two buffers reused from mask to mask.

use sam_data::{Rle, RleBuilder};
use sam_model::interpolate::upscale_crop_resize_weights;

/// The span of non-zero weights of one output along one axis.
#[derive(Debug, Clone)]
struct Band {
    start: usize,
    weights: Vec<f32>,
}

/// Bands of a row-major `[n_out, n_in]` resize matrix.
fn bands(weights: &[f32], n_out: usize, n_in: usize) -> Vec<Band> {
    (0..n_out)
        .map(|o| {
            let row = &weights[o * n_in..(o + 1) * n_in];
            match row.iter().position(|&w| w != 0.0) {
                Some(first) => {
                    let last = row.iter().rposition(|&w| w != 0.0).unwrap_or(first);
                    Band {
                        start: first,
                        weights: row[first..=last].to_vec(),
                    }
                }
                None => Band {
                    start: 0,
                    weights: Vec::new(),
                },
            }
        })
        .collect()
}

/// `out = Σ_k w_k · src[start + k]`, `src` rows of `out.len()` values `stride` apart.
fn banded_sum(out: &mut [f32], band: &Band, src: &[f32], stride: usize) {
    let n = out.len();
    out.fill(0.0);
    for (k, &w) in band.weights.iter().enumerate() {
        let at = (band.start + k) * stride;
        for (o, &x) in out.iter_mut().zip(&src[at..at + n]) {
            *o += w * x;
        }
    }
}

/// Where a crop lies in the full image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    /// The crop's top-left corner `(x0, y0)` in the image.
    pub origin: (usize, usize),
    /// The full image's `(h, w)`.
    pub image_size: (usize, usize),
}

/// What the generator needs of one mask.
#[derive(Debug, Clone)]
pub(crate) struct MaskSummary {
    /// `count(logit > t + o) / count(logit > t − o)`; NaN when both are zero.
    pub stability: f32,
    /// Inclusive `[x0, y0, x1, y1]` of `logit > t` in crop pixels; zeros when empty.
    pub bbox: [i64; 4],
    /// The mask in the full image.
    pub rle: Rle,
}

/// Reusable per-thread buffers.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// `[crop_h, low_w]`: the rows resized.
    rows: Vec<f32>,
    /// `[low_w, crop_h]`: the same, transposed so that output columns are contiguous.
    rows_t: Vec<f32>,
    /// `[crop_h]`: one output column.
    column: Vec<f32>,
    /// `[crop_h]`: the column's mask, 0 or 1.
    on: Vec<u8>,
}

/// The post-processing of one crop's masks: `[low_h, low_w]` logits to `[crop_h, crop_w]`.
#[derive(Debug, Clone)]
pub(crate) struct MaskUpscaler {
    low: (usize, usize),
    crop: (usize, usize),
    rows: Vec<Band>,
    cols: Vec<Band>,
}

impl MaskUpscaler {
    /// `low`: the decoder's mask size; `padded`: the model's input side; `input`: the crop's
    /// size after `ResizeLongestSide` (≤ `padded`); `crop`: the crop's own size.
    pub fn new(
        low: (usize, usize),
        padded: usize,
        input: (usize, usize),
        crop: (usize, usize),
    ) -> Self {
        let mh = upscale_crop_resize_weights(low.0, padded, input.0, crop.0);
        let mw = upscale_crop_resize_weights(low.1, padded, input.1, crop.1);
        Self {
            low,
            crop,
            rows: bands(&mh, crop.0, low.0),
            cols: bands(&mw, crop.1, low.1),
        }
    }

    /// The low-res `(h, w)` this upscaler takes.
    pub fn low(&self) -> (usize, usize) {
        self.low
    }

    /// Summarises one mask's `[low_h, low_w]` logits, thresholded at `threshold`, with the
    /// stability offset `offset`.
    pub fn summarise(
        &self,
        logits: &[f32],
        threshold: f32,
        offset: f32,
        place: Placement,
        scratch: &mut Scratch,
    ) -> MaskSummary {
        let (lh, lw) = self.low;
        let (ch, cw) = self.crop;
        debug_assert_eq!(logits.len(), lh * lw);
        scratch.rows.resize(ch * lw, 0.0);
        scratch.rows_t.resize(lw * ch, 0.0);
        scratch.column.resize(ch, 0.0);
        scratch.on.resize(ch, 0);
        // Rows first, as `mh · x · mwᵀ` in `Sam::postprocess_masks`.
        for (y, band) in self.rows.iter().enumerate() {
            banded_sum(&mut scratch.rows[y * lw..(y + 1) * lw], band, logits, lw);
        }
        transpose(&scratch.rows, &mut scratch.rows_t, ch, lw);

        let (hi, lo) = (threshold + offset, threshold - offset);
        let (mut inter, mut union) = (0u64, 0u64);
        let (x0, y0) = place.origin;
        let (h, w) = place.image_size;
        let mut runs = RleBuilder::new();
        // Column-major, as COCO's RLE: whole columns left of the crop, then each crop column
        // between the rows above and below it, then the columns to its right.
        runs.push(false, x0 * h);
        let (mut bx0, mut by0, mut bx1, mut by1) = (usize::MAX, usize::MAX, 0, 0);
        for (x, band) in self.cols.iter().enumerate() {
            let column = &mut scratch.column;
            banded_sum(column, band, &scratch.rows_t, ch);
            let (i, u) = classify(column, &mut scratch.on, threshold, hi, lo);
            inter += i as u64;
            union += u as u64;
            runs.push(false, y0);
            let on = &scratch.on;
            let mut y = 0;
            while y < ch {
                let value = on[y];
                let end = y + 1 + run_length(&on[y + 1..], value);
                runs.push(value != 0, end - y);
                if value != 0 {
                    bx0 = bx0.min(x);
                    bx1 = x;
                    by0 = by0.min(y);
                    by1 = by1.max(end - 1);
                }
                y = end;
            }
            runs.push(false, h - y0 - ch);
        }
        runs.push(false, (w - x0 - cw) * h);
        let bbox = if bx0 == usize::MAX {
            [0; 4]
        } else {
            [bx0 as i64, by0 as i64, bx1 as i64, by1 as i64]
        };
        MaskSummary {
            stability: inter as f32 / union as f32,
            bbox,
            rle: runs.finish([h, w]),
        }
    }
}

/// Writes `on[i] = (v[i] > t) as u8` and returns `(count(v > hi), count(v > lo))`, in one
/// branch-free pass that vectorises.
fn classify(values: &[f32], on: &mut [u8], t: f32, hi: f32, lo: f32) -> (u32, u32) {
    let (mut above_hi, mut above_lo) = (0u32, 0u32);
    for (o, &v) in on.iter_mut().zip(values) {
        *o = (v > t) as u8;
        above_hi += (v > hi) as u32;
        above_lo += (v > lo) as u32;
    }
    (above_hi, above_lo)
}

/// How many leading bytes of `on` equal `value` (0 or 1), eight at a time while they agree:
/// masks are long runs, so most words are skipped whole.
fn run_length(on: &[u8], value: u8) -> usize {
    let word = u64::from_ne_bytes([value; 8]);
    let mut n = 0;
    while n + 8 <= on.len() {
        let chunk = u64::from_ne_bytes(on[n..n + 8].try_into().unwrap_or([!value; 8]));
        if chunk != word {
            break;
        }
        n += 8;
    }
    while n < on.len() && on[n] == value {
        n += 1;
    }
    n
}

/// `dst[c][r] = src[r][c]` for a row-major `[rows, cols]` `src`, in tiles that stay in cache.
fn transpose(src: &[f32], dst: &mut [f32], rows: usize, cols: usize) {
    const TILE: usize = 32;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask_ops::{batched_mask_to_box, calculate_stability_score};
    use burn::tensor::{Device, Tensor, TensorData};
    use sam_model::interpolate::{apply_separable, upscale_crop_resize_matrix};

    /// Pseudo-random logits around zero with smooth blobs, so that masks have several runs.
    fn logits(lh: usize, lw: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        let mut noise = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) - 0.5
        };
        (0..lh * lw)
            .map(|i| {
                let (y, x) = ((i / lw) as f32, (i % lw) as f32);
                8.0 * ((x / 9.0).sin() * (y / 13.0).cos()) + 3.0 * noise()
            })
            .collect()
    }

    /// The tensor path: dense resize matrices, full logits, then the generator's old scans.
    fn reference(
        x: &[f32],
        low: (usize, usize),
        padded: usize,
        input: (usize, usize),
        crop: (usize, usize),
    ) -> Vec<f32> {
        let device = Device::flex();
        let t = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [1, 1, low.0, low.1]), &device);
        let mh = upscale_crop_resize_matrix(low.0, padded, input.0, crop.0, &device);
        let mw = upscale_crop_resize_matrix(low.1, padded, input.1, crop.1, &device);
        sam_model::f32_values(apply_separable(t, mh, mw))
    }

    #[test]
    fn matches_the_dense_tensor_path() {
        // A landscape crop inside a larger image, a portrait one at the origin, a square one
        // filling the image, and one larger than the padded input.
        let cases = [
            ((64, 64), 256, (192, 256), (150, 200), (30, 17), (300, 260)),
            ((64, 64), 256, (256, 171), (240, 160), (0, 0), (240, 400)),
            ((32, 32), 128, (128, 128), (77, 77), (0, 0), (77, 77)),
            ((64, 64), 256, (256, 192), (700, 525), (3, 5), (720, 530)),
        ];
        let mut exact = 0;
        for (i, (low, padded, input, crop, origin, image_size)) in cases.into_iter().enumerate() {
            let x = logits(low.0, low.1, i as u32);
            let up = MaskUpscaler::new(low, padded, input, crop);
            let place = Placement { origin, image_size };
            let got = up.summarise(&x, 0.0, 1.0, place, &mut Scratch::default());

            let dense = reference(&x, low, padded, input, crop);
            let (ch, cw) = crop;
            let mask: Vec<bool> = dense.iter().map(|&v| v > 0.0).collect();
            let (h, w) = image_size;
            let mut full = vec![false; h * w];
            for y in 0..ch {
                let at = (y + origin.1) * w + origin.0;
                full[at..at + cw].copy_from_slice(&mask[y * cw..(y + 1) * cw]);
            }
            let expected = Rle::from_mask(&full, h, w).unwrap();
            // The banded sums add the same non-zero terms as the dense products, in another
            // order (no FMA): a pixel within an ulp of the threshold could differ.
            let differing = got
                .rle
                .to_mask()
                .unwrap()
                .iter()
                .zip(&full)
                .filter(|(a, b)| a != b)
                .count();
            assert!(differing <= 2, "case {i}: {differing} pixels differ");
            if differing == 0 {
                exact += 1;
                assert_eq!(got.rle, expected, "case {i}");
                assert_eq!(got.bbox, batched_mask_to_box(&mask, ch, cw), "case {i}");
            }
            let stability = calculate_stability_score(&dense, 0.0, 1.0);
            assert!(
                (got.stability - stability).abs() < 1e-4,
                "case {i}: {} vs {stability}",
                got.stability
            );
            assert!(
                got.rle.counts.len() > 3,
                "case {i}: the mask has several runs"
            );
        }
        assert!(exact >= 3, "{exact} of 4 cases identical");
    }

    #[test]
    fn empty_and_full_masks() {
        let low = (16, 16);
        let up = MaskUpscaler::new(low, 64, (64, 48), (40, 30));
        let place = Placement {
            origin: (5, 2),
            image_size: (50, 40),
        };
        let mut scratch = Scratch::default();
        let empty = up.summarise(&[-5.0; 256], 0.0, 1.0, place, &mut scratch);
        assert_eq!(empty.bbox, [0; 4]);
        assert_eq!(empty.rle.counts, vec![50 * 40]);
        assert!(empty.stability.is_nan());
        let full = up.summarise(&[5.0; 256], 0.0, 1.0, place, &mut scratch);
        assert_eq!(full.bbox, [0, 0, 29, 39]);
        assert_eq!(full.rle.area(), 40 * 30);
        assert_eq!(full.stability, 1.0);
        assert_eq!(full.rle.to_bbox(), [5.0, 2.0, 30.0, 40.0]);
    }
}
