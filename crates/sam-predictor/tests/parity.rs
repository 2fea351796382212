//! `SamPredictor` against the official `SamPredictor` on the sam-model fixtures: one image that
//! is enlarged (75×107 → 101×144) and one that is shrunk (181×133 → 128×94).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::Device;
use common::{nan_max, rel_error, to_vec};
use sam_model::{Sam, SamConfig};
use sam_predictor::{MaskInput, MaskOutput, PredictOptions, Prediction, Prompt, SamPredictor};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sam-model/tests/fixtures")
}

enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    U8(Vec<u8>),
}

struct Fixture {
    tensors: HashMap<String, (Vec<usize>, Values)>,
    meta: serde_json::Value,
}

impl Fixture {
    fn load(name: &str) -> Self {
        let bytes = std::fs::read(fixtures().join(format!("{name}_outputs.safetensors"))).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        for (key, v) in st.tensors() {
            let d = v.data();
            let values = match v.dtype() {
                safetensors::Dtype::F32 => Values::F32(
                    d.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
                safetensors::Dtype::F64 => Values::F64(
                    d.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
                safetensors::Dtype::I64 => Values::I64(
                    d.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
                safetensors::Dtype::U8 => Values::U8(d.to_vec()),
                other => panic!("{key}: {other:?}"),
            };
            tensors.insert(key, (v.shape().to_vec(), values));
        }
        let meta = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("{name}_cases.json"))).unwrap(),
        )
        .unwrap();
        Self { tensors, meta }
    }
    fn has(&self, k: &str) -> bool {
        self.tensors.contains_key(k)
    }
    fn f32(&self, k: &str) -> Vec<f32> {
        match &self.tensors[k].1 {
            Values::F32(v) => v.clone(),
            Values::U8(v) => v.iter().map(|&b| b as f32).collect(),
            _ => panic!("{k} is not f32"),
        }
    }
    fn f64(&self, k: &str) -> Vec<f64> {
        match &self.tensors[k].1 {
            Values::F64(v) => v.clone(),
            _ => panic!("{k} is not f64"),
        }
    }
    fn i64(&self, k: &str) -> Vec<i64> {
        match &self.tensors[k].1 {
            Values::I64(v) => v.clone(),
            _ => panic!("{k} is not i64"),
        }
    }
    fn shape(&self, k: &str) -> Vec<usize> {
        self.tensors[k].0.clone()
    }
}

fn devices() -> Vec<Device> {
    #[allow(unused_mut)]
    let mut d = vec![Device::flex()];
    #[cfg(feature = "wgpu")]
    if std::env::var_os("SAM_SKIP_WGPU").is_none() {
        d.push(Device::wgpu(Default::default()));
    }
    d
}

/// The original image as an RGB buffer.
fn original_rgb(f: &Fixture) -> (Vec<u8>, usize, usize) {
    let shape = f.shape("image/original"); // [3, H, W]
    let (h, w) = (shape[1], shape[2]);
    let chw = f.f32("image/original");
    let mut rgb = vec![0u8; h * w * 3];
    for c in 0..3 {
        for i in 0..h * w {
            rgb[i * 3 + c] = chw[c * h * w + i] as u8;
        }
    }
    (rgb, w, h)
}

fn predictor(name: &str, device: &Device) -> SamPredictor {
    let config = SamConfig::load(fixtures().join(format!("{name}.json"))).unwrap();
    SamPredictor::new(Sam::load(fixtures().join(format!("{name}.pth")), &config, device).unwrap())
}

fn check_prediction(what: &str, f: &Fixture, key: &str, pred: Prediction, logits: bool) {
    let low = to_vec(pred.low_res_logits);
    let err = rel_error(&low, &f.f32(&format!("{key}/low_res_logits")));
    assert!(err <= 1e-3, "{what}: low-res logits error {err:e}");
    let iou = to_vec(pred.iou_predictions);
    let iou_ref = f.f32(&format!("{key}/iou_predictions"));
    let iou_err = iou
        .iter()
        .zip(&iou_ref)
        .fold(0f32, |m, (a, e)| nan_max(m, (a - e).abs()));
    assert!(iou_err <= 1e-4, "{what}: IoU differs by {iou_err:e}");
    let expected = f.f32(&format!("{key}/masks"));
    let (agree, n) = match pred.masks {
        MaskOutput::Logits(l) => {
            assert!(logits, "{what}: got logits");
            let l = to_vec(l);
            let err = rel_error(&l, &expected);
            assert!(err <= 1e-3, "{what}: mask logits error {err:e}");
            let same = l
                .iter()
                .zip(&expected)
                .filter(|(a, e)| (**a > 0.0) == (**e > 0.0))
                .count();
            (same, expected.len())
        }
        MaskOutput::Binary(m) => {
            assert!(!logits, "{what}: got binary masks");
            let m: Vec<bool> = sam_model::bool_values(m);
            let same = m
                .iter()
                .zip(&expected)
                .filter(|(a, e)| **a == (**e > 0.5))
                .count();
            (same, expected.len())
        }
    };
    let agreement = agree as f64 / n as f64;
    assert!(agreement >= 0.999, "{what}: masks agree on {agreement}");
    eprintln!("{what}: low-res {err:e}, IoU {iou_err:e}, mask agreement {agreement}");
}

