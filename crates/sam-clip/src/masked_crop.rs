//! The image side of SAM's text-prompt training (paper App. D.5): a CLIP input made from one
//! mask of an image. The mask's bounding box is expanded by a factor in `[1, 2]` around its
//! centre, squared (the longer side, so the crop keeps the image's aspect ratio), cut out
//! (parts past the image border are black), resized to the CLIP input size with the
//! processor's filter, then rescaled and normalised as [`ClipImageProcessor`] does. Optionally
//! the pixels outside the mask are zeroed (black) before resizing, so only the object is seen.

use sam_data::pillow_resize::resize_rgb;

use crate::error::{ClipError, Result};
use crate::image_processor::{ClipImageProcessor, PixelValues, check_image};

/// A masked crop, ready for `get_image_features`.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedCrop {
    /// `[3, S, S]` pixel values (`S` the processor's crop size).
    pub pixels: PixelValues,
    /// The square cut out, `[x0, y0, x1, y1)` in image pixels; it may reach past the image.
    pub crop_box: [i64; 4],
}

/// Crops `rgb` (`height × width × 3`) around `mask` (`height × width`, row-major, `true` =
/// inside) as described in the module doc. `expand` is the box expansion factor, in
/// `[1, 2]` (the paper draws it uniformly; the caller draws it, so runs are reproducible).
pub fn masked_crop(
    rgb: &[u8],
    width: usize,
    height: usize,
    mask: &[bool],
    expand: f64,
    zero_outside_mask: bool,
    processor: &ClipImageProcessor,
) -> Result<MaskedCrop> {
    check_image(rgb, width, height)?;
    if mask.len() != width * height {
        return Err(ClipError::InvalidInput(format!(
            "mask of {} values for a {width}×{height} image",
            mask.len()
        )));
    }
    if !(1.0..=2.0).contains(&expand) {
        return Err(ClipError::InvalidInput(format!(
            "box expansion factor {expand} is not in [1, 2]"
        )));
    }
    let (out_h, out_w) = processor.crop_size;
    // The mask's bounding box, inclusive.
    let (mut x_min, mut y_min, mut x_max, mut y_max) = (usize::MAX, usize::MAX, 0, 0);
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let (x, y) = (i % width, i / width);
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if x_min == usize::MAX {
        return Err(ClipError::InvalidInput("the mask is empty".into()));
    }
    let (bw, bh) = ((x_max - x_min + 1) as f64, (y_max - y_min + 1) as f64);
    let (cx, cy) = (
        (x_min + x_max + 1) as f64 / 2.0,
        (y_min + y_max + 1) as f64 / 2.0,
    );
    let side = ((bw.max(bh) * expand).ceil() as usize).max(1);
    let x0 = (cx - side as f64 / 2.0).round() as i64;
    let y0 = (cy - side as f64 / 2.0).round() as i64;

    let mut square = vec![0u8; side * side * 3];
    for (yy, row) in square.chunks_exact_mut(side * 3).enumerate() {
        let sy = y0 + yy as i64;
        if sy < 0 || sy >= height as i64 {
            continue;
        }
        for (xx, px) in row.chunks_exact_mut(3).enumerate() {
            let sx = x0 + xx as i64;
            if sx < 0 || sx >= width as i64 {
                continue;
            }
            let i = sy as usize * width + sx as usize;
            if zero_outside_mask && !mask[i] {
                continue;
            }
            px.copy_from_slice(&rgb[i * 3..i * 3 + 3]);
        }
    }
    let resized = resize_rgb(&square, side, side, out_w, out_h, processor.resample);
    Ok(MaskedCrop {
        pixels: PixelValues {
            data: processor.normalize(&resized, out_w, out_h),
            height: out_h,
            width: out_w,
        },
        crop_box: [x0, y0, x0 + side as i64, y0 + side as i64],
    })
}

/// Which cells of a `grid × grid` patch grid over `crop_box` (a [`MaskedCrop`]'s square) hold
/// a pixel of `mask` (`height × width`, row-major): the patches the class token may attend to
/// in [`crate::ClipModel::get_image_features_restricted`]. Row-major, `grid²` values.
pub fn patch_mask(
    mask: &[bool],
    width: usize,
    height: usize,
    crop_box: [i64; 4],
    grid: usize,
) -> Result<Vec<bool>> {
    if mask.len() != width * height {
        return Err(ClipError::InvalidInput(format!(
            "mask of {} values for a {width}×{height} image",
            mask.len()
        )));
    }
    let side = crop_box[2] - crop_box[0];
    if grid == 0 || side <= 0 || crop_box[3] - crop_box[1] != side {
        return Err(ClipError::InvalidInput(format!(
            "crop box {crop_box:?} is not a square, or the grid {grid} is empty"
        )));
    }
    let g = grid as i64;
    let mut out = vec![false; grid * grid];
    for y in crop_box[1].max(0)..crop_box[3].min(height as i64) {
        let gy = ((y - crop_box[1]) * g / side) as usize;
        for x in crop_box[0].max(0)..crop_box[2].min(width as i64) {
            if mask[y as usize * width + x as usize] {
                let gx = ((x - crop_box[0]) * g / side) as usize;
                out[gy * grid + gx] = true;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crop_is_the_expanded_square_around_the_mask() {
        let (w, h) = (40, 30);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
        let mut mask = vec![false; w * h];
        // A 10 wide, 4 high box at x 5..15, y 20..24.
        for y in 20..24 {
            for x in 5..15 {
                mask[y * w + x] = true;
            }
        }
        let p = ClipImageProcessor::for_image_size(16);
        let c = masked_crop(&rgb, w, h, &mask, 1.0, false, &p).unwrap();
        assert_eq!(c.crop_box, [5, 17, 15, 27]);
        let c = masked_crop(&rgb, w, h, &mask, 2.0, true, &p).unwrap();
        // Side 20 around the centre (10, 22): reaches past the bottom edge.
        assert_eq!(c.crop_box, [0, 12, 20, 32]);
        assert_eq!((c.pixels.height, c.pixels.width), (16, 16));
        assert_eq!(c.pixels.data.len(), 3 * 16 * 16);
        // Zeroed pixels normalise to −mean/std: the corner, far from the mask, is black.
        let black = (0.0 - p.image_mean[0] as f32) / p.image_std[0] as f32;
        assert_eq!(c.pixels.data[0], black);

        // The mask (x 5..15, y 20..24) in the 4×4 patch grid of the square x 0..20, y 12..32
        // (5 px per cell): columns 1 (x 5..10) and 2 (x 10..15), rows 1 (y 17..22) and 2
        // (y 22..27).
        let cells = patch_mask(&mask, w, h, c.crop_box, 4).unwrap();
        let inside: Vec<usize> = (0..16).filter(|&i| cells[i]).collect();
        assert_eq!(inside, vec![5, 6, 9, 10]);
        let e = patch_mask(&mask, w, h, [0, 0, 3, 4], 4)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("[0, 0, 3, 4]"), "{e}");

        let e = masked_crop(&rgb, w, h, &vec![false; w * h], 1.5, false, &p)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("mask is empty"), "{e}");
        let e = masked_crop(&rgb, w, h, &mask, 2.5, false, &p)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("factor 2.5"), "{e}");
        let e = masked_crop(&rgb, w, h, &mask[1..], 1.5, false, &p)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("1199 values"), "{e}");
    }
}
