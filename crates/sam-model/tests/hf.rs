//! Hugging Face `SamModel` folders: parity with `transformers` on the tiny models (folders and
//! outputs written by `tools/reference/make_hf_fixtures.py`), the same weights in both layouts,
//! sharded folders, saving back to the official names, and the errors of broken folders.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use common::*;
use sam_model::{Sam, SamError, hf_config};

const EMB_TOL: f32 = 1e-4;
const LOGIT_TOL: f32 = 1e-3;
const IOU_TOL: f32 = 1e-4;

fn folder(name: &str) -> PathBuf {
    fixtures().join(format!("hf_{name}"))
}

/// Image embedding and every case's low-res masks and IoU scores of `sam`.
fn run_all(name: &str, sam: &Sam, device: &Device) -> Vec<Tensor<4>> {
    let out = Outputs::load(name);
    let emb = sam
        .image_embeddings(out.float("image/preprocessed", device))
        .unwrap();
    let mut all = vec![emb.clone()];
    for case in &cases(name).cases {
        let pred = sam
            .predict(
                emb.clone(),
                case_prompts(&out, case, device),
                case.multimask,
            )
            .unwrap();
        all.push(pred.low_res_masks);
    }
    all
}

#[test]
fn hf_folders_match_transformers() {
    for (tag, device) in devices() {
        for name in MODELS {
            let sam = Sam::load_hf(folder(name), &device).expect("load HF folder");
            assert_eq!(
                sam.config(),
                &config(name),
                "{name}: config.json maps to the config"
            );
            let out = Outputs::load(name);
            let hf = Outputs::load(&format!("hf_{name}"));
            let what = format!("hf_{name}/{tag}");
            let emb = sam
                .image_embeddings(out.float("image/preprocessed", &device))
                .unwrap();
            let err = assert_close(&what, emb.clone(), &hf, "image_embeddings", EMB_TOL);
            eprintln!("{what}: image embeddings {err:e}");
            for case in &cases(name).cases {
                let key = format!("case/{}", case.name);
                let pred = sam
                    .predict(
                        emb.clone(),
                        case_prompts(&out, case, &device),
                        case.multimask,
                    )
                    .unwrap();
                // transformers returns [image, prompt, mask, h, w]; the fixture dropped the image axis.
                let err = assert_close(
                    &format!("{what}/{}", case.name),
                    pred.low_res_masks,
                    &hf,
                    &format!("{key}/low_res_masks"),
                    LOGIT_TOL,
                );
                let iou = max_abs_diff(
                    pred.iou_predictions,
                    &hf.values(&format!("{key}/iou_predictions")),
                );
                assert!(
                    iou <= IOU_TOL,
                    "{what}/{}: IoU differs by {iou:e}",
                    case.name
                );
                eprintln!("{what}/{}: low-res {err:e}, IoU {iou:e}", case.name);
            }
        }
    }
}

#[test]
fn both_layouts_give_identical_outputs() {
    let device = Device::flex();
    for name in MODELS {
        let official = Sam::load(
            fixtures().join(format!("{name}.pth")),
            &config(name),
            &device,
        )
        .unwrap();
        let hf = Sam::load_hf(folder(name), &device).unwrap();
        for (a, b) in run_all(name, &official, &device)
            .into_iter()
            .zip(run_all(name, &hf, &device))
        {
            let diff = max_abs_diff(a, &b.into_data().try_to_vec::<f32>().unwrap());
            assert_eq!(
                diff, 0.0,
                "{name}: official and HF layouts differ by {diff:e}"
            );
        }
    }
}

/// Splits `hf_sam_tiny/model.safetensors` into `n` shards with an index, as `save_pretrained`
/// with a small `max_shard_size` does; `drop` leaves one tensor out of every shard.
fn write_sharded(dir: &Path, n: usize, drop: Option<&str>) {
    let src = folder("sam_tiny");
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut weight_map = BTreeMap::new();
    for (i, chunk) in names.chunks(names.len().div_ceil(n)).enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, n);
        let tensors: Vec<(String, safetensors::tensor::TensorView)> = chunk
            .iter()
            .filter(|k| Some(k.as_str()) != drop)
            .map(|k| (k.clone(), st.tensor(k).unwrap()))
            .collect();
        for (k, _) in &tensors {
            weight_map.insert(k.clone(), file.clone());
        }
        safetensors::serialize_to_file(tensors, None, &dir.join(&file)).unwrap();
    }
    let index =
        serde_json::json!({"metadata": {"total_size": bytes.len()}, "weight_map": weight_map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&index).unwrap(),
    )
    .unwrap();
}

