//! `evaluate --coco … --ap / --detections`: COCO mask AP of the bundled demo model on synthetic
//! shapes written as a COCO instances file, and the errors of bad result files.

use std::path::Path;

use sam_burn::data::dataset::sa1b::Sa1bFile;
use sam_burn::data::dataset::{SyntheticConfig, write_synthetic_dataset};
use sam_burn::evaluate::{EvaluateArgs, run};

/// Writes a synthetic SA-1B folder and the same objects as a COCO instances file (one category).
fn coco_set(dir: &Path) -> std::path::PathBuf {
    let synth = SyntheticConfig {
        num_images: 8,
        seed: 77,
        first_id: 5_000_000,
        ..SyntheticConfig::default()
    };
    let (mut images, mut annotations) = (Vec::new(), Vec::new());
    for json in write_synthetic_dataset(dir, &synth).unwrap() {
        let json = json.with_extension("json");
        let file: Sa1bFile =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        images.push(serde_json::json!({
            "id": file.image.image_id, "file_name": file.image.file_name,
            "height": file.image.height, "width": file.image.width,
        }));
        for a in file.annotations {
            annotations.push(serde_json::json!({
                "id": annotations.len() + 1, "image_id": file.image.image_id, "category_id": 1,
                "segmentation": {"size": a.segmentation.size, "counts": a.segmentation.counts},
                "area": a.area, "bbox": a.bbox, "iscrowd": 0,
            }));
        }
    }
    let path = dir.join("instances.json");
    let coco = serde_json::json!({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "shape"}],
    });
    std::fs::write(&path, coco.to_string()).unwrap();
    path
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn mask_ap_from_ground_truth_and_detector_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let instances = coco_set(dir.path());
    let (inst, imgs) = (instances.to_str().unwrap(), dir.path().to_str().unwrap());

    let gt = run(EvaluateArgs::parse(args(&[
        "--coco",
        inst,
        "--images",
        imgs,
        "--ap",
        "--no-miou",
    ]))
    .unwrap())
    .unwrap();
    let stats = gt.coco_ap.unwrap().summary.stats;
    eprintln!(
        "demo model, ground-truth boxes: AP {:.3} AP50 {:.3} AP75 {:.3}",
        stats[0], stats[1], stats[2]
    );
    assert!(stats[0] > 0.2 && stats[1] > stats[2], "{stats:?}");
    assert!(gt.miou.is_none());

    // The ground-truth boxes as a detector's results, scored in reverse order, plus a false
    // positive per image with a low score: AP can only drop, and stays well above zero.
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&instances).unwrap()).unwrap();
    let mut results = Vec::new();
    for (k, a) in file["annotations"].as_array().unwrap().iter().enumerate() {
        results.push(serde_json::json!({
            "image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"],
            "score": 1.0 - k as f64 * 1e-3,
        }));
    }
    for img in file["images"].as_array().unwrap() {
        results.push(serde_json::json!({
            "image_id": img["id"], "category_id": 1, "bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.01,
        }));
    }
    let dets = dir.path().join("dets.json");
    let with_detections = || {
        run(EvaluateArgs::parse(args(&[
            "--coco",
            inst,
            "--images",
            imgs,
            "--detections",
            dets.to_str().unwrap(),
            "--no-miou",
        ]))
        .unwrap())
    };
    std::fs::write(&dets, serde_json::Value::from(results).to_string()).unwrap();
    let dstats = with_detections().unwrap().coco_ap.unwrap().summary.stats;
    assert!(
        dstats[0] > 0.1 && dstats[0] <= stats[0] + 1e-9,
        "{dstats:?} vs {stats:?}"
    );

    // A result on an image the instances file lacks, and a file that is not a results list.
    std::fs::write(
        &dets,
        r#"[{"image_id": 1, "category_id": 1, "bbox": [0,0,5,5], "score": 1}]"#,
    )
    .unwrap();
    let e = with_detections().unwrap_err();
    assert!(
        e.to_string().contains("image 1") && e.to_string().contains("dets.json"),
        "{e}"
    );
    std::fs::write(&dets, r#"{"nope": 1}"#).unwrap();
    let e = with_detections().unwrap_err();
    assert!(e.to_string().contains("not a COCO results list"), "{e}");

    // Flags that do not go together.
    for (list, expect) in [
        (vec!["--data", imgs, "--ap"], "need --coco"),
        (vec!["--data", imgs, "--no-miou"], "nothing to measure"),
    ] {
        let e = EvaluateArgs::parse(args(&list)).unwrap_err();
        assert!(e.to_string().contains(expect), "{e}");
    }
}
