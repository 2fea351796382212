//! `ResizeLongestSide`: the reference's `utils/transforms.py`, used by inference and training.

use crate::error::{DataError, Result};
use crate::pillow_resize::resize_bilinear_rgb;

/// Resizes images so that the longest side is `target_length`, and maps coordinates and boxes
/// the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeLongestSide {
    /// The longest side after resizing (the model's `image_size`).
    pub target_length: usize,
}

impl ResizeLongestSide {
    /// A transform to `target_length`.
    pub fn new(target_length: usize) -> Self {
        Self { target_length }
    }

    /// `(new_h, new_w)` for an `old_h × old_w` image: `int(side·scale + 0.5)` in f64, as the
    /// reference's `get_preprocess_shape`.
    pub fn get_preprocess_shape(&self, old_h: usize, old_w: usize) -> (usize, usize) {
        let scale = self.target_length as f64 * 1.0 / old_h.max(old_w) as f64;
        let new_h = (old_h as f64 * scale + 0.5) as usize;
        let new_w = (old_w as f64 * scale + 0.5) as usize;
        (new_h, new_w)
    }

    /// Resizes an interleaved RGB `height × width × 3` buffer exactly as the reference's
    /// `apply_image` (Pillow bilinear); returns the buffer and its `(h, w)`.
    pub fn apply_image(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<(Vec<u8>, (usize, usize))> {
        if width == 0 || height == 0 {
            return Err(DataError::InvalidImage(format!(
                "image has zero size ({width}×{height})"
            )));
        }
        if rgb.len() != width * height * 3 {
            return Err(DataError::InvalidImage(format!(
                "RGB buffer has {} bytes, expected {width}×{height}×3 = {}",
                rgb.len(),
                width * height * 3
            )));
        }
        let (new_h, new_w) = self.get_preprocess_shape(height, width);
        if new_h == 0 || new_w == 0 {
            return Err(DataError::InvalidImage(format!(
                "a {width}×{height} image resized to longest side {} would have zero size",
                self.target_length
            )));
        }
        Ok((
            resize_bilinear_rgb(rgb, width, height, new_w, new_h),
            (new_h, new_w),
        ))
    }

    /// Maps `(x, y)` pixel coordinates of an `original_size = (h, w)` image to the resized
    /// image: x by `new_w/old_w`, y by `new_h/old_h`, in f64 as the reference.
    pub fn apply_coords(
        &self,
        coords: &[[f64; 2]],
        original_size: (usize, usize),
    ) -> Vec<[f64; 2]> {
        let (old_h, old_w) = original_size;
        let (new_h, new_w) = self.get_preprocess_shape(old_h, old_w);
        let (sx, sy) = (new_w as f64 / old_w as f64, new_h as f64 / old_h as f64);
        coords.iter().map(|&[x, y]| [x * sx, y * sy]).collect()
    }

    /// Maps `(x0, y0, x1, y1)` boxes as two corner points each.
    pub fn apply_boxes(&self, boxes: &[[f64; 4]], original_size: (usize, usize)) -> Vec<[f64; 4]> {
        let corners: Vec<[f64; 2]> = boxes
            .iter()
            .flat_map(|b| [[b[0], b[1]], [b[2], b[3]]])
            .collect();
        self.apply_coords(&corners, original_size)
            .chunks_exact(2)
            .map(|c| [c[0][0], c[0][1], c[1][0], c[1][1]])
            .collect()
    }
}
