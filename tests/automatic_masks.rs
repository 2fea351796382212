//! The `automatic_masks` command on the bundled demo, and its argument errors.

use sam_burn::automatic_masks::{AutomaticMasksArgs, run};
use sam_burn::cli::CliError;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bad_arguments_are_one_line_errors() {
    for (list, expect) in [
        (vec!["--points-per-side", "x"], "not a valid number"),
        (vec!["--points-per-batch", "0"], "points_per_batch"),
        (vec!["--crop-overlap-ratio", "2"], "crop_overlap_ratio"),
        (vec!["--output-mode", "svg"], "output_mode"),
        (vec!["--bogus"], "unknown argument"),
        (vec!["--model-type", "vit_b"], "need a --checkpoint"),
        (
            vec![
                "--checkpoint",
                "a.pth",
                "--model-type",
                "vit_b",
                "--config",
                "c.json",
            ],
            "not both",
        ),
    ] {
        let e = AutomaticMasksArgs::parse(args(&list)).unwrap_err();
        assert!(e.to_string().contains(expect), "{list:?}: {e}");
    }
}

#[test]
fn demo_run_writes_masks_json_and_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("amg");
    let a = AutomaticMasksArgs::parse(args(&[
        "--points-per-side",
        "4",
        "--pred-iou-thresh",
        "0",
        "--stability-score-thresh",
        "0",
        "--box-nms-thresh",
        "1.0",
        "--output-mode",
        "coco_rle",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]))
    .unwrap();
    let n = run(&a).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("masks.json")).unwrap()).unwrap();
    let records = json.as_array().unwrap();
    assert_eq!(records.len(), n);
    assert!(n > 0, "no thresholds and no NMS: every mask survives");
    for r in records {
        assert!(
            r["segmentation"]["counts"].is_string(),
            "coco_rle counts are strings"
        );
        assert_eq!(r["segmentation"]["size"], serde_json::json!([240, 320]));
        assert_eq!(r["bbox"].as_array().unwrap().len(), 4);
    }
    assert!(out.join("overlay.png").is_file());

    let missing =
        AutomaticMasksArgs::parse(args(&["--image", "/no/such.png", "--no-progress"])).unwrap();
    let e = run(&missing).unwrap_err();
    assert!(matches!(e, CliError::Data(_)), "{e}");
    assert!(e.to_string().contains("/no/such.png"), "{e}");
}

/// `--text` ranks the masks by CLIP similarity of their masked crops to the text: every record
/// gets a `text_score`, the file is in decreasing score order, `--text-top` keeps the best, and
/// a score equals the cosine computed directly from the CLIP folder.
#[test]
fn masks_ranked_by_text_similarity() {
    let clip = sam_burn::segment::bundled("crates/sam-clip/tests/fixtures/clip_tiny");
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "--points-per-side",
        "4",
        "--pred-iou-thresh",
        "0",
        "--stability-score-thresh",
        "0",
        "--box-nms-thresh",
        "1.0",
        "--output-mode",
        "binary_mask",
        "--no-progress",
    ];
    let run_with = |extra: &[&str], name: &str| {
        let out = dir.path().join(name);
        let mut list = base.to_vec();
        list.extend_from_slice(extra);
        list.extend_from_slice(&["--out", out.to_str().unwrap()]);
        run(&AutomaticMasksArgs::parse(args(&list)).unwrap()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("masks.json")).unwrap())
                .unwrap();
        json.as_array().unwrap().clone()
    };
    let plain = run_with(&[], "plain");
    let ranked = run_with(
        &["--text", "a red house", "--clip", clip.to_str().unwrap()],
        "ranked",
    );
    assert_eq!(ranked.len(), plain.len());
    let scores: Vec<f64> = ranked
        .iter()
        .map(|r| r["text_score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(scores.iter().all(|s| (-1.0..=1.0).contains(s)));
    let top = run_with(
        &[
            "--text",
            "a red house",
            "--clip",
            clip.to_str().unwrap(),
            "--text-top",
            "2",
        ],
        "top",
    );
    assert_eq!(top.len(), 2.min(plain.len()));
    assert_eq!(top[0]["text_score"], ranked[0]["text_score"]);

    // The best record's score, recomputed from the library.
    let image = sam_burn::data::load_rgb(sam_burn::segment::bundled("assets/scene.png")).unwrap();
    let seg = &ranked[0]["segmentation"];
    let mask: Vec<bool> = seg["mask"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() != 0)
        .collect();
    let [h, w] = [240usize, 320];
    assert_eq!(mask.len(), h * w);
    let record = sam_burn::amg::MaskRecord {
        segmentation: sam_burn::amg::Segmentation::Binary { size: [h, w], mask },
        area: 0,
        bbox: [0; 4],
        predicted_iou: 0.0,
        point_coords: [0.0; 2],
        stability_score: 0.0,
        crop_box: [0; 4],
    };
    let device = sam_burn::burn::tensor::Device::flex();
    let s =
        sam_burn::automatic_masks::text_scores(&image, &[record], "a red house", &clip, &device)
            .unwrap();
    assert!(
        (s[0] as f64 - scores[0]).abs() < 1e-6,
        "{} vs {}",
        s[0],
        scores[0]
    );

    for (list, expect) in [
        (vec!["--text", "x"], "--text needs --clip"),
        (vec!["--clip", "x"], "only used with --text"),
        (vec!["--text-top", "2"], "--text-top needs --text"),
    ] {
        match AutomaticMasksArgs::parse(args(&list)) {
            Err(CliError::Usage(m)) => assert!(m.contains(expect), "{m}"),
            other => panic!("{list:?}: {other:?}"),
        }
    }
}
