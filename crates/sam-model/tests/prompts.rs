//! Malformed prompts and inputs give errors, not panics.

mod common;

use burn::tensor::{Device, Int, Tensor};
use common::*;
use sam_model::{PointPrompt, Prompts, Sam, SamError};

fn model() -> (Sam, Tensor<4>, Device) {
    let device = Device::flex();
    let sam = Sam::load(
        fixtures().join("sam_tiny.pth"),
        &config("sam_tiny"),
        &device,
    )
    .unwrap();
    let emb = Outputs::load("sam_tiny").float::<4>("encoder/embedding", &device);
    (sam, emb, device)
}

fn assert_invalid(result: sam_model::Result<impl std::fmt::Debug>, expect: &str) {
    match result {
        Err(SamError::InvalidInput(msg)) => assert!(msg.contains(expect), "{msg} / {expect}"),
        other => panic!("expected InvalidInput mentioning {expect}, got {other:?}"),
    }
}

#[test]
fn mismatched_prompt_shapes_are_errors() {
    let (sam, emb, device) = model();
    let points = |b: usize, n: usize, nl: usize| PointPrompt {
        coords: Tensor::zeros([b, n, 2], &device),
        labels: Tensor::<2, Int>::ones([b, nl], &device),
    };
    assert_invalid(
        sam.predict(
            emb.clone(),
            Prompts {
                points: Some(points(1, 2, 3)),
                ..Default::default()
            },
            true,
        ),
        "point labels [1, 3] do not match",
    );
    assert_invalid(
        sam.predict(
            emb.clone(),
            Prompts {
                points: Some(points(2, 1, 1)),
                boxes: Some(Tensor::zeros([3, 4], &device)),
                ..Default::default()
            },
            true,
        ),
        "3 boxes but 2 point sets",
    );
    assert_invalid(
        sam.predict(
            emb.clone(),
            Prompts {
                boxes: Some(Tensor::zeros([1, 3], &device)),
                ..Default::default()
            },
            true,
        ),
        "boxes must be [B, 4]",
    );
    assert_invalid(
        sam.predict(
            emb.clone(),
            Prompts {
                masks: Some(Tensor::zeros([1, 1, 20, 20], &device)),
                ..Default::default()
            },
            true,
        ),
        "mask prompt must be [B, 1, 36, 36]",
    );
    assert_invalid(
        sam.predict(
            emb.clone(),
            Prompts {
                points: Some(points(1, 0, 0)),
                ..Default::default()
            },
            true,
        ),
        "zero points",
    );
    // Two images' embeddings against three prompt sets.
    let two = Tensor::cat(vec![emb.clone(), emb], 0);
    assert_invalid(
        sam.predict(
            two,
            Prompts {
                boxes: Some(Tensor::zeros([3, 4], &device)),
                ..Default::default()
            },
            true,
        ),
        "image embeddings have batch 2",
    );
}

#[test]
fn bad_image_tensors_are_errors() {
    let (sam, _, device) = model();
    assert_invalid(
        sam.preprocess(Tensor::zeros([1, 3, 200, 10], &device)),
        "0 < h, w <= 144",
    );
    assert_invalid(
        sam.preprocess(Tensor::zeros([1, 4, 10, 10], &device)),
        "[1, 4, 10, 10]",
    );
    assert_invalid(
        sam.image_embeddings(Tensor::zeros([1, 3, 100, 144], &device)),
        "[B, 3, 144, 144]",
    );
    assert_invalid(
        sam.postprocess_masks(Tensor::zeros([1, 1, 36, 36], &device), (0, 10), (5, 5)),
        "postprocess sizes",
    );
}

#[test]
fn no_prompt_at_all_still_decodes_one_mask_set() {
    // The reference accepts no prompt (batch 1, no sparse tokens); so do we.
    let (sam, emb, _) = model();
    let pred = sam.predict(emb, Prompts::default(), true).unwrap();
    assert_eq!(pred.low_res_masks.dims(), [1, 3, 36, 36]);
}
