//! A generator of synthetic SA-1B-format data: images of random shapes (circles, ellipses,
//! rectangles, triangles) in named colours over a textured background, with exact masks of
//! their visible parts. For tests, examples and demo training on a CPU; each object also gets a
//! caption ("a small red circle") for text-prompt experiments.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::sa1b::{RleJson, Sa1bAnnotation, Sa1bFile, Sa1bImageInfo};
use crate::error::{DataError, Result};
use crate::rle::Rle;
use crate::seed::mix_seed;

/// What to generate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SyntheticConfig {
    /// Number of images.
    pub num_images: usize,
    /// Smallest image side (each side is drawn independently in `[min_side, max_side]`).
    pub min_side: usize,
    /// Largest image side.
    pub max_side: usize,
    /// Fewest shapes drawn per image.
    pub min_objects: usize,
    /// Most shapes drawn per image.
    pub max_objects: usize,
    /// Visible pixels below which an occluded shape gets no annotation.
    pub min_object_area: u64,
    /// JPEG quality of the written images.
    pub jpeg_quality: u8,
    /// Seed; image `i` depends only on `(seed, first_id + i)`.
    pub seed: u64,
    /// Id of the first image (`sa_<id>.jpg`).
    pub first_id: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            num_images: 100,
            min_side: 96,
            max_side: 256,
            min_objects: 1,
            max_objects: 6,
            min_object_area: 40,
            jpeg_quality: 95,
            seed: 0,
            first_id: 1,
        }
    }
}

impl SyntheticConfig {
    /// Rejects empty ranges and sizes no shape fits in.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::InvalidValue(format!("synthetic dataset: {m}")));
        if self.min_side < 16 || self.min_side > self.max_side {
            return bad(format!(
                "sides must satisfy 16 ≤ min_side ≤ max_side, got {}..{}",
                self.min_side, self.max_side
            ));
        }
        if self.min_objects == 0 || self.min_objects > self.max_objects {
            return bad(format!(
                "objects must satisfy 1 ≤ min_objects ≤ max_objects, got {}..{}",
                self.min_objects, self.max_objects
            ));
        }
        if self.max_objects > u16::MAX as usize - 1 {
            return bad(format!("at most 65534 objects, got {}", self.max_objects));
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return bad(format!(
                "jpeg_quality must be 1–100, got {}",
                self.jpeg_quality
            ));
        }
        Ok(())
    }
}

/// The colours objects are drawn in, with the names captions use.
pub const COLORS: [(&str, [u8; 3]); 8] = [
    ("red", [215, 40, 40]),
    ("green", [40, 165, 60]),
    ("blue", [40, 80, 215]),
    ("yellow", [230, 210, 40]),
    ("purple", [135, 60, 180]),
    ("orange", [240, 135, 30]),
    ("cyan", [40, 200, 210]),
    ("white", [245, 245, 245]),
];

#[derive(Debug, Clone, Copy)]
enum Shape {
    Circle {
        c: [f64; 2],
        r: f64,
    },
    Ellipse {
        c: [f64; 2],
        r: [f64; 2],
        angle: f64,
    },
    Rectangle {
        c: [f64; 2],
        half: [f64; 2],
        angle: f64,
    },
    Triangle {
        p: [[f64; 2]; 3],
    },
}

impl Shape {
    fn name(&self) -> &'static str {
        match self {
            Shape::Circle { .. } => "circle",
            Shape::Ellipse { .. } => "ellipse",
            Shape::Rectangle { .. } => "rectangle",
            Shape::Triangle { .. } => "triangle",
        }
    }

    /// Whether the pixel centre `(x, y)` is inside.
    fn contains(&self, x: f64, y: f64) -> bool {
        let rotate = |c: [f64; 2], angle: f64| {
            let (s, co) = angle.sin_cos();
            let (dx, dy) = (x - c[0], y - c[1]);
            (dx * co + dy * s, -dx * s + dy * co)
        };
        match *self {
            Shape::Circle { c, r } => (x - c[0]).powi(2) + (y - c[1]).powi(2) <= r * r,
            Shape::Ellipse { c, r, angle } => {
                let (u, v) = rotate(c, angle);
                (u / r[0]).powi(2) + (v / r[1]).powi(2) <= 1.0
            }
            Shape::Rectangle { c, half, angle } => {
                let (u, v) = rotate(c, angle);
                u.abs() <= half[0] && v.abs() <= half[1]
            }
            Shape::Triangle { p } => {
                let cross = |a: [f64; 2], b: [f64; 2]| {
                    (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])
                };
                let (d0, d1, d2) = (cross(p[0], p[1]), cross(p[1], p[2]), cross(p[2], p[0]));
                (d0 >= 0.0 && d1 >= 0.0 && d2 >= 0.0) || (d0 <= 0.0 && d1 <= 0.0 && d2 <= 0.0)
            }
        }
    }

    fn random(w: usize, h: usize, rng: &mut StdRng) -> Self {
        let side = w.min(h) as f64;
        let c = [
            rng.random_range(0.0..w as f64),
            rng.random_range(0.0..h as f64),
        ];
        let size = || side * 0.06;
        let r = rng.random_range(size()..side * 0.3);
        let angle = rng.random_range(0.0..std::f64::consts::PI);
        match rng.random_range(0..4) {
            0 => Shape::Circle { c, r },
            1 => Shape::Ellipse {
                c,
                r: [r, r * rng.random_range(0.35..0.8)],
                angle,
            },
            2 => Shape::Rectangle {
                c,
                half: [r, r * rng.random_range(0.3..1.0)],
                angle,
            },
            _ => {
                let a0 = rng.random_range(0.0..std::f64::consts::TAU);
                let p = [0.0, 2.1, 4.2].map(|da: f64| {
                    let a = a0 + da + rng.random_range(-0.35..0.35);
                    [c[0] + r * a.cos(), c[1] + r * a.sin()]
                });
                Shape::Triangle { p }
            }
        }
    }
}

