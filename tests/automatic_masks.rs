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
