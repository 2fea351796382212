//! The `text_demo` command's arguments, and a bad CLIP folder given to `train --clip`.

use sam_burn::text_demo::{EmbedderKind, OracleEmbedder, SamStart, TextDemoArgs};
use sam_burn::train::TrainArgs;
use sam_burn::training::{ObjectCrop, ObjectEmbedder};

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
        (
            &["--sam-start", "warm"][..],
            "--sam-start must be scratch or demo",
        ),
        (&["--embedder", "bert"][..], "--embedder must be clip"),
    ] {
        let e = TextDemoArgs::parse(args(list)).unwrap_err().to_string();
        assert!(e.contains(expect), "{list:?}: {e}");
    }
    let a = TextDemoArgs::parse(args(&["--sam-steps", "7", "--min-area", "50"])).unwrap();
    assert_eq!((a.sam_steps, a.min_area), (7, 50));
    assert_eq!(
        (a.sam_start, a.embedder),
        (SamStart::Scratch, EmbedderKind::Clip)
    );
    let a = TextDemoArgs::parse(args(&[
        "--sam-start",
        "demo",
        "--embedder",
        "colour-oracle",
    ]))
    .unwrap();
    assert_eq!(
        (a.sam_start, a.embedder),
        (SamStart::Demo, EmbedderKind::ColourOracle)
    );
}

/// The diagnostic oracles: a one-hot of the object's palette colour, or of the 8×8 cell of its
/// centre.
#[test]
fn oracle_embedders_name_colour_and_cell() {
    // A 16×8 image: blue (palette 2, slightly off) on the left, red (palette 0) on the right.
    let (w, h) = (16, 8);
    let mut rgb = vec![0u8; w * h * 3];
    for i in 0..w * h {
        let c: [u8; 3] = if i % w < 8 {
            [50, 70, 200]
        } else {
            [215, 40, 40]
        };
        rgb[i * 3..i * 3 + 3].copy_from_slice(&c);
    }
    let left: Vec<bool> = (0..w * h).map(|i| i % w < 8).collect();
    let right: Vec<bool> = left.iter().map(|m| !m).collect();
    let crop = |mask| ObjectCrop {
        mask,
        expand: 1.0,
        zero_outside: false,
    };
    let hot = |v: &[f32]| {
        assert_eq!(v.iter().sum::<f32>(), 1.0);
        v.iter().position(|&x| x == 1.0).unwrap()
    };
    let colour = OracleEmbedder::new(EmbedderKind::ColourOracle, 64).unwrap();
    let e = colour
        .embed(&rgb, w, h, &[crop(&left), crop(&right)])
        .unwrap();
    assert_eq!((e[0].len(), hot(&e[0]), hot(&e[1])), (64, 2, 0));
    // Cells of the longest side's 8×8 grid: the left half's centre is at (4, 4) of 16 → cell
    // (row 2, column 2); the right half's at (12, 4) → (2, 6).
    let position = OracleEmbedder::new(EmbedderKind::PositionOracle, 64).unwrap();
    let e = position
        .embed(&rgb, w, h, &[crop(&left), crop(&right)])
        .unwrap();
    assert_eq!((hot(&e[0]), hot(&e[1])), (2 * 8 + 2, 2 * 8 + 6));
    let e = position
        .embed(&rgb, w, h - 1, &[crop(&left)])
        .expect_err("an error")
        .to_string();
    assert!(e.contains("do not fit 16×7"), "{e}");
    let e = OracleEmbedder::new(EmbedderKind::PositionOracle, 32)
        .err()
        .expect("an error")
        .to_string();
    assert!(e.contains("64-d"), "{e}");
    let e = OracleEmbedder::new(EmbedderKind::Clip, 64)
        .err()
        .expect("an error")
        .to_string();
    assert!(e.contains("not an oracle"), "{e}");
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
