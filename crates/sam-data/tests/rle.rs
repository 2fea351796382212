//! COCO RLE against pycocotools (`tools/reference/make_rle_fixtures.py`), and corrupt input.

use std::path::PathBuf;

use sam_data::Rle;
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rle.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn size(c: &Value) -> [usize; 2] {
    [
        c["size"][0].as_u64().unwrap() as usize,
        c["size"][1].as_u64().unwrap() as usize,
    ]
}

fn mask(c: &Value) -> Vec<bool> {
    c["mask"]
        .as_str()
        .unwrap()
        .bytes()
        .map(|b| b == b'1')
        .collect()
}

#[test]
fn encode_decode_area_bbox_merge_iou_match_pycocotools() {
    let cases = cases();
    assert!(cases.len() >= 30);
    for (i, c) in cases.iter().enumerate() {
        let [h, w] = size(c);
        let rle = Rle::from_mask(&mask(c), h, w).unwrap();
        assert_eq!(
            rle.to_coco_string(),
            c["counts"].as_str().unwrap(),
            "case {i}: string"
        );
        let parsed = Rle::from_coco_string(c["counts"].as_str().unwrap(), [h, w]).unwrap();
        assert_eq!(parsed, rle, "case {i}: parse");
        assert_eq!(parsed.to_mask().unwrap(), mask(c), "case {i}: decode");
        assert_eq!(rle.area(), c["area"].as_u64().unwrap(), "case {i}: area");
        let bbox: Vec<f64> = serde_json::from_value(c["bbox"].clone()).unwrap();
        assert_eq!(rle.to_bbox().to_vec(), bbox, "case {i}: bbox");

        let other_case = &cases[c["other"].as_u64().unwrap() as usize];
        let other = Rle::from_mask(&mask(other_case), h, w).unwrap();
        let union = Rle::merge(&[rle.clone(), other.clone()], false).unwrap();
        assert_eq!(
            union.to_coco_string(),
            c["union"].as_str().unwrap(),
            "case {i}: union"
        );
        let inter = Rle::merge(&[rle.clone(), other.clone()], true).unwrap();
        assert_eq!(
            inter.to_coco_string(),
            c["intersection"].as_str().unwrap(),
            "case {i}: intersection"
        );
        let iou = rle.iou(&other, false).unwrap();
        assert!(
            (iou - c["iou"].as_f64().unwrap()).abs() < 1e-12,
            "case {i}: iou {iou}"
        );
        let crowd = rle.iou(&other, true).unwrap();
        assert!(
            (crowd - c["iou_crowd"].as_f64().unwrap()).abs() < 1e-12,
            "case {i}: crowd iou"
        );
    }
}

#[test]
fn corrupt_strings_wrong_sizes_and_overflows_are_errors() {
    for (counts, size) in [
        ("", [2, 2]),                // covers nothing
        ("4", [2, 3]),               // too few pixels
        ("05", [2, 2]),              // too many pixels
        ("\u{7f}", [1, 1]),          // character out of range
        ("o", [1, 1]),               // ends inside a count
        ("oooooooooooooo1", [1, 1]), // a count longer than 64 bits
        ("1OOOOO1", [4, 4]),         // negative run after the delta decoding
        ("ooooooo3", [1, 1]),        // a count past u32
    ] {
        assert!(
            Rle::from_coco_string(counts, size).is_err(),
            "{counts:?} {size:?} should fail"
        );
    }
    let bad = Rle {
        size: [3, 3],
        counts: vec![u32::MAX, u32::MAX, 5],
    };
    let e = bad.to_mask().expect_err("an error").to_string();
    assert!(e.contains("sum to 8589934595"), "{e}");
    let a = Rle::from_mask(&[true; 4], 2, 2).unwrap();
    let b = Rle::from_mask(&[true; 6], 2, 3).unwrap();
    let e = Rle::merge(&[a.clone(), b.clone()], false)
        .expect_err("an error")
        .to_string();
    assert!(e.contains("sizes differ"), "{e}");
    let e = a.iou(&b, false).expect_err("an error").to_string();
    assert!(e.contains("sizes differ"), "{e}");
    let e = Rle::from_mask(&[true; 5], 2, 2)
        .expect_err("an error")
        .to_string();
    assert!(e.contains("5 pixels"), "{e}");
}

/// A deterministic random-input sweep of the string decoder (no panics, and anything accepted
/// round-trips). cargo-fuzz needs a nightly toolchain, which this project's machines lack.
#[test]
fn random_strings_never_panic() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    for _ in 0..200_000 {
        let len = (next() % 12) as usize;
        let s: String = (0..len)
            .map(|_| (40 + (next() % 80) as u8) as char)
            .collect();
        let size = [(next() % 6) as usize, (next() % 6) as usize];
        if let Ok(rle) = Rle::from_coco_string(&s, size) {
            accepted += 1;
            let m = rle.to_mask().unwrap();
            assert_eq!(
                Rle::from_mask(&m, size[0], size[1]).unwrap().area(),
                rle.area()
            );
        }
    }
    assert!(accepted > 0);
}

/// pycocotools ≥ 2.0.3 skips zero-length foreground runs in `toBbox` (values from pycocotools
/// 2.0.11; the generated fixtures never contain such runs).
#[test]
fn bbox_skips_empty_foreground_runs() {
    for (counts, bbox) in [
        (vec![2, 0, 3, 2, 3], [1.0, 0.0, 1.0, 2.0]),
        (vec![3, 0, 2, 5], [1.0, 0.0, 1.0, 5.0]),
        (vec![10], [0.0; 4]),
    ] {
        let rle = sam_data::Rle {
            size: [5, 2],
            counts,
        };
        assert_eq!(rle.to_bbox(), bbox);
    }
}

/// Sizes past pycocotools' 32-bit pixel indices are errors, not overflows (found by reading the
/// code while fuzzing).
#[test]
fn huge_sizes_are_errors() {
    for size in [[1usize << 32, 1usize << 32], [1 << 32, 1], [70_000, 70_000]] {
        let e = sam_data::Rle::from_coco_string("", size).unwrap_err();
        assert!(e.to_string().contains("2^32"), "{e}");
    }
}
