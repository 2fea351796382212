//! Reduced precision: a model cast to bf16 / f16 stays close to the f32 reference outputs,
//! answers in f32, and — on an autodiff device — passes gradients back to its f32 parameters.
//!
//! Tolerances are the 16-bit types' (8 and 11 significant bits), not parity's. For scale: the
//! official model on the same fixtures, cast with `.to(torch.bfloat16)`, is 1.3e-2 (`sam_tiny`)
//! and 2.2e-2 (`sam_tiny_b`) from its f32 embeddings (1.3e-2 / 1.7e-2 under CPU autocast);
//! sam-burn's bf16 measures 1.4e-2 and 2.2e-2.

mod common;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{DType, Device, FloatDType, Tensor};
use common::*;
use sam_model::{PointPrompt, Prompts, Sam};

fn load(name: &str, device: &Device) -> Sam {
    Sam::load(
        fixtures().join(format!("{name}.pth")),
        &config(name),
        device,
    )
    .expect("load .pth")
}

/// `(dtype, embedding tolerance, logit tolerance, IoU tolerance, mask agreement)`.
const PRECISIONS: &[(FloatDType, f32, f32, f32, f64)] = &[
    (FloatDType::BF16, 3e-2, 8e-2, 3e-2, 0.97),
    (FloatDType::F16, 1.5e-2, 3e-2, 1e-2, 0.98),
];

#[test]
fn half_precision_models_track_the_f32_reference() {
    for (tag, device) in devices() {
        for &(dtype, emb_tol, logit_tol, iou_tol, agree_min) in PRECISIONS {
            for name in MODELS {
                let sam = load(name, &device);
                if !device.supports_dtype(dtype) {
                    let err = sam.cast_float(dtype).expect_err("unsupported dtype");
                    assert!(format!("{err}").contains("cannot compute"), "{err}");
                    continue;
                }
                let half = sam.cast_float(dtype).expect("cast");
                assert_eq!(half.float_dtype(), dtype);
                let what = format!("{name}/{tag}/{dtype:?}");
                let out = Outputs::load(name);

                let x = half.preprocess(out.float("image/input", &device)).unwrap();
                let emb = half.image_embeddings(x).unwrap();
                assert_eq!(emb.dtype(), DType::from(dtype), "{what}: embedding dtype");
                let err = assert_close(&what, emb.clone(), &out, "encoder/embedding", emb_tol);
                eprintln!("{what}: embedding max rel error {err:e}");

                let meta = cases(name);
                for case in &meta.cases {
                    let key = format!("case/{}", case.name);
                    let prompts = case_prompts(&out, case, &device);
                    let pred = half.predict(emb.clone(), prompts, case.multimask).unwrap();
                    assert_eq!(
                        pred.low_res_masks.dtype(),
                        DType::F32,
                        "{what}: logits dtype"
                    );
                    assert_eq!(
                        pred.iou_predictions.dtype(),
                        DType::F32,
                        "{what}: IoU dtype"
                    );
                    let mkey = format!("{key}/low_res_masks");
                    let err =
                        assert_close(&what, pred.low_res_masks.clone(), &out, &mkey, logit_tol);
                    let agree = threshold_agreement(pred.low_res_masks, &out.values(&mkey));
                    let iou_err = max_abs_diff(
                        pred.iou_predictions,
                        &out.values(&format!("{key}/iou_predictions")),
                    );
                    eprintln!(
                        "{what}/{}: logits {err:e}, IoU {iou_err:e}, masks agree {agree}",
                        case.name
                    );
                    assert!(iou_err <= iou_tol, "{what}/{}: IoU {iou_err:e}", case.name);
                    assert!(
                        agree >= agree_min,
                        "{what}/{}: agreement {agree}",
                        case.name
                    );
                }
            }
        }
    }
}

/// Gradients of a scalar of the mask logits and IoU predictions, by parameter, as f32 values.
fn gradients(master: &Sam, compute: &Sam, device: &Device) -> Vec<Vec<f32>> {
    let out = Outputs::load("sam_tiny");
    let x = compute
        .preprocess(out.float("image/input", device))
        .unwrap();
    let emb = compute.image_embeddings(x).unwrap();
    let key = "case/points_pos_neg";
    let prompts = Prompts {
        points: Some(PointPrompt {
            coords: out.float(&format!("{key}/point_coords"), device),
            labels: out.int(&format!("{key}/point_labels"), device),
        }),
        ..Default::default()
    };
    let pred = compute.predict(emb, prompts, true).unwrap();
    let loss: Tensor<1> = pred.low_res_masks.tanh().mean() + pred.iou_predictions.mean();
    assert_eq!(loss.dtype(), DType::F32, "the loss stays f32");
    let grads = GradientsParams::from_grads(loss.backward(), master);
    let mut values = Vec::new();
    master.visit(&mut Collect {
        grads: &grads,
        out: &mut values,
    });
    values
}

struct Collect<'a> {
    grads: &'a GradientsParams,
    out: &'a mut Vec<Vec<f32>>,
}

impl burn::module::ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            assert_eq!(g.dtype(), DType::F32, "master gradients are f32");
            self.out.push(sam_model::f32_values(g));
        }
    }
}

#[test]
fn bf16_compute_trains_f32_master_weights() {
    for (tag, device) in devices() {
        if device.supports_dtype(FloatDType::BF16) {
            eprintln!("{tag}:");
            check_master_gradients(&device.autodiff());
        }
    }
}

fn check_master_gradients(device: &Device) {
    let device = device.clone();
    let master = load("sam_tiny", &device);
    assert_eq!(master.float_dtype(), FloatDType::F32);
    let exact = gradients(&master, &master, &device);
    let half = master.cast_float(FloatDType::BF16).expect("cast");
    let mixed = gradients(&master, &half, &device);
    assert_eq!(
        exact.len(),
        mixed.len(),
        "every trained parameter gets a gradient through the cast"
    );
    assert!(
        exact.len() > 50,
        "{} parameters with gradients",
        exact.len()
    );
    // Cosine similarity of the whole gradient vector, and relative error of its norm.
    let (mut dot, mut ee, mut mm) = (0f64, 0f64, 0f64);
    for (e, m) in exact.iter().zip(&mixed) {
        for (a, b) in e.iter().zip(m) {
            dot += (*a as f64) * (*b as f64);
            ee += (*a as f64).powi(2);
            mm += (*b as f64).powi(2);
        }
    }
    let cosine = dot / (ee.sqrt() * mm.sqrt());
    let norm_err = (mm.sqrt() - ee.sqrt()).abs() / ee.sqrt();
    eprintln!("bf16 vs f32 gradients: cosine {cosine}, norm rel error {norm_err:e}");
    assert!(cosine > 0.995, "gradient direction: cosine {cosine}");
    assert!(norm_err < 0.02, "gradient norm: {norm_err:e}");
    // The masters themselves were never touched by the cast.
    assert_eq!(master.valid().float_dtype(), FloatDType::F32);
}