#[test]
fn sharded_folder_loads_the_same_weights() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    write_sharded(dir.path(), 3, None);
    let sharded = Sam::load_hf(dir.path(), &device).expect("sharded folder");
    let single = Sam::load_hf(folder("sam_tiny"), &device).unwrap();
    for (a, b) in run_all("sam_tiny", &sharded, &device)
        .into_iter()
        .zip(run_all("sam_tiny", &single, &device))
    {
        assert_eq!(
            max_abs_diff(a, &b.into_data().try_to_vec::<f32>().unwrap()),
            0.0
        );
    }
}

fn load_err(dir: &Path) -> String {
    match Sam::load_hf(dir, &Device::flex()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broken_folders_are_named_errors() {
    // A tensor absent from every shard.
    let dir = tempfile::tempdir().unwrap();
    write_sharded(dir.path(), 2, Some("mask_decoder.iou_token.weight"));
    let err = load_err(dir.path());
    assert!(
        err.contains("missing tensors") && err.contains("iou_token"),
        "{err}"
    );

    // A shard the index names is gone.
    let dir = tempfile::tempdir().unwrap();
    write_sharded(dir.path(), 2, None);
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");

    // No weights at all.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        folder("sam_tiny").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("no weights"), "{err}");

    // No config.
    let dir = tempfile::tempdir().unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("config.json"), "{err}");

    // A config the architecture cannot represent, and one that disagrees with the weights.
    let text = std::fs::read_to_string(folder("sam_tiny").join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["vision_config"]["use_rel_pos"] = false.into();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    let err = hf_config(dir.path()).unwrap_err().to_string();
    assert!(err.contains("use_rel_pos"), "{err}");

    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["mask_decoder_config"]["mlp_dim"] = 128.into();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    std::fs::copy(
        folder("sam_tiny").join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    match Sam::load_hf(dir.path(), &Device::flex()) {
        Err(SamError::VariantMismatch { reason, .. }) => {
            assert!(reason.contains("decoder_mlp_dim"), "{reason}")
        }
        other => panic!("expected a variant mismatch, got {other:?}"),
    }

    // Not JSON.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{ nope").unwrap();
    let err = hf_config(dir.path()).unwrap_err().to_string();
    assert!(err.contains("bad JSON"), "{err}");
    // A wrongly typed value is named by its field.
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "sam", "vision_config": {"hidden_size": "768"}}"#,
    )
    .unwrap();
    let err = hf_config(dir.path()).unwrap_err().to_string();
    assert!(err.contains("field `vision_config.hidden_size`"), "{err}");
}

#[test]
fn saves_back_to_the_official_names() {
    let device = Device::flex();
    let name = "sam_tiny";
    let sam = Sam::load_hf(folder(name), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("saved.safetensors");
    sam.save_official_safetensors(&path).unwrap();

    let saved = std::fs::read(&path).unwrap();
    let saved = safetensors::SafeTensors::deserialize(&saved).unwrap();
    let original = std::fs::read(fixtures().join(format!("{name}.safetensors"))).unwrap();
    let original = safetensors::SafeTensors::deserialize(&original).unwrap();
    let mut a: Vec<String> = saved.names().into_iter().map(String::from).collect();
    let mut b: Vec<String> = original.names().into_iter().map(String::from).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the official key set");
    for key in &b {
        let (x, y) = (saved.tensor(key).unwrap(), original.tensor(key).unwrap());
        assert_eq!(x.shape(), y.shape(), "{key}");
        assert_eq!(x.data(), y.data(), "{key}: values");
    }
    // And it loads like any official safetensors file.
    Sam::load(&path, &config(name), &device).unwrap();
}