fn size_word(area: u64, w: usize, h: usize) -> &'static str {
    let f = area as f64 / (w * h) as f64;
    if f < 0.03 {
        "small"
    } else if f < 0.10 {
        "medium"
    } else {
        "large"
    }
}

/// One generated image: RGB pixels and its SA-1B JSON.
pub fn generate_image(config: &SyntheticConfig, id: u64) -> Result<(image::RgbImage, Sa1bFile)> {
    config.validate()?;
    let mut rng = StdRng::seed_from_u64(mix_seed(config.seed, id));
    let w = rng.random_range(config.min_side..=config.max_side);
    let h = rng.random_range(config.min_side..=config.max_side);
    // A muted two-colour gradient with grain, so that the background is not one flat colour.
    let base = |rng: &mut StdRng| {
        let g = rng.random_range(70.0..170.0);
        [0, 1, 2].map(|_| g + rng.random_range(-20.0..20.0))
    };
    let (b0, b1) = (base(&mut rng), base(&mut rng));
    let vertical = rng.random_bool(0.5);
    let mut pixels = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let t = if vertical {
                y as f64 / h as f64
            } else {
                x as f64 / w as f64
            };
            for ch in 0..3 {
                let v = b0[ch] * (1.0 - t) + b1[ch] * t + rng.random_range(-8.0..8.0);
                pixels[(y * w + x) * 3 + ch] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    let n = rng.random_range(config.min_objects..=config.max_objects);
    let mut owner = vec![0u16; w * h];
    let mut shapes = Vec::with_capacity(n);
    for k in 0..n {
        let shape = Shape::random(w, h, &mut rng);
        let (name, rgb) = COLORS[rng.random_range(0..COLORS.len())];
        let tint =
            [0, 1, 2].map(|ch| (rgb[ch] as i32 + rng.random_range(-18..=18)).clamp(0, 255) as u8);
        for y in 0..h {
            for x in 0..w {
                if shape.contains(x as f64 + 0.5, y as f64 + 0.5) {
                    owner[y * w + x] = k as u16 + 1;
                    pixels[(y * w + x) * 3..][..3].copy_from_slice(&tint);
                }
            }
        }
        shapes.push((shape, name));
    }
    let mut annotations = Vec::new();
    for (k, (shape, color)) in shapes.iter().enumerate() {
        let mask: Vec<bool> = owner.iter().map(|&o| o as usize == k + 1).collect();
        let rle = Rle::from_mask(&mask, h, w)?;
        let area = rle.area();
        // A shape hidden by the ones drawn over it has no pixel left (nor an annotation).
        if area == 0 || area < config.min_object_area {
            continue;
        }
        let inside: Vec<usize> = (0..w * h).filter(|&i| mask[i]).collect();
        let p = inside[rng.random_range(0..inside.len())];
        annotations.push(Sa1bAnnotation {
            id: id * 1000 + annotations.len() as u64,
            segmentation: RleJson {
                size: [h, w],
                counts: rle.to_coco_string(),
            },
            bbox: rle.to_bbox(),
            area: area as f64,
            predicted_iou: Some(1.0),
            stability_score: Some(1.0),
            point_coords: vec![[(p % w) as f64 + 0.5, (p / w) as f64 + 0.5]],
            crop_box: Some([0.0, 0.0, w as f64, h as f64]),
            caption: Some(format!(
                "a {} {color} {}",
                size_word(area, w, h),
                shape.name()
            )),
        });
    }
    let image = image::RgbImage::from_raw(w as u32, h as u32, pixels)
        .ok_or_else(|| DataError::InvalidImage(format!("{w}×{h} buffer")))?;
    let file = Sa1bFile {
        image: Sa1bImageInfo {
            image_id: id,
            width: w,
            height: h,
            file_name: format!("sa_{id}.jpg"),
        },
        annotations,
    };
    Ok((image, file))
}

/// Writes `config.num_images` image/JSON pairs (`sa_<id>.jpg`, `sa_<id>.json`) into `dir`
/// (created if needed) and returns the image paths.
pub fn write_synthetic_dataset(
    dir: impl AsRef<Path>,
    config: &SyntheticConfig,
) -> Result<Vec<PathBuf>> {
    config.validate()?;
    let dir = dir.as_ref();
    let io = |path: &Path, e: &dyn std::fmt::Display| DataError::DatasetFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    let mut paths = Vec::with_capacity(config.num_images);
    for i in 0..config.num_images as u64 {
        let id = config.first_id + i;
        let (image, file) = generate_image(config, id)?;
        let image_path = dir.join(&file.image.file_name);
        let out = std::fs::File::create(&image_path).map_err(|e| io(&image_path, &e))?;
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(
            std::io::BufWriter::new(out),
            config.jpeg_quality,
        );
        encoder
            .encode_image(&image)
            .map_err(|e| io(&image_path, &e))?;
        let json_path = image_path.with_extension("json");
        let json = serde_json::to_vec(&file).map_err(|e| io(&json_path, &e))?;
        std::fs::write(&json_path, json).map_err(|e| io(&json_path, &e))?;
        paths.push(image_path);
    }
    Ok(paths)
}
