//! COCO mask AP (`coco_eval::evaluate`: IoUs, matching, accumulate, summarize) on a synthetic
//! set of 5,000 images of 256×256, 3 categories, 7 objects and 20 detections per image (14
//! near copies of objects, 6 stray ellipses), built in memory.
//!
//! `cargo bench -p sam-data --bench cocoeval`. With `SAM_COCOEVAL_GT` and `SAM_COCOEVAL_DT` set
//! (files from `tools/reference/time_cocoeval.py`, which times pycocotools on them), a second
//! group times `evaluate_files` (JSON parsing included) and `evaluate` on those files, and the
//! stats are printed once to compare with pycocotools'.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sam_data::Rle;
use sam_data::coco_eval::{
    Detection, EvalParams, GroundTruth, GtImage, GtObject, evaluate, evaluate_files,
    load_detections, load_ground_truth,
};

const IMAGES: usize = 5000;
const SIDE: usize = 256;

/// An ellipse's RLE, column by column, without a pixel mask.
fn ellipse(cy: f64, cx: f64, ry: f64, rx: f64) -> Rle {
    let h = SIDE;
    let mut counts = Vec::new();
    // Runs: (start, end) pixel indices in column-major order, merged when they touch.
    let mut last_end = 0usize;
    let mut fg: Option<(usize, usize)> = None;
    let flush = |seg: (usize, usize), counts: &mut Vec<u32>, last_end: &mut usize| {
        counts.push((seg.0 - *last_end) as u32);
        counts.push((seg.1 - seg.0) as u32);
        *last_end = seg.1;
    };
    for x in 0..SIDE {
        let dx = (x as f64 - cx) / rx;
        if dx.abs() > 1.0 {
            continue;
        }
        let half = ry * (1.0 - dx * dx).sqrt();
        let y0 = (cy - half).ceil().max(0.0) as usize;
        let y1 = ((cy + half).floor() + 1.0).min(h as f64);
        if y1 <= y0 as f64 {
            continue;
        }
        let seg = (x * h + y0, x * h + y1 as usize);
        fg = match fg {
            Some((s, e)) if e == seg.0 => Some((s, seg.1)),
            Some(prev) => {
                flush(prev, &mut counts, &mut last_end);
                Some(seg)
            }
            None => Some(seg),
        };
    }
    if let Some(prev) = fg {
        flush(prev, &mut counts, &mut last_end);
    }
    counts.push((SIDE * SIDE - last_end) as u32);
    Rle {
        size: [SIDE, SIDE],
        counts,
    }
}

fn synthetic() -> (GroundTruth, Vec<Detection>) {
    let mut rng = StdRng::seed_from_u64(3);
    let mut gt = GroundTruth {
        images: Vec::with_capacity(IMAGES),
        category_ids: vec![1, 2, 3],
        annotations: Vec::with_capacity(IMAGES * 7),
    };
    let mut dts = Vec::with_capacity(IMAGES * 20);
    let s = SIDE as f64;
    for img in 1..=IMAGES as u64 {
        gt.images.push(GtImage {
            id: img,
            height: SIDE,
            width: SIDE,
        });
        let mut objs = Vec::new();
        for _ in 0..7 {
            let cat = rng.random_range(1..4u64);
            let p = [
                rng.random_range(0.0..s),
                rng.random_range(0.0..s),
                rng.random_range(5.0..80.0),
                rng.random_range(5.0..80.0),
            ];
            let rle = ellipse(p[0], p[1], p[2], p[3]);
            gt.annotations.push(GtObject {
                id: gt.annotations.len() as u64 + 1,
                image_id: img,
                category_id: cat,
                area: rle.area() as f64,
                rle,
                iscrowd: false,
            });
            objs.push((cat, p));
        }
        for j in 0..20 {
            let (cat, [cy, cx, ry, rx]) = if j < 14 {
                let (cat, [cy, cx, ry, rx]) = objs[j % 7];
                (
                    cat,
                    [
                        cy + rng.random_range(-6.0..6.0),
                        cx + rng.random_range(-6.0..6.0),
                        ry * rng.random_range(0.85..1.15),
                        rx * rng.random_range(0.85..1.15),
                    ],
                )
            } else {
                (
                    rng.random_range(1..4u64),
                    [
                        rng.random_range(0.0..s),
                        rng.random_range(0.0..s),
                        rng.random_range(3.0..60.0),
                        rng.random_range(3.0..60.0),
                    ],
                )
            };
            // Three decimals: plenty of tied scores.
            let score = (rng.random::<f64>() * 1000.0).round() / 1000.0;
            dts.push(Detection::new(img, cat, ellipse(cy, cx, ry, rx), score));
        }
    }
    (gt, dts)
}

fn bench(c: &mut Criterion) {
    let (gt, dts) = synthetic();
    let params = EvalParams::default();
    let r = evaluate(&gt, &dts, &params).expect("evaluate");
    eprintln!("synthetic set:\n{}", r.summary);
    let mut group = c.benchmark_group("coco_eval_segm");
    group.sample_size(10);
    group.throughput(Throughput::Elements(IMAGES as u64));
    group.bench_function("5000_images_in_memory", |b| {
        b.iter(|| evaluate(&gt, &dts, &params).expect("evaluate"))
    });
    group.finish();

    if let (Ok(gt_path), Ok(dt_path)) = (
        std::env::var("SAM_COCOEVAL_GT"),
        std::env::var("SAM_COCOEVAL_DT"),
    ) {
        let gt = load_ground_truth(&gt_path).expect("ground truth");
        let dts = load_detections(&dt_path, &gt).expect("detections");
        let r = evaluate(&gt, &dts, &params).expect("evaluate");
        eprintln!("{gt_path}:\n{}stats {:?}", r.summary, r.summary.stats);
        let mut group = c.benchmark_group("coco_eval_segm_files");
        group.sample_size(10);
        group.throughput(Throughput::Elements(gt.images.len() as u64));
        group.bench_function("evaluate_files", |b| {
            b.iter(|| evaluate_files(&gt_path, &dt_path, &params).expect("evaluate"))
        });
        group.bench_function("evaluate_loaded", |b| {
            b.iter(|| evaluate(&gt, &dts, &params).expect("evaluate"))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
