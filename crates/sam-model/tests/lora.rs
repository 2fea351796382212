//! LoRA adapters: a fresh adapter changes nothing, trained adapters save and load on their own,
//! and merging them into the weights gives the same outputs as base + adapters.

mod common;

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor};
use common::*;
use sam_model::{LoraConfig, Sam};

fn outputs(sam: &Sam, device: &Device) -> Vec<f32> {
    let out = Outputs::load("sam_tiny");
    let emb = sam
        .image_embeddings(out.float("image/preprocessed", device))
        .unwrap();
    let case = cases("sam_tiny").cases[0].clone();
    let pred = sam
        .predict(
            emb.clone(),
            case_prompts(&out, &case, device),
            case.multimask,
        )
        .unwrap();
    let mut v: Vec<f32> = emb.into_data().try_to_vec().unwrap();
    v.extend(pred.low_res_masks.into_data().try_to_vec::<f32>().unwrap());
    v
}

fn base(device: &Device) -> Sam {
    Sam::load(fixtures().join("sam_tiny.pth"), &config("sam_tiny"), device).unwrap()
}

/// Stands in for training: every adapter's `B` made non-zero.
fn perturb(sam: &mut Sam, device: &Device) {
    let randomize = |slot: &mut Option<sam_model::LoraAdapter>| {
        if let Some(a) = slot {
            let dims = a.b.weight.val().dims();
            a.b.weight = Param::from_tensor(Tensor::random(
                dims,
                Distribution::Normal(0.0, 0.05),
                device,
            ));
        }
    };
    for block in sam.image_encoder.blocks.iter_mut() {
        randomize(&mut block.attn.lora_qkv);
        randomize(&mut block.attn.lora_proj);
    }
    let t = &mut sam.mask_decoder.transformer;
    for layer in t.layers.iter_mut() {
        for attn in [
            &mut layer.self_attn,
            &mut layer.cross_attn_token_to_image,
            &mut layer.cross_attn_image_to_token,
        ] {
            for slot in [
                &mut attn.lora_q,
                &mut attn.lora_k,
                &mut attn.lora_v,
                &mut attn.lora_out,
            ] {
                randomize(slot);
            }
        }
    }
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1e-12f32, |m, v| nan_max(m, v.abs()));
    a.iter()
        .zip(b)
        .fold(0f32, |m, (x, y)| nan_max(m, (x - y).abs()))
        / scale
}

#[test]
fn adapters_add_save_load_and_merge() {
    let device = Device::flex();
    let plain = outputs(&base(&device), &device);

    let mut sam = base(&device);
    let lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        ..LoraConfig::default()
    };
    sam.add_lora(&lora).unwrap();
    assert_eq!(
        outputs(&sam, &device),
        plain,
        "a fresh adapter changes nothing"
    );
    let (adapters, total) = sam.lora_parameter_counts();
    eprintln!("adapters: {adapters} of {total} parameters");
    assert!(adapters > 0 && adapters < total / 10);

    perturb(&mut sam, &device);
    let adapted = outputs(&sam, &device);
    assert!(max_rel(&adapted, &plain) > 1e-3, "the adapters act");

    // Saved alone, loaded onto a fresh base.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("adapters.safetensors");
    sam.save_lora(&file).unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    let pth = std::fs::metadata(fixtures().join("sam_tiny.pth"))
        .unwrap()
        .len();
    assert!(size < pth / 4, "adapter file {size} B vs model {pth} B");
    let mut again = base(&device);
    again.load_lora(&file).unwrap();
    assert_eq!(again.lora_config(), Some(&lora));
    assert_eq!(outputs(&again, &device), adapted);

    // Merged: a plain SAM with the same outputs, savable under the official names.
    sam.merge_lora();
    assert!(sam.lora_config().is_none());
    let merged = outputs(&sam, &device);
    let err = max_rel(&merged, &adapted);
    eprintln!("merged vs base + adapters: {err:e}");
    assert!(err <= 1e-5, "merged differs by {err:e}");
    let official = dir.path().join("merged.safetensors");
    sam.save_official_safetensors(&official).unwrap();
    let reloaded = Sam::load(&official, &config("sam_tiny"), &device).unwrap();
    assert_eq!(outputs(&reloaded, &device), merged);

    // Not an adapter file; a bad config.
    let e = base(&device)
        .load_lora(fixtures().join("sam_tiny.safetensors"))
        .unwrap_err();
    assert!(e.to_string().contains("not a LoRA adapter file"), "{e}");
    let bad = LoraConfig {
        rank: 0,
        ..LoraConfig::default()
    };
    let e = base(&device)
        .add_lora(&bad)
        .expect_err("an error")
        .to_string();
    assert!(e.contains("LoRA rank 0"), "{e}");
}
