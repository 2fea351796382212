//! Any input size: `sam_tiny` (trained at 144) loaded at 96 and 224 has the position tables that
//! timm / PyTorch resampling gives, and outputs equal to the official model built at that size
//! with those tables (`tools/reference/make_input_size_fixtures.py`).

mod common;

use burn::tensor::Device;
use common::*;
use sam_model::{PointPrompt, Prompts, Sam};

const TABLE_TOL: f32 = 1e-5;
const EMB_TOL: f32 = 1e-4;
const LOGIT_TOL: f32 = 1e-3;
const IOU_TOL: f32 = 1e-4;

fn at(size: usize, device: &Device) -> Sam {
    let mut config = config("sam_tiny");
    config.image_size = size;
    Sam::load(fixtures().join("sam_tiny.pth"), &config, device).expect("resampled load")
}

#[test]
fn resampled_models_match_the_official_model_at_that_size() {
    for (tag, device) in devices() {
        for size in [96usize, 224] {
            let name = format!("sam_tiny_at_{size}");
            let out = Outputs::load(&name);
            let what = format!("{name}/{tag}");
            let sam = at(size, &device);
            assert_eq!(sam.config().image_size, size);

            let enc = &sam.image_encoder;
            let err = assert_close(
                &what,
                enc.pos_embed.val(),
                &out,
                "resampled/image_encoder.pos_embed",
                TABLE_TOL,
            );
            eprintln!("{what}: pos_embed {err:e}");
            for &i in &sam.config().encoder_global_attn_indexes {
                let attn = &enc.blocks[i].attn;
                for (axis, table) in [("h", &attn.rel_pos_h), ("w", &attn.rel_pos_w)] {
                    let key = format!("resampled/image_encoder.blocks.{i}.attn.rel_pos_{axis}");
                    assert_close(&what, table.val(), &out, &key, TABLE_TOL);
                }
            }

            let x = sam.preprocess(out.float("image/input", &device)).unwrap();
            let emb = sam.image_embeddings(x).unwrap();
            let err = assert_close(&what, emb.clone(), &out, "encoder/embedding", EMB_TOL);
            eprintln!("{what}: embedding {err:e}");

            let input: Vec<i64> = out.data("image/input_size").try_to_vec().unwrap();
            let original: Vec<i64> = out.data("image/original_size").try_to_vec().unwrap();
            for case in ["points", "box"] {
                let key = format!("case/{case}");
                let prompts = Prompts {
                    points: out
                        .has(&format!("{key}/point_coords"))
                        .then(|| PointPrompt {
                            coords: out.float(&format!("{key}/point_coords"), &device),
                            labels: out.int(&format!("{key}/point_labels"), &device),
                        }),
                    boxes: out
                        .has(&format!("{key}/boxes"))
                        .then(|| out.float(&format!("{key}/boxes"), &device)),
                    masks: None,
                    embeddings: None,
                };
                let pred = sam.predict(emb.clone(), prompts, true).unwrap();
                let w = format!("{what}/{case}");
                let err = assert_close(
                    &w,
                    pred.low_res_masks.clone(),
                    &out,
                    &format!("{key}/low_res_masks"),
                    LOGIT_TOL,
                );
                let iou = max_abs_diff(
                    pred.iou_predictions,
                    &out.values(&format!("{key}/iou_predictions")),
                );
                assert!(iou <= IOU_TOL, "{w}: IoU differs by {iou:e}");
                let masks = sam
                    .postprocess_masks(
                        pred.low_res_masks,
                        (input[0] as usize, input[1] as usize),
                        (original[0] as usize, original[1] as usize),
                    )
                    .unwrap();
                let mkey = format!("{key}/masks");
                assert_close(&w, masks.clone(), &out, &mkey, LOGIT_TOL);
                let agree = threshold_agreement(masks, &out.values(&mkey));
                assert!(agree >= 0.999, "{w}: only {agree} of mask pixels agree");
                eprintln!("{w}: low-res {err:e}, IoU {iou:e}, masks agree {agree}");
            }
        }
    }
}

#[test]
fn at_the_trained_size_nothing_changes() {
    let device = Device::flex();
    let plain = Sam::load(
        fixtures().join("sam_tiny.pth"),
        &config("sam_tiny"),
        &device,
    )
    .unwrap();
    let pos = plain.image_encoder.pos_embed.val();
    let same = plain.resampled(144).unwrap();
    let diff = max_abs_diff(
        same.image_encoder.pos_embed.val(),
        &pos.into_data().try_to_vec::<f32>().unwrap(),
    );
    assert_eq!(diff, 0.0);
}

#[test]
fn hf_folders_load_at_another_size() {
    let device = Device::flex();
    let sam = Sam::load_sized(
        fixtures().join("hf_sam_tiny"),
        &config("sam_tiny"),
        Some(96),
        &device,
    )
    .unwrap();
    let official = at(96, &device);
    let diff = max_abs_diff(
        sam.image_encoder.pos_embed.val(),
        &official
            .image_encoder
            .pos_embed
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
    );
    assert_eq!(diff, 0.0);
    // A size that is not a multiple of the patch is refused with the config error.
    let Err(err) = Sam::load_sized(
        fixtures().join("sam_tiny.pth"),
        &config("sam_tiny"),
        Some(100),
        &device,
    ) else {
        panic!("100 is not a multiple of 16");
    };
    assert!(err.to_string().contains("100"), "{err}");
}
