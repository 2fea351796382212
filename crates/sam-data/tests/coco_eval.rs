//! COCO mask AP against pycocotools' COCOeval (`tools/reference/make_cocoeval_fixtures.py`):
//! the twelve stats and every entry of `precision`, `recall` and `scores`, for each case; and
//! bad input.

use std::path::PathBuf;

use sam_data::DataError;
use sam_data::Rle;
use sam_data::coco_eval::{
    Detection, EvalParams, GroundTruth, GtImage, GtObject, evaluate, evaluate_files,
    iou_thresholds, load_detections, load_ground_truth, recall_thresholds,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cocoeval")
}

/// The parity cases' folder: the committed fixtures, or `SAM_COCOEVAL_FIXTURES` (another
/// `cases.json` with its files, e.g. the script's output for other seeds).
fn case_dir() -> PathBuf {
    std::env::var_os("SAM_COCOEVAL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(fixtures)
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(case_dir().join("cases.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ids(v: &Value) -> Option<Vec<u64>> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_u64().unwrap()).collect())
}

fn params(v: &Value) -> EvalParams {
    EvalParams {
        img_ids: ids(&v["imgIds"]),
        cat_ids: ids(&v["catIds"]),
        use_cats: v["useCats"].as_u64().unwrap() != 0,
        max_dets: ids(&v["maxDets"])
            .unwrap()
            .into_iter()
            .map(|m| m as usize)
            .collect(),
    }
}

/// Expands `[[value, repeat], ...]` (stored in `[T, K, A, M, R]` order) to numpy's
/// `[T, R, K, A, M]` order.
fn unrun(runs: &Value, counts: [usize; 5]) -> Vec<f64> {
    let flat: Vec<f64> = runs
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| std::iter::repeat_n(r[0].as_f64().unwrap(), r[1].as_u64().unwrap() as usize))
        .collect();
    let [t_n, r_n, k_n, a_n, m_n] = counts;
    assert_eq!(flat.len(), t_n * r_n * k_n * a_n * m_n);
    let mut out = vec![0.0; flat.len()];
    for t in 0..t_n {
        for k in 0..k_n {
            for a in 0..a_n {
                for m in 0..m_n {
                    for r in 0..r_n {
                        let src = (((t * k_n + k) * a_n + a) * m_n + m) * r_n + r;
                        let dst = (((t * r_n + r) * k_n + k) * a_n + a) * m_n + m;
                        out[dst] = flat[src];
                    }
                }
            }
        }
    }
    out
}

/// Largest absolute difference, and how many entries are not bit-identical.
fn compare(what: &str, ours: &[f64], theirs: &[f64]) -> (f64, usize) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    let mut max = 0.0f64;
    let mut differing = 0;
    for (a, b) in ours.iter().zip(theirs) {
        max = max.max((a - b).abs());
        if a.to_bits() != b.to_bits() {
            differing += 1;
        }
    }
    (max, differing)
}

#[test]
fn matches_pycocotools_on_every_case() {
    let mut overall = 0.0f64;
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let dir = case_dir();
        let p = params(&case["params"]);
        let ours = evaluate_files(
            dir.join(case["gt"].as_str().unwrap()),
            dir.join(case["dt"].as_str().unwrap()),
            &p,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let counts: [usize; 5] = ids(&case["counts"])
            .unwrap()
            .into_iter()
            .map(|c| c as usize)
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        assert_eq!(ours.accumulated.counts, counts, "{name}: counts");
        let mut checks = vec![
            ("stats", ours.summary.stats.to_vec(), floats(&case["stats"])),
            (
                "precision",
                ours.accumulated.precision.clone(),
                unrun(&case["precision_runs"], counts),
            ),
            (
                "recall",
                ours.accumulated.recall.clone(),
                floats(&case["recall"]),
            ),
        ];
        if !case["scores_runs"].is_null() {
            checks.push((
                "scores",
                ours.accumulated.scores.clone(),
                unrun(&case["scores_runs"], counts),
            ));
        }
        for (what, a, b) in checks {
            let (max, differing) = compare(what, &a, &b);
            eprintln!(
                "{name} {what}: {} values, max |diff| {max:e}, {differing} not bit-identical",
                a.len()
            );
            assert!(max <= 1e-6, "{name} {what}: max |diff| {max}");
            assert_eq!(
                differing, 0,
                "{name} {what}: {differing} values not bit-identical"
            );
            overall = overall.max(max);
        }
        // Aim: exact. Everything above is computed the way numpy does it.
        let expected: Vec<u64> = floats(&case["stats"]).iter().map(|s| s.to_bits()).collect();
        assert_eq!(
            ours.summary.stats.map(f64::to_bits).to_vec(),
            expected,
            "{name}: stats not bit-identical"
        );
        assert_eq!(
            ours.summary.to_string(),
            case["summary"].as_str().unwrap(),
            "{name}: printed summary"
        );
    }
    eprintln!("max |diff| over all cases: {overall:e}");
    assert_eq!(overall, 0.0);
}

#[test]
fn in_memory_api_gives_the_file_results() {
    let dir = fixtures();
    let gt = load_ground_truth(dir.join("random_gt.json")).unwrap();
    let dts = load_detections(dir.join("random_dt.json"), &gt).unwrap();
    let from_files = evaluate_files(
        dir.join("random_gt.json"),
        dir.join("random_dt.json"),
        &EvalParams::default(),
    )
    .unwrap();
    // Rebuilt from scratch: only masks, ids, scores.
    let dts2: Vec<Detection> = dts
        .iter()
        .map(|d| Detection::new(d.image_id, d.category_id, d.rle.clone(), d.score))
        .collect();
    let ours = evaluate(&gt, &dts2, &EvalParams::default()).unwrap();
    assert_eq!(ours.summary, from_files.summary);
    assert_eq!(ours.accumulated, from_files.accumulated);
    assert_eq!(ours.per_category_ap.len(), 5);
    // Per-category AP averages to AP when every category has objects.
    let mean = ours.per_category_ap.iter().map(|(_, ap)| ap).sum::<f64>() / 5.0;
    assert!((mean - ours.summary.stats[0]).abs() < 1e-12);
}

#[test]
fn summary_prints_pycocotools_lines() {
    let dir = fixtures();
    let r = evaluate_files(
        dir.join("maxdets_gt.json"),
        dir.join("maxdets_dt.json"),
        &EvalParams::default(),
    )
    .unwrap();
    let text = r.summary.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12);
    assert_eq!(
        lines[0],
        format!(
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = {:.3}",
            r.summary.stats[0]
        )
    );
    assert_eq!(
        lines[4],
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000"
    );
    assert!(lines[1].starts_with(" Average Precision  (AP) @[ IoU=0.50      | area=   all"));
    assert!(
        lines[6]
            .starts_with(" Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]")
    );
}

