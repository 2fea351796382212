//! Bad input gives typed errors, never panics.

use std::path::PathBuf;

use burn::tensor::Device;
use sam_model::{Sam, SamConfig};
use sam_predictor::{
    ImageEmbedding, MaskInput, Point, PredictOptions, PredictorError, Prompt, SamPredictor,
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
        Prompt::default().with_points([Point::foreground(41.0, 1.0)]),
        "outside the 40×30 image",
    );
    invalid(
        &p,
        Prompt::default().with_points([Point::foreground(-1.0, 1.0)]),
        "outside",
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
        Prompt::default().with_box([0.0, 0.0, 50.0, 10.0]),
        "outside",
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
    let bad = Prompt::default().with_points([Point::foreground(1.0, 99.0)]);
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
    let pred = q.predict(
        &Prompt::default().with_points([Point::foreground(5.0, 5.0)]),
        PredictOptions::default(),
    );
    assert!(pred.is_ok());

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"nope").unwrap();
    let e = ImageEmbedding::load(&garbage, &Device::flex()).unwrap_err();
    assert!(e.to_string().contains("garbage.safetensors"), "{e}");
    let wrong = ImageEmbedding {
        features: burn::tensor::Tensor::zeros([1, 8, 9, 9], &Device::flex()),
        ..emb
    };
    assert!(q.set_embedding(wrong).is_err());
}
