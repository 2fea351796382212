//! Reading images from files as RGB.

use std::path::Path;

use crate::error::{DataError, Result};

/// Decodes an image file (PNG, JPEG, …) to 8-bit RGB; grayscale and alpha are converted.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<image::RgbImage> {
    let path = path.as_ref();
    let err = |reason: String| DataError::ImageRead {
        path: path.to_path_buf(),
        reason,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| err(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    let img = reader.decode().map_err(|e| err(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(err("the image has zero size".into()));
    }
    Ok(img.to_rgb8())
}
