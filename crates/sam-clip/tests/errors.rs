//! Broken folders give typed errors naming what is wrong: missing, unexpected and mis-shaped
//! tensors (key and both shapes), bad config fields, missing or corrupt files.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use common::fixtures;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sam_clip::{ClipError, ClipFolder, ClipTokenizer, TensorMismatch};

/// A copy of the `clip_tiny` fixture folder to break.
fn copy_folder() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clip");
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(fixtures().join("clip_tiny")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    (tmp, dir)
}

/// Rewrites `model.safetensors` through `edit` (tensor name → dtype, shape, bytes).
fn edit_weights(dir: &Path, edit: impl FnOnce(&mut HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(k, (d, s, b))| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn load(dir: &Path) -> Result<ClipFolder, ClipError> {
    ClipFolder::load(dir, &Device::flex())
}

fn mismatches(dir: &Path) -> Vec<TensorMismatch> {
    match load(dir) {
        Err(ClipError::Weights { path, mismatches }) => {
            assert!(path.ends_with("model.safetensors"), "{path:?}");
            mismatches
        }
        other => panic!("expected a weights mismatch, got {other:?}"),
    }
}

const FC1: &str = "text_model.encoder.layers.1.mlp.fc1.weight";

#[test]
fn a_missing_tensor_is_named_with_its_shape() {
    let (_tmp, dir) = copy_folder();
    edit_weights(&dir, |t| {
        t.remove(FC1);
    });
    let m = mismatches(&dir);
    assert_eq!(
        m,
        [TensorMismatch::Missing {
            key: FC1.into(),
            expected: vec![32, 16]
        }]
    );
    let e = load(&dir).unwrap_err().to_string();
    assert!(e.contains(FC1) && e.contains("[32, 16]"), "{e}");
}

#[test]
fn an_unexpected_tensor_is_named() {
    let (_tmp, dir) = copy_folder();
    edit_weights(&dir, |t| {
        t.insert(
            "text_model.extra.weight".into(),
            (Dtype::F32, vec![2, 3], vec![0; 24]),
        );
    });
    assert_eq!(
        mismatches(&dir),
        [TensorMismatch::Unexpected {
            key: "text_model.extra.weight".into(),
            shape: vec![2, 3]
        }]
    );
}

/// A tensor of a type burn-store cannot read at all (fp8 here) makes it refuse the whole file;
/// the error still names the tensor.
#[test]
fn an_unreadable_tensor_type_is_named() {
    let (_tmp, dir) = copy_folder();
    edit_weights(&dir, |t| {
        t.insert(
            "text_model.fp8.weight".into(),
            (Dtype::F8_E4M3, vec![2, 3], vec![0; 6]),
        );
    });
    assert_eq!(
        mismatches(&dir),
        [TensorMismatch::Dtype {
            key: "text_model.fp8.weight".into(),
            dtype: "F8_E4M3".into()
        }]
    );
}

#[test]
fn a_mis_shaped_tensor_names_both_shapes() {
    let (_tmp, dir) = copy_folder();
    edit_weights(&dir, |t| {
        let entry = t.get_mut(FC1).unwrap();
        entry.1 = vec![16, 32];
    });
    assert_eq!(
        mismatches(&dir),
        [TensorMismatch::Shape {
            key: FC1.into(),
            expected: vec![32, 16],
            found: vec![16, 32]
        }]
    );
    let e = load(&dir).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "{FC1} has shape [16, 32] but the config needs [32, 16]"
        )),
        "{e}"
    );
}

#[test]
fn a_config_of_another_size_lists_every_mismatch() {
    let (_tmp, dir) = copy_folder();
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["vision_config"]["num_hidden_layers"] = 1.into();
    cfg["projection_dim"] = 8.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    let m = mismatches(&dir);
    // The second vision layer is left over; both projections have another shape.
    assert!(m.contains(&TensorMismatch::Shape {
        key: "visual_projection.weight".into(),
        expected: vec![8, 24],
        found: vec![16, 24]
    }));
    assert!(
        m.iter()
            .any(|x| matches!(x, TensorMismatch::Unexpected { key, .. }
        if key == "vision_model.encoder.layers.1.mlp.fc2.bias"))
    );
    assert!(
        !m.iter()
            .any(|x| matches!(x, TensorMismatch::Missing { .. }))
    );
}

