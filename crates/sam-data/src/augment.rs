//! Training augmentation applied consistently to an image and its objects (masks, boxes,
//! points): horizontal flip, scale jitter with random crop, colour jitter, and ground truth at the
//! decoder's low resolution. All randomness comes from the caller's seeded RNG.

use rand::Rng;
use rand::seq::SliceRandom;

use crate::error::{DataError, Result};
use crate::pillow_resize::{mirror_rows, resize_bilinear_rgb, resize_bilinear_rgb_window};

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
        check_image(self.image.len(), w, h)?;
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
        mirror_rows(&mut self.image, w);
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
        let src_x = nearest_indices(w, new_w);
        let src_y = nearest_indices(h, new_h);
        for m in &mut self.masks {
            let mut out = Vec::with_capacity(new_w * new_h);
            for &sy in &src_y {
                let row = &m[sy * w..(sy + 1) * w];
                out.extend(src_x.iter().map(|&sx| row[sx]));
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
        self.image = crop_rgb(&self.image, w, [x0, y0, cw, ch]);
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
    let g = Geometry::draw(sample.width, sample.height, config, rng);
    if g.flip {
        sample.hflip();
    }
    sample.resize(g.resized.0, g.resized.1);
    if let Some([x0, y0, cw, ch]) = g.crop {
        sample.crop(x0, y0, cw, ch);
    }
    color_jitter(&mut sample.image, config, rng);
    Ok(sample)
}

/// Where [`augment`] moves pixels. Its draws come before any pixel is touched (resizing draws
/// nothing), so drawing them first lets a caller move the image and the masks each in one go,
/// with the same random stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Mirror left–right first.
    pub(crate) flip: bool,
    /// `(width, height)` after resizing.
    pub(crate) resized: (usize, usize),
    /// `[x0, y0, width, height]` kept of the resized image, when it exceeds the target.
    pub(crate) crop: Option<[usize; 4]>,
}

impl Geometry {
    /// The flip, scale and crop draws of [`augment`] for a `width × height` image.
    pub(crate) fn draw(
        width: usize,
        height: usize,
        config: &AugmentConfig,
        rng: &mut impl Rng,
    ) -> Self {
        let flip = rng.random::<f64>() < config.flip_prob;
        let (lo, hi) = config.scale_range;
        let s = if hi > lo {
            rng.random_range(lo..=hi)
        } else {
            lo
        };
        let longest = ((config.target_size as f64 * s).round() as usize).max(1);
        let (w, h) = (width, height);
        let scale = longest as f64 / w.max(h) as f64;
        let (nw, nh) = (
            ((w as f64 * scale).round() as usize).max(1),
            ((h as f64 * scale).round() as usize).max(1),
        );
        let t = config.target_size;
        let crop = (nw > t || nh > t).then(|| {
            let (cw, ch) = (nw.min(t), nh.min(t));
            let x0 = rng.random_range(0..=nw - cw);
            let y0 = rng.random_range(0..=nh - ch);
            [x0, y0, cw, ch]
        });
        Self {
            flip,
            resized: (nw, nh),
            crop,
        }
    }

    /// The part of the resized image that is kept, `[x0, y0, width, height]`.
    pub(crate) fn window(&self) -> [usize; 4] {
        let (w, h) = self.resized;
        self.crop.unwrap_or([0, 0, w, h])
    }

    /// Moves an RGB `width × height` image as [`augment`] moves a sample's image (before the
    /// colour jitter).
    pub(crate) fn apply_to_image(&self, image: &[u8], width: usize, height: usize) -> Vec<u8> {
        resize_bilinear_rgb_window(image, width, height, self.resized, self.window(), self.flip)
    }
}

/// The nearest-neighbour source index (through pixel centres) of each of `dst` positions on an
/// axis of `src` pixels: how [`Sample::resize`] samples masks.
pub(crate) fn nearest_indices(src: usize, dst: usize) -> Vec<usize> {
    (0..dst)
        .map(|i| (((i as f64 + 0.5) * src as f64 / dst as f64) as usize).min(src - 1))
        .collect()
}

/// `Err` unless an RGB buffer of `len` bytes is a non-empty `width × height` image.
pub(crate) fn check_image(len: usize, width: usize, height: usize) -> Result<()> {
    if width == 0 || height == 0 || len != width * height * 3 {
        return Err(DataError::InvalidImage(format!(
            "sample image of {len} bytes does not fit {width}×{height}×3"
        )));
    }
    Ok(())
}

