//! The `segment` command end to end on the bundled demo, and its argument errors.

use sam_burn::segment::{SegmentArgs, SegmentError, run};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn usage_error(list: &[&str], expect: &str) {
    match SegmentArgs::parse(args(list)) {
        Err(SegmentError::Usage(m)) => assert!(m.contains(expect), "{m} / {expect}"),
        other => panic!("expected a usage error for {list:?}, got {other:?}"),
    }
}

#[test]
fn bad_arguments_are_one_line_errors() {
    usage_error(&["--frobnicate"], "unknown argument");
    usage_error(&["--point", "1"], "expected 2 or 3 finite numbers");
    usage_error(&["--point", "1,x"], "expected numbers");
    usage_error(&["--point", "1,2,7"], "label 7");
    usage_error(&["--box", "1,2,3"], "expected 4 finite numbers");
    usage_error(&["--box", "1,2,3,inf"], "finite");
    usage_error(&["--image"], "--image needs a value");
    usage_error(
        &[
            "--checkpoint",
            "a.pth",
            "--model-type",
            "vit_b",
            "--config",
            "c.json",
        ],
        "not both",
    );
    usage_error(&["--model-type", "vit_b"], "need a --checkpoint");
}

#[test]
fn demo_run_writes_masks_overlay_json_and_logits_that_feed_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let a = SegmentArgs::parse(args(&["--out", out.to_str().unwrap(), "--save-logits"])).unwrap();
    let summary = run(&a).unwrap();
    let masks = summary.json["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 3, "three bundled boxes, one mask each");
    for name in [
        "overlay.png",
        "result.json",
        "mask_2_0.png",
        "low_res_logits.npy",
        "iou_predictions.npy",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    let overlay = image::open(out.join("overlay.png")).unwrap();
    assert_eq!((overlay.width(), overlay.height()), (320, 240));
    let (shape, logits) = sam_burn::data::read_npy_f32(out.join("low_res_logits.npy")).unwrap();
    // The demo model: 128² input, 8² embedding, 32² low-res masks.
    assert_eq!(shape, vec![3, 1, 32, 32]);
    let (ishape, scores) = sam_burn::data::read_npy_f32(out.join("iou_predictions.npy")).unwrap();
    assert_eq!(ishape, vec![3, 1]);
    assert_eq!(
        scores[1] as f64,
        masks[1]["score"].as_f64().unwrap() as f32 as f64
    );

    // The first prompt's logits, as [1, 1, 32, 32], fed back with a point.
    let first = out.join("first.npy");
    sam_burn::data::write_npy_f32(&first, &[1, 1, 32, 32], &logits[..32 * 32]).unwrap();
    let again = SegmentArgs::parse(args(&[
        "--out",
        dir.path().join("again").to_str().unwrap(),
        "--image",
        sam_burn::segment::bundled("assets/scene.png")
            .to_str()
            .unwrap(),
        "--mask-input",
        first.to_str().unwrap(),
        "--point",
        "110,150",
        "--multimask",
    ]))
    .unwrap();
    let summary = run(&again).unwrap();
    assert_eq!(
        summary.json["masks"].as_array().unwrap().len(),
        3,
        "multimask gives 3"
    );
    // The mask input is used: the same point without it scores the masks otherwise.
    let plain = SegmentArgs::parse(args(&[
        "--out",
        dir.path().join("plain").to_str().unwrap(),
        "--image",
        sam_burn::segment::bundled("assets/scene.png")
            .to_str()
            .unwrap(),
        "--point",
        "110,150",
        "--multimask",
    ]))
    .unwrap();
    let scores = |json: &serde_json::Value| -> Vec<f64> {
        json["masks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["score"].as_f64().unwrap())
            .collect()
    };
    assert_ne!(
        scores(&summary.json),
        scores(&run(&plain).unwrap().json),
        "--mask-input changed nothing"
    );

    // A mask input of the wrong size is an error naming the sizes.
    let wrong = out.join("wrong.npy");
    sam_burn::data::write_npy_f32(&wrong, &[1, 20, 20], &[0.0; 400]).unwrap();
    let bad = SegmentArgs::parse(args(&[
        "--out",
        out.to_str().unwrap(),
        "--mask-input",
        wrong.to_str().unwrap(),
    ]))
    .unwrap();
    let e = run(&bad).unwrap_err();
    assert!(e.to_string().contains("mask input is 20×20"), "{e}");
}

#[test]
fn bad_files_and_devices_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let e = run(&SegmentArgs::parse(args(&[
        "--out",
        out,
        "--image",
        "/nope.png",
        "--point",
        "1,1",
    ]))
    .unwrap())
    .unwrap_err();
    assert!(e.to_string().contains("/nope.png"), "{e}");
    let e =
        run(&SegmentArgs::parse(args(&["--out", out, "--device", "tpu"])).unwrap()).unwrap_err();
    assert!(e.to_string().contains("unknown device"), "{e}");
    let e = run(
        &SegmentArgs::parse(args(&["--out", out, "--checkpoint", "/nope/sam_vit_b.pth"])).unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("/nope/sam_vit_b.pth"), "{e}");
    let e = run(
        &SegmentArgs::parse(args(&["--out", out, "--checkpoint", "/nope/weights.pth"])).unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--model-type"), "{e}");
}

#[test]
fn hugging_face_folders_and_other_input_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let hf = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/sam-model/tests/fixtures/hf_sam_tiny"
    );
    let run_with = |extra: &[&str]| {
        let mut list = vec!["--out", out.to_str().unwrap(), "--point", "100,80"];
        list.extend_from_slice(extra);
        run(&SegmentArgs::parse(args(&list)).unwrap())
    };
    // A tiny random model in the Hugging Face layout: it runs; its masks mean nothing.
    let s = run_with(&["--checkpoint", hf]).unwrap();
    assert_eq!(s.json["masks"].as_array().unwrap().len(), 1);
    // The same folder at another input side (144 → 96: a 6² embedding).
    let s = run_with(&["--checkpoint", hf, "--image-size", "96", "--save-logits"]).unwrap();
    assert_eq!(s.json["masks"].as_array().unwrap().len(), 1);
    let (shape, _) = sam_burn::data::read_npy_f32(out.join("low_res_logits.npy")).unwrap();
    assert_eq!(shape, vec![1, 1, 24, 24]);
    // The demo model at twice its size.
    run_with(&["--image-size", "256", "--save-logits"]).unwrap();
    let (shape, _) = sam_burn::data::read_npy_f32(out.join("low_res_logits.npy")).unwrap();
    assert_eq!(shape, vec![1, 1, 64, 64]);

    let e = run_with(&["--checkpoint", hf, "--model-type", "vit_b"]).unwrap_err();
    assert!(e.to_string().contains("own config.json"), "{e}");
    let e = run_with(&["--checkpoint", dir.path().to_str().unwrap()]).unwrap_err();
    assert!(e.to_string().contains("without config.json"), "{e}");
    let e = run_with(&["--image-size", "100"]).unwrap_err();
    assert!(e.to_string().contains("100"), "{e}");
    usage_error(&["--image-size", "big"], "--image-size");
}

