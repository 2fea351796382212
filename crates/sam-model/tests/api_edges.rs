//! The public API at its edges: features used together (resampling a text-prompt model,
//! adding weights to a 16-bit model), configs with every block global, one prompt set for
//! several images, and inputs that must be typed errors rather than panics.

mod common;

use burn::module::Module;
use burn::tensor::{DType, Device, Distribution, FloatDType, Int, Tensor};
use common::*;
use sam_model::{LoraConfig, PointPrompt, Prompts, Sam, SamConfig, SamError, f32_values};

fn invalid_input(result: sam_model::Result<impl std::fmt::Debug>, expect: &str) {
    match result {
        Err(SamError::InvalidInput(msg)) => assert!(msg.contains(expect), "{msg} / {expect}"),
        other => panic!("expected InvalidInput mentioning {expect:?}, got {other:?}"),
    }
}

/// Every float parameter's dtype, with its path.
fn float_dtypes(sam: &Sam) -> Vec<(String, DType)> {
    struct Collect(Vec<(String, DType)>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float_with_path<const D: usize>(
            &mut self,
            path: &[String],
            _: burn::module::ParamId,
            tensor: &Tensor<D>,
        ) {
            self.0.push((path.join("."), tensor.dtype()));
        }
    }
    let mut c = Collect(Vec::new());
    sam.visit(&mut c);
    c.0
}

fn one_point(b: usize, device: &Device) -> Prompts {
    Prompts {
        points: Some(PointPrompt {
            coords: Tensor::<3>::from_floats([[[40.0, 52.0]]], device).expand([b, 1, 2]),
            labels: Tensor::<2, Int>::ones([b, 1], device),
        }),
        ..Prompts::default()
    }
}

#[test]
fn resampling_keeps_the_embedding_prompt_projection() {
    let device = Device::flex();
    let config = SamConfig {
        prompt_embedding_dim: Some(12),
        ..config("sam_tiny")
    };
    let sam = config.init(&device).unwrap();
    let proj = |s: &Sam| {
        let p = s.prompt_encoder.embedding_proj.as_ref().unwrap();
        (
            f32_values(p.weight.val()),
            f32_values(p.bias.as_ref().unwrap().val()),
        )
    };
    let before = proj(&sam);
    let resampled = sam.resampled(96).unwrap();
    assert_eq!(resampled.config().prompt_embedding_dim, Some(12));
    assert_eq!(proj(&resampled), before);
    assert_eq!(resampled.prompt_encoder.mask_input_size(), 4 * 96 / 16);
}

