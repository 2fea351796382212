//! The `train` and `evaluate` commands: argument errors, bad folders, and a short run end to end
//! on generated data.

use sam_burn::cli::CliError;
use sam_burn::evaluate::EvaluateArgs;
use sam_burn::train::TrainArgs;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn train_error(list: &[&str], expect: &str) {
    let e = TrainArgs::parse(args(list)).unwrap_err();
    assert!(e.to_string().contains(expect), "{list:?}: {e}");
}

fn eval_error(list: &[&str], expect: &str) {
    let e = EvaluateArgs::parse(args(list)).unwrap_err();
    assert!(e.to_string().contains(expect), "{list:?}: {e}");
}

#[test]
fn bad_arguments_are_one_line_errors() {
    train_error(&[], "--data is required");
    train_error(&["--data", "d", "--frobnicate"], "unknown argument");
    train_error(&["--data", "d", "--steps", "many"], "not a valid number");
    train_error(&["--data", "d", "--steps", "0"], "steps");
    train_error(&["--data", "d", "--lora", "x"], "--lora");
    train_error(&["--data", "d", "--lora", "0"], "lora");
    train_error(
        &["--data", "d", "--precision", "f8"],
        "--precision: unknown precision",
    );
    train_error(&["--data", "d", "--precision"], "--precision needs a value");
    let bf16 = TrainArgs::parse(args(&["--data", "d", "--precision", "BF16"])).unwrap();
    assert_eq!(bf16.config.precision, sam_burn::training::Precision::Bf16);
    train_error(
        &["--data", "d", "--preset", "huge"],
        "expected seed, paper or demo",
    );
    train_error(
        &["--data", "d", "--preset", "demo", "--config", "c.json"],
        "not both",
    );
    train_error(
        &["--data", "d", "--resume", "--checkpoint", "a.pth"],
        "--resume",
    );
    train_error(
        &["--data", "d", "--resume", "--lora", "4"],
        "--lora would change",
    );
    // --help is not an error: the usage goes to stdout with a success exit.
    match TrainArgs::parse(args(&["--help"])) {
        Err(CliError::Help(usage)) => assert!(usage.starts_with("usage: train"), "{usage}"),
        other => panic!("expected the usage, got {other:?}"),
    }
    train_error(
        &["--data", "d", "--resume", "--precision", "bf16"],
        "--precision would change",
    );
    train_error(
        &["--data", "d", "--dist-timeout", "1e20"],
        "--dist-timeout 100000000000000000000",
    );
    train_error(
        &["--data", "d", "--config", "/no/such/train.json"],
        "/no/such/train.json",
    );
    train_error(&["--data"], "--data needs a value");
    train_error(&["--data", "d", "--text-min-area", "100"], "needs --clip");
    let text = TrainArgs::parse(args(&[
        "--data",
        "d",
        "--clip",
        "c",
        "--text-min-area",
        "400",
    ]))
    .unwrap();
    assert_eq!(text.config.text.as_ref().unwrap().min_area, 400);
    train_error(&["--data", "d", "--dist", "gloo"], "--dist: ");
    train_error(&["--data", "d", "--dist-timeout", "0"], "--dist-timeout");
    train_error(&["--data", "d", "--dist-timeout", "-3"], "--dist-timeout");
    let mpi = TrainArgs::parse(args(&[
        "--data",
        "d",
        "--dist",
        "mpi",
        "--dist-timeout",
        "90",
    ]))
    .unwrap();
    assert_eq!(mpi.dist, sam_dist::Engine::Mpi);
    assert_eq!(mpi.dist_timeout, std::time::Duration::from_secs(90));
    // An engine that is not compiled in is named, with the feature that brings it.
    #[cfg(not(feature = "nccl"))]
    {
        let nccl = TrainArgs::parse(args(&["--data", "d", "--dist", "nccl"])).unwrap();
        let e = sam_burn::train::run(nccl).unwrap_err().to_string();
        assert!(e.contains("`nccl` feature"), "{e}");
    }

    eval_error(&[], "--data DIR or --coco");
    eval_error(
        &["--data", "d", "--coco", "c.json", "--images", "i"],
        "either",
    );
    eval_error(&["--coco", "c.json"], "go together");
    eval_error(&["--data", "d", "--clicks", "0"], "--clicks");
    eval_error(
        &["--data", "d", "--clicks", "18446744073709551615"],
        "must be 1 to 100",
    );
    eval_error(&["--data", "d", "--image", "x.png"], "unknown argument");
    eval_error(
        &["--data", "d", "--model-type", "vit_b"],
        "need a --checkpoint",
    );
}

