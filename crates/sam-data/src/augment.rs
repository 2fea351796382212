//! Training augmentation applied consistently to an image and its objects (masks, boxes,
//! points): horizontal flip, scale jitter with random crop, colour jitter, and ground truth at the
//! decoder's low resolution. All randomness comes from the caller's seeded RNG.

use rand::Rng;
use rand::seq::SliceRandom;

use crate::error::{DataError, Result};
use crate::pillow_resize::resize_bilinear_rgb;

/// An image with its objects. Boxes are `[x0, y0, x1, y1]` in pixel edges (exclusive ends),
/// points `(x, y)` in pixel indices; both belong to the object of the same index.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Interleaved RGB, `height × width × 3`.
    pub image: Vec<u8>,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// One row-major `height × width` mask per object.
    pub masks: Vec<Vec<bool>>,
    /// One box per object.
    pub boxes: Vec<[f64; 4]>,
    /// Points per object (may be empty lists).
    pub points: Vec<Vec<[f64; 2]>>,
}

impl Sample {
    /// Checks that every buffer fits the image and the object lists agree.
    pub fn validate(&self) -> Result<()> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 || self.image.len() != w * h * 3 {
            return Err(DataError::InvalidImage(format!(
                "sample image of {} bytes does not fit {w}×{h}×3",
                self.image.len()
            )));
        }
        if let Some((i, m)) = self
            .masks
            .iter()
            .enumerate()
            .find(|(_, m)| m.len() != w * h)
        {
            return Err(DataError::InvalidValue(format!(
                "mask {i} has {} pixels, the image {w}×{h}",
                m.len()
            )));
        }
        let n = self.masks.len();
        if self.boxes.len() != n || self.points.len() != n {
            return Err(DataError::InvalidValue(format!(
                "{n} masks but {} boxes and {} point lists",
                self.boxes.len(),
                self.points.len()
            )));
        }
        Ok(())
    }

    /// Mirrors left–right.
    pub fn hflip(&mut self) {
        let (w, h) = (self.width, self.height);
        for y in 0..h {
            let row = &mut self.image[y * w * 3..(y + 1) * w * 3];
            for x in 0..w / 2 {
                for c in 0..3 {
                    row.swap(x * 3 + c, (w - 1 - x) * 3 + c);
                }
            }
        }
        for m in &mut self.masks {
            for y in 0..h {
                m[y * w..(y + 1) * w].reverse();
            }
        }
        let wf = w as f64;
        for b in &mut self.boxes {
            *b = [wf - b[2], b[1], wf - b[0], b[3]];
        }
        for p in self.points.iter_mut().flatten() {
            p[0] = wf - 1.0 - p[0];
        }
    }

    /// Resizes to `new_w × new_h`: the image with Pillow's bilinear filter, masks by nearest
    /// neighbour (pixel centres), boxes and points by the per-axis ratios.
    pub fn resize(&mut self, new_w: usize, new_h: usize) {
        let (w, h) = (self.width, self.height);
        self.image = resize_bilinear_rgb(&self.image, w, h, new_w, new_h);
        let src_x: Vec<usize> = (0..new_w)
            .map(|x| (((x as f64 + 0.5) * w as f64 / new_w as f64) as usize).min(w - 1))
            .collect();
        let src_y: Vec<usize> = (0..new_h)
            .map(|y| (((y as f64 + 0.5) * h as f64 / new_h as f64) as usize).min(h - 1))
            .collect();
        for m in &mut self.masks {
            let mut out = vec![false; new_w * new_h];
            for (y, &sy) in src_y.iter().enumerate() {
                for (x, &sx) in src_x.iter().enumerate() {
                    out[y * new_w + x] = m[sy * w + sx];
                }
            }
            *m = out;
        }
        let (sx, sy) = (new_w as f64 / w as f64, new_h as f64 / h as f64);
        for b in &mut self.boxes {
            *b = [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy];
        }
        for p in self.points.iter_mut().flatten() {
            // Pixel indices map through their centres.
            *p = [(p[0] + 0.5) * sx - 0.5, (p[1] + 0.5) * sy - 0.5];
        }
        self.width = new_w;
        self.height = new_h;
    }

    /// Keeps the `cw × ch` window at `(x0, y0)`; boxes are clipped, points outside dropped, and
    /// objects whose mask becomes empty removed.
    pub fn crop(&mut self, x0: usize, y0: usize, cw: usize, ch: usize) {
        let w = self.width;
        let mut image = Vec::with_capacity(cw * ch * 3);
        for y in y0..y0 + ch {
            image.extend_from_slice(&self.image[(y * w + x0) * 3..(y * w + x0 + cw) * 3]);
        }
        self.image = image;
        let (xf, yf) = (x0 as f64, y0 as f64);
        let mut keep = Vec::new();
        for i in 0..self.masks.len() {
            let m = &self.masks[i];
            let mut out = Vec::with_capacity(cw * ch);
            for y in y0..y0 + ch {
                out.extend_from_slice(&m[y * w + x0..y * w + x0 + cw]);
            }
            if out.iter().any(|&v| v) {
                let b = self.boxes[i];
                let clip = |v: f64, hi: usize| v.clamp(0.0, hi as f64);
                let b = [
                    clip(b[0] - xf, cw),
                    clip(b[1] - yf, ch),
                    clip(b[2] - xf, cw),
                    clip(b[3] - yf, ch),
                ];
                let pts: Vec<[f64; 2]> = self.points[i]
                    .iter()
                    .map(|p| [p[0] - xf, p[1] - yf])
                    .filter(|p| p[0] >= 0.0 && p[1] >= 0.0 && p[0] < cw as f64 && p[1] < ch as f64)
                    .collect();
                keep.push((out, b, pts));
            }
        }
        self.masks = keep.iter().map(|k| k.0.clone()).collect();
        self.boxes = keep.iter().map(|k| k.1).collect();
        self.points = keep.into_iter().map(|k| k.2).collect();
        self.width = cw;
        self.height = ch;
    }
}

