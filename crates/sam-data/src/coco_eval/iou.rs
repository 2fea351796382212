//! `maskUtils.iou` for RLEs (`rleIou` of pycocotools' `maskApi.c`), run by run without decoding.

use crate::rle::Rle;

/// `bbIou` of two `[x, y, w, h]` boxes, with the crowd rule (union = the detection's box).
fn box_iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = d[2] * d[3];
    let u = if crowd { da } else { da + g[2] * g[3] - i };
    i / u
}

/// IoU of detection `dt` with ground truth `gt`, both of one size; for a crowd `gt`, the
/// intersection over the detection's area alone. 0 when they do not intersect.
///
/// The loop is `rleIou`'s, kept as it is, including its one quirk: it stops when both current
/// runs are empty at once, which only RLEs with empty interior runs (never produced by
/// pycocotools' encoder) can reach.
pub fn rle_iou(dt: &Rle, gt: &Rle, crowd: bool) -> f64 {
    let (Some(&d0), Some(&g0)) = (dt.counts.first(), gt.counts.first()) else {
        return 0.0;
    };
    let (mut ca, mut cb) = (d0 as u64, g0 as u64);
    let (ka, kb) = (dt.counts.len(), gt.counts.len());
    let (mut a, mut b) = (1usize, 1usize);
    let (mut va, mut vb) = (false, false);
    let (mut inter, mut union) = (0u64, 0u64);
    let mut ct = 1u64;
    while ct > 0 {
        let c = ca.min(cb);
        if va || vb {
            union += c;
            if va && vb {
                inter += c;
            }
        }
        ca -= c;
        if ca == 0 && a < ka {
            ca = dt.counts[a] as u64;
            a += 1;
            va = !va;
        }
        cb -= c;
        if cb == 0 && b < kb {
            cb = gt.counts[b] as u64;
            b += 1;
            vb = !vb;
        }
        ct = ca + cb;
    }
    if inter == 0 {
        return 0.0;
    }
    if crowd {
        union = dt.area();
    }
    inter as f64 / union as f64
}

/// The `D × G` IoU matrix (row-major, detections by rows) of `maskUtils.iou(dt, gt, iscrowd)`.
/// Pairs whose boxes do not overlap are 0 without looking at their runs, as in `rleIou`; that
/// is where the time goes on real data.
pub fn iou_matrix(dt: &[&Rle], gt: &[&Rle], iscrowd: &[bool]) -> Vec<f64> {
    let dt_boxes: Vec<[f64; 4]> = dt.iter().map(|r| r.to_bbox()).collect();
    let gt_boxes: Vec<[f64; 4]> = gt.iter().map(|r| r.to_bbox()).collect();
    let mut out = vec![0.0; dt.len() * gt.len()];
    for (d, (drle, dbox)) in dt.iter().zip(&dt_boxes).enumerate() {
        for (g, (grle, gbox)) in gt.iter().zip(&gt_boxes).enumerate() {
            let crowd = iscrowd.get(g).copied().unwrap_or(false);
            if box_iou(dbox, gbox, crowd) > 0.0 {
                out[d * gt.len() + g] = rle_iou(drle, grle, crowd);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn random_mask(rng: &mut StdRng, h: usize, w: usize) -> Rle {
        let (y0, x0) = (rng.random_range(0..h), rng.random_range(0..w));
        let (y1, x1) = (rng.random_range(y0..=h), rng.random_range(x0..=w));
        let p = rng.random_range(0.5..1.0);
        let mask: Vec<bool> = (0..h * w)
            .map(|i| (y0..y1).contains(&(i / w)) && (x0..x1).contains(&(i % w)))
            .map(|inside| inside && rng.random_bool(p))
            .collect();
        Rle::from_mask(&mask, h, w).unwrap()
    }

    /// The run-merging loop and the box pre-filter against the decode-and-count `Rle::iou`.
    #[test]
    fn matches_decoded_iou() {
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..300 {
            let (h, w) = (rng.random_range(1..24), rng.random_range(1..24));
            let dt: Vec<Rle> = (0..4).map(|_| random_mask(&mut rng, h, w)).collect();
            let gt: Vec<Rle> = (0..3).map(|_| random_mask(&mut rng, h, w)).collect();
            let crowd = [false, true, rng.random_bool(0.5)];
            let m = iou_matrix(
                &dt.iter().collect::<Vec<_>>(),
                &gt.iter().collect::<Vec<_>>(),
                &crowd,
            );
            for (d, dr) in dt.iter().enumerate() {
                for (g, gr) in gt.iter().enumerate() {
                    let expected = dr.iou(gr, crowd[g]).unwrap();
                    assert_eq!(m[d * gt.len() + g], expected, "{d} {g} {crowd:?}");
                }
            }
        }
    }

    /// `rleIou` stops where two empty runs meet, before the masks end (values checked with
    /// pycocotools 2.0.11's `mask.iou`).
    #[test]
    fn keeps_the_empty_run_quirk() {
        // 8×1 masks. dt: pixels 2..8; gt, with empty runs: pixels 2..4.
        let dt = Rle {
            size: [8, 1],
            counts: vec![2, 6],
        };
        let gt = Rle {
            size: [8, 1],
            counts: vec![2, 0, 0, 2, 4],
        };
        // dt's run is still open when gt's empty runs pass: the true IoU.
        assert_eq!(rle_iou(&dt, &gt, false), 2.0 / 6.0);
        let gt2 = Rle {
            size: [8, 1],
            counts: vec![2, 0, 0, 6],
        };
        let dt2 = Rle {
            size: [8, 1],
            counts: vec![2, 0, 0, 6],
        };
        // Both at an empty run at once after the first 2 pixels: the loop ends with nothing
        // counted, though the masks are equal.
        assert_eq!(rle_iou(&dt2, &gt2, false), 0.0);
    }
}
