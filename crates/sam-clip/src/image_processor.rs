//! `CLIPImageProcessor` as transformers' PIL backend runs it (`CLIPImageProcessorPil` in
//! transformers 5; `CLIPImageProcessor` in 4.x and OpenAI's own `clip.load` preprocessing):
//! RGB, shortest side to `size["shortest_edge"]` with Pillow's bicubic filter (bit-exact, from
//! `sam-data`), centre crop to `crop_size`, rescale by 1/255 and normalise with CLIP's mean and
//! std, in the same float types (the rescale in f64 then cast to f32, the normalisation in
//! f32), so the pixel values are identical, not just close.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use sam_data::pillow_resize::{Filter, resize_rgb};
use serde::Deserialize;

use crate::error::{ClipError, Result};

/// `OPENAI_CLIP_MEAN`.
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// `OPENAI_CLIP_STD`.
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// The size the resize step aims at (`size` of the processor config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTarget {
    /// `{"shortest_edge": n}` (or a bare `n`): the shorter side becomes `n`, the longer one
    /// `int(n · long / short)`, as `get_resize_output_image_size(default_to_square=False)`.
    ShortestEdge(usize),
    /// `{"height": h, "width": w}`: exactly that size.
    Exact {
        /// Output rows.
        height: usize,
        /// Output columns.
        width: usize,
    },
}

/// Preprocessed pixels of one image, channel-first `[3, height, width]`, as `pixel_values[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelValues {
    /// `3 · height · width` values, channel-major.
    pub data: Vec<f32>,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl PixelValues {
    /// Stacks images of one size into `pixel_values: [B, 3, H, W]`.
    pub fn batch(images: &[PixelValues], device: &Device) -> Result<Tensor<4>> {
        let first = images
            .first()
            .ok_or_else(|| ClipError::InvalidInput("no images".into()))?;
        let (h, w) = (first.height, first.width);
        if let Some(other) = images.iter().find(|p| (p.height, p.width) != (h, w)) {
            return Err(ClipError::InvalidInput(format!(
                "images of different sizes in one batch: {h}×{w} and {}×{}",
                other.height, other.width
            )));
        }
        // The fields are public: a hand-built image may not hold what its size says.
        if let Some((i, p)) = images
            .iter()
            .enumerate()
            .find(|(_, p)| p.data.len() != 3 * h * w)
        {
            return Err(ClipError::InvalidInput(format!(
                "image {i} holds {} values, not 3×{h}×{w}",
                p.data.len()
            )));
        }
        let data: Vec<f32> = images.iter().flat_map(|p| p.data.iter().copied()).collect();
        Ok(Tensor::from_data(
            TensorData::new(data, [images.len(), 3, h, w]),
            device,
        ))
    }
}

/// `CLIPImageProcessor`'s settings (a `preprocessor_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipImageProcessor {
    /// Resize first.
    pub do_resize: bool,
    /// What to resize to.
    pub size: ResizeTarget,
    /// Pillow filter (`resample`: 3 bicubic, 2 bilinear).
    pub resample: Filter,
    /// Centre-crop after resizing.
    pub do_center_crop: bool,
    /// `(height, width)` of the crop.
    pub crop_size: (usize, usize),
    /// Multiply by `rescale_factor`.
    pub do_rescale: bool,
    /// 1/255.
    pub rescale_factor: f64,
    /// Subtract `image_mean`, divide by `image_std`.
    pub do_normalize: bool,
    /// Per-channel mean (RGB).
    pub image_mean: [f64; 3],
    /// Per-channel std (RGB).
    pub image_std: [f64; 3],
}

impl ClipImageProcessor {
    /// The processor of the OpenAI checkpoints for input side `image_size`: shortest edge and
    /// crop both `image_size`, bicubic, CLIP's mean and std.
    pub fn for_image_size(image_size: usize) -> Self {
        Self {
            do_resize: true,
            size: ResizeTarget::ShortestEdge(image_size),
            resample: Filter::Bicubic,
            do_center_crop: true,
            crop_size: (image_size, image_size),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
        }
    }