/// Augmentation settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugmentConfig {
    /// Probability of a horizontal flip.
    pub flip_prob: f64,
    /// Longest side after scale jitter, before cropping (the model's image size).
    pub target_size: usize,
    /// Range of the scale factor applied to `target_size` (large-scale jitter: 0.1–2.0).
    pub scale_range: (f64, f64),
    /// Brightness, contrast and saturation jitter strengths (factors in `[1 − s, 1 + s]`).
    pub brightness: f64,
    /// See `brightness`.
    pub contrast: f64,
    /// See `brightness`.
    pub saturation: f64,
    /// Hue shift range, in turns (`[−hue, hue]`, at most 0.5).
    pub hue: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            flip_prob: 0.5,
            target_size: 1024,
            scale_range: (0.1, 2.0),
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
        }
    }
}

impl AugmentConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::InvalidValue(m));
        if !(0.0..=1.0).contains(&self.flip_prob) {
            return bad(format!("flip_prob {} must be in [0, 1]", self.flip_prob));
        }
        let (lo, hi) = self.scale_range;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return bad(format!(
                "scale_range ({lo}, {hi}) must satisfy 0 < min <= max"
            ));
        }
        if self.target_size == 0 {
            return bad("target_size must be positive".into());
        }
        for (name, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} {v} must be in [0, 1]"));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return bad(format!("hue {} must be in [0, 0.5]", self.hue));
        }
        Ok(())
    }
}

/// Flip, scale jitter (resize so the longest side is `target_size × s`, then a random
/// `target_size` crop where larger) and colour jitter, in that order.
pub fn augment(mut sample: Sample, config: &AugmentConfig, rng: &mut impl Rng) -> Result<Sample> {
    sample.validate()?;
    config.validate()?;
    if rng.random::<f64>() < config.flip_prob {
        sample.hflip();
    }
    let (lo, hi) = config.scale_range;
    let s = if hi > lo {
        rng.random_range(lo..=hi)
    } else {
        lo
    };
    let longest = ((config.target_size as f64 * s).round() as usize).max(1);
    let (w, h) = (sample.width, sample.height);
    let scale = longest as f64 / w.max(h) as f64;
    let (nw, nh) = (
        ((w as f64 * scale).round() as usize).max(1),
        ((h as f64 * scale).round() as usize).max(1),
    );
    sample.resize(nw, nh);
    let t = config.target_size;
    if nw > t || nh > t {
        let (cw, ch) = (nw.min(t), nh.min(t));
        let x0 = rng.random_range(0..=nw - cw);
        let y0 = rng.random_range(0..=nh - ch);
        sample.crop(x0, y0, cw, ch);
    }
    color_jitter(&mut sample.image, config, rng);
    Ok(sample)
}

fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / d + 2.0) / 6.0
    } else {
        ((r - g) / d + 4.0) / 6.0
    };
    let s = if max == 0.0 { 0.0 } else { d / max };
    (h, s, max)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match i as i32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// torchvision's `ColorJitter` on a u8 RGB buffer: brightness, contrast (towards the mean
/// luma), saturation (towards each pixel's luma) and hue, in a random order, with factors drawn
/// from the configured ranges.
pub fn color_jitter(image: &mut [u8], config: &AugmentConfig, rng: &mut impl Rng) {
    let factor = |s: f64, rng: &mut dyn rand::RngCore| -> Option<f32> {
        (s > 0.0).then(|| rng.random_range((1.0 - s)..=(1.0 + s)) as f32)
    };
    let mut ops = [0u8, 1, 2, 3];
    ops.shuffle(rng);
    let b = factor(config.brightness, rng);
    let c = factor(config.contrast, rng);
    let s = factor(config.saturation, rng);
    let hue = (config.hue > 0.0).then(|| rng.random_range(-config.hue..=config.hue) as f32);
    let mut px: Vec<[f32; 3]> = image
        .chunks_exact(3)
        .map(|p| {
            [
                p[0] as f32 / 255.0,
                p[1] as f32 / 255.0,
                p[2] as f32 / 255.0,
            ]
        })
        .collect();
    let clamp = |v: f32| v.clamp(0.0, 1.0);
    for op in ops {
        match (op, b, c, s, hue) {
            (0, Some(f), ..) => px
                .iter_mut()
                .for_each(|p| p.iter_mut().for_each(|v| *v = clamp(*v * f))),
            (1, _, Some(f), ..) => {
                let mean =
                    px.iter().map(|p| luma(p[0], p[1], p[2])).sum::<f32>() / px.len().max(1) as f32;
                px.iter_mut().for_each(|p| {
                    p.iter_mut()
                        .for_each(|v| *v = clamp(f * *v + (1.0 - f) * mean))
                });
            }
            (2, _, _, Some(f), _) => px.iter_mut().for_each(|p| {
                let g = luma(p[0], p[1], p[2]);
                p.iter_mut()
                    .for_each(|v| *v = clamp(f * *v + (1.0 - f) * g));
            }),
            (3, .., Some(shift)) => px.iter_mut().for_each(|p| {
                let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
                let (r, g, b) = hsv_to_rgb(h + shift, s, v);
                *p = [r, g, b];
            }),
            _ => {}
        }
    }
    for (dst, p) in image.chunks_exact_mut(3).zip(px) {
        for (d, v) in dst.iter_mut().zip(p) {
            *d = (v * 255.0).round() as u8;
        }
    }
}

/// Ground truth at the decoder's resolution: the mask (already resized, `h × w` with
/// `h, w ≤ image_size`) placed in the padded `image_size²` square and averaged over
/// `image_size / out`-sized cells; `[out, out]` fractions in `[0, 1]`.
pub fn low_res_mask(
    mask: &[bool],
    h: usize,
    w: usize,
    image_size: usize,
    out: usize,
) -> Result<Vec<f32>> {
    if out == 0
        || !image_size.is_multiple_of(out)
        || h > image_size
        || w > image_size
        || mask.len() != h * w
    {
        return Err(DataError::InvalidValue(format!(
            "low-res mask: {h}×{w} mask ({} px) in a {image_size}² input to {out}²",
            mask.len()
        )));
    }
    let f = image_size / out;
    let mut cells = vec![0f32; out * out];
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let (x, y) = (i % w, i / w);
        cells[(y / f) * out + x / f] += 1.0;
    }
    let area = (f * f) as f32;
    cells.iter_mut().for_each(|c| *c /= area);
    Ok(cells)
}