/// `--dtype bf16` computes in bf16: on the bundled demo the masks are the f32 run's but for a
/// few boundary pixels; a device without bf16 arithmetic is a one-line error.
#[test]
fn bf16_compute_gives_the_f32_masks() {
    let dir = tempfile::tempdir().unwrap();
    let mut areas = Vec::new();
    for dtype in ["f32", "bf16"] {
        let out = dir.path().join(dtype);
        let a =
            SegmentArgs::parse(args(&["--out", out.to_str().unwrap(), "--dtype", dtype])).unwrap();
        let summary = run(&a).unwrap();
        let masks = summary.json["masks"].as_array().unwrap().clone();
        areas.push(
            masks
                .iter()
                .map(|m| m["area"].as_f64().unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(areas[0].len(), areas[1].len());
    for (a, b) in areas[0].iter().zip(&areas[1]) {
        assert!((a - b).abs() <= 0.02 * a.max(1.0), "mask areas {a} vs {b}");
    }
    usage_error(&["--dtype", "f8"], "unknown precision");
    #[cfg(feature = "wgpu")]
    {
        let a = SegmentArgs::parse(args(&["--dtype", "bf16", "--device", "wgpu"])).unwrap();
        let err = run(&a).unwrap_err().to_string();
        assert!(err.contains("cannot compute in BF16"), "{err}");
    }
}

/// `--text` with `--clip`: each text, embedded by the CLIP folder and ℓ2-normalised, is one
/// prompt of a model trained with text prompts (here a tiny random one taking CLIP's 16-wide
/// embeddings); the masks equal the predictor's with that embedding; errors are one line.
#[test]
fn text_prompts_through_a_clip_folder() {
    let clip = sam_burn::segment::bundled("crates/sam-clip/tests/fixtures/clip_tiny");
    let fixtures = sam_burn::segment::bundled("crates/sam-model/tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let config = sam_burn::SamConfig {
        prompt_embedding_dim: Some(16),
        ..sam_burn::SamConfig::load(fixtures.join("sam_tiny.json")).unwrap()
    };
    let device = sam_burn::burn::tensor::Device::flex();
    let model = config.init(&device).unwrap();
    let ckpt = model.save(dir.path().join("text_sam.bpk")).unwrap();
    let cfg = dir.path().join("text_sam.json");
    config.save(&cfg).unwrap();
    let out = dir.path().join("out");
    let texts = ["a red triangle", "a small blue circle"];
    let a = SegmentArgs::parse(args(&[
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--clip",
        clip.to_str().unwrap(),
        "--text",
        texts[0],
        "--text",
        texts[1],
        "--point",
        "100,80",
        "--out",
        out.to_str().unwrap(),
        "--save-logits",
    ]))
    .unwrap();
    let summary = run(&a).unwrap();
    let masks = summary.json["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 2, "one mask per text");
    assert_eq!(masks[1]["prompt_text"], texts[1]);

    // The same as the predictor given the normalised CLIP embeddings directly.
    let embeddings =
        sam_burn::segment::text_embeddings(&clip, &texts.map(String::from), &device).unwrap();
    for e in &embeddings {
        let norm: f32 = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    let image = sam_burn::data::load_rgb(sam_burn::segment::bundled("assets/scene.png")).unwrap();
    let mut predictor = sam_burn::predictor::SamPredictor::new(model);
    predictor.set_image(&image).unwrap();
    let prompts: Vec<_> = embeddings
        .into_iter()
        .map(|e| {
            sam_burn::predictor::Prompt::default()
                .with_points([sam_burn::predictor::Point::foreground(100.0, 80.0)])
                .with_embedding(e)
        })
        .collect();
    let options = sam_burn::predictor::PredictOptions {
        multimask_output: false,
        return_logits: false,
    };
    let pred = predictor.predict_batch(&prompts, options).unwrap();
    let (shape, saved) = sam_burn::data::read_npy_f32(out.join("low_res_logits.npy")).unwrap();
    assert_eq!(shape, pred.low_res_logits.dims().to_vec());
    assert!(
        saved == sam_burn::model::f32_values(pred.low_res_logits),
        "logits differ"
    );

    usage_error(
        &["--text", "a cat", "--checkpoint", "x.pth"],
        "--text needs --clip",
    );
    // Without a checkpoint, texts default to the bundled text demo (CLIP and SAM).
    let demo = SegmentArgs::parse(args(&["--text", "a red circle"])).unwrap();
    assert!(
        demo.clip
            .as_ref()
            .unwrap()
            .ends_with("assets/text_demo/clip")
    );
    assert!(
        demo.model
            .checkpoint
            .as_ref()
            .unwrap()
            .ends_with("assets/text_demo/sam/model.bpk")
    );
    usage_error(&["--clip", "x"], "only used with --text");
    usage_error(
        &[
            "--text", "a", "--clip", "x", "--box", "1,2,3,4", "--box", "1,2,3,4",
        ],
        "1 --text but 2 --box",
    );
    // The demo model takes no text; a folder that is no CLIP folder is named.
    let a =
        SegmentArgs::parse(args(&["--text", "a cat", "--clip", clip.to_str().unwrap()])).unwrap();
    let err = run(&a).unwrap_err().to_string();
    assert!(err.contains("takes no embedding prompt"), "{err}");
    let a = SegmentArgs::parse(args(&[
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--text",
        "a cat",
        "--clip",
        dir.path().to_str().unwrap(),
    ]))
    .unwrap();
    let e = run(&a).expect_err("an error").to_string();
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn texts_default_to_the_bundled_text_demo() {
    // The bundled tiny CLIP and SAM text head (examples/text_demo): each text is one prompt,
    // its three multimask outputs written; the two models agree on the embedding size.
    let out = tempfile::tempdir().unwrap();
    let a = SegmentArgs::parse(args(&[
        "--text",
        "a yellow circle",
        "--text",
        "a red rectangle",
        "--multimask",
        "--out",
        out.path().to_str().unwrap(),
    ]))
    .unwrap();
    let summary = sam_burn::segment::run(&a).unwrap();
    let masks = summary.json["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 6);
    // The best-scoring mask of each text lies on the object the text names in the bundled
    // scene: the sun (a yellow disc at about (265, 45)) and the house's red wall.
    let best_box = |p: u64| {
        let best = masks
            .iter()
            .filter(|m| m["prompt"] == p)
            .max_by(|a, b| {
                a["score"]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&b["score"].as_f64().unwrap())
            })
            .unwrap();
        let b: Vec<f64> = serde_json::from_value(best["bbox_xyxy"].clone()).unwrap();
        b
    };
    let inside =
        |b: &[f64], r: [f64; 4]| b[0] >= r[0] && b[1] >= r[1] && b[2] <= r[2] && b[3] <= r[3];
    let sun = best_box(0);
    assert!(
        inside(&sun, [230.0, 10.0, 300.0, 80.0]),
        "yellow circle: {sun:?}"
    );
    let wall = best_box(1);
    assert!(
        inside(&wall, [50.0, 40.0, 170.0, 185.0]),
        "red rectangle: {wall:?}"
    );
    assert!(
        (wall[2] - wall[0]) * (wall[3] - wall[1]) > 50.0 * 50.0,
        "red rectangle: {wall:?}"
    );
    // Without --multimask a text alone keeps that best-scoring mask, one per text.
    let single = tempfile::tempdir().unwrap();
    let a = SegmentArgs::parse(args(&[
        "--text",
        "a yellow circle",
        "--text",
        "a red rectangle",
        "--out",
        single.path().to_str().unwrap(),
    ]))
    .unwrap();
    let one = sam_burn::segment::run(&a).unwrap();
    assert_eq!(one.json["best_of_three"], true);
    let kept = one.json["masks"].as_array().unwrap();
    assert_eq!(kept.len(), 2);
    for (p, expect) in [(0, &sun), (1, &wall)] {
        let b: Vec<f64> = serde_json::from_value(kept[p]["bbox_xyxy"].clone()).unwrap();
        assert_eq!(&b, expect, "text {p}");
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/text_demo");
    let clip =
        sam_burn::clip::ClipFolder::load(root.join("clip"), &burn::tensor::Device::flex()).unwrap();
    let sam = sam_burn::SamConfig::load(root.join("sam/config.json")).unwrap();
    assert_eq!(
        sam.prompt_embedding_dim,
        Some(clip.model.config().projection_dim)
    );
}
