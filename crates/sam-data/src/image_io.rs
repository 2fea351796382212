//! Reading images from files as RGB.

use std::path::Path;

use crate::error::{DataError, Result};

/// Decodes an image file (PNG, JPEG, …) to 8-bit RGB; grayscale and alpha are converted.
///
/// A JPEG must be complete: the decoder fills a truncated file's missing blocks with grey and
/// reports success, so the file's markers are walked first and a missing end of image is an
/// error.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<image::RgbImage> {
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
        check_jpeg_complete(bytes).map_err(err)?;
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    let img = reader.decode().map_err(|e| err(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(err("the image has zero size".into()));
    }
    Ok(img.to_rgb8())
}

/// Walks a JPEG's marker segments and entropy-coded scans up to its end-of-image marker.
/// Inside a scan `FF` is followed by `00` (a stuffed byte) or a restart marker, so the first
/// other marker ends it; the file is complete when `FF D9` is reached that way.
fn check_jpeg_complete(b: &[u8]) -> std::result::Result<(), String> {
    let truncated = |at: usize| {
        Err(format!(
            "truncated JPEG (data ends at byte {at} before the end-of-image marker)"
        ))
    };
    let mut p = 2;
    loop {
        // Fill bytes may precede a marker.
        while b.get(p) == Some(&0xFF) && b.get(p + 1) == Some(&0xFF) {
            p += 1;
        }
        let (Some(&0xFF), Some(&m)) = (b.get(p), b.get(p + 1)) else {
            return if p + 1 >= b.len() {
                truncated(b.len())
            } else {
                Err(format!("corrupt JPEG: no marker at byte {p}"))
            };
        };
        p += 2;
        match m {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let (Some(&hi), Some(&lo)) = (b.get(p), b.get(p + 1)) else {
            return truncated(b.len());
        };
        p += (hi as usize) << 8 | lo as usize;
        if p > b.len() {
            return truncated(b.len());
        }
        if m == 0xDA {
            // Entropy-coded data up to the next marker that is neither stuffing nor a restart.
            loop {
                match (b.get(p), b.get(p + 1)) {
                    (Some(&0xFF), Some(&n)) if n == 0x00 || (0xD0..=0xD7).contains(&n) => p += 2,
                    (Some(&0xFF), Some(_)) => break,
                    (Some(_), _) => p += 1,
                    (None, _) => return truncated(b.len()),
                }
            }
        }
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
        assert_eq!(check_jpeg_complete(&full), Ok(()));
        let mut trailing = full.clone();
        trailing.extend_from_slice(b"trailing bytes some writers add");
        assert_eq!(check_jpeg_complete(&trailing), Ok(()));
        for cut in 2..full.len() - 1 {
            assert!(check_jpeg_complete(&full[..cut]).is_err(), "cut at {cut}");
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
