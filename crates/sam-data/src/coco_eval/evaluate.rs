//! `COCOeval._prepare`, `computeIoU` and `evaluateImg`: per image and category, the detections'
//! matches at each IoU threshold and area range.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::iou::iou_matrix;
use super::{AREA_RANGES, Detection, GroundTruth, GtObject, ResolvedParams};

/// `evaluateImg`'s result, the parts `accumulate` reads. Detections are in score order, cut to
/// the largest `maxDets`; per-threshold arrays are `D × T`, row-major (pycocotools' are
/// `T × D`): `accumulate` reads a detection's flags together.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EvalImg {
    /// `dtScores`.
    pub dt_scores: Vec<f64>,
    /// `dtMatches != 0`: matched, to an object whose id is not 0 (pycocotools stores the
    /// matched id and tests it against 0, so a match with object 0 counts as none).
    pub dt_matched: Vec<bool>,
    /// `dtIgnore`.
    pub dt_ignore: Vec<bool>,
    /// `gtIgnore`.
    pub gt_ignore: Vec<bool>,
}

/// `evalImgs`, indexed `[(k · A + a) · I + i]` as pycocotools' flat list: `None` where an image
/// has neither objects nor detections of category `k`. Boxed: with COCO's 80 categories most
/// entries are `None`, and a pointer is an eighth of an `EvalImg`.
pub(crate) type EvalImgs = Vec<Option<Box<EvalImg>>>;

/// Stable descending order of scores: numpy's `argsort(-scores, kind='mergesort')`.
pub(crate) fn score_order(scores: impl Iterator<Item = f64>) -> Vec<usize> {
    let mut keyed: Vec<(f64, usize)> = scores.zip(0..).collect();
    // `sort_by` is stable; scores are not NaN (checked), so `partial_cmp` is total here, and
    // -0.0 ties with 0.0 as in numpy.
    keyed.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap_or(std::cmp::Ordering::Equal));
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// One (image, category) unit: its objects and detections, in pycocotools' order.
struct Unit<'a> {
    gts: Vec<&'a GtObject>,
    dts: Vec<&'a Detection>,
}

/// Runs `evaluateImg` for every category, area range and image, on all cores.
pub(crate) fn evaluate_images(gt: &GroundTruth, dts: &[Detection], p: &ResolvedParams) -> EvalImgs {
    let n_img = p.img_ids.len();
    let n_cat = p.cat_ids.len();
    let img_pos: HashMap<u64, usize> = p
        .img_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    // A category listed twice (possible only without `use_cats`, where ids are not
    // deduplicated) has its objects pooled twice, as in pycocotools.
    let mut cat_pos: HashMap<u64, Vec<usize>> = HashMap::new();
    for (k, &c) in p.cat_ids.iter().enumerate() {
        cat_pos.entry(c).or_default().push(k);
    }
    // `_gts[img, cat]` / `_dts[img, cat]`, in file (list) order.
    let mut gt_cells: Vec<Vec<&GtObject>> = vec![Vec::new(); n_img * n_cat];
    for o in &gt.annotations {
        if let (Some(&i), Some(ks)) = (img_pos.get(&o.image_id), cat_pos.get(&o.category_id)) {
            for &k in ks {
                gt_cells[i * n_cat + k].push(o);
            }
        }
    }
    let mut dt_cells: Vec<Vec<&Detection>> = vec![Vec::new(); n_img * n_cat];
    for d in dts {
        if let (Some(&i), Some(ks)) = (img_pos.get(&d.image_id), cat_pos.get(&d.category_id)) {
            for &k in ks {
                dt_cells[i * n_cat + k].push(d);
            }
        }
    }
    let n_k = if p.use_cats { n_cat } else { 1 };
    // Units in image-major order, so that a thread works on whole images.
    let mut units: Vec<Unit> = Vec::with_capacity(n_img * n_k);
    for i in 0..n_img {
        if p.use_cats {
            for k in 0..n_cat {
                units.push(Unit {
                    gts: std::mem::take(&mut gt_cells[i * n_cat + k]),
                    dts: std::mem::take(&mut dt_cells[i * n_cat + k]),
                });
            }
        } else {
            // `[_ for cId in p.catIds for _ in self._gts[imgId, cId]]`
            let cells = i * n_cat..(i + 1) * n_cat;
            units.push(Unit {
                gts: gt_cells[cells.clone()].concat(),
                dts: dt_cells[cells].concat(),
            });
        }
    }

    let results = run_parallel(&units, 32, |u| evaluate_unit(u, p));
    let n_a = AREA_RANGES.len();
    let mut eval_imgs: EvalImgs = vec![None; n_k * n_a * n_img];
    for (u, per_area) in results.into_iter().enumerate() {
        let (i, k) = (u / n_k, u % n_k);
        for (a, e) in per_area.into_iter().enumerate() {
            eval_imgs[(k * n_a + a) * n_img + i] = e;
        }
    }
    eval_imgs
}