    /// The `preprocessor_config.json` that [`ClipImageProcessor::load`] reads back as `self`
    /// (transformers' field names; `CLIPImageProcessor`).
    pub fn to_json(&self) -> serde_json::Value {
        let size = match self.size {
            ResizeTarget::ShortestEdge(n) => serde_json::json!({ "shortest_edge": n }),
            ResizeTarget::Exact { height, width } => {
                serde_json::json!({ "height": height, "width": width })
            }
        };
        serde_json::json!({
            "image_processor_type": "CLIPImageProcessor",
            "do_resize": self.do_resize,
            "size": size,
            "resample": match self.resample { Filter::Bilinear => 2, Filter::Bicubic => 3 },
            "do_center_crop": self.do_center_crop,
            "crop_size": { "height": self.crop_size.0, "width": self.crop_size.1 },
            "do_rescale": self.do_rescale,
            "rescale_factor": self.rescale_factor,
            "do_normalize": self.do_normalize,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "do_convert_rgb": true,
        })
    }

    /// Reads a `preprocessor_config.json` (the file, or the folder holding it). Missing fields
    /// take `CLIPImageProcessor`'s defaults; both the current (`{"shortest_edge": n}`,
    /// `{"height": h, "width": w}`) and the old (a bare `n`) size forms are read.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let (path, text) =
            crate::config::read_json_file(path.as_ref(), "preprocessor_config.json")?;
        Self::from_json_str(&text, &path)
    }

    /// [`load`](Self::load) on JSON text; errors name `path`.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value = crate::config::parse_json(text, path)?;
        let raw: RawProcessor =
            serde_path_to_error::deserialize(value).map_err(|e| ClipError::ConfigField {
                path: path.to_path_buf(),
                field: e.path().to_string(),
                reason: e.into_inner().to_string(),
            })?;
        raw.resolve(path)
    }

    /// The `(height, width)` the resize step gives an image of `height × width`.
    pub fn resized_size(&self, height: usize, width: usize) -> (usize, usize) {
        match self.size {
            ResizeTarget::Exact { height, width } => (height, width),
            ResizeTarget::ShortestEdge(n) => {
                let (short, long) = if width <= height {
                    (width, height)
                } else {
                    (height, width)
                };
                // `int(n * long / short)`: an exact integer product, one correctly rounded
                // division (as Python's int / int), then truncation.
                let new_long = ((n * long) as f64 / short as f64) as usize;
                if width <= height {
                    (new_long, n)
                } else {
                    (n, new_long)
                }
            }
        }
    }

    /// Preprocesses one interleaved RGB image (`height × width × 3` bytes).
    pub fn preprocess(&self, rgb: &[u8], width: usize, height: usize) -> Result<PixelValues> {
        check_image(rgb, width, height)?;
        let (mut buf, mut h, mut w) = (None, height, width);
        if self.do_resize {
            let (nh, nw) = self.resized_size(height, width);
            if nh == 0 || nw == 0 {
                return Err(ClipError::InvalidInput(format!(
                    "a {width}×{height} image resizes to {nw}×{nh}"
                )));
            }
            buf = Some(resize_rgb(rgb, width, height, nw, nh, self.resample));
            (h, w) = (nh, nw);
        }
        let resized = buf.as_deref().unwrap_or(rgb);
        let (cropped, h, w) = if self.do_center_crop {
            let (ch, cw) = self.crop_size;
            (center_crop(resized, w, h, cw, ch)?, ch, cw)
        } else {
            (resized.to_vec(), h, w)
        };
        Ok(PixelValues {
            data: self.normalize(&cropped, w, h),
            height: h,
            width: w,
        })
    }

    /// [`preprocess`](Self::preprocess) of an `image` crate RGB image (what
    /// `sam_data::load_rgb` returns).
    pub fn preprocess_image(&self, image: &image::RgbImage) -> Result<PixelValues> {
        self.preprocess(
            image.as_raw(),
            image.width() as usize,
            image.height() as usize,
        )
    }

    /// Rescale and normalise interleaved RGB bytes into channel-first values: per value
    /// `f32(v · rescale_factor)` (numpy's `astype(float64) * scale` then `astype(float32)`),
    /// then `(x − f32(mean)) / f32(std)` in f32 (numpy's `normalize` on float32).
    pub fn normalize(&self, rgb: &[u8], width: usize, height: usize) -> Vec<f32> {
        let plane = width * height;
        let mut out = vec![0f32; 3 * plane];
        for (i, px) in rgb.chunks_exact(3).enumerate().take(plane) {
            for c in 0..3 {
                let v = px[c];
                let x = if self.do_rescale {
                    (v as f64 * self.rescale_factor) as f32
                } else {
                    v as f32
                };
                out[c * plane + i] = if self.do_normalize {
                    (x - self.image_mean[c] as f32) / self.image_std[c] as f32
                } else {
                    x
                };
            }
        }
        out
    }

    /// The side of the square the model receives, when the crop is square.
    pub fn output_side(&self) -> Option<usize> {
        let (h, w) = self.crop_size;
        (self.do_center_crop && h == w).then_some(h)
    }
}

