//! A plain PNG chart of the training curves, drawn pixel by pixel (no font: the numbers are in
//! `metrics.csv`). Top panel: loss (blue) on a log scale; bottom panel: mIoU in [0, 1], training
//! after the first prompt (orange), after the last round (green), validation after one click
//! (red dots). Grid lines: every tenth of the panel.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{Result, TrainError};
use crate::metrics::StepMetrics;

const W: u32 = 900;
const PANEL: u32 = 300;
const MARGIN: u32 = 20;

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), color: Rgb<u8>) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for k in 0..=steps {
        let t = k as f64 / steps as f64;
        let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
            let (px, py) = (x as i64 + dx, y as i64 + dy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, color);
            }
        }
    }
}

fn series(
    img: &mut RgbImage,
    top: u32,
    points: &[(f64, f64)],
    (x_max, y_lo, y_hi): (f64, f64, f64),
    color: Rgb<u8>,
    dots: bool,
) {
    let to_px = |(x, y): (f64, f64)| {
        let fx = if x_max > 0.0 { x / x_max } else { 0.0 };
        let fy = ((y - y_lo) / (y_hi - y_lo)).clamp(0.0, 1.0);
        (
            MARGIN as f64 + fx * (W - 2 * MARGIN) as f64,
            (top + PANEL - MARGIN) as f64 - fy * (PANEL - 2 * MARGIN) as f64,
        )
    };
    if dots {
        for &p in points {
            let (x, y) = to_px(p);
            for d in -3..=3 {
                line(img, (x + d as f64, y - 3.0), (x + d as f64, y + 3.0), color);
            }
        }
        return;
    }
    for pair in points.windows(2) {
        line(img, to_px(pair[0]), to_px(pair[1]), color);
    }
}

fn frame(img: &mut RgbImage, top: u32) {
    let grey = Rgb([220, 220, 220]);
    for k in 0..=10 {
        let y = (top + MARGIN) as f64 + k as f64 * (PANEL - 2 * MARGIN) as f64 / 10.0;
        line(img, (MARGIN as f64, y), ((W - MARGIN) as f64, y), grey);
        let x = MARGIN as f64 + k as f64 * (W - 2 * MARGIN) as f64 / 10.0;
        line(
            img,
            (x, (top + MARGIN) as f64),
            (x, (top + PANEL - MARGIN) as f64),
            grey,
        );
    }
}

/// Writes the chart of `history` to `path`.
pub fn draw_curves(history: &[StepMetrics], path: &Path) -> Result<()> {
    let mut img = RgbImage::from_pixel(W, 2 * PANEL, Rgb([255, 255, 255]));
    frame(&mut img, 0);
    frame(&mut img, PANEL);
    let kept: Vec<&StepMetrics> = history.iter().filter(|m| !m.skipped_nonfinite).collect();
    let x_max = kept.last().map_or(1.0, |m| m.step as f64);
    let losses: Vec<(f64, f64)> = kept
        .iter()
        .filter(|m| m.loss > 0.0 && m.loss.is_finite())
        .map(|m| (m.step as f64, m.loss.log10()))
        .collect();
    let lo = losses.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = losses.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi.is_finite() {
        let pad = ((hi - lo) * 0.05).max(1e-3);
        series(
            &mut img,
            0,
            &losses,
            (x_max, lo - pad, hi + pad),
            Rgb([40, 90, 200]),
            false,
        );
    }
    let range = (x_max, 0.0, 1.0);
    let first: Vec<_> = kept.iter().map(|m| (m.step as f64, m.miou_first)).collect();
    let last: Vec<_> = kept.iter().map(|m| (m.step as f64, m.miou_last)).collect();
    let val: Vec<_> = kept
        .iter()
        .filter_map(|m| m.val_miou_1click.map(|v| (m.step as f64, v)))
        .collect();
    series(&mut img, PANEL, &first, range, Rgb([240, 140, 30]), false);
    series(&mut img, PANEL, &last, range, Rgb([40, 160, 60]), false);
    series(&mut img, PANEL, &val, range, Rgb([210, 30, 30]), true);
    img.save(path).map_err(|e| TrainError::file(path, e))
}
