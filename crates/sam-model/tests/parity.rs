//! Parity with the official PyTorch implementation, stage by stage, on the committed tiny-model
//! fixtures written by `tools/reference/make_fixtures.py`.
//!
//! Tolerances (relative to each tensor's max magnitude): 1e-4 on embeddings, 1e-3 on logits;
//! IoU predictions within 1e-4 absolute; thresholded masks at least 99.9% identical.

mod common;

use burn::tensor::Device;
use common::*;
use sam_model::{PointPrompt, Prompts, Sam};

const EMB_TOL: f32 = 1e-4;
const LOGIT_TOL: f32 = 1e-3;
const IOU_TOL: f32 = 1e-4;

fn load(name: &str, device: &Device) -> Sam {
    Sam::load(
        fixtures().join(format!("{name}.pth")),
        &config(name),
        device,
    )
    .expect("load .pth")
}

fn check_encoder(name: &str, tag: &str, sam: &Sam, out: &Outputs, device: &Device) {
    let what = format!("{name}/{tag}");
    let x = sam.preprocess(out.float("image/input", device)).unwrap();
    assert_close(&what, x.clone(), out, "image/preprocessed", EMB_TOL);
    let enc = &sam.image_encoder;
    let mut t = enc.embed_patches(x);
    assert_close(&what, t.clone(), out, "encoder/patch_embed", EMB_TOL);
    for (i, block) in enc.blocks.iter().enumerate() {
        t = block.forward(t);
        assert_close(&what, t.clone(), out, &format!("encoder/block{i}"), EMB_TOL);
    }
    let emb = enc.neck.forward(t.permute([0, 3, 1, 2]));
    let err = assert_close(&what, emb, out, "encoder/embedding", EMB_TOL);
    eprintln!("{what}: image embedding max rel error {err:e}");
    let pe = sam.prompt_encoder.get_dense_pe();
    assert_close(&what, pe, out, "prompt/dense_pe", EMB_TOL);
}

fn check_cases(name: &str, tag: &str, sam: &Sam, out: &Outputs, device: &Device) {
    let meta = cases(name);
    // Decode from the reference's embedding so decoder errors are measured on their own.
    let emb = out.float::<4>("encoder/embedding", device);
    for case in &meta.cases {
        let key = format!("case/{}", case.name);
        let what = format!("{name}/{tag}/{}", case.name);
        let prompts = case_prompts(out, case, device);
        let embeddings = sam
            .prompt_encoder
            .forward(
                prompts.points.clone(),
                prompts.boxes.clone(),
                prompts.masks.clone(),
            )
            .unwrap();
        match (&embeddings.sparse, out.has(&format!("{key}/sparse"))) {
            (Some(s), true) => {
                assert_close(&what, s.clone(), out, &format!("{key}/sparse"), EMB_TOL);
            }
            (None, false) => {}
            (s, has) => panic!("{what}: sparse present {} but reference {has}", s.is_some()),
        }
        let expected_dense = out.values(&format!("{key}/dense"));
        let [b, c, h, w] = embeddings.dense.dims();
        let ref_b = expected_dense.len() / (c * h * w);
        let dense = embeddings.dense.clone().expand([ref_b.max(b), c, h, w]);
        assert_close(&what, dense, out, &format!("{key}/dense"), EMB_TOL);

        let pred = sam.predict(emb.clone(), prompts, case.multimask).unwrap();
        let err = assert_close(
            &what,
            pred.low_res_masks.clone(),
            out,
            &format!("{key}/low_res_masks"),
            LOGIT_TOL,
        );
        let iou_ref = out.values(&format!("{key}/iou_predictions"));
        let iou_err = max_abs_diff(pred.iou_predictions.clone(), &iou_ref);
        assert!(iou_err <= IOU_TOL, "{what}: IoU differs by {iou_err:e}");
        eprintln!("{what}: low-res logits {err:e}, IoU {iou_err:e}");

        if case.full {
            let [ih, iw] = meta.input_size;
            let [oh, ow] = meta.original_size;
            let masks = sam
                .postprocess_masks(pred.low_res_masks, (ih, iw), (oh, ow))
                .unwrap();
            let mkey = format!("{key}/masks");
            assert_close(&what, masks.clone(), out, &mkey, LOGIT_TOL);
            let agree = threshold_agreement(masks, &out.values(&mkey));
            assert!(agree >= 0.999, "{what}: only {agree} of mask pixels agree");
        }
    }
}

#[test]
fn image_encoder_matches_reference() {
    for (tag, device) in devices() {
        for name in MODELS {
            let sam = load(name, &device);
            check_encoder(name, tag, &sam, &Outputs::load(name), &device);
        }
    }
}

#[test]
fn prompt_encoder_and_mask_decoder_match_reference() {
    for (tag, device) in devices() {
        for name in MODELS {
            let sam = load(name, &device);
            check_cases(name, tag, &sam, &Outputs::load(name), &device);
        }
    }
}

#[test]
fn end_to_end_from_pixels_matches_reference() {
    for (tag, device) in devices() {
        for name in MODELS {
            let out = Outputs::load(name);
            let sam = load(name, &device);
            let x = sam.preprocess(out.float("image/input", &device)).unwrap();
            let emb = sam.image_embeddings(x).unwrap();
            let key = "case/points_pos_neg";
            let prompts = Prompts {
                points: Some(PointPrompt {
                    coords: out.float(&format!("{key}/point_coords"), &device),
                    labels: out.int(&format!("{key}/point_labels"), &device),
                }),
                ..Default::default()
            };
            let pred = sam.predict(emb, prompts, true).unwrap();
            let meta = cases(name);
            let masks = sam
                .postprocess_masks(
                    pred.low_res_masks.clone(),
                    (meta.input_size[0], meta.input_size[1]),
                    (meta.original_size[0], meta.original_size[1]),
                )
                .unwrap();
            let what = format!("{name}/{tag}/end-to-end");
            assert_close(
                &what,
                pred.low_res_masks,
                out_ref(&out),
                &format!("{key}/low_res_masks"),
                LOGIT_TOL,
            );
            let agree = threshold_agreement(masks, &out.values(&format!("{key}/masks")));
            assert!(agree >= 0.999, "{what}: mask agreement {agree}");
            let iou_err = max_abs_diff(
                pred.iou_predictions,
                &out.values(&format!("{key}/iou_predictions")),
            );
            assert!(iou_err <= IOU_TOL, "{what}: IoU differs by {iou_err:e}");
        }
    }
}

fn out_ref(out: &Outputs) -> &Outputs {
    out
}
