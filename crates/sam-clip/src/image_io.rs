//! Reading an image file as `CLIPImageProcessor` sees it after `convert_to_rgb`.
//!
//! Images without transparency are read by `sam_data::load_rgb` (as the SAM examples read
//! them: JPEG bit-identical to libjpeg-turbo, EXIF orientation applied, gray replicated).
//! Images with an alpha channel (or a PNG transparency chunk) are composited onto white, as
//! transformers' `convert_to_rgb` does with `PIL.Image.alpha_composite` — in Pillow's integer
//! arithmetic, so the pixels are the same bytes — where `load_rgb` would drop the alpha.
//! 16-bit gray images (Pillow's `I;16`) are clipped to 255 as Pillow converts them, where
//! `load_rgb` keeps the high byte as OpenCV does.

use std::path::Path;

use image::{DynamicImage, RgbImage, RgbaImage};

use crate::error::{ClipError, Result};

fn image_error(path: &Path, reason: impl ToString) -> ClipError {
    ClipError::Image {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads `path` as RGB the way the CLIP image processor converts it (see the module doc).
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| image_error(path, e))?;
    let rgb = |bytes: &[u8]| {
        sam_data::image_io::decode_rgb(bytes, path).map_err(|e| match e {
            sam_data::DataError::ImageRead { reason, .. } => image_error(path, reason),
            other => image_error(path, other),
        })
    };
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return rgb(&bytes);
    }
    let decoded = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| image_error(path, e))?
        .decode()
        .map_err(|e| image_error(path, e))?;
    if let DynamicImage::ImageLuma16(gray) = &decoded {
        // Pillow's `I;16` to RGB clips to 255 (`load_rgb` keeps the high byte, as OpenCV).
        return Ok(RgbImage::from_fn(gray.width(), gray.height(), |x, y| {
            let l = gray.get_pixel(x, y)[0].min(255) as u8;
            image::Rgb([l, l, l])
        }));
    }
    if !decoded.color().has_alpha() {
        return rgb(&bytes);
    }
    let rgba = match decoded {
        DynamicImage::ImageRgba8(i) => i,
        DynamicImage::ImageLumaA8(i) => RgbaImage::from_fn(i.width(), i.height(), |x, y| {
            let p = i.get_pixel(x, y);
            image::Rgba([p[0], p[0], p[0], p[1]])
        }),
        // 16-bit samples keep their high byte, as `load_rgb` does for opaque images.
        DynamicImage::ImageRgba16(i) => RgbaImage::from_fn(i.width(), i.height(), |x, y| {
            let p = i.get_pixel(x, y);
            image::Rgba([0, 1, 2, 3].map(|c| (p[c] >> 8) as u8))
        }),
        // 16-bit gray is Pillow's mode `I;16`, whose conversion to RGB(A) clips the value
        // to 255 instead of keeping the high byte (its alpha, from tRNS, is 0 or 65535).
        DynamicImage::ImageLumaA16(i) => RgbaImage::from_fn(i.width(), i.height(), |x, y| {
            let p = i.get_pixel(x, y);
            let (l, a) = (p[0].min(255) as u8, (p[1] >> 8) as u8);
            image::Rgba([l, l, l, a])
        }),
        other => other.to_rgba8(),
    };
    Ok(composite_on_white(&rgba))
}

/// `Image.alpha_composite(white, image).convert("RGB")` with Pillow's arithmetic
/// (`AlphaComposite.c`: 7 extra bits of precision, divisions by 255 rounded by shifts).
pub fn composite_on_white(rgba: &RgbaImage) -> RgbImage {
    const PRECISION_BITS: u32 = 7;
    let div255 = |a: u32| ((a >> 8) + a) >> 8;
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y);
        let alpha = p[3] as u32;
        if alpha == 0 {
            return image::Rgb([255, 255, 255]);
        }
        // The background is opaque white: dst = (255, 255, 255, 255).
        let blend = 255 * (255 - alpha);
        let outa255 = alpha * 255 + blend;
        let coef1 = alpha * 255 * 255 * (1 << PRECISION_BITS) / outa255;
        let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
        let channel = |s: u8| {
            let t = s as u32 * coef1 + 255 * coef2;
            (div255(t + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8
        };
        image::Rgb([channel(p[0]), channel(p[1]), channel(p[2])])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pillow 13: a 16-bit gray PNG of [0, 100, 255, 256, 300, 65535] converts to RGB as
    /// [0, 100, 255, 255, 255, 255] (`Image.open(p).convert("RGB")`).
    #[test]
    fn sixteen_bit_gray_clips_as_pillow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g16.png");
        let values = [0u16, 100, 255, 256, 300, 65535];
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(6, 1, values.to_vec())
            .unwrap()
            .save(&path)
            .unwrap();
        let rgb = load_image(&path).unwrap();
        let got: Vec<u8> = rgb.pixels().map(|p| p[0]).collect();
        assert_eq!(got, [0, 100, 255, 255, 255, 255]);
        assert!(rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    }
}
