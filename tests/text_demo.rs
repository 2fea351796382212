//! The `text_demo` command's arguments, and a bad CLIP folder given to `train --clip`.

use sam_burn::text_demo::TextDemoArgs;
use sam_burn::train::TrainArgs;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bad_text_demo_arguments_are_one_line_errors() {
    for (list, expect) in [
        (&["--frobnicate"][..], "unknown argument"),
        (&["--sam-steps"][..], "--sam-steps needs a value"),
        (&["--clip-steps", "many"][..], "not a valid number"),
        (&["--train-images", "0"][..], "--train-images must be ≥ 1"),
        (&["--val-images", "0"][..], "--val-images must be ≥ 1"),
    ] {
        let e = TextDemoArgs::parse(args(list)).unwrap_err().to_string();
        assert!(e.contains(expect), "{list:?}: {e}");
    }
    let a = TextDemoArgs::parse(args(&["--sam-steps", "7", "--min-area", "50"])).unwrap();
    assert_eq!((a.sam_steps, a.min_area), (7, 50));
}

#[test]
fn a_missing_clip_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train");
    let missing = dir.path().join("no_clip_here");
    let a = TrainArgs::parse(args(&[
        "--data",
        data.to_str().unwrap(),
        "--synthetic",
        "2",
        "--preset",
        "demo",
        "--clip",
        missing.to_str().unwrap(),
        "--out",
        dir.path().join("run").to_str().unwrap(),
        "--no-progress",
    ]))
    .unwrap();
    let e = sam_burn::train::run(a).unwrap_err().to_string();
    assert!(e.contains("no_clip_here"), "{e}");
}