pub(crate) fn check_image(rgb: &[u8], width: usize, height: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(ClipError::InvalidInput(format!(
            "the image is {width}×{height}"
        )));
    }
    if rgb.len() != width * height * 3 {
        return Err(ClipError::InvalidInput(format!(
            "{} bytes, expected {width}×{height}×3 = {}",
            rgb.len(),
            width * height * 3
        )));
    }
    Ok(())
}

/// `image_transforms.center_crop` on interleaved RGB: the window starting at
/// `(size − crop) // 2` on each axis; an axis shorter than the crop is padded with zeros,
/// the image placed at `ceil((crop − size) / 2)`.
pub fn center_crop(
    rgb: &[u8],
    width: usize,
    height: usize,
    crop_w: usize,
    crop_h: usize,
) -> Result<Vec<u8>> {
    check_image(rgb, width, height)?;
    if crop_w == 0 || crop_h == 0 {
        return Err(ClipError::InvalidInput(format!(
            "crop size {crop_w}×{crop_h} is empty"
        )));
    }
    // Source index of output 0 on an axis: negative when the axis is padded.
    let start = |size: usize, crop: usize| -> i64 {
        if crop <= size {
            ((size - crop) / 2) as i64
        } else {
            -(((crop - size) as i64 + 1) / 2)
        }
    };
    let (x0, y0) = (start(width, crop_w), start(height, crop_h));
    let mut out = vec![0u8; crop_w * crop_h * 3];
    for (oy, row) in out.chunks_exact_mut(crop_w * 3).enumerate() {
        let sy = y0 + oy as i64;
        if sy < 0 || sy >= height as i64 {
            continue;
        }
        let src_row = &rgb[sy as usize * width * 3..(sy as usize + 1) * width * 3];
        for (ox, px) in row.chunks_exact_mut(3).enumerate() {
            let sx = x0 + ox as i64;
            if sx >= 0 && sx < width as i64 {
                px.copy_from_slice(&src_row[sx as usize * 3..sx as usize * 3 + 3]);
            }
        }
    }
    Ok(out)
}

/// `size` / `crop_size` as written in configs: a bare side, or a dict.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Side(usize),
    Dict {
        shortest_edge: Option<usize>,
        height: Option<usize>,
        width: Option<usize>,
    },
}

/// The JSON of a `preprocessor_config.json`, defaults as `CLIPImageProcessor`'s.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct RawProcessor {
    do_resize: bool,
    size: RawSize,
    resample: u32,
    do_center_crop: bool,
    crop_size: RawSize,
    do_rescale: bool,
    rescale_factor: f64,
    do_normalize: bool,
    image_mean: Vec<f64>,
    image_std: Vec<f64>,
    do_convert_rgb: bool,
}

impl Default for RawProcessor {
    fn default() -> Self {
        Self {
            do_resize: true,
            size: RawSize::Side(224),
            resample: 3,
            do_center_crop: true,
            crop_size: RawSize::Side(224),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN.to_vec(),
            image_std: OPENAI_CLIP_STD.to_vec(),
            do_convert_rgb: true,
        }
    }
}

