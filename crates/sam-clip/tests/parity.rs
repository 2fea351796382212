//! Parity with `transformers` 5 on the tiny random folders of
//! `tools/reference/make_clip_fixtures.py`: token ids equal to `CLIPTokenizerFast`'s, pixel
//! values equal to the PIL image processor's, text and image features (and logits) within
//! 1e-4 of the tensor's largest magnitude.

mod common;

use common::*;
use sam_clip::{ClipFolder, ClipImageProcessor, ClipTokenizer, PixelValues};

/// fp32 parity bound, relative to the reference tensor's largest magnitude.
const TOL: f32 = 1e-4;

#[test]
fn token_ids_equal_clip_tokenizer_fast() {
    let cases = cases();
    for folder in FOLDERS {
        let tokenizer = ClipTokenizer::from_file(fixtures().join(folder), 77).unwrap();
        assert_eq!(tokenizer.token_to_id("<|startoftext|>"), Some(cases.sot));
        assert_eq!(tokenizer.token_to_id("<|endoftext|>"), Some(cases.eot));
        let ids = tokenizer.encode_batch(&cases.texts).unwrap();
        for ((text, ours), theirs) in cases.texts.iter().zip(&ids).zip(&cases.input_ids) {
            assert_eq!(ours, theirs, "{folder}: {text:?}");
        }
        // The long texts are cut to the context and still end with <|endoftext|>.
        let longest = ids.iter().map(Vec::len).max().unwrap();
        assert_eq!(longest, 77);
        assert!(
            ids.iter()
                .all(|i| i[0] == cases.sot && *i.last().unwrap() == cases.eot)
        );
        eprintln!("{folder}: {} texts, token ids equal", ids.len());
    }
}

#[test]
fn pixel_values_equal_the_pil_image_processor() {
    let cases = cases();
    let out = Outputs::load();
    for folder in FOLDERS {
        let processor = ClipImageProcessor::load(fixtures().join(folder)).unwrap();
        for name in &cases.images {
            let image = sam_clip::load_image(fixtures().join("images").join(name)).unwrap();
            let ours = processor.preprocess_image(&image).unwrap();
            let (shape, theirs) = out.float(&format!("{folder}/pixels/{name}"));
            assert_eq!(vec![3, ours.height, ours.width], *shape, "{folder}/{name}");
            let differing = ours
                .data
                .iter()
                .zip(theirs)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(differing, 0, "{folder}/{name}: values differ");
        }
        eprintln!(
            "{folder}: pixel values of {} images bit-identical",
            cases.images.len()
        );
    }
}

#[test]
fn features_and_logits_match_transformers() {
    let cases = cases();
    let out = Outputs::load();
    for (tag, device) in devices() {
        for folder in FOLDERS {
            let what = |k: &str| format!("{folder}/{k} ({tag})");
            let clip = ClipFolder::load(fixtures().join(folder), &device).unwrap();

            let (ids, text) = clip.embed_texts(&cases.texts).unwrap();
            assert_eq!(ids, cases.input_ids);
            let e_text = relative_error(
                &what("text"),
                text.clone(),
                out.float(&format!("{folder}/text_embeds")),
            );

            // Raw rows where ids larger than <|endoftext|> come first: the two pooling rules
            // pick different positions.
            let (shape, raw) = out.int("raw_ids");
            let rows: Vec<Vec<u32>> = raw
                .chunks(shape[1])
                .map(|r| r.iter().map(|&v| v as u32).collect())
                .collect();
            let raw_text = clip.model.get_text_features(&rows).unwrap();
            let e_raw = relative_error(
                &what("raw"),
                raw_text,
                out.float(&format!("{folder}/raw_text_embeds")),
            );

            let pixels: Vec<PixelValues> = cases
                .images
                .iter()
                .map(|name| {
                    let image = sam_clip::load_image(fixtures().join("images").join(name)).unwrap();
                    clip.processor.preprocess_image(&image).unwrap()
                })
                .collect();
            let batch = PixelValues::batch(&pixels, &device).unwrap();
            let image = clip.model.get_image_features(batch).unwrap();
            let e_image = relative_error(
                &what("image"),
                image.clone(),
                out.float(&format!("{folder}/image_embeds")),
            );
            let logits = clip.model.logits(image, text).logits_per_image;
            let e_logits = relative_error(
                &what("logits"),
                logits,
                out.float(&format!("{folder}/logits_per_image")),
            );
            eprintln!(
                "{folder} ({tag}): relative errors text {e_text:.1e}, raw-id text {e_raw:.1e}, \
                 image {e_image:.1e}, logits {e_logits:.1e}"
            );
            for (name, e) in [
                ("text", e_text),
                ("raw", e_raw),
                ("image", e_image),
                ("logits", e_logits),
            ] {
                assert!(e <= TOL, "{}: {e:e} > {TOL:e}", what(name));
            }
        }
    }
}

#[test]
fn the_pooling_rule_follows_eos_token_id() {
    let device = burn::tensor::Device::flex();
    let cases = cases();
    let out = Outputs::load();
    let (shape, raw) = out.int("raw_ids");
    let rows: Vec<Vec<u32>> = raw
        .chunks(shape[1])
        .map(|r| r.iter().map(|&v| v as u32).collect())
        .collect();
    let modern = ClipFolder::load(fixtures().join("clip_tiny"), &device).unwrap();
    let legacy = ClipFolder::load(fixtures().join("clip_tiny_legacy"), &device).unwrap();
    let first_eot: Vec<usize> = rows
        .iter()
        .map(|r| modern.model.text_model.pooled_index(r))
        .collect();
    let argmax: Vec<usize> = rows
        .iter()
        .map(|r| legacy.model.text_model.pooled_index(r))
        .collect();
    assert_eq!(first_eot, [5, 3, 11]);
    assert_eq!(argmax, [3, 5, 11]);
    // On tokenizer output (no id above <|endoftext|>) both rules pool at the first
    // <|endoftext|>: the end, or an <|endoftext|> written in the text itself.
    for (text, ids) in cases.texts.iter().zip(&cases.input_ids) {
        let first = ids.iter().position(|&t| t == cases.eot).unwrap();
        assert_eq!(modern.model.text_model.pooled_index(ids), first, "{text:?}");
        assert_eq!(legacy.model.text_model.pooled_index(ids), first, "{text:?}");
    }
}