#[test]
fn thresholds_are_numpys() {
    // np.linspace(.5, 0.95, 10) and np.linspace(0, 1, 101), bit for bit.
    let expected = [
        0x3fe0000000000000u64,
        0x3fe199999999999a,
        0x3fe3333333333333,
        0x3fe4cccccccccccd,
        0x3fe6666666666666,
        0x3fe8000000000000,
        0x3fe999999999999a,
        0x3feb333333333333,
        0x3feccccccccccccc,
        0x3fee666666666666,
    ];
    let t = iou_thresholds();
    assert_eq!(t.len(), 10);
    for (a, &b) in t.iter().zip(&expected) {
        assert_eq!(a.to_bits(), b, "{a}");
    }
    let r = recall_thresholds();
    assert_eq!(r.len(), 101);
    assert_eq!(r[100], 1.0);
    for (i, &x) in r.iter().enumerate().take(100) {
        assert_eq!(x, i as f64 * 0.01);
    }
}

fn square(h: usize, w: usize, y0: usize, x0: usize, s: usize) -> Rle {
    let mut m = vec![false; h * w];
    for y in y0..y0 + s {
        for x in x0..x0 + s {
            m[y * w + x] = true;
        }
    }
    Rle::from_mask(&m, h, w).unwrap()
}

