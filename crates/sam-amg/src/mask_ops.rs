//! Per-mask measurements (the reference's `calculate_stability_score`, `batched_mask_to_box`,
//! `is_box_near_crop_edge`).

/// Stability: `count(logit > t + o) / count(logit > t − o)`; NaN when both are zero, as the
/// reference.
pub fn calculate_stability_score(logits: &[f32], mask_threshold: f32, offset: f32) -> f32 {
    let hi = mask_threshold + offset;
    let lo = mask_threshold - offset;
    let (mut inter, mut union) = (0i64, 0i64);
    for &v in logits {
        inter += (v > hi) as i64;
        union += (v > lo) as i64;
    }
    inter as f32 / union as f32
}

/// Inclusive box `[x0, y0, x1, y1]` of a row-major mask; `[0, 0, 0, 0]` when empty.
pub fn batched_mask_to_box(mask: &[bool], h: usize, w: usize) -> [i64; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0usize, 0usize);
    let mut any = false;
    for y in 0..h {
        let row = &mask[y * w..(y + 1) * w];
        if let Some(first) = row.iter().position(|&v| v) {
            let last = row.iter().rposition(|&v| v).unwrap_or(first);
            any = true;
            y0 = y0.min(y);
            y1 = y;
            x0 = x0.min(first);
            x1 = x1.max(last);
        }
    }
    if any {
        [x0 as i64, y0 as i64, x1 as i64, y1 as i64]
    } else {
        [0, 0, 0, 0]
    }
}

/// Whether a box (in crop coordinates) lies within 20 px of an edge of its crop that is not
/// also an edge of the image.
pub fn is_box_near_crop_edge(
    box_xyxy: [i64; 4],
    crop_box: [usize; 4],
    orig_box: [usize; 4],
) -> bool {
    const ATOL: f32 = 20.0;
    let (x0, y0) = (crop_box[0] as i64, crop_box[1] as i64);
    let b = [
        box_xyxy[0] + x0,
        box_xyxy[1] + y0,
        box_xyxy[2] + x0,
        box_xyxy[3] + y0,
    ];
    (0..4).any(|i| {
        let v = b[i] as f32;
        let near_crop = (v - crop_box[i] as f32).abs() <= ATOL;
        let near_image = (v - orig_box[i] as f32).abs() <= ATOL;
        near_crop && !near_image
    })
}
