//! Reading images from files as RGB, the way `cv2.imread(path)` followed by a BGR→RGB swap
//! does (the reference pipelines read images with OpenCV).

use std::path::Path;

use image::{DynamicImage, RgbImage, imageops};

use crate::error::{DataError, Result};

/// Decodes an image file to 8-bit RGB exactly as `cv2.imread(path)[..., ::-1]` does.
///
/// - JPEG goes through [`sam_jpeg`], which is bit-identical to the libjpeg-turbo OpenCV and
///   Pillow use (other decoders differ by up to tens of levels); the EXIF orientation (1–8)
///   is applied, as `cv2.imread` does by default; CMYK and YCCK files are converted to RGB
///   with OpenCV's formula; a truncated or corrupt file is an error.
/// - PNG goes through the `image` crate: gray is replicated to three channels, alpha is
///   dropped without compositing, palettes are expanded and 16-bit samples keep their high
///   byte (`>> 8`), all as OpenCV does.
///
/// # Errors
/// [`DataError::ImageRead`] naming the file, for unreadable, corrupt, empty or unsupported
/// images.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::ImageRead {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    decode_rgb(&bytes, path)
}

/// [`load_rgb`] on an image already in memory (e.g. a tar member); errors name
/// `name_for_errors`.
pub fn decode_rgb(bytes: &[u8], name_for_errors: &Path) -> Result<image::RgbImage> {
    let err = |reason: String| DataError::ImageRead {
        path: name_for_errors.to_path_buf(),
        reason,
    };
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let jpeg = sam_jpeg::decode(bytes).map_err(|e| err(e.to_string()))?;
        let (w, h, orientation) = (jpeg.width, jpeg.height, jpeg.exif_orientation);
        let img = RgbImage::from_raw(w, h, jpeg.into_rgb())
            .ok_or_else(|| err("decoded JPEG has the wrong number of samples".into()))?;
        return Ok(apply_exif_orientation(img, orientation.unwrap_or(1)));
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    let img = reader.decode().map_err(|e| err(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(err("the image has zero size".into()));
    }
    to_rgb_like_opencv(img).ok_or_else(|| err("unsupported pixel format".into()))
}

/// OpenCV's conversion of a decoded PNG to 8-bit BGR (here RGB): 16-bit samples are shifted
/// right by 8 (the `image` crate's own conversion rounds instead), gray is replicated and
/// alpha dropped.
fn to_rgb_like_opencv(img: DynamicImage) -> Option<RgbImage> {
    let (w, h) = (img.width(), img.height());
    let hi = |v: u16| (v >> 8) as u8;
    let raw: Vec<u8> = match img {
        DynamicImage::ImageRgb8(i) => return Some(i),
        DynamicImage::ImageRgba8(i) => i.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect(),
        DynamicImage::ImageLuma8(i) => i.pixels().flat_map(|p| [p[0]; 3]).collect(),
        DynamicImage::ImageLumaA8(i) => i.pixels().flat_map(|p| [p[0]; 3]).collect(),
        DynamicImage::ImageRgb16(i) => i
            .pixels()
            .flat_map(|p| [hi(p[0]), hi(p[1]), hi(p[2])])
            .collect(),
        DynamicImage::ImageRgba16(i) => i
            .pixels()
            .flat_map(|p| [hi(p[0]), hi(p[1]), hi(p[2])])
            .collect(),
        DynamicImage::ImageLuma16(i) => i.pixels().flat_map(|p| [hi(p[0]); 3]).collect(),
        DynamicImage::ImageLumaA16(i) => i.pixels().flat_map(|p| [hi(p[0]); 3]).collect(),
        _ => return None,
    };
    RgbImage::from_raw(w, h, raw)
}

/// Turns the stored image upright for an EXIF orientation value, as OpenCV's
/// `ExifTransform` (and Pillow's `exif_transpose`) do; other values leave it as stored.
fn apply_exif_orientation(img: RgbImage, orientation: u16) -> RgbImage {
    match orientation {
        2 => imageops::flip_horizontal(&img),
        3 => imageops::rotate180(&img),
        4 => imageops::flip_vertical(&img),
        // Transpose.
        5 => imageops::flip_horizontal(&imageops::rotate90(&img)),
        6 => imageops::rotate90(&img),
        // Transverse.
        7 => imageops::flip_horizontal(&imageops::rotate270(&img)),
        8 => imageops::rotate270(&img),
        _ => img,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(37, 21, |x, y| image::Rgb([x as u8 * 6, y as u8 * 11, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn complete_jpeg_passes_every_truncation_fails() {
        let full = jpeg();
        assert!(sam_jpeg::decode(&full).is_ok());
        let mut trailing = full.clone();
        trailing.extend_from_slice(b"trailing bytes some writers add");
        assert!(sam_jpeg::decode(&trailing).is_ok());
        for cut in 2..full.len() - 1 {
            let e = sam_jpeg::decode(&full[..cut])
                .expect_err("an error")
                .to_string();
            assert!(e.contains("JPEG"), "{e} / cut at {cut}");
        }
    }

    #[test]
    fn truncated_and_garbage_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let full = jpeg();
        for (name, bytes) in [
            ("cut.jpg", &full[..full.len() / 2]),
            ("garbage.jpg", &b"\xFF\xD8\x00\x01\x02 not a jpeg"[..]),
            ("empty.png", &[][..]),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let e = load_rgb(&path).unwrap_err();
            assert!(
                matches!(e, DataError::ImageRead { .. }) && e.to_string().contains(name),
                "{e}"
            );
        }
        let path = dir.path().join("ok.jpg");
        std::fs::write(&path, &full).unwrap();
        assert_eq!(load_rgb(&path).unwrap().dimensions(), (37, 21));
    }
}
