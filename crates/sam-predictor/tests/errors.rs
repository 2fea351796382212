//! Bad input gives typed errors, never panics.

use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};
use sam_model::{PointPrompt, Prompts, Sam, SamConfig, f32_values};
use sam_predictor::{
    ImageEmbedding, ImageFormat, MaskInput, Point, PredictOptions, PredictorError, Prompt,
    SamPredictor,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sam-model/tests/fixtures")
}

fn predictor() -> SamPredictor {
    let config = SamConfig::load(fixtures().join("sam_tiny.json")).unwrap();
    let model = Sam::load(fixtures().join("sam_tiny.pth"), &config, &Device::flex()).unwrap();
    SamPredictor::new(model)
}

fn with_image() -> SamPredictor {
    let mut p = predictor();
    let rgb: Vec<u8> = (0..40 * 30 * 3).map(|i| (i * 7 % 256) as u8).collect();
    p.set_image_rgb(&rgb, 40, 30).unwrap();
    p
}

fn invalid(p: &SamPredictor, prompt: Prompt, expect: &str) {
    match p.predict(&prompt, PredictOptions::default()) {
        Err(PredictorError::InvalidPrompt(m)) => assert!(m.contains(expect), "{m} / {expect}"),
        other => panic!("expected InvalidPrompt({expect}), got {other:?}"),
    }
}

#[test]
fn predicting_without_an_image_is_an_error() {
    let p = predictor();
    let e = p.predict(
        &Prompt::default().with_points([Point::foreground(1.0, 1.0)]),
        PredictOptions::default(),
    );
    assert!(matches!(e, Err(PredictorError::NoImage)));
    let mut p = with_image();
    p.reset_image();
    assert!(matches!(
        p.predict(&Prompt::default(), PredictOptions::default()),
        Err(PredictorError::NoImage)
    ));
}

#[test]
fn malformed_prompts_are_errors() {
    let p = with_image();
    invalid(
        &p,
        Prompt::default().with_points([Point::foreground(f64::NAN, 1.0)]),
        "non-finite",
    );
    invalid(
        &p,
        Prompt::default().with_points([Point {
            x: 1.0,
            y: 1.0,
            label: 7,
        }]),
        "label 7",
    );
    invalid(
        &p,
        Prompt::default().with_box([10.0, 0.0, 5.0, 10.0]),
        "x1 < x0",
    );
    invalid(
        &p,
        Prompt::default().with_mask_input(MaskInput::new(vec![0.0; 64 * 64], 64, 64).unwrap()),
        "mask input is 64×64, the model expects 36×36",
    );
    let e = Prompt::from_arrays(&[[1.0, 2.0]], &[1, 0]).unwrap_err();
    assert!(
        e.to_string().contains("1 point coordinates but 2 labels"),
        "{e}"
    );
    let e = MaskInput::new(vec![0.0; 10], 36, 36).unwrap_err();
    assert!(e.to_string().contains("10 values"), "{e}");
    // Built field by field, past `MaskInput::new`'s check.
    invalid(
        &p,
        Prompt {
            mask_input: Some(MaskInput {
                logits: vec![0.0; 10],
                height: 36,
                width: 36,
            }),
            ..Prompt::default()
        },
        "holds 10 logits",
    );
}

/// BGR input (OpenCV's order), as the reference's `set_image(image, "BGR")`: the same
/// embedding as its RGB twin.
#[test]
fn bgr_images_are_embedded_as_their_rgb_twin() {
    let rgb: Vec<u8> = (0..40 * 30 * 3).map(|i| (i * 7 % 256) as u8).collect();
    let bgr: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let mut a = predictor();
    a.set_image_rgb(&rgb, 40, 30).unwrap();
    let mut b = predictor();
    b.set_image_with_format(&bgr, 40, 30, ImageFormat::Bgr)
        .unwrap();
    let values = |p: &SamPredictor| sam_model::f32_values(p.embedding().unwrap().features.clone());
    assert_eq!(values(&a), values(&b));
    b.set_image_with_format(&rgb, 40, 30, ImageFormat::Rgb)
        .unwrap();
    assert_eq!(values(&a), values(&b));
    assert!(
        b.set_image_with_format(&bgr[..10], 40, 30, ImageFormat::Bgr)
            .is_err()
    );
}

