//! The `clip` command end to end on the tiny CLIP fixture folder
//! (`crates/sam-clip/tests/fixtures`, from `tools/reference/make_clip_fixtures.py`): its token
//! ids and features against transformers', and its one-line errors.

use std::path::PathBuf;

use sam_burn::bench_check::nan_max;
use sam_burn::cli::CliError;
use sam_burn::clip::{ClipArgs, run};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/sam-clip/tests/fixtures")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[derive(serde::Deserialize)]
struct Cases {
    texts: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    images: Vec<String>,
}

/// `[shape, values]` of an f32 tensor of the reference outputs.
fn reference(key: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(fixtures().join("clip_outputs.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor(key).unwrap();
    let values = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (view.shape().to_vec(), values)
}

fn relative_error(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len());
    let scale = expected.iter().fold(0f32, |m, v| nan_max(m, v.abs()));
    let diff = actual
        .iter()
        .zip(expected)
        .fold(0f32, |m, (a, e)| nan_max(m, (a - e).abs()));
    diff / scale
}

#[test]
fn writes_ids_and_features_equal_to_transformers() {
    let cases: Cases =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("clip_cases.json")).unwrap())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let model = fixtures().join("clip_tiny");
    let mut list = vec![
        "--model".to_string(),
        model.to_string_lossy().into_owned(),
        "--out".into(),
        out.to_string_lossy().into_owned(),
    ];
    for t in &cases.texts {
        list.extend(["--text".to_string(), t.clone()]);
    }
    for i in &cases.images {
        list.extend([
            "--image".to_string(),
            fixtures()
                .join("images")
                .join(i)
                .to_string_lossy()
                .into_owned(),
        ]);
    }
    let summary = run(&ClipArgs::parse(list).unwrap()).unwrap();
    assert_eq!(summary.files.len(), 3);

    let ids: Vec<Vec<u32>> =
        serde_json::from_str(&std::fs::read_to_string(out.join("input_ids.json")).unwrap())
            .unwrap();
    assert_eq!(ids, cases.input_ids);

    for (file, key) in [
        ("text_embeds.npy", "clip_tiny/text_embeds"),
        ("image_embeds.npy", "clip_tiny/image_embeds"),
    ] {
        let (shape, values) = sam_burn::data::read_npy_f32(out.join(file)).unwrap();
        let (ref_shape, ref_values) = reference(key);
        assert_eq!(shape, ref_shape, "{file}");
        let e = relative_error(&values, &ref_values);
        eprintln!("{file}: {shape:?}, relative error {e:.1e}");
        assert!(e <= 1e-4, "{file}: {e:e}");
    }

    // Images only: no text outputs.
    let only = dir.path().join("only");
    let image = fixtures().join("images/noise.png");
    let a = ClipArgs::parse(args(&[
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--out",
        only.to_str().unwrap(),
    ]))
    .unwrap();
    run(&a).unwrap();
    assert!(only.join("image_embeds.npy").is_file());
    assert!(!only.join("input_ids.json").exists());
}

fn one_line_error(list: &[&str]) -> String {
    let e = ClipArgs::parse(args(list))
        .and_then(|a| run(&a))
        .expect_err("an error");
    let text = e.to_string();
    assert!(!text.contains('\n'), "not one line: {text}");
    assert_eq!(
        sam_burn::clip::main(args(list)),
        std::process::ExitCode::FAILURE
    );
    text
}

#[test]
fn bad_folders_configs_and_images_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let model = fixtures().join("clip_tiny");
    let model = model.to_str().unwrap();

    let e = one_line_error(&["--model", "/nonexistent/clip", "--text", "a", "--out", out]);
    assert!(e.contains("/nonexistent/clip"), "{e}");

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
    ] {
        std::fs::copy(fixtures().join("clip_tiny").join(f), bad.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(fixtures().join("clip_tiny/config.json")).unwrap();
    std::fs::write(
        bad.join("config.json"),
        config.replace("\"quick_gelu\"", "\"swish\""),
    )
    .unwrap();
    let e = one_line_error(&[
        "--model",
        bad.to_str().unwrap(),
        "--text",
        "a",
        "--out",
        out,
    ]);
    assert!(e.contains("text_config.hidden_act"), "{e}");

    let missing = dir.path().join("missing.png");
    let e = one_line_error(&[
        "--model",
        model,
        "--image",
        missing.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert!(e.contains("missing.png"), "{e}");
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot an image").unwrap();
    let e = one_line_error(&[
        "--model",
        model,
        "--image",
        corrupt.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert!(e.contains("corrupt.png"), "{e}");
    assert!(
        !std::path::Path::new(out).exists(),
        "nothing written on failure"
    );

    for (list, expect) in [
        (&["--text", "a"][..], "--model DIR is required"),
        (&["--model", model][..], "nothing to embed"),
        (&["--model", model, "--text"][..], "--text needs a value"),
        (&["--model", model, "--frobnicate"][..], "unknown argument"),
    ] {
        match ClipArgs::parse(args(list)) {
            Err(CliError::Usage(m)) => assert!(m.contains(expect), "{m}"),
            other => panic!("{list:?}: {other:?}"),
        }
    }
}
