//! Checkpoint formats and strictness: the safetensors twin equals the `.pth`, burnpack
//! round-trips, and every bad file gives a typed error naming what is wrong.

mod common;

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{Device, Tensor};
use common::*;
use sam_model::{PointPrompt, Prompts, Sam, SamConfig, SamError};

fn tiny() -> SamConfig {
    config("sam_tiny")
}

fn pth() -> std::path::PathBuf {
    fixtures().join("sam_tiny.pth")
}

/// Low-res logits for the recorded two-point prompt, from pixels.
fn predict(sam: &Sam, device: &Device) -> Tensor<4> {
    let out = Outputs::load("sam_tiny");
    let x = sam.preprocess(out.float("image/input", device)).unwrap();
    let emb = sam.image_embeddings(x).unwrap();
    let key = "case/points_pos_neg";
    let prompts = Prompts {
        points: Some(PointPrompt {
            coords: out.float(&format!("{key}/point_coords"), device),
            labels: out.int(&format!("{key}/point_labels"), device),
        }),
        ..Default::default()
    };
    sam.predict(emb, prompts, true).unwrap().low_res_masks
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn safetensors_twin_and_burnpack_round_trip_give_identical_outputs() {
    let device = Device::flex();
    let from_pth = Sam::load(pth(), &tiny(), &device).unwrap();
    let reference = values(predict(&from_pth, &device));

    let from_st = Sam::load(fixtures().join("sam_tiny.safetensors"), &tiny(), &device).unwrap();
    assert_eq!(values(predict(&from_st, &device)), reference);

    let dir = tempfile::tempdir().unwrap();
    let saved = from_pth.save(dir.path().join("sam_tiny")).unwrap();
    assert_eq!(saved.extension().unwrap(), "bpk");
    let from_bpk = Sam::load(&saved, &tiny(), &device).unwrap();
    assert_eq!(values(predict(&from_bpk, &device)), reference);
}

fn expect_err(path: &Path, config: &SamConfig) -> SamError {
    match Sam::load(path, config, &Device::flex()) {
        Ok(_) => panic!("{} loaded but should not have", path.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_empty_truncated_and_garbage_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = expect_err(&dir.path().join("nope.pth"), &tiny());
    assert!(matches!(e, SamError::CheckpointRead { .. }), "{e}");
    assert!(e.to_string().contains("nope.pth"), "{e}");

    let empty = dir.path().join("empty.pth");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        expect_err(&empty, &tiny()),
        SamError::CheckpointRead { .. }
    ));

    let bytes = std::fs::read(pth()).unwrap();
    for cut in [100, bytes.len() / 2, bytes.len() - 10] {
        let truncated = dir.path().join(format!("cut{cut}.pth"));
        std::fs::write(&truncated, &bytes[..cut]).unwrap();
        let e = expect_err(&truncated, &tiny());
        assert!(e.to_string().contains(&format!("cut{cut}.pth")), "{e}");
    }

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, [0xffu8; 64]).unwrap();
    assert!(matches!(
        expect_err(&garbage, &tiny()),
        SamError::CheckpointRead { .. }
    ));

    let st = std::fs::read(fixtures().join("sam_tiny.safetensors")).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &st[..st.len() / 3]).unwrap();
    expect_err(&cut, &tiny());

    let bpk = dir.path().join("garbage.bpk");
    std::fs::write(&bpk, [7u8; 100]).unwrap();
    expect_err(&bpk, &tiny());

    let unknown = dir.path().join("weights.onnx");
    std::fs::write(&unknown, [1u8; 10]).unwrap();
    let e = expect_err(&unknown, &tiny());
    assert!(matches!(e, SamError::UnknownFormat { .. }), "{e}");
}

#[test]
fn a_checkpoint_of_another_variant_says_so() {
    // The sam_tiny_b weights against the sam_tiny config.
    let e = expect_err(&fixtures().join("sam_tiny_b.pth"), &tiny());
    let msg = e.to_string();
    assert!(matches!(e, SamError::VariantMismatch { .. }), "{msg}");
    assert!(
        msg.contains("checkpoint has encoder_embed_dim 48 but the config has 32"),
        "{msg}"
    );
    assert!(msg.contains("encoder_depth 3"), "{msg}");

    // A width that is a preset's is named after it.
    let mut like_vit_l = tiny();
    like_vit_l.encoder_embed_dim = 1024;
    like_vit_l.encoder_num_heads = 16;
    let e = expect_err(&pth(), &like_vit_l);
    assert!(
        e.to_string()
            .contains("checkpoint has encoder_embed_dim 32 but the config has 1024 (vit_l)"),
        "{e}"
    );

    let mut other_globals = tiny();
    other_globals.encoder_global_attn_indexes = vec![0, 3];
    let e = expect_err(&pth(), &other_globals);
    assert!(
        e.to_string().contains("global attention in blocks [1, 3]"),
        "{e}"
    );
}

/// Writes `sam_tiny.safetensors` with one tensor dropped, one added and one reshaped.
fn doctored_safetensors(dir: &Path) -> std::path::PathBuf {
    let bytes = std::fs::read(fixtures().join("sam_tiny.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: HashMap<String, (Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.shape().to_vec(), v.data().to_vec())))
        .collect();
    owned.remove("mask_decoder.iou_token.weight");
    owned.insert(
        "mask_decoder.extra_head.weight".into(),
        (vec![2], vec![0u8; 8]),
    );
    let (shape, data) = owned
        .get_mut("image_encoder.blocks.2.mlp.lin2.bias")
        .unwrap();
    *shape = vec![16, 2];
    let _ = data;
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(k, (shape, data))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap(),
            )
        })
        .collect();
    let path = dir.join("doctored.safetensors");
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

#[test]
fn loading_is_strict_and_lists_the_offending_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = doctored_safetensors(dir.path());
    let e = expect_err(&path, &tiny());
    let msg = e.to_string();
    assert!(matches!(e, SamError::Mismatch { .. }), "{msg}");
    assert!(msg.contains("doctored.safetensors"), "{msg}");
    assert!(
        msg.contains("missing tensors: mask_decoder.iou_token.weight"),
        "{msg}"
    );
    assert!(
        msg.contains("unexpected tensors: mask_decoder.extra_head.weight"),
        "{msg}"
    );
    assert!(
        msg.contains("image_encoder.blocks.2.mlp.lin2.bias"),
        "{msg}"
    );
}

#[test]
fn loading_never_executes_code_from_the_file() {
    // A pickle whose root calls os.system: a real unpickler would create the marker file.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let payload = format!("cposix\nsystem\n(S'touch {}'\ntR.", marker.display());
    for name in ["evil.pth", "evil.pt"] {
        let path = dir.path().join(name);
        std::fs::write(&path, payload.as_bytes()).unwrap();
        let e = expect_err(&path, &tiny());
        assert!(e.to_string().contains(name), "{e}");
        assert!(!marker.exists(), "code in {name} was executed");
    }
}
