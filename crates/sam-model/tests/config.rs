//! `SamConfig`: presets, the flat JSON form, and validation errors.

use sam_model::{SamConfig, SamError};

#[test]
fn presets_match_the_reference_build_sam() {
    let b = SamConfig::vit_b();
    assert_eq!(
        (b.encoder_embed_dim, b.encoder_depth, b.encoder_num_heads),
        (768, 12, 12)
    );
    assert_eq!(b.encoder_global_attn_indexes, [2, 5, 8, 11]);
    let l = SamConfig::vit_l();
    assert_eq!(
        (l.encoder_embed_dim, l.encoder_depth, l.encoder_num_heads),
        (1024, 24, 16)
    );
    assert_eq!(l.encoder_global_attn_indexes, [5, 11, 17, 23]);
    let h = SamConfig::vit_h();
    assert_eq!(
        (h.encoder_embed_dim, h.encoder_depth, h.encoder_num_heads),
        (1280, 32, 16)
    );
    assert_eq!(h.encoder_global_attn_indexes, [7, 15, 23, 31]);
    for c in [&b, &l, &h] {
        assert_eq!(c.image_size, 1024);
        assert_eq!(c.embedding_size(), 64);
        assert_eq!(c.mask_input_size(), 256);
        assert_eq!(c.window_size, 14);
        assert_eq!((c.prompt_embed_dim, c.mask_in_chans), (256, 16));
        assert_eq!(
            (c.decoder_depth, c.decoder_mlp_dim, c.decoder_num_heads),
            (2, 2048, 8)
        );
        assert_eq!(
            (
                c.num_multimask_outputs,
                c.iou_head_depth,
                c.iou_head_hidden_dim
            ),
            (3, 3, 256)
        );
        c.validate().unwrap();
    }
    assert_eq!(SamConfig::from_model_type("vit_l").unwrap(), l);
    assert_eq!(SamConfig::from_model_type("default").unwrap(), h);
    assert_eq!(l.preset_name(), Some("vit_l"));
    assert!(matches!(
        SamConfig::from_model_type("vit_x"),
        Err(SamError::InvalidConfig(_))
    ));
}

#[test]
fn json_is_flat_with_reference_names_and_round_trips() {
    let l = SamConfig::vit_l();
    let json = l.to_json();
    for key in [
        "image_size",
        "patch_size",
        "encoder_embed_dim",
        "encoder_depth",
        "encoder_num_heads",
        "encoder_mlp_ratio",
        "window_size",
        "encoder_global_attn_indexes",
        "prompt_embed_dim",
        "mask_in_chans",
        "decoder_depth",
        "decoder_mlp_dim",
        "decoder_num_heads",
        "num_multimask_outputs",
        "iou_head_depth",
        "iou_head_hidden_dim",
    ] {
        assert!(
            json.contains(&format!("\"{key}\"")),
            "{key} missing from {json}"
        );
    }
    assert_eq!(SamConfig::from_json(&json).unwrap(), l);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    l.save(&path).unwrap();
    assert_eq!(SamConfig::load(&path).unwrap(), l);
}

fn invalid(mutate: impl FnOnce(&mut SamConfig), expect: &str) {
    let mut c = SamConfig::vit_b();
    mutate(&mut c);
    let e = c.validate().unwrap_err();
    assert!(matches!(e, SamError::InvalidConfig(_)), "{e}");
    assert!(
        e.to_string().contains(expect),
        "{e} should mention {expect}"
    );
    // The same config through JSON and through init fails the same way.
    let e = SamConfig::from_json(&c.to_json())
        .expect_err("an error")
        .to_string();
    assert!(e.contains(expect), "{e} should mention {expect}");
    let e = c
        .init(&burn::tensor::Device::flex())
        .expect_err("an error")
        .to_string();
    assert!(e.contains(expect), "{e} should mention {expect}");
}

#[test]
fn inconsistent_configs_are_typed_errors() {
    invalid(
        |c| c.encoder_num_heads = 7,
        "not divisible by encoder_num_heads 7",
    );
    invalid(|c| c.image_size = 1000, "not a multiple of patch_size 16");
    invalid(
        |c| c.encoder_global_attn_indexes = vec![2, 12],
        "contains 12, past encoder_depth 12",
    );
    invalid(|c| c.patch_size = 0, "patch_size must be positive");
    invalid(|c| c.decoder_num_heads = 3, "decoder_num_heads 3");
    invalid(|c| c.prompt_embed_dim = 260, "multiple of 8");
    invalid(|c| c.mask_in_chans = 6, "mask_in_chans 6");
    invalid(|c| c.encoder_mlp_ratio = f64::NAN, "encoder_mlp_ratio");
}

#[test]
fn bad_json_names_the_problem() {
    let e = SamConfig::from_json("{\"image_size\": 1024}").unwrap_err();
    assert!(e.to_string().contains("missing field"), "{e}");
    let mut v: serde_json::Value = serde_json::from_str(&SamConfig::vit_b().to_json()).unwrap();
    v["encoder_depthh"] = 3.into();
    let e = SamConfig::from_json(&v.to_string()).unwrap_err();
    assert!(e.to_string().contains("encoder_depthh"), "{e}");
    let e = SamConfig::load("/nonexistent/sam.json").unwrap_err();
    assert!(matches!(e, SamError::ConfigFile { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/sam.json"), "{e}");
}