#[test]
fn set_image_and_predict_match_the_official_predictor() {
    for device in devices() {
        for name in ["sam_tiny", "sam_tiny_b"] {
            let f = Fixture::load(name);
            let mut p = predictor(name, &device);
            let (rgb, w, h) = original_rgb(&f);

            // The resized uint8 image is identical, so is the model input.
            let (x, input_size) = p.prepare_image(&rgb, w, h).unwrap();
            let input = to_vec(x);
            assert_eq!(input, f.f32("image/input"), "{name}: resized image differs");
            let meta_input = &f.meta["input_size"];
            assert_eq!(
                [input_size.0, input_size.1],
                [
                    meta_input[0].as_u64().unwrap() as usize,
                    meta_input[1].as_u64().unwrap() as usize
                ]
            );

            p.set_image_rgb(&rgb, w, h).unwrap();
            let emb = p.embedding().unwrap();
            assert_eq!(emb.original_size, (h, w));
            let err = rel_error(&to_vec(emb.features.clone()), &f.f32("predictor/features"));
            assert!(err <= 1e-4, "{name}: features error {err:e}");

            for case in f.meta["predictor_cases"].as_array().unwrap() {
                let cname = case["name"].as_str().unwrap();
                let key = format!("predictor/{cname}");
                let mut prompt = Prompt::default();
                if case["points"].as_bool().unwrap() {
                    let c = f.f64(&format!("{key}/point_coords"));
                    let l = f.i64(&format!("{key}/point_labels"));
                    let coords: Vec<[f64; 2]> = c.chunks_exact(2).map(|v| [v[0], v[1]]).collect();
                    prompt = Prompt::from_arrays(&coords, &l).unwrap();
                }
                if case["box"].as_bool().unwrap() {
                    let b = f.f64(&format!("{key}/box"));
                    prompt = prompt.with_box([b[0], b[1], b[2], b[3]]);
                }
                if case["mask"].as_bool().unwrap() {
                    let k = format!("{key}/mask_input");
                    let s = f.shape(&k);
                    prompt = prompt.with_mask_input(MaskInput::new(f.f32(&k), s[1], s[2]).unwrap());
                }
                let logits = case["return_logits"].as_bool().unwrap();
                let options = PredictOptions {
                    multimask_output: case["multimask"].as_bool().unwrap(),
                    return_logits: logits,
                };
                let pred = p.predict(&prompt, options).unwrap();
                check_prediction(&format!("{name}/{cname}"), &f, &key, pred, logits);
            }

            // Three boxes in one decoder batch.
            let boxes = f.f64("predictor/batch_boxes/boxes");
            let prompts: Vec<Prompt> = boxes
                .chunks_exact(4)
                .map(|b| Prompt::default().with_box([b[0], b[1], b[2], b[3]]))
                .collect();
            let options = PredictOptions {
                multimask_output: false,
                return_logits: false,
            };
            let pred = p.predict_batch(&prompts, options).unwrap();
            check_prediction(
                &format!("{name}/batch_boxes"),
                &f,
                "predictor/batch_boxes",
                pred,
                false,
            );
            assert!(f.has("predictor/batch_boxes/masks"));
        }
    }
}

#[test]
fn batched_image_embedding_equals_one_by_one() {
    let device = Device::flex();
    let f = Fixture::load("sam_tiny");
    let p = predictor("sam_tiny", &device);
    let (rgb, w, h) = original_rgb(&f);
    let img = image::RgbImage::from_raw(w as u32, h as u32, rgb.clone()).unwrap();
    let flipped = image::imageops::flip_horizontal(&img);
    let batch = p.embed_images(&[&img, &flipped]).unwrap();
    let single = p.embed_rgb(&rgb, w, h).unwrap();
    let err = rel_error(&to_vec(batch[0].features.clone()), &to_vec(single.features));
    assert!(err <= 1e-5, "batched embedding differs by {err:e}");
    let flipped_single = p.embed_rgb(flipped.as_raw(), w, h).unwrap();
    let err = rel_error(
        &to_vec(batch[1].features.clone()),
        &to_vec(flipped_single.features),
    );
    assert!(err <= 1e-5, "batched embedding differs by {err:e}");
}