#[test]
fn inconsistent_batches_are_errors() {
    let p = with_image();
    let a = Prompt::default().with_points([Point::foreground(1.0, 1.0)]);
    let b = Prompt::default().with_box([0.0, 0.0, 5.0, 5.0]);
    let e = p
        .predict_batch(&[a.clone(), b], PredictOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("prompt 1 differs in shape"), "{e}");
    let e = p.predict_batch(&[], PredictOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no prompts"), "{e}");
    let bad = Prompt::default().with_points([Point::foreground(1.0, f64::INFINITY)]);
    let e = p
        .predict_batch(&[a, bad], PredictOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("prompt 1: point 0"), "{e}");
}

#[test]
fn empty_or_wrong_size_images_are_errors() {
    let mut p = predictor();
    assert!(matches!(
        p.set_image_rgb(&[], 0, 0),
        Err(PredictorError::Data(_))
    ));
    assert!(matches!(
        p.set_image_rgb(&[0; 5], 2, 2),
        Err(PredictorError::Data(_))
    ));
    assert!(p.embedding().is_none());
}

#[test]
fn embeddings_save_load_and_reject_bad_files() {
    let p = with_image();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emb.safetensors");
    let emb = p.embedding().unwrap().clone();
    emb.save(&path).unwrap();
    let back = ImageEmbedding::load(&path, &Device::flex()).unwrap();
    assert_eq!(back.original_size, (30, 40));
    assert_eq!(back.input_size, emb.input_size);
    assert_eq!(
        back.features.into_data().try_into_vec::<f32>().unwrap(),
        emb.features
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    );

    let mut q = predictor();
    q.set_embedding(ImageEmbedding::load(&path, &Device::flex()).unwrap())
        .unwrap();
    // The reloaded embedding answers a prompt as the original did.
    let prompt = Prompt::default().with_points([Point::foreground(5.0, 5.0)]);
    let logits = |p: &SamPredictor| {
        p.predict(&prompt, PredictOptions::default())
            .unwrap()
            .low_res_logits
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    };
    assert_eq!(logits(&q), logits(&p));

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"nope").unwrap();
    let e = ImageEmbedding::load(&garbage, &Device::flex()).unwrap_err();
    assert!(e.to_string().contains("garbage.safetensors"), "{e}");
    let wrong = ImageEmbedding {
        features: burn::tensor::Tensor::zeros([1, 8, 9, 9], &Device::flex()),
        ..emb
    };
    let e = q.set_embedding(wrong).unwrap_err().to_string();
    assert!(
        e.contains("[1, 8, 9, 9]") && e.contains("[1, 32, 9, 9]"),
        "the error names both shapes: {e}"
    );
}