/// `f` over `items` on up to `available_parallelism` threads, handed out `block` items at a
/// time (items differ widely in cost, so not split evenly up front); results in item order.
pub(crate) fn run_parallel<T: Sync, R: Send>(
    items: &[T],
    block: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let block = block.max(1);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len().div_ceil(block))
        .max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut parts: Vec<(usize, Vec<R>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let start = next.fetch_add(block, Ordering::Relaxed);
                        if start >= items.len() {
                            break done;
                        }
                        let end = (start + block).min(items.len());
                        done.push((start, items[start..end].iter().map(&f).collect()));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    parts.sort_unstable_by_key(|(start, _)| *start);
    parts.into_iter().flat_map(|(_, r)| r).collect()
}

/// `computeIoU` once, then `evaluateImg` for each area range.
fn evaluate_unit(u: &Unit, p: &ResolvedParams) -> Vec<Option<Box<EvalImg>>> {
    if u.gts.is_empty() && u.dts.is_empty() {
        return vec![None; AREA_RANGES.len()];
    }
    let max_det = p.max_dets.last().copied().unwrap_or(0);
    let mut order = score_order(u.dts.iter().map(|d| d.score));
    order.truncate(max_det);
    let dts: Vec<&Detection> = order.iter().map(|&j| u.dts[j]).collect();
    let crowd: Vec<bool> = u.gts.iter().map(|g| g.iscrowd).collect();
    let ious = iou_matrix(
        &dts.iter().map(|d| &d.rle).collect::<Vec<_>>(),
        &u.gts.iter().map(|g| &g.rle).collect::<Vec<_>>(),
        &crowd,
    );
    AREA_RANGES
        .iter()
        .map(|&range| {
            Some(Box::new(evaluate_img(
                &u.gts,
                &dts,
                &ious,
                range,
                &p.iou_thrs,
            )))
        })
        .collect()
}

fn outside(area: f64, [lo, hi]: [f64; 2]) -> bool {
    area < lo || area > hi
}

/// `evaluateImg` for one area range; `dts` sorted and cut, `ious` their `D × G` matrix with
/// the objects in `gts`' order.
fn evaluate_img(
    gts: &[&GtObject],
    dts: &[&Detection],
    ious: &[f64],
    range: [f64; 2],
    thresholds: &[f64],
) -> EvalImg {
    let n_g = gts.len();
    let n_d = dts.len();
    // `ignore` is `iscrowd` in segm mode (the file's own `ignore` field is overwritten).
    let ignore_of = |g: &GtObject| g.iscrowd || outside(g.area, range);
    // Stable argsort of the 0/1 ignore flags: kept objects first, each group in order.
    let gt_order: Vec<usize> = (0..n_g)
        .filter(|&g| !ignore_of(gts[g]))
        .chain((0..n_g).filter(|&g| ignore_of(gts[g])))
        .collect();
    let gt_ignore: Vec<bool> = gt_order.iter().map(|&g| ignore_of(gts[g])).collect();
    let crowd: Vec<bool> = gt_order.iter().map(|&g| gts[g].iscrowd).collect();
    let n_t = thresholds.len();
    let mut gt_matched = vec![false; n_t * n_g];
    let mut dt_matched = vec![false; n_t * n_d];
    let mut dt_ignore = vec![false; n_t * n_d];
    if n_g > 0 && n_d > 0 {
        for (t, &thr) in thresholds.iter().enumerate() {
            for d in 0..n_d {
                let mut best = thr.min(1.0 - 1e-10);
                let mut m: Option<usize> = None;
                for (gi, &g) in gt_order.iter().enumerate() {
                    // Taken, and not a crowd region: skip.
                    if gt_matched[t * n_g + gi] && !crowd[gi] {
                        continue;
                    }
                    // Already on a kept object and the rest are ignored: stop.
                    if let Some(m) = m
                        && !gt_ignore[m]
                        && gt_ignore[gi]
                    {
                        break;
                    }
                    let iou = ious[d * n_g + g];
                    if iou < best {
                        continue;
                    }
                    best = iou;
                    m = Some(gi);
                }
                if let Some(m) = m {
                    dt_ignore[d * n_t + t] = gt_ignore[m];
                    dt_matched[d * n_t + t] = gts[gt_order[m]].id != 0;
                    // pycocotools stores the detection's id here; ids start at 1, so a
                    // match always reads as one.
                    gt_matched[t * n_g + m] = true;
                }
            }
        }
    }
    // Unmatched (`dtMatches == 0`) detections outside the area range are ignored.
    for d in 0..n_d {
        if outside(dts[d].area, range) {
            for t in 0..n_t {
                if !dt_matched[d * n_t + t] {
                    dt_ignore[d * n_t + t] = true;
                }
            }
        }
    }
    EvalImg {
        dt_scores: dts.iter().map(|d| d.score).collect(),
        dt_matched,
        dt_ignore,
        gt_ignore,
    }
}