/// The `[x0, y0, cw, ch]` window of an RGB image `width` pixels wide.
fn crop_rgb(image: &[u8], width: usize, [x0, y0, cw, ch]: [usize; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cw * ch * 3);
    for y in y0..y0 + ch {
        out.extend_from_slice(&image[(y * width + x0) * 3..(y * width + x0 + cw) * 3]);
    }
    out
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
        rem_euclid_6((g - b) / d) / 6.0
    } else if max == g {
        ((b - r) / d + 2.0) / 6.0
    } else {
        ((r - g) / d + 4.0) / 6.0
    };
    let s = if max == 0.0 { 0.0 } else { d / max };
    (h, s, max)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = rem_euclid_1(h) * 6.0;
    let i = floor(h6);
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

// Baseline x86-64 has no instruction for `floor` or `%` on floats, so std calls libm for them,
// per pixel in the hue step. Below 2^23 in magnitude, where a cast to i32 truncates exactly,
// they take a few instructions and give the same bits; elsewhere (and for NaN) the helpers
// defer to std.

/// `x.rem_euclid(6.0)`. For `|x| < 6` (every sector `rgb_to_hsv` computes) `x % 6.0` is `x`.
fn rem_euclid_6(x: f32) -> f32 {
    if x.abs() < 6.0 {
        if x < 0.0 { x + 6.0 } else { x }
    } else {
        x.rem_euclid(6.0)
    }
}

/// `x.rem_euclid(1.0)`: `x % 1.0` is `x − trunc(x)` (exact), a zero taking the sign of `x`.
fn rem_euclid_1(x: f32) -> f32 {
    if x.abs() < 8_388_608.0 {
        let r = x - (x as i32) as f32;
        let r = if r == 0.0 { 0f32.copysign(x) } else { r };
        if r < 0.0 { r + 1.0 } else { r }
    } else {
        x.rem_euclid(1.0)
    }
}