impl RawProcessor {
    fn resolve(self, path: &Path) -> Result<ClipImageProcessor> {
        let bad = |field: &str, reason: String| ClipError::ConfigField {
            path: path.to_path_buf(),
            field: field.into(),
            reason,
        };
        let positive = |field: &str, n: usize| {
            if n == 0 {
                Err(bad(field, "must be positive".into()))
            } else {
                Ok(n)
            }
        };
        let size = match self.size {
            RawSize::Side(n) => ResizeTarget::ShortestEdge(positive("size", n)?),
            RawSize::Dict {
                shortest_edge: Some(n),
                ..
            } => ResizeTarget::ShortestEdge(positive("size.shortest_edge", n)?),
            RawSize::Dict {
                height: Some(h),
                width: Some(w),
                ..
            } => ResizeTarget::Exact {
                height: positive("size.height", h)?,
                width: positive("size.width", w)?,
            },
            RawSize::Dict { .. } => {
                return Err(bad(
                    "size",
                    "expected {\"shortest_edge\": n} or {\"height\": h, \"width\": w}".into(),
                ));
            }
        };
        let crop_size = match self.crop_size {
            RawSize::Side(n) => (positive("crop_size", n)?, n),
            RawSize::Dict {
                height: Some(h),
                width: Some(w),
                ..
            } => (
                positive("crop_size.height", h)?,
                positive("crop_size.width", w)?,
            ),
            RawSize::Dict { .. } => {
                return Err(bad(
                    "crop_size",
                    "expected {\"height\": h, \"width\": w}".into(),
                ));
            }
        };
        let resample = match self.resample {
            3 => Filter::Bicubic,
            2 => Filter::Bilinear,
            other => {
                return Err(bad(
                    "resample",
                    format!("{other} (only 3 = BICUBIC and 2 = BILINEAR are implemented)"),
                ));
            }
        };
        let triple = |field: &str, v: &[f64]| -> Result<[f64; 3]> {
            match v {
                [a, b, c] => Ok([*a, *b, *c]),
                _ => Err(bad(field, format!("{} values, expected 3 (RGB)", v.len()))),
            }
        };
        let image_mean = triple("image_mean", &self.image_mean)?;
        let image_std = triple("image_std", &self.image_std)?;
        if image_std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(bad("image_std", format!("{image_std:?} has a zero")));
        }
        if !self.do_convert_rgb {
            // Images are always read as RGB here; a processor meant to see other modes is not
            // one this implementation reproduces.
            return Err(bad("do_convert_rgb", "false (only RGB input)".into()));
        }
        Ok(ClipImageProcessor {
            do_resize: self.do_resize,
            size,
            resample,
            do_center_crop: self.do_center_crop,
            crop_size,
            do_rescale: self.do_rescale,
            rescale_factor: self.rescale_factor,
            do_normalize: self.do_normalize,
            image_mean,
            image_std,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ClipImageProcessor> {
        ClipImageProcessor::from_json_str(json, Path::new("preprocessor_config.json"))
    }

    #[test]
    fn both_config_forms_are_read() {
        let new = parse(
            r#"{"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336},
                "resample": 3, "image_processor_type": "CLIPImageProcessor"}"#,
        )
        .unwrap();
        assert_eq!(new, ClipImageProcessor::for_image_size(336));
        let old =
            parse(r#"{"size": 224, "crop_size": 224, "feature_extractor_type": "x"}"#).unwrap();
        assert_eq!(old, ClipImageProcessor::for_image_size(224));
        for (json, field) in [
            (r#"{"resample": 1}"#, "resample"),
            (r#"{"image_mean": [0.5]}"#, "image_mean"),
            (r#"{"size": {"longest_edge": 3}}"#, "size"),
            (r#"{"do_resize": "yes"}"#, "do_resize"),
        ] {
            match parse(json) {
                Err(ClipError::ConfigField { field: f, .. }) => assert_eq!(f, field, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn shortest_edge_sizes_truncate_as_python() {
        let p = ClipImageProcessor::for_image_size(224);
        assert_eq!(p.resized_size(480, 640), (224, 298)); // 298.67 → 298
        assert_eq!(p.resized_size(640, 427), (335, 224)); // 335.74 → 335
        assert_eq!(p.resized_size(224, 224), (224, 224));
        assert_eq!(p.resized_size(3, 1000), (224, 74666));
    }

    #[test]
    fn center_crop_pads_small_axes_like_transformers() {
        // 3 wide, 1 high → 4 wide (pad 1 on the left: ceil(1/2)), 1 high; 2 wide crop.
        let rgb: Vec<u8> = (1..=9).collect();
        assert_eq!(
            center_crop(&rgb, 3, 1, 4, 1).unwrap(),
            [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        );
        assert_eq!(center_crop(&rgb, 3, 1, 2, 1).unwrap(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(
            center_crop(&rgb, 3, 1, 1, 3).unwrap(),
            [0, 0, 0, 4, 5, 6, 0, 0, 0]
        );
        // Sizes that do not fit are errors, not panics.
        let e = center_crop(&rgb, 3, 1, 0, 1)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("crop size 0×1"), "{e}");
        let e = center_crop(&rgb[..5], 3, 1, 2, 1)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("5 bytes"), "{e}");
    }
}
