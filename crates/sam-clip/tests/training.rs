//! What the text-prompt demo needs from sam-clip: folders written back as the Hub lays them
//! out, the class token restricted to an object's patches (App. D.5), and contrastive training
//! that learns captions.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sam_clip::contrastive::{
    ContrastiveConfig, CropConfig, captioned_crops, info_nce, retrieval_accuracy, shape_caption,
    train_contrastive,
};
use sam_clip::{ClipConfig, ClipFolder, ClipModel, PixelValues};
use sam_data::dataset::{Dataset, Sa1bDataset, SyntheticConfig, write_synthetic_dataset};

fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

/// The backend's random generator is one per process: tests that seed it and then draw from it
/// take turns, so that each draws what its seed says.
fn seeded() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn pixels(n: usize, side: usize, seed: u64, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..n * 3 * side * side)
        .map(|i| (((i as u64 * 2654435761 + seed) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Tensor::from_data(burn::tensor::TensorData::new(v, [n, 3, side, side]), device)
}

#[test]
fn saved_folders_load_back_with_the_same_outputs() {
    let device = Device::flex();
    let src = common::fixtures().join("clip_tiny");
    let clip = ClipFolder::load(&src, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    clip.save(dir.path()).unwrap();
    let back = ClipFolder::load(dir.path(), &device).unwrap();
    assert_eq!(back.model.config(), clip.model.config());
    assert_eq!(back.processor, clip.processor);
    let texts = ["a red circle", "a photo of a cat"];
    let (ids_a, a) = clip.embed_texts(&texts).unwrap();
    let (ids_b, b) = back.embed_texts(&texts).unwrap();
    assert_eq!(ids_a, ids_b);
    assert_eq!(max_abs_diff(a, b), 0.0);
    let s = clip.model.config().vision_config.image_size;
    let x = pixels(2, s, 3, &device);
    let a = clip.model.get_image_features(x.clone()).unwrap();
    let b = back.model.get_image_features(x).unwrap();
    assert_eq!(max_abs_diff(a, b), 0.0);
    // The same tensors as the transformers-written file, `logit_scale` 0-d included.
    let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
    let ours = read(dir.path().join("model.safetensors"));
    let theirs = read(src.join("model.safetensors"));
    let ours = safetensors::SafeTensors::deserialize(&ours).unwrap();
    let theirs = safetensors::SafeTensors::deserialize(&theirs).unwrap();
    let mut names: Vec<String> = ours.names().into_iter().map(String::from).collect();
    names.sort();
    let mut want: Vec<String> = theirs
        .names()
        .into_iter()
        .filter(|n| !n.ends_with("position_ids"))
        .map(String::from)
        .collect();
    want.sort();
    assert_eq!(names, want);
    for name in &names {
        let (x, y) = (ours.tensor(name).unwrap(), theirs.tensor(name).unwrap());
        assert_eq!(x.shape(), y.shape(), "{name}");
        assert_eq!(x.data(), y.data(), "{name}");
    }
}

/// The fixture's config with a one-layer vision tower: the class token's output then depends
/// only on the patches it may attend to.
fn one_layer_model(device: &Device) -> ClipModel {
    let mut config = ClipConfig::load(common::fixtures().join("clip_tiny/config.json")).unwrap();
    config.vision_config.num_hidden_layers = 1;
    device.seed(3);
    ClipModel::new(&config, device).unwrap()
}

#[test]
fn the_class_token_sees_only_the_object_s_patches() {
    let _seeded = seeded();
    let device = Device::flex();
    let model = one_layer_model(&device);
    let v = model.config().vision_config.clone();
    let (s, g) = (v.image_size, v.image_size / v.patch_size);
    let x = pixels(1, s, 1, &device);
    let plain = model.get_image_features(x.clone()).unwrap();
    // Every patch inside, or none: no restriction.
    for all in [true, false] {
        let r = model
            .get_image_features_restricted(x.clone(), &[vec![all; g * g]])
            .unwrap();
        assert!(max_abs_diff(plain.clone(), r) < 1e-6);
    }
    // Patch 0 only: changing the pixels of the other patches changes nothing.
    let mut inside = vec![false; g * g];
    inside[0] = true;
    let a = model
        .get_image_features_restricted(x.clone(), &[inside.clone()])
        .unwrap();
    assert!(
        max_abs_diff(plain.clone(), a.clone()) > 1e-4,
        "the restriction acts"
    );
    let other = pixels(1, s, 9, &device);
    // Keep patch 0 (rows and columns 0..patch) from x, the rest from `other`.
    let p = v.patch_size;
    let keep = x.clone().slice([0..1, 0..3, 0..p, 0..p]);
    let changed = other.slice_assign([0..1, 0..3, 0..p, 0..p], keep);
    let b = model
        .get_image_features_restricted(changed, &[inside])
        .unwrap();
    assert!(max_abs_diff(a, b) < 1e-5);
    // Wrong sizes are errors.
    assert!(
        model
            .get_image_features_restricted(x.clone(), &[vec![true; 3]])
            .is_err()
    );
    let e = model
        .get_image_features_restricted(x, &[])
        .expect_err("an error")
        .to_string();
    assert!(e.contains("patch masks"), "{e}");
}

#[test]
fn info_nce_treats_equal_captions_as_positives() {
    let device = Device::flex();
    let captions: Vec<String> = ["a", "a", "b"].iter().map(|s| s.to_string()).collect();
    // Perfectly separated logits for the soft targets give a small loss; swapped, a large one.
    let good = Tensor::<2>::from_data(
        [[9.0, 9.0, -9.0], [9.0, 9.0, -9.0], [-9.0, -9.0, 9.0]],
        &device,
    );
    let bad = Tensor::<2>::from_data(
        [[-9.0, -9.0, 9.0], [-9.0, -9.0, 9.0], [9.0, 9.0, -9.0]],
        &device,
    );
    let lg = info_nce(good, &captions).into_scalar::<f32>();
    let lb = info_nce(bad, &captions).into_scalar::<f32>();
    // With two equal positives the minimum is ln 2 for their rows.
    assert!((lg - (2.0f32.ln() * 2.0 / 3.0)).abs() < 1e-3, "{lg}");
    assert!(lb > 10.0, "{lb}");
}

#[test]
fn contrastive_training_learns_the_shapes_captions() {
    let _seeded = seeded();
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticConfig {
        num_images: 24,
        min_objects: 2,
        max_objects: 5,
        seed: 4,
        ..SyntheticConfig::default()
    };
    write_synthetic_dataset(dir.path(), &config).unwrap();
    let data = Sa1bDataset::open(dir.path()).unwrap();
    let src = common::fixtures().join("clip_tiny");
    let fixture = ClipFolder::load(&src, &device).unwrap();
    let v = fixture.model.config().vision_config.clone();
    let grid = v.image_size / v.patch_size;
    let crop = CropConfig {
        min_area: 100,
        ..CropConfig::default()
    };
    let mut rng = StdRng::seed_from_u64(1);
    let mut crops = Vec::new();
    for i in 0..data.len() {
        let item = data.get(i).unwrap();
        crops.extend(
            captioned_crops(
                &item,
                &fixture.processor,
                grid,
                &crop,
                shape_caption,
                &mut rng,
            )
            .unwrap(),
        );
    }
    assert!(crops.len() > 40, "{} crops", crops.len());
    assert!(crops.iter().all(|c| !c.caption.contains("small")
        && !c.caption.contains("large")
        && c.caption.starts_with("a ")));
    let PixelValues { height, width, .. } = crops[0].pixels;
    assert_eq!((height, width), (v.image_size, v.image_size));
    let mut captions: Vec<String> = crops.iter().map(|c| c.caption.clone()).collect();
    captions.sort();
    captions.dedup();

    let train = device.clone().autodiff();
    train.seed(2);
    let model = ClipModel::new(fixture.model.config(), &train).unwrap();
    let before = retrieval_accuracy(&model.valid(), &fixture.tokenizer, &crops, &captions).unwrap();
    let mut losses = Vec::new();
    let config = ContrastiveConfig {
        steps: 300,
        batch_size: 32,
        lr: 3e-3,
        warmup_steps: 10,
        ..ContrastiveConfig::default()
    };
    let model = train_contrastive(model, &fixture.tokenizer, &crops, &config, |s| {
        losses.push(s.loss)
    })
    .unwrap();
    let after = retrieval_accuracy(&model.valid(), &fixture.tokenizer, &crops, &captions).unwrap();
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let last: f64 = losses[290..].iter().sum::<f64>() / 10.0;
    eprintln!(
        "InfoNCE {first:.3} → {last:.3}; retrieval {before:.3} → {after:.3} over {} captions",
        captions.len()
    );
    assert!(last < 0.8 * first, "loss {first} → {last}");
    assert!(
        after > before + 0.1 && after > 2.0 / captions.len() as f64,
        "{before} → {after}"
    );
    // The temperature stays at CLIP's cap: a model starting above it (e^5 ≈ 148) is clamped to
    // 100 after its first step.
    let mut hot = fixture.model.config().clone();
    hot.logit_scale_init_value = 5.0;
    let m = ClipModel::new(&hot, &train).unwrap();
    let one = ContrastiveConfig {
        steps: 1,
        ..config.clone()
    };
    let m = train_contrastive(m, &fixture.tokenizer, &crops, &one, |_| {}).unwrap();
    let scale = m.logit_scale.val().into_scalar::<f64>();
    assert!(scale <= 100f64.ln() + 1e-6, "logit_scale {scale}");
    // Too little to train on is an error.
    let m = ClipModel::new(fixture.model.config(), &train).unwrap();
    let e = train_contrastive(m, &fixture.tokenizer, &crops[..1], &config, |_| {})
        .expect_err("an error")
        .to_string();
    assert!(e.contains("got 1 crops"), "{e}");
}
