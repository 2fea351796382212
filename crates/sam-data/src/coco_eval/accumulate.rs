//! `COCOeval.accumulate`: precision at each recall threshold, and the final recall, per IoU
//! threshold, category, area range and `maxDets`.

use super::evaluate::{EvalImg, EvalImgs, run_parallel, score_order};
use super::{AREA_RANGES, ResolvedParams};

/// `COCOeval.eval`: `precision` and `scores` of shape `[T, R, K, A, M]`, `recall` of shape
/// `[T, K, A, M]`, row-major as numpy's arrays (T IoU thresholds, R recall thresholds, K
/// categories (1 without `use_cats`), A area ranges, M `maxDets`). -1 where a category has no
/// non-ignored object in an area range.
#[derive(Debug, Clone, PartialEq)]
pub struct Accumulated {
    /// `[T, R, K, A, M]`.
    pub counts: [usize; 5],
    /// Interpolated precision; 0 beyond the highest recall reached.
    pub precision: Vec<f64>,
    /// Highest recall.
    pub recall: Vec<f64>,
    /// The score of the detection at which each recall threshold is reached (0 beyond).
    pub scores: Vec<f64>,
}

impl Accumulated {
    /// `precision[t, r, k, a, m]`.
    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        self.precision[self.index5(t, r, k, a, m)]
    }

    /// `recall[t, k, a, m]`.
    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        let [_, _, n_k, n_a, n_m] = self.counts;
        self.recall[((t * n_k + k) * n_a + a) * n_m + m]
    }

    fn index5(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> usize {
        let [_, n_r, n_k, n_a, n_m] = self.counts;
        (((t * n_r + r) * n_k + k) * n_a + a) * n_m + m
    }
}

/// One (category, area range) cell: per `maxDets` and IoU threshold, the recall and the
/// precision and score at each recall threshold; `None` where pycocotools leaves -1.
type Cell = Option<Vec<(f64, Vec<f64>, Vec<f64>)>>;

pub(crate) fn accumulate(eval_imgs: &EvalImgs, p: &ResolvedParams) -> Accumulated {
    let n_t = p.iou_thrs.len();
    let n_r = p.rec_thrs.len();
    let n_k = if p.use_cats { p.cat_ids.len() } else { 1 };
    let n_a = AREA_RANGES.len();
    let n_m = p.max_dets.len();
    let n_i = p.img_ids.len();
    let mut acc = Accumulated {
        counts: [n_t, n_r, n_k, n_a, n_m],
        precision: vec![-1.0; n_t * n_r * n_k * n_a * n_m],
        recall: vec![-1.0; n_t * n_k * n_a * n_m],
        scores: vec![-1.0; n_t * n_r * n_k * n_a * n_m],
    };
    let cells: Vec<usize> = (0..n_k * n_a).collect();
    let results = run_parallel(&cells, 1, |&ka| {
        accumulate_cell(&eval_imgs[ka * n_i..(ka + 1) * n_i], p)
    });
    for (ka, cell) in results.into_iter().enumerate() {
        let Some(cell) = cell else { continue };
        let (k, a) = (ka / n_a, ka % n_a);
        for (mt, (recall, precision, scores)) in cell.into_iter().enumerate() {
            let (m, t) = (mt / n_t, mt % n_t);
            acc.recall[((t * n_k + k) * n_a + a) * n_m + m] = recall;
            for r in 0..n_r {
                let idx = acc.index5(t, r, k, a, m);
                acc.precision[idx] = precision[r];
                acc.scores[idx] = scores[r];
            }
        }
    }
    acc
}

/// `accumulate`'s body for one category and area range, over its images' `evalImgs`.
fn accumulate_cell(images: &[Option<Box<EvalImg>>], p: &ResolvedParams) -> Cell {
    let n_t = p.iou_thrs.len();
    let e: Vec<&EvalImg> = images.iter().flatten().map(|b| &**b).collect();
    if e.is_empty() {
        return None;
    }
    let npig = e
        .iter()
        .map(|e| e.gt_ignore.iter().filter(|&&g| !g).count())
        .sum::<usize>();
    if npig == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(p.max_dets.len() * n_t);
    for &max_det in &p.max_dets {
        // Each image's first `max_det` detections, concatenated in image order, then stably
        // sorted by score: ties keep image order.
        let mut scores = Vec::new();
        let mut origin = Vec::new();
        for (n, e) in e.iter().enumerate() {
            let d = e.dt_scores.len().min(max_det);
            scores.extend_from_slice(&e.dt_scores[..d]);
            origin.extend((0..d).map(|j| (n, j)));
        }
        let order = score_order(scores.iter().copied());
        let nd = order.len();
        // Each threshold's outcomes in score order, contiguous: 0 ignored, 1 true, 2 false
        // positive (`tps` / `fps` of pycocotools).
        let mut outcome = vec![0u8; n_t * nd];
        for (x, &o) in order.iter().enumerate() {
            let (n, j) = origin[o];
            let img = e[n];
            let flags = j * n_t..(j + 1) * n_t;
            for (t, (&ig, &matched)) in img.dt_ignore[flags.clone()]
                .iter()
                .zip(&img.dt_matched[flags])
                .enumerate()
            {
                outcome[t * nd + x] = match (ig, matched) {
                    (true, _) => 0,
                    (false, true) => 1,
                    (false, false) => 2,
                };
            }
        }
        let mut rc = vec![0.0f64; nd];
        let mut pr = vec![0.0f64; nd];
        for t in 0..n_t {
            // Cumulative counts are integers, exact in f64 as numpy's
            // `cumsum(...).astype(float)`.
            let (mut tp, mut fp) = (0u64, 0u64);
            for (x, &oc) in outcome[t * nd..(t + 1) * nd].iter().enumerate() {
                tp += (oc == 1) as u64;
                fp += (oc == 2) as u64;
                let (tpf, fpf) = (tp as f64, fp as f64);
                rc[x] = tpf / npig as f64;
                pr[x] = tpf / (fpf + tpf + f64::EPSILON);
            }
            let recall = rc.last().copied().unwrap_or(0.0);
            // Make precision non-increasing, from the back.
            for i in (1..nd).rev() {
                if pr[i] > pr[i - 1] {
                    pr[i - 1] = pr[i];
                }
            }
            let (q, ss): (Vec<f64>, Vec<f64>) = p
                .rec_thrs
                .iter()
                .map(|&thr| {
                    // `np.searchsorted(rc, thr, side='left')`; pycocotools' `try` ends at the
                    // first threshold past the end, leaving zeros from there on.
                    let pi = rc.partition_point(|&x| x < thr);
                    match pr.get(pi) {
                        Some(&q) => (q, scores[order[pi]]),
                        None => (0.0, 0.0),
                    }
                })
                .unzip();
            out.push((recall, q, ss));
        }
    }
    Some(out)
}
