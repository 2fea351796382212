//! The external embedding prompt (a CLIP embedding turned into one sparse token by a learned
//! projection, paper §7.5): alone or with points, boxes and masks; official checkpoints are
//! untouched by it; config and checkpoint must agree, else a typed error.

mod common;

use burn::tensor::{Device, Distribution, Int, Tensor};
use common::*;
use sam_model::{PointPrompt, Prompts, Sam, SamConfig, SamError, f32_values};

const D: usize = 12;

fn config_with_embedding() -> SamConfig {
    SamConfig {
        prompt_embedding_dim: Some(D),
        ..config("sam_tiny")
    }
}

fn embedding(b: usize, device: &Device) -> Tensor<2> {
    Tensor::random([b, D], Distribution::Normal(0.0, 1.0), device)
}

fn invalid(result: sam_model::Result<impl std::fmt::Debug>, expect: &str) {
    match result {
        Err(SamError::InvalidInput(msg)) => assert!(msg.contains(expect), "{msg} / {expect}"),
        other => panic!("expected InvalidInput mentioning {expect:?}, got {other:?}"),
    }
}

#[test]
fn the_embedding_is_one_more_sparse_token_alone_or_with_other_prompts() {
    let device = Device::flex();
    let sam = config_with_embedding().init(&device).unwrap();
    let emb = Outputs::load("sam_tiny").float::<4>("encoder/embedding", &device);
    let c = sam.config().prompt_embed_dim;
    let e = embedding(3, &device);
    let points = PointPrompt {
        coords: Tensor::random([3, 2, 2], Distribution::Uniform(0.0, 144.0), &device),
        labels: Tensor::<2, Int>::ones([3, 2], &device),
    };
    let boxes = Tensor::<2>::from_floats([[10.0, 12.0, 80.0, 90.0]; 3], &device);
    let pe = &sam.prompt_encoder;

    // Alone: exactly the projection of the embedding.
    let alone = pe
        .forward_with_embedding(None, None, None, Some(e.clone()))
        .unwrap();
    let sparse = alone.sparse.unwrap();
    assert_eq!(sparse.dims(), [3, 1, c]);
    let proj = pe.embedding_proj.as_ref().unwrap();
    let expected = f32_values(proj.forward(e.clone()));
    assert_eq!(f32_values(sparse), expected);

    // With points (padded, as without boxes in the reference) and with a box: appended last,
    // the other tokens unchanged.
    for (p, b, n_other) in [
        (Some(points.clone()), None, 3),
        (None, Some(boxes.clone()), 2),
        (Some(points.clone()), Some(boxes.clone()), 4),
    ] {
        let without = pe.forward(p.clone(), b.clone(), None).unwrap();
        let with = pe
            .forward_with_embedding(p, b, None, Some(e.clone()))
            .unwrap();
        let s = with.sparse.unwrap();
        assert_eq!(s.dims(), [3, n_other + 1, c]);
        assert_eq!(
            f32_values(s.clone().narrow(1, 0, n_other)),
            f32_values(without.sparse.unwrap())
        );
        assert_eq!(f32_values(s.narrow(1, n_other, 1)), expected);
    }

    // Through the decoder: with a mask prompt too, and alone.
    let masks = Tensor::<4>::zeros([3, 1, 36, 36], &device);
    for prompts in [
        Prompts {
            embeddings: Some(e.clone()),
            ..Default::default()
        },
        Prompts {
            points: Some(points.clone()),
            masks: Some(masks.clone()),
            embeddings: Some(e.clone()),
            ..Default::default()
        },
    ] {
        let pred = sam.predict(emb.clone(), prompts, true).unwrap();
        assert_eq!(pred.low_res_masks.dims(), [3, 3, 36, 36]);
        assert!(
            f32_values(pred.iou_predictions)
                .iter()
                .all(|v| v.is_finite())
        );
    }

    // The embedding changes the masks (it is not ignored).
    let only_points = sam
        .predict(
            emb.clone(),
            Prompts {
                points: Some(points.clone()),
                ..Default::default()
            },
            false,
        )
        .unwrap();
    let with_e = sam
        .predict(
            emb.clone(),
            Prompts {
                points: Some(points.clone()),
                embeddings: Some(e.clone()),
                ..Default::default()
            },
            false,
        )
        .unwrap();
    assert_ne!(
        f32_values(only_points.low_res_masks),
        f32_values(with_e.low_res_masks)
    );

    // Bad inputs.
    invalid(
        pe.forward_with_embedding(None, None, None, Some(Tensor::zeros([3, D + 1], &device))),
        "must be [B, 12]",
    );
    invalid(
        pe.forward_with_embedding(Some(points), None, None, Some(embedding(2, &device))),
        "2 embedding prompts but a batch of 3",
    );
}

#[test]
fn official_models_take_no_embedding_and_checkpoints_must_match_the_config() {
    let device = Device::flex();
    let official = Sam::load(
        fixtures().join("sam_tiny.pth"),
        &config("sam_tiny"),
        &device,
    )
    .unwrap();
    assert!(official.prompt_encoder.embedding_proj.is_none());
    let emb = Outputs::load("sam_tiny").float::<4>("encoder/embedding", &device);
    invalid(
        official.predict(
            emb,
            Prompts {
                embeddings: Some(embedding(1, &device)),
                ..Default::default()
            },
            true,
        ),
        "takes no embedding prompt",
    );

    // An official checkpoint given a config with the projection: named, not silently random.
    let err = Sam::load(
        fixtures().join("sam_tiny.pth"),
        &config_with_embedding(),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("prompt_embedding_dim"), "{err}");

    // A checkpoint with the projection loads with a matching config (same outputs), and is
    // refused by a config without it.
    let sam = config_with_embedding().init(&device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for file in ["text.bpk", "text.safetensors"] {
        let path = dir.path().join(file);
        if file.ends_with(".bpk") {
            sam.save(&path).unwrap();
        } else {
            sam.save_official_safetensors(&path).unwrap();
        }
        let loaded = Sam::load(&path, &config_with_embedding(), &device).unwrap();
        let e = embedding(2, &device);
        let a = sam
            .prompt_encoder
            .forward_with_embedding(None, None, None, Some(e.clone()));
        let b = loaded
            .prompt_encoder
            .forward_with_embedding(None, None, None, Some(e));
        assert_eq!(
            f32_values(a.unwrap().sparse.unwrap()),
            f32_values(b.unwrap().sparse.unwrap()),
            "{file}"
        );
        let err = Sam::load(&path, &config("sam_tiny"), &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("prompt_embedding_dim") || err.contains("embedding_proj"),
            "{file}: {err}"
        );
    }
    // The JSON form: absent for official configs, round-trips when given.
    assert!(
        !config("sam_tiny")
            .to_json()
            .contains("prompt_embedding_dim")
    );
    let c = config_with_embedding();
    assert_eq!(SamConfig::from_json(&c.to_json()).unwrap(), c);
    assert!(
        SamConfig::from_json(
            &SamConfig {
                prompt_embedding_dim: Some(0),
                ..c
            }
            .to_json()
        )
        .is_err()
    );
}