/// `x.floor()`; zeros keep their sign, as std's.
fn floor(x: f32) -> f32 {
    if x.abs() < 8_388_608.0 && x != 0.0 {
        let t = (x as i32) as f32;
        if t > x { t - 1.0 } else { t }
    } else {
        x.floor()
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
    let steps: Vec<Jitter> = ops
        .iter()
        .filter_map(|op| match (op, b, c, s, hue) {
            (0, Some(f), ..) => Some(Jitter::Brightness(f)),
            (1, _, Some(f), ..) => Some(Jitter::Contrast(f)),
            (2, _, _, Some(f), _) => Some(Jitter::Saturation(f)),
            (3, .., Some(shift)) => Some(Jitter::Hue(shift)),
            _ => None,
        })
        .collect();
    let contrast = steps.iter().enumerate().find_map(|(i, j)| match j {
        Jitter::Contrast(f) => Some((i, *f)),
        _ => None,
    });
    // The steps run block by block, each over the whole block (loops that vectorise, on data
    // in cache). Contrast needs the mean luma of the image as the steps before it left it, so
    // with contrast the pixels are kept in f32 up to there.
    let Some((k, f)) = contrast else {
        let mut block = Vec::with_capacity(JITTER_BLOCK);
        for chunk in image.chunks_mut(JITTER_BLOCK * 3) {
            load_unit(chunk, &mut block);
            apply_jitter(&steps, &mut block);
            store_unit(chunk, &block);
        }
        return;
    };
    let mut px = Vec::with_capacity(image.len() / 3);
    load_unit(image, &mut px);
    for block in px.chunks_mut(JITTER_BLOCK) {
        apply_jitter(&steps[..k], block);
    }
    let mean = px.iter().map(|p| luma(p[0], p[1], p[2])).sum::<f32>() / px.len().max(1) as f32;
    let clamp = |v: f32| v.clamp(0.0, 1.0);
    for (chunk, block) in image
        .chunks_mut(JITTER_BLOCK * 3)
        .zip(px.chunks_mut(JITTER_BLOCK))
    {
        block.iter_mut().for_each(|p| {
            p.iter_mut()
                .for_each(|v| *v = clamp(f * *v + (1.0 - f) * mean))
        });
        apply_jitter(&steps[k + 1..], block);
        store_unit(chunk, block);
    }
}

/// Pixels per block of [`color_jitter`] (12 KiB of f32).
const JITTER_BLOCK: usize = 1024;

/// One step of [`color_jitter`], with its drawn factor.
#[derive(Debug, Clone, Copy)]
enum Jitter {
    Brightness(f32),
    Contrast(f32),
    Saturation(f32),
    Hue(f32),
}

/// `v as f32 / 255.0` for every u8 `v`, computed by the compiler (IEEE division, as at run time).
const UNIT: [f32; 256] = {
    let mut table = [0f32; 256];
    let mut v = 0;
    while v < 256 {
        table[v] = v as f32 / 255.0;
        v += 1;
    }
    table
};

/// Replaces `out` with the RGB pixels of `rgb` as `v / 255.0`.
fn load_unit(rgb: &[u8], out: &mut Vec<[f32; 3]>) {
    out.clear();
    out.extend(rgb.chunks_exact(3).map(|p| {
        [
            UNIT[p[0] as usize],
            UNIT[p[1] as usize],
            UNIT[p[2] as usize],
        ]
    }));
}

/// The per-pixel steps, in order, on pixels in `[0, 1]`; contrast, which needs the whole
/// image, is done by the caller.
fn apply_jitter(steps: &[Jitter], px: &mut [[f32; 3]]) {
    let clamp = |v: f32| v.clamp(0.0, 1.0);
    for step in steps {
        match *step {
            Jitter::Brightness(f) => px
                .iter_mut()
                .for_each(|p| p.iter_mut().for_each(|v| *v = clamp(*v * f))),
            Jitter::Saturation(f) => px.iter_mut().for_each(|p| {
                let g = luma(p[0], p[1], p[2]);
                p.iter_mut()
                    .for_each(|v| *v = clamp(f * *v + (1.0 - f) * g));
            }),
            Jitter::Hue(shift) => px.iter_mut().for_each(|p| {
                let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
                let (r, g, b) = hsv_to_rgb(h + shift, s, v);
                *p = [r, g, b];
            }),
            Jitter::Contrast(_) => {}
        }
    }
}

/// Writes pixels in `[0, 1]` back as u8.
fn store_unit(rgb: &mut [u8], px: &[[f32; 3]]) {
    for (d, &v) in rgb.iter_mut().zip(px.as_flattened()) {
        *d = round_to_u8(v * 255.0);
    }
}

/// `x.round() as u8` (halves away from zero, saturating, NaN to 0) without a libm call and
/// without branches, so that loops of it vectorise: after clamping to `[0, 255]`, `x − trunc(x)`
/// is exact, and comparing it with one half decides as `round` does.
fn round_to_u8(x: f32) -> u8 {
    // NaN stays NaN: its cast is 0 and it compares false.
    let c = x.clamp(0.0, 255.0);
    let t = c as i32;
    (t + i32::from(c - t as f32 >= 0.5)) as u8
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
    check_low_res(mask.len(), h, w, image_size, out)?;
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

/// The argument checks of [`low_res_mask`] for a mask of `len` pixels.
pub(crate) fn check_low_res(
    len: usize,
    h: usize,
    w: usize,
    image_size: usize,
    out: usize,
) -> Result<()> {
    if out == 0
        || !image_size.is_multiple_of(out)
        || h > image_size
        || w > image_size
        || len != h * w
    {
        return Err(DataError::InvalidValue(format!(
            "low-res mask: {h}×{w} mask ({len} px) in a {image_size}² input to {out}²"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{floor, rem_euclid_1, rem_euclid_6, round_to_u8};

    #[test]
    fn float_helpers_match_std_bit_for_bit() {
        let mut xs = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            1e-30,
            -1e-30,
            8_388_608.0,
            -8_388_608.5,
            3e9,
            -3e9,
        ];
        for n in -20..20 {
            for base in [n as f32, n as f32 + 0.5, n as f32 * 0.1] {
                xs.extend([base.next_down(), base, base.next_up()]);
            }
        }
        xs.extend((0..200_000u32).map(|i| (i as f32 - 100_000.0) * 0.000_173));
        for x in xs {
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(same(floor(x), x.floor()), "floor {x:e}");
            assert!(same(rem_euclid_1(x), x.rem_euclid(1.0)), "rem 1 {x:e}");
            assert!(same(rem_euclid_6(x), x.rem_euclid(6.0)), "rem 6 {x:e}");
        }
    }

    #[test]
    fn rounding_to_u8_matches_round_and_a_saturating_cast() {
        let mut xs = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            1e-30,
            -0.7,
        ];
        for n in -2..260 {
            for base in [n as f32, n as f32 + 0.5] {
                xs.extend([base.next_down(), base, base.next_up()]);
            }
        }
        xs.extend((0..=255u32).map(|v| v as f32 / 255.0 * 255.0));
        xs.extend((0..100_000u32).map(|i| i as f32 * 0.002_61));
        for x in xs {
            assert_eq!(round_to_u8(x), x.round() as u8, "{x:e}");
        }
    }
}