#[test]
fn missing_folders_are_named() {
    let out = tempfile::tempdir().unwrap();
    let a = TrainArgs::parse(args(&[
        "--data",
        "/no/such/folder",
        "--preset",
        "demo",
        "--out",
        out.path().to_str().unwrap(),
        "--no-progress",
    ]))
    .unwrap();
    let e = sam_burn::train::run(a).unwrap_err();
    assert!(matches!(e, CliError::Data(_)), "{e}");
    assert!(e.to_string().contains("/no/such/folder"), "{e}");
    let a = EvaluateArgs::parse(args(&["--data", "/no/such/folder"])).unwrap();
    let e = sam_burn::evaluate::run(a).unwrap_err();
    assert!(e.to_string().contains("/no/such/folder"), "{e}");
    let a = TrainArgs::parse(args(&[
        "--data",
        "/no/such/folder",
        "--resume",
        "--out",
        out.path().to_str().unwrap(),
    ]))
    .unwrap();
    let e = sam_burn::train::run(a).expect_err("an error").to_string();
    assert!(e.contains("/no/such/folder"), "{e}");
}

#[test]
fn text_prompt_training_from_the_command_line() {
    // The demo model from its checkpoint, given a projection of the CLIP folder's size, and
    // trained two steps with CLIP image-embedding prompts.
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("train"), dir.path().join("run"));
    let clip = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/sam-clip/tests/fixtures/clip_tiny");
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo_model");
    let a = TrainArgs::parse(args(&[
        "--data",
        data.to_str().unwrap(),
        "--synthetic",
        "3",
        "--preset",
        "demo",
        "--steps",
        "2",
        "--checkpoint",
        demo.join("model.bpk").to_str().unwrap(),
        "--freeze-image-encoder",
        "--clip",
        clip.to_str().unwrap(),
        "--text-min-area",
        "64",
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]))
    .unwrap();
    let last = sam_burn::train::run(a).unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(last.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["config"]["model"]["prompt_embedding_dim"], 16);
    assert_eq!(state["config"]["text"]["min_area"], 64);
    let sam = sam_burn::Sam::load(
        last.join("model.bpk"),
        &serde_json::from_value(state["config"]["model"].clone()).unwrap(),
        &burn::tensor::Device::flex(),
    )
    .unwrap();
    assert!(sam.prompt_encoder.embedding_proj.is_some());
    // Resuming needs the CLIP folder again.
    let a = TrainArgs::parse(args(&[
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--resume",
        "--no-progress",
    ]))
    .unwrap();
    let e = sam_burn::train::run(a).unwrap_err().to_string();
    assert!(e.contains("--clip DIR"), "{e}");
}

#[test]
fn a_short_demo_run_then_evaluation_of_the_bundled_model() {
    let dir = tempfile::tempdir().unwrap();
    let (data, val, out) = (
        dir.path().join("train"),
        dir.path().join("val"),
        dir.path().join("run"),
    );
    let a = TrainArgs::parse(args(&[
        "--data",
        data.to_str().unwrap(),
        "--val",
        val.to_str().unwrap(),
        "--synthetic",
        "5",
        "--preset",
        "demo",
        "--steps",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]))
    .unwrap();
    let last = sam_burn::train::run(a).unwrap();
    assert!(last.join("model.bpk").is_file());
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    // The folder holds a run now: a fresh run there is refused, a resumed one may extend it.
    let run_args = |extra: &[&str]| {
        let mut v = vec![
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        v.extend_from_slice(extra);
        v.push("--no-progress");
        TrainArgs::parse(args(&v)).unwrap()
    };
    let e = sam_burn::train::run(run_args(&["--preset", "demo", "--steps", "2"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("already holds a run") && e.contains("--resume"),
        "{e}"
    );
    let last = sam_burn::train::run(run_args(&["--resume", "--steps", "3"])).unwrap();
    assert!(last.ends_with("step_00000003"), "{last:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        4
    );
    let report_path = dir.path().join("report.json");
    let a = EvaluateArgs::parse(args(&[
        "--data",
        val.to_str().unwrap(),
        "--clicks",
        "2",
        "--out",
        report_path.to_str().unwrap(),
    ]))
    .unwrap();
    let report = sam_burn::evaluate::run(a).unwrap().miou.unwrap();
    assert_eq!(report.images, 1);
    assert_eq!(report.miou_clicks.len(), 2);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_path).unwrap()).unwrap();
    assert_eq!(written["images"], 1);
}