fn tiny() -> GroundTruth {
    GroundTruth {
        images: vec![GtImage {
            id: 1,
            height: 20,
            width: 20,
        }],
        category_ids: vec![1],
        annotations: vec![GtObject {
            id: 1,
            image_id: 1,
            category_id: 1,
            rle: square(20, 20, 2, 2, 10),
            area: 100.0,
            iscrowd: false,
        }],
    }
}

#[test]
fn perfect_and_empty_detections() {
    let gt = tiny();
    let perfect = [Detection::new(1, 1, square(20, 20, 2, 2, 10), 0.9)];
    let r = evaluate(&gt, &perfect, &EvalParams::default()).unwrap();
    // Precision is tp / (tp + fp + eps): a perfect score is 1 - 2^-52, as in pycocotools.
    assert_eq!(r.summary.stats[0], 1.0 / (1.0 + f64::EPSILON));
    assert_eq!(r.summary.stats[3], r.summary.stats[0]); // small
    assert_eq!(r.summary.stats[8], 1.0); // recall
    assert_eq!(r.summary.stats[4], -1.0); // no medium objects
    // No detections at all (pycocotools' loadRes crashes on an empty list): AP 0.
    let r = evaluate(&gt, &[], &EvalParams::default()).unwrap();
    assert_eq!(r.summary.stats[0], 0.0);
    assert_eq!(r.summary.stats[8], 0.0);
}

#[test]
fn bad_input_is_an_error() {
    let gt = tiny();
    let p = EvalParams::default();
    let on_unknown_image = [Detection::new(7, 1, square(20, 20, 0, 0, 3), 0.5)];
    let e = evaluate(&gt, &on_unknown_image, &p).unwrap_err();
    assert!(e.to_string().contains("image 7"), "{e}");
    let wrong_size = [Detection::new(1, 1, square(10, 20, 0, 0, 3), 0.5)];
    let e = evaluate(&gt, &wrong_size, &p)
        .expect_err("an error")
        .to_string();
    assert!(e.contains("mask size [10, 20]"), "{e}");
    let nan = [Detection::new(1, 1, square(20, 20, 0, 0, 3), f64::NAN)];
    let e = evaluate(&gt, &nan, &p).expect_err("an error").to_string();
    assert!(e.contains("NaN score"), "{e}");
    let two_dets = EvalParams {
        max_dets: vec![1, 10],
        ..EvalParams::default()
    };
    let e = evaluate(&gt, &[], &two_dets)
        .expect_err("an error")
        .to_string();
    assert!(e.contains("max_dets [1, 10]"), "{e}");
    let mut dup = tiny();
    dup.annotations.push(dup.annotations[0].clone());
    assert!(
        evaluate(&dup, &[], &p)
            .unwrap_err()
            .to_string()
            .contains("annotation id 1")
    );

    // Files: the error names the file.
    let dir = tempfile::tempdir().unwrap();
    let dt_path = dir.path().join("dt.json");
    std::fs::write(
        &dt_path,
        r#"[{"image_id": 12345, "category_id": 1, "score": 0.5,
             "segmentation": {"size": [10, 10], "counts": "0d3"}}]"#,
    )
    .unwrap();
    let gt_path = fixtures().join("basic_gt.json");
    match evaluate_files(&gt_path, &dt_path, &p) {
        Err(DataError::DatasetFile { path, reason }) => {
            assert_eq!(path, dt_path);
            assert!(reason.contains("12345"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&dt_path, "{}").unwrap();
    assert!(matches!(
        evaluate_files(&gt_path, &dt_path, &p),
        Err(DataError::DatasetFile { .. })
    ));
    let bad_gt = dir.path().join("gt.json");
    std::fs::write(
        &bad_gt,
        r#"{"images": [{"id": 1, "height": 4, "width": 4}],
            "annotations": [{"id": 3, "image_id": 2, "category_id": 1, "area": 1,
                             "segmentation": [[0, 0, 1, 0, 1, 1]]}],
            "categories": [{"id": 1}]}"#,
    )
    .unwrap();
    match load_ground_truth(&bad_gt) {
        Err(DataError::DatasetFile { path, reason }) => {
            assert_eq!(path, bad_gt);
            assert!(reason.contains("annotation 3"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