#[test]
fn bad_config_fields_are_named() {
    for (edit, field) in [
        (
            r#"{"text_config": {"hidden_act": "relu"}}"#,
            "text_config.hidden_act",
        ),
        (
            r#"{"vision_config": {"patch_size": "eight"}}"#,
            "vision_config.patch_size",
        ),
        (
            r#"{"text_config": {"num_attention_heads": 5}}"#,
            "text_config.num_attention_heads",
        ),
        (r#"{"model_type": "sam"}"#, "model_type"),
    ] {
        let (_tmp, dir) = copy_folder();
        let path = dir.join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let patch: serde_json::Value = serde_json::from_str(edit).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            match v {
                serde_json::Value::Object(inner) => {
                    for (ik, iv) in inner {
                        cfg[k][ik] = iv.clone();
                    }
                }
                other => cfg[k] = other.clone(),
            }
        }
        std::fs::write(&path, cfg.to_string()).unwrap();
        match load(&dir) {
            Err(ClipError::ConfigField { field: f, path, .. }) => {
                assert_eq!(f, field, "{edit}");
                assert!(path.ends_with("config.json"));
            }
            other => panic!("{edit}: expected a field error, got {other:?}"),
        }
    }
}

#[test]
fn missing_and_corrupt_files_are_named() {
    let (_tmp, dir) = copy_folder();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    assert!(
        matches!(load(&dir), Err(ClipError::Tokenizer { path, .. }) if path.ends_with("tokenizer.json"))
    );
    std::fs::write(dir.join("tokenizer.json"), "{\"not\": \"a tokenizer\"}").unwrap();
    assert!(matches!(
        ClipTokenizer::from_file(dir.join("tokenizer.json"), 77),
        Err(ClipError::Tokenizer { .. })
    ));

    let weights = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    assert!(
        matches!(load(&dir), Err(ClipError::WeightsRead { path, .. }) if path.ends_with("model.safetensors"))
    );
    std::fs::write(&weights, b"").unwrap();
    assert!(matches!(load(&dir), Err(ClipError::WeightsRead { .. })));
    std::fs::remove_file(&weights).unwrap();
    assert!(matches!(load(&dir), Err(ClipError::WeightsRead { .. })));

    std::fs::write(dir.join("config.json"), "{ oops").unwrap();
    assert!(
        matches!(load(&dir), Err(ClipError::ConfigFile { path, .. }) if path.ends_with("config.json"))
    );
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert!(matches!(load(&dir), Err(ClipError::ConfigFile { .. })));
    assert!(matches!(
        load(&dir.join("nowhere")),
        Err(ClipError::ConfigFile { .. })
    ));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let clip = load(&fixtures().join("clip_tiny")).unwrap();
    let vocab = clip.model.config().text_config.vocab_size as u32;
    for ids in [
        vec![],
        vec![vec![]],
        vec![vec![1, vocab]],
        vec![vec![1; 78]],
    ] {
        assert!(
            matches!(
                clip.model.get_text_features(&ids),
                Err(ClipError::InvalidInput(_))
            ),
            "{ids:?}"
        );
    }
    let device = Device::flex();
    let wrong = burn::tensor::Tensor::<4>::zeros([1, 3, 31, 32], &device);
    assert!(matches!(
        clip.model.get_image_features(wrong),
        Err(ClipError::InvalidInput(_))
    ));
    assert!(matches!(
        clip.processor.preprocess(&[0; 5], 2, 1),
        Err(ClipError::InvalidInput(_))
    ));
}
