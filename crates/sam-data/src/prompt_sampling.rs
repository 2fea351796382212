//! Prompt sampling for SAM's interactive training (paper §3 and Appendix A): a first point or a
//! noisy box per object, then corrective clicks from the error region.
//!
//! Masks are row-major `h × w` boolean slices; points are `(x, y)` pixel coordinates. Every
//! function takes the caller's seeded RNG, so a run is reproducible.

use rand::Rng;
use rand::seq::index::sample;

use crate::error::{DataError, Result};

/// A sampled click: `label` 1 (foreground) or 0 (background).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Click {
    /// Column.
    pub x: f64,
    /// Row.
    pub y: f64,
    /// 1 foreground, 0 background.
    pub label: i64,
}

/// The paper's settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PromptSamplingConfig {
    /// Box noise standard deviation as a fraction of the box side (10%).
    pub box_noise_std_ratio: f64,
    /// Box noise clip, pixels (20).
    pub box_noise_max_px: f64,
    /// Masks sampled per image (64).
    pub max_masks_per_image: usize,
    /// Masks covering more than this fraction of the image are dropped (0.9).
    pub max_mask_area_ratio: f64,
}

impl Default for PromptSamplingConfig {
    fn default() -> Self {
        Self {
            box_noise_std_ratio: 0.1,
            box_noise_max_px: 20.0,
            max_masks_per_image: 64,
            max_mask_area_ratio: 0.9,
        }
    }
}

impl PromptSamplingConfig {
    /// Checks that every setting is in range; errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("box_noise_std_ratio", self.box_noise_std_ratio),
            ("box_noise_max_px", self.box_noise_max_px),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(DataError::InvalidValue(format!(
                    "prompts.{field} {v} must be finite and ≥ 0"
                )));
            }
        }
        let r = self.max_mask_area_ratio;
        if !(r > 0.0 && r <= 1.0) {
            return Err(DataError::InvalidValue(format!(
                "prompts.max_mask_area_ratio {r} must be in (0, 1]"
            )));
        }
        if self.max_masks_per_image == 0 {
            return Err(DataError::InvalidValue(
                "prompts.max_masks_per_image must be ≥ 1".into(),
            ));
        }
        Ok(())
    }
}

fn pixel_center(i: usize, w: usize) -> (f64, f64) {
    ((i % w) as f64, (i / w) as f64)
}

/// A foreground pixel chosen uniformly; `None` for an empty mask.
pub fn sample_positive_point(mask: &[bool], w: usize, rng: &mut impl Rng) -> Option<Click> {
    let count = mask.iter().filter(|&&m| m).count();
    if count == 0 || w == 0 {
        return None;
    }
    let k = rng.random_range(0..count);
    let i = mask.iter().enumerate().filter(|(_, m)| **m).nth(k)?.0;
    let (x, y) = pixel_center(i, w);
    Some(Click { x, y, label: 1 })
}

/// A standard normal sample (Box–Muller; rand's core crate has no Normal).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The box `[x0, y0, x1, y1]` (exclusive ends) of a mask; `None` when empty.
pub fn mask_box(mask: &[bool], w: usize) -> Option<[usize; 4]> {
    let mut b: Option<[usize; 4]> = None;
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let (x, y) = (i % w, i / w);
        b = Some(match b {
            None => [x, y, x + 1, y + 1],
            Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)],
        });
    }
    b
}

/// A box prompt from a ground-truth box: each coordinate moved by noise of standard deviation
/// `ratio × side` (the box's width for x, height for y), clipped to `±max_px`, then kept inside
/// the `h × w` image and ordered.
pub fn noisy_box(
    gt_box: [usize; 4],
    h: usize,
    w: usize,
    config: &PromptSamplingConfig,
    rng: &mut impl Rng,
) -> [f64; 4] {
    let [x0, y0, x1, y1] = gt_box;
    let (bw, bh) = (x1.saturating_sub(x0) as f64, y1.saturating_sub(y0) as f64);
    let mut jitter = |v: usize, side: f64, limit: usize| {
        let m = config.box_noise_max_px;
        let n = (standard_normal(rng) * config.box_noise_std_ratio * side).clamp(-m, m);
        (v as f64 + n).clamp(0.0, limit as f64)
    };
    let (a, b) = (jitter(x0, bw, w), jitter(x1, bw, w));
    let (c, d) = (jitter(y0, bh, h), jitter(y1, bh, h));
    [a.min(b), c.min(d), a.max(b), c.max(d)]
}

/// The next corrective click: a pixel drawn uniformly from the error region between the
/// prediction and the ground truth, foreground where the prediction missed the object (false
/// negative), background where it spilled over (false positive). `None` when they agree.
pub fn next_click(pred: &[bool], gt: &[bool], w: usize, rng: &mut impl Rng) -> Option<Click> {
    let errors = pred.iter().zip(gt).filter(|(p, g)| p != g).count();
    if errors == 0 || w == 0 {
        return None;
    }
    let k = rng.random_range(0..errors);
    let (i, (_, g)) = pred
        .iter()
        .zip(gt)
        .enumerate()
        .filter(|(_, (p, g))| p != g)
        .nth(k)?;
    let (x, y) = pixel_center(i, w);
    Some(Click {
        x,
        y,
        label: *g as i64,
    })
}

/// Which of an image's masks to train on: masks covering more than `max_mask_area_ratio` of the
/// image are dropped, then at most `max_masks_per_image` are drawn without replacement (in
/// increasing index order).
pub fn select_masks(
    areas: &[u64],
    image_area: u64,
    config: &PromptSamplingConfig,
    rng: &mut impl Rng,
) -> Vec<usize> {
    let limit = config.max_mask_area_ratio * image_area as f64;
    let eligible: Vec<usize> = (0..areas.len())
        .filter(|&i| areas[i] > 0 && areas[i] as f64 <= limit)
        .collect();
    if eligible.len() <= config.max_masks_per_image {
        return eligible;
    }
    let mut chosen: Vec<usize> = sample(rng, eligible.len(), config.max_masks_per_image)
        .into_iter()
        .map(|k| eligible[k])
        .collect();
    chosen.sort_unstable();
    chosen
}
