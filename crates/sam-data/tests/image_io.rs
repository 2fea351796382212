//! `load_rgb` against `cv2.imread(path)[..., ::-1]` (fixtures and expected pixels from
//! `tools/reference/make_jpeg_fixtures.py`): EXIF orientations, gray, alpha, 16-bit and
//! paletted images.

use std::path::PathBuf;

use sam_data::{DataError, load_rgb};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images")
}

#[test]
fn load_rgb_matches_opencv_imread() {
    let text = std::fs::read_to_string(dir().join("images.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = m["images"].as_array().unwrap();
    assert!(cases.len() >= 19);
    let mut failures = Vec::new();
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let expected = std::fs::read(dir().join(case["expected"].as_str().unwrap())).unwrap();
        let (w, h) = (
            case["width"].as_u64().unwrap() as u32,
            case["height"].as_u64().unwrap() as u32,
        );
        match load_rgb(dir().join(file)) {
            Err(e) => failures.push(format!("{file}: {e}")),
            Ok(img) if img.dimensions() != (w, h) => {
                failures.push(format!("{file}: {:?} instead of {w}×{h}", img.dimensions()))
            }
            Ok(img) => {
                let diff: Vec<u8> = img
                    .as_raw()
                    .iter()
                    .zip(&expected)
                    .map(|(a, b)| a.abs_diff(*b))
                    .collect();
                let n = diff.iter().filter(|&&d| d > 0).count();
                if n > 0 {
                    failures.push(format!(
                        "{file}: {n} samples differ, max {}",
                        diff.iter().max().unwrap()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unsupported_and_corrupt_jpegs_are_errors_naming_the_file() {
    let jpegs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sam-jpeg/tests/fixtures");
    for name in [
        "bad_arithmetic.jpg",
        "bad_trunc_prog_noeoi.jpg",
        "bad_dht_oversubscribed.jpg",
    ] {
        let e = load_rgb(jpegs.join(name)).unwrap_err();
        assert!(
            matches!(e, DataError::ImageRead { .. }) && e.to_string().contains(name),
            "{e}"
        );
    }
}
