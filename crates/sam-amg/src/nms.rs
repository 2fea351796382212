//! Non-maximum suppression with torchvision's exact semantics (`ops.nms`/`batched_nms` with one
//! category): boxes sorted by score, descending and stable; IoU in f32 with areas
//! `(x1 − x0)(y1 − y0)`; a box is suppressed when its IoU is strictly above the threshold.
//!
//! The kept set is always torchvision's. So is its order, up to 1,000 boxes on the CPU
//! (100,000 on CUDA): past that, `batched_nms` takes another path that re-sorts the kept boxes
//! with an unstable sort, so boxes of equal score come out in an order of its own.

/// Indices of the kept boxes, in keep (score) order.
pub fn nms(boxes: &[[f32; 4]], scores: &[f32], iou_threshold: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    // Stable, descending; NaN scores sort as the largest, as torch's sort does.
    order.sort_by(|&a, &b| {
        let (sa, sb) = (scores[a], scores[b]);
        match (sa.is_nan(), sb.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            _ => sb.partial_cmp(&sa).unwrap_or(std::cmp::Ordering::Equal),
        }
    });
    let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (oi, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let bi = boxes[i];
        let ai = area(&bi);
        for &j in &order[oi + 1..] {
            if suppressed[j] {
                continue;
            }
            let bj = boxes[j];
            let w = (bi[2].min(bj[2]) - bi[0].max(bj[0])).max(0.0);
            let h = (bi[3].min(bj[3]) - bi[1].max(bj[1])).max(0.0);
            let inter = w * h;
            let ovr = inter / (ai + area(&bj) - inter);
            if (ovr as f64) > iou_threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}
