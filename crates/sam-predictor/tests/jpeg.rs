//! End to end on JPEG files: `sam_data::load_rgb` gives exactly the pixels `cv2.imread` gives
//! (EXIF rotation included), and the predictor on them matches the official predictor on
//! OpenCV's decode (`tools/reference/make_jpeg_predictor_fixtures.py`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::Device;
use common::{nan_max, rel_error, to_vec};
use sam_model::{Sam, SamConfig};
use sam_predictor::{MaskOutput, Point, PredictOptions, Prompt, SamPredictor};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load_outputs() -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(dir().join("jpeg_outputs.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let d = v.data();
            let values = match v.dtype() {
                safetensors::Dtype::F32 => d
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                safetensors::Dtype::U8 => d.iter().map(|&b| b as f32).collect(),
                other => panic!("{k}: {other:?}"),
            };
            (k, values)
        })
        .collect()
}

fn agreement(a: &[f32], e: &[f32]) -> f64 {
    let same = a
        .iter()
        .zip(e)
        .filter(|(x, y)| (**x > 0.5) == (**y > 0.5))
        .count();
    same as f64 / e.len() as f64
}

#[test]
fn predictor_on_jpeg_files_matches_the_official_one_on_opencv_pixels() {
    let out = load_outputs();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("jpeg_cases.json")).unwrap())
            .unwrap();
    let model_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sam-model/tests/fixtures");
    let config = SamConfig::load(model_dir.join("sam_tiny.json")).unwrap();
    let device = Device::flex();
    let mut predictor =
        SamPredictor::new(Sam::load(model_dir.join("sam_tiny.pth"), &config, &device).unwrap());
    for case in cases["cases"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let image = sam_data::load_rgb(dir().join(file)).unwrap();
        let (h, w) = (
            case["height"].as_u64().unwrap() as u32,
            case["width"].as_u64().unwrap() as u32,
        );
        assert_eq!((image.height(), image.width()), (h, w), "{file}: size");
        let expected = &out[&format!("{file}/image")];
        let pixels: Vec<f32> = image.as_raw().iter().map(|&b| b as f32).collect();
        assert!(pixels == *expected, "{file}: pixels differ from cv2.imread");
        // What a decoder other than libjpeg-turbo's gives on the same file.
        if let Ok(other) = image::open(dir().join(file)) {
            let other = other.to_rgb8();
            if other.dimensions() == image.dimensions() {
                let differing = other
                    .as_raw()
                    .iter()
                    .zip(image.as_raw())
                    .filter(|(a, b)| a != b)
                    .count();
                eprintln!(
                    "{file}: the image crate's decoder differs on {:.1}% of samples",
                    100.0 * differing as f64 / pixels.len() as f64
                );
            }
        }

        predictor.set_image(&image).unwrap();
        let pts: Vec<Point> = case["points"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["labels"].as_array().unwrap())
            .map(|(p, l)| {
                let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
                if l.as_i64() == Some(1) {
                    Point::foreground(x, y)
                } else {
                    Point::background(x, y)
                }
            })
            .collect();
        let pred = predictor
            .predict(
                &Prompt::default().with_points(pts),
                PredictOptions::default(),
            )
            .unwrap();
        let key = format!("{file}/points");
        let low = rel_error(
            &to_vec(pred.low_res_logits),
            &out[&format!("{key}/low_res_logits")],
        );
        let iou = to_vec(pred.iou_predictions)
            .iter()
            .zip(&out[&format!("{key}/iou_predictions")])
            .fold(0f32, |m, (a, e)| nan_max(m, (a - e).abs()));
        let MaskOutput::Binary(m) = pred.masks else {
            panic!("binary masks expected")
        };
        let m: Vec<f32> = sam_model::bool_values(m)
            .into_iter()
            .map(|b| b as u8 as f32)
            .collect();
        let agree = agreement(&m, &out[&format!("{key}/masks")]);
        eprintln!("{file}: points low-res {low:e}, IoU {iou:e}, masks agree {agree}");
        assert!(
            low <= 1e-3 && iou <= 1e-4 && agree >= 0.999,
            "{file} points"
        );

        let b = case["box"].as_array().unwrap();
        let bbox = [0, 1, 2, 3].map(|i| b[i].as_f64().unwrap());
        let pred = predictor
            .predict(
                &Prompt::default().with_box(bbox),
                PredictOptions {
                    multimask_output: false,
                    return_logits: true,
                },
            )
            .unwrap();
        let MaskOutput::Logits(l) = pred.masks else {
            panic!("logits expected")
        };
        let l = to_vec(l);
        let key = format!("{file}/box");
        let err = rel_error(&l, &out[&format!("{key}/masks")]);
        let agree = l
            .iter()
            .zip(&out[&format!("{key}/masks")])
            .filter(|(a, e)| (**a > 0.0) == (**e > 0.0))
            .count() as f64
            / l.len() as f64;
        eprintln!("{file}: box logits {err:e}, masks agree {agree}");
        assert!(err <= 1e-3 && agree >= 0.999, "{file} box");
    }
}
