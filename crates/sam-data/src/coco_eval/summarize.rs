//! `COCOeval.summarize` for detections (`_summarizeDets`): twelve means over the accumulated
//! arrays, and the lines it prints.

use std::fmt;

use super::accumulate::Accumulated;
use super::{AREA_LABELS, ResolvedParams};

/// The twelve numbers of `COCOeval.stats` with what each averages over; -1 where nothing
/// qualifies (no object in the area range, or `maxDets` without the value asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// `stats`: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl (the ARs at
    /// `maxDets[0..3]`, the rest at `maxDets[2]`, except AP at a literal 100 as pycocotools).
    pub stats: [f64; 12],
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq)]
struct Line {
    ap: bool,
    iou: String,
    area: &'static str,
    max_dets: usize,
}

impl Summary {
    /// AP@[.5:.95], area all, 100 detections.
    pub fn ap(&self) -> f64 {
        self.stats[0]
    }
}

impl fmt::Display for Summary {
    /// pycocotools' twelve lines, e.g.
    /// ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.123`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (line, value) in self.lines.iter().zip(self.stats) {
            let (title, kind) = if line.ap {
                ("Average Precision", "(AP)")
            } else {
                ("Average Recall", "(AR)")
            };
            writeln!(
                f,
                " {title:<18} {kind} @[ IoU={:<9} | area={:>6} | maxDets={:>3} ] = {value:.3}",
                line.iou, line.area, line.max_dets
            )?;
        }
        Ok(())
    }
}

/// numpy's pairwise summation (`pairwise_sum_DOUBLE`): blocks of up to 128 summed in eight
/// interleaved partial sums, halves added recursively. `np.mean` sums this way; a plain loop
/// differs in the last bits.
pub(crate) fn numpy_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, &x| s + x)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (r, &x) in r.iter_mut().zip(chunk) {
                *r += x;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}

/// `np.mean(s[s > -1])`, or -1 when nothing is above -1.
fn mean_valid(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.filter(|&x| x > -1.0).collect();
    if v.is_empty() {
        -1.0
    } else {
        numpy_sum(&v) / v.len() as f64
    }
}

/// `_summarize(ap, iouThr, areaRng, maxDets)`: the mean over IoU thresholds (or the one
/// equal to `iou`), recall thresholds and categories, in numpy's C order.
fn one(
    acc: &Accumulated,
    p: &ResolvedParams,
    ap: bool,
    iou: Option<f64>,
    area: usize,
    max_dets: usize,
) -> f64 {
    let [n_t, n_r, n_k, _, _] = acc.counts;
    let ts: Vec<usize> = (0..n_t)
        .filter(|&t| iou.is_none_or(|v| p.iou_thrs[t] == v))
        .collect();
    let ms: Vec<usize> = (0..p.max_dets.len())
        .filter(|&m| p.max_dets[m] == max_dets)
        .collect();
    let mut values = Vec::new();
    for &t in &ts {
        if ap {
            for r in 0..n_r {
                for k in 0..n_k {
                    values.extend(ms.iter().map(|&m| acc.precision_at(t, r, k, area, m)));
                }
            }
        } else {
            for k in 0..n_k {
                values.extend(ms.iter().map(|&m| acc.recall_at(t, k, area, m)));
            }
        }
    }
    mean_valid(values.into_iter())
}

pub(crate) fn summarize(acc: &Accumulated, p: &ResolvedParams) -> Summary {
    let md = &p.max_dets;
    // (ap, IoU, area index, maxDets), as `_summarizeDets`.
    let specs: [(bool, Option<f64>, usize, usize); 12] = [
        (true, None, 0, 100),
        (true, Some(0.5), 0, md[2]),
        (true, Some(0.75), 0, md[2]),
        (true, None, 1, md[2]),
        (true, None, 2, md[2]),
        (true, None, 3, md[2]),
        (false, None, 0, md[0]),
        (false, None, 0, md[1]),
        (false, None, 0, md[2]),
        (false, None, 1, md[2]),
        (false, None, 2, md[2]),
        (false, None, 3, md[2]),
    ];
    let mut stats = [0.0; 12];
    let mut lines = Vec::with_capacity(12);
    for (s, &(ap, iou, area, max_dets)) in stats.iter_mut().zip(&specs) {
        *s = one(acc, p, ap, iou, area, max_dets);
        let iou = match iou {
            Some(v) => format!("{v:.2}"),
            None => format!(
                "{:.2}:{:.2}",
                p.iou_thrs.first().copied().unwrap_or(f64::NAN),
                p.iou_thrs.last().copied().unwrap_or(f64::NAN)
            ),
        };
        lines.push(Line {
            ap,
            iou,
            area: AREA_LABELS[area],
            max_dets,
        });
    }
    Summary { stats, lines }
}

/// detectron2's per-category AP: `precision[:, :, k, 0, -1]`, mean over entries above -1.
pub(crate) fn category_ap(acc: &Accumulated, k: usize) -> f64 {
    let [n_t, n_r, _, _, n_m] = acc.counts;
    let values = (0..n_t).flat_map(|t| (0..n_r).map(move |r| (t, r)));
    mean_valid(values.map(|(t, r)| acc.precision_at(t, r, k, 0, n_m - 1)))
}