/// The embedding prompt through the predictor: decoded alone and with points for a model that
/// takes one (the same result as the model's own call), an error for an official model, a
/// wrong length or non-finite values, or a batch whose prompts differ in it.
#[test]
fn embedding_prompts_reach_the_model_or_are_errors() {
    let official = with_image();
    invalid(
        &official,
        Prompt::default().with_embedding(vec![0.5; 8]),
        "takes no embedding prompt",
    );

    let config = SamConfig {
        prompt_embedding_dim: Some(8),
        ..SamConfig::load(fixtures().join("sam_tiny.json")).unwrap()
    };
    let device = Device::flex();
    let model = config.init(&device).unwrap();
    let mut p = SamPredictor::new(model.clone());
    let rgb: Vec<u8> = (0..40 * 30 * 3).map(|i| (i * 7 % 256) as u8).collect();
    p.set_image_rgb(&rgb, 40, 30).unwrap();
    let e: Vec<f32> = (0..8).map(|i| i as f32 / 4.0 - 1.0).collect();

    let alone = p
        .predict(
            &Prompt::default().with_embedding(e.clone()),
            PredictOptions::default(),
        )
        .unwrap();
    let [_, m, h, w] = alone.low_res_logits.dims();
    assert_eq!((m, h, w), (3, 36, 36));
    // The same as the model's own call on the predictor's embedding.
    let direct = model
        .predict(
            p.embedding().unwrap().features.clone(),
            sam_model::Prompts {
                embeddings: Some(
                    burn::tensor::Tensor::<1>::from_floats(e.as_slice(), &device).reshape([1, 8]),
                ),
                ..Default::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(
        sam_model::f32_values(alone.low_res_logits),
        sam_model::f32_values(direct.low_res_masks)
    );
    let with_points = p
        .predict_batch(
            &[
                Prompt::default()
                    .with_points([Point::foreground(10.0, 10.0)])
                    .with_embedding(e.clone()),
                Prompt::default()
                    .with_points([Point::foreground(20.0, 5.0)])
                    .with_embedding(e.clone()),
            ],
            PredictOptions::default(),
        )
        .unwrap();
    assert_eq!(with_points.low_res_logits.dims()[0], 2);

    invalid(
        &p,
        Prompt::default().with_embedding(vec![0.5; 7]),
        "has 7 values, the model expects 8",
    );
    invalid(
        &p,
        Prompt::default().with_embedding(vec![f32::NAN; 8]),
        "non-finite",
    );
    let err = p
        .predict_batch(
            &[
                Prompt::default().with_embedding(e.clone()),
                Prompt::default().with_box([0.0, 0.0, 5.0, 5.0]),
            ],
            PredictOptions::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("differs in shape"), "{err}");
}

/// Coordinates outside the image are prompts like any other, as in the reference: rescaled to
/// the model's input and encoded, not clipped or refused (a detector's box may overhang).
#[test]
fn prompts_outside_the_image_are_rescaled_like_any_other() {
    let p = with_image();
    let emb = p.embedding().unwrap();
    let device = p.model().device();
    let (points, bbox) = ([[41.0, -1.0], [-3.5, 12.0]], [-2.0, 3.0, 47.0, 31.5]);
    let prompt = Prompt::from_arrays(&points, &[1, 0])
        .unwrap()
        .with_box(bbox);
    let got = p.predict(&prompt, PredictOptions::default()).unwrap();

    let t = p.transform();
    let coords: Vec<f32> = t
        .apply_coords(&points, emb.original_size)
        .iter()
        .flatten()
        .map(|&v| v as f32)
        .collect();
    let boxes: Vec<f32> = t.apply_boxes(&[bbox], emb.original_size)[0]
        .iter()
        .map(|&v| v as f32)
        .collect();
    let prompts = Prompts {
        points: Some(PointPrompt {
            coords: Tensor::from_data(TensorData::new(coords, [1, 2, 2]), &device),
            labels: Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 0], [1, 2]), &device),
        }),
        boxes: Some(Tensor::from_data(TensorData::new(boxes, [1, 4]), &device)),
        ..Prompts::default()
    };
    let want = p
        .model()
        .predict(emb.features.clone(), prompts, true)
        .unwrap();
    assert_eq!(
        f32_values(got.low_res_logits),
        f32_values(want.low_res_masks)
    );
    assert_eq!(
        f32_values(got.iou_predictions),
        f32_values(want.iou_predictions)
    );

    // Far away is still a prompt; past f32's range after rescaling it is an error.
    let far = Prompt::default().with_points([Point::foreground(1e30, -1e30)]);
    let logits = f32_values(
        p.predict(&far, PredictOptions::default())
            .unwrap()
            .low_res_logits,
    );
    assert!(logits.iter().all(|v| v.is_finite()));
    invalid(
        &p,
        Prompt::default().with_points([Point::foreground(1.0, 1e300)]),
        "point 0 (1.0, 1e300) is beyond f32's range",
    );
    invalid(
        &p,
        Prompt::default().with_box([-1e300, 0.0, 1.0, 1.0]),
        "beyond f32's range",
    );
}