#[test]
fn every_block_global_round_trips_and_resamples() {
    let device = Device::flex();
    let config = SamConfig {
        window_size: 0,
        ..config("sam_tiny")
    };
    let sam = config.init(&device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("global.safetensors");
    sam.save_official_safetensors(&file).unwrap();
    let loaded = Sam::load(&file, &config, &device).expect("same config loads back");
    let prompts = one_point(1, &device);
    let emb = Tensor::random([1, 32, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let a = sam.predict(emb.clone(), prompts.clone(), true).unwrap();
    let b = loaded.predict(emb, prompts, true).unwrap();
    assert_eq!(f32_values(a.low_res_masks), f32_values(b.low_res_masks));

    // At 96 (a 6×6 grid), every block's tables are 11 long, as a model built at 96 has them,
    // so the resampled model also loads back at that size.
    let resampled = loaded.resampled(96).unwrap();
    for (i, block) in resampled.image_encoder.blocks.iter().enumerate() {
        assert_eq!(block.attn.rel_pos_h.val().dims()[0], 11, "block {i}");
        assert_eq!(block.attn.rel_pos_w.val().dims()[0], 11, "block {i}");
    }
    let file96 = dir.path().join("global96.safetensors");
    resampled.save_official_safetensors(&file96).unwrap();
    Sam::load(&file96, resampled.config(), &device).expect("resampled model loads back");
}

#[test]
fn weights_added_to_a_16_bit_model_are_16_bit() {
    let device = Device::flex();
    let half = config("sam_tiny")
        .init(&device)
        .unwrap()
        .cast_float(FloatDType::BF16)
        .unwrap();
    let mut sam = half
        .resampled(96)
        .unwrap()
        .with_prompt_embedding(12)
        .unwrap();
    sam.add_lora(&LoraConfig::default()).unwrap();
    let wrong: Vec<_> = float_dtypes(&sam)
        .into_iter()
        .filter(|(_, d)| *d != DType::BF16)
        .collect();
    assert!(wrong.is_empty(), "not bf16: {wrong:?}");
    assert_eq!(sam.float_dtype(), FloatDType::BF16);

    // And it runs: encoder, points with an embedding prompt, f32 answers.
    let image = Tensor::random([1, 3, 96, 96], Distribution::Uniform(0.0, 255.0), &device);
    let emb = sam
        .image_embeddings(sam.preprocess(image).unwrap())
        .unwrap();
    let mut prompts = one_point(1, &device);
    prompts.embeddings = Some(Tensor::random(
        [1, 12],
        Distribution::Normal(0.0, 1.0),
        &device,
    ));
    let out = sam.predict(emb, prompts, true).unwrap();
    assert_eq!(out.low_res_masks.dims(), [1, 3, 24, 24]);
    assert_eq!(out.low_res_masks.dtype(), DType::F32);
    assert!(
        f32_values(out.iou_predictions)
            .iter()
            .all(|v| v.is_finite())
    );
}

#[test]
fn one_prompt_set_for_several_images_is_that_set_for_each() {
    let device = Device::flex();
    let sam = config("sam_tiny").init(&device).unwrap();
    let emb = Tensor::random([2, 32, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let both = sam
        .predict(emb.clone(), one_point(1, &device), true)
        .unwrap();
    assert_eq!(both.low_res_masks.dims(), [2, 3, 36, 36]);
    for i in 0..2 {
        let alone = sam
            .predict(emb.clone().narrow(0, i, 1), one_point(1, &device), true)
            .unwrap();
        let got = f32_values(both.low_res_masks.clone().narrow(0, i, 1));
        let want = f32_values(alone.low_res_masks);
        let err = rel_error_of(&got, &want);
        assert!(err <= 1e-5, "image {i}: {err:e}");
    }

    // Shapes the decoder cannot pair are errors naming them.
    let dec = &sam.mask_decoder;
    let pe = sam.prompt_encoder.get_dense_pe();
    let dense = Tensor::<4>::zeros([1, 32, 9, 9], &device);
    let sparse = Tensor::<3>::zeros([1, 2, 32], &device);
    invalid_input(
        dec.forward(
            emb.clone(),
            Tensor::zeros([1, 32, 8, 8], &device),
            Some(sparse.clone()),
            dense.clone(),
            false,
        ),
        "positional encoding",
    );
    invalid_input(
        dec.forward(
            emb.clone(),
            pe.clone(),
            Some(Tensor::zeros([1, 2, 16], &device)),
            dense.clone(),
            false,
        ),
        "16",
    );
    invalid_input(
        dec.forward(
            emb,
            pe,
            Some(Tensor::zeros([3, 2, 32], &device)),
            dense,
            false,
        ),
        "batch",
    );
}

#[test]
fn a_decoder_without_multimask_tokens_says_so() {
    let device = Device::flex();
    let sam = SamConfig {
        num_multimask_outputs: 0,
        ..config("sam_tiny")
    }
    .init(&device)
    .unwrap();
    let emb = Tensor::random([1, 32, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let single = sam
        .predict(emb.clone(), one_point(1, &device), false)
        .unwrap();
    assert_eq!(single.low_res_masks.dims(), [1, 1, 36, 36]);
    invalid_input(
        sam.predict(emb, one_point(1, &device), true),
        "num_multimask_outputs = 0",
    );
}

#[test]
fn empty_inputs_and_wrong_extensions_are_errors() {
    let device = Device::flex();
    let sam = config("sam_tiny").init(&device).unwrap();
    invalid_input(
        sam.preprocess(Tensor::zeros([0, 3, 144, 144], &device)),
        "B > 0",
    );
    invalid_input(
        sam.image_embeddings(Tensor::zeros([0, 3, 144, 144], &device)),
        "B > 0",
    );
    invalid_input(
        sam.postprocess_masks(Tensor::zeros([1, 1, 0, 0], &device), (144, 144), (100, 144)),
        "non-empty",
    );
    // A batch of zero prompt sets, of each kind (flex read a matrix from the empty operand
    // and crashed before this was checked).
    let emb = Tensor::zeros([1, 32, 9, 9], &device);
    let zero_points = Prompts {
        points: Some(PointPrompt {
            coords: Tensor::zeros([0, 1, 2], &device),
            labels: Tensor::<2, Int>::ones([0, 1], &device),
        }),
        ..Prompts::default()
    };
    let zero_boxes = Prompts {
        boxes: Some(Tensor::zeros([0, 4], &device)),
        ..Prompts::default()
    };
    let zero_masks = Prompts {
        masks: Some(Tensor::zeros([0, 1, 36, 36], &device)),
        ..Prompts::default()
    };
    for prompts in [zero_points, zero_boxes, zero_masks] {
        invalid_input(sam.predict(emb.clone(), prompts, true), "B = 0");
    }

    let dir = tempfile::tempdir().unwrap();
    match sam.save(dir.path().join("model.safetensors")) {
        Err(SamError::Save { path, reason }) => {
            assert!(path.ends_with("model.safetensors"), "{path:?}");
            assert!(reason.contains("save_official_safetensors"), "{reason}");
        }
        other => panic!("expected a Save error, got {other:?}"),
    }
    assert!(!dir.path().join("model.safetensors").exists());
    let saved = sam.save(dir.path().join("model")).unwrap();
    assert!(saved.ends_with("model.bpk"));
    Sam::load(&saved, sam.config(), &device).unwrap();
}

#[test]
fn a_failed_adapter_load_leaves_the_model_as_it_was() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wide.safetensors");
    // Adapters for a wider decoder than sam_tiny's.
    let mut wide = SamConfig {
        prompt_embed_dim: 64,
        ..config("sam_tiny")
    }
    .init(&device)
    .unwrap();
    wide.add_lora(&LoraConfig::default()).unwrap();
    wide.save_lora(&file).unwrap();

    let mut sam = config("sam_tiny").init(&device).unwrap();
    let before = float_dtypes(&sam).len();
    let err = sam.load_lora(&file).unwrap_err();
    assert!(err.to_string().contains("wide.safetensors"), "{err}");
    assert!(sam.lora_config().is_none());
    assert_eq!(
        float_dtypes(&sam).len(),
        before,
        "no adapters were left behind"
    );
}
