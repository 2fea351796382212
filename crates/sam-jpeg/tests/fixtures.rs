//! Every fixture from `tools/reference/make_jpeg_fixtures.py` decodes to exactly Pillow's
//! (= OpenCV's, checked by the script) pixels, and every corrupt one is an error.

use std::path::PathBuf;

use sam_jpeg::{JpegError, decode};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest JSON")
}

#[test]
fn every_fixture_is_bit_identical_to_libjpeg_turbo() {
    let m = manifest();
    let cases = m["decode"].as_array().expect("decode cases");
    assert!(cases.len() >= 70, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let bytes = std::fs::read(dir().join(file)).unwrap();
        let expected = std::fs::read(dir().join(case["expected"].as_str().unwrap())).unwrap();
        let img = match decode(&bytes) {
            Ok(img) => img,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        let (w, h, c) = (
            case["width"].as_u64().unwrap() as u32,
            case["height"].as_u64().unwrap() as u32,
            case["channels"].as_u64().unwrap() as u8,
        );
        if (img.width, img.height, img.components) != (w, h, c) {
            failures.push(format!(
                "{file}: {}×{}×{} instead of {w}×{h}×{c}",
                img.width, img.height, img.components
            ));
            continue;
        }
        let exif = case["exif_orientation"].as_u64().map(|v| v as u16);
        if img.exif_orientation != exif {
            failures.push(format!(
                "{file}: EXIF orientation {:?} instead of {exif:?}",
                img.exif_orientation
            ));
        }
        let diffs: Vec<u8> = img
            .pixels
            .iter()
            .zip(&expected)
            .map(|(&a, &b)| a.abs_diff(b))
            .filter(|&d| d > 0)
            .collect();
        if !diffs.is_empty() || img.pixels.len() != expected.len() {
            let first = img.pixels.iter().zip(&expected).position(|(a, b)| a != b);
            failures.push(format!(
                "{file}: {} of {} samples differ, max diff {}, first at sample {first:?}",
                diffs.len(),
                expected.len(),
                diffs.iter().max().copied().unwrap_or(0)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// CMYK (Adobe-inverted, and without an Adobe marker) and YCCK files, every subsampling and
/// progressive: libjpeg's CMYK samples, and `cv2.imread`'s RGB from them.
#[test]
fn cmyk_and_ycck_files_match_libjpeg_and_opencv() {
    let m = manifest();
    let cases = m["cmyk"].as_array().expect("cmyk cases");
    assert!(cases.len() >= 19, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let read = |key: &str| std::fs::read(dir().join(case[key].as_str().unwrap())).unwrap();
        let img = match decode(&read("file")) {
            Ok(img) => img,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        let size = (
            case["width"].as_u64().unwrap() as u32,
            case["height"].as_u64().unwrap() as u32,
        );
        if (img.width, img.height, img.components) != (size.0, size.1, 4) {
            failures.push(format!(
                "{file}: {}×{}×{} instead of {}×{}×4",
                img.width, img.height, img.components, size.0, size.1
            ));
            continue;
        }
        if img.pixels != read("cmyk") {
            failures.push(format!("{file}: CMYK samples differ"));
        }
        if img.into_rgb() != read("rgb") {
            failures.push(format!("{file}: RGB differs from OpenCV's"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn corrupt_and_unsupported_files_are_errors() {
    let m = manifest();
    let cases = m["errors"].as_array().expect("error cases");
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let bytes = std::fs::read(dir().join(file)).unwrap();
        let result = decode(&bytes);
        let ok = matches!(
            (case["kind"].as_str().unwrap(), &result),
            ("any", _)
                | ("truncated", Err(JpegError::Truncated(_)))
                | ("corrupt", Err(JpegError::Corrupt(_)))
                | ("unsupported", Err(JpegError::Unsupported(_)))
                | ("size", Err(JpegError::Size(_)))
                | ("notjpeg", Err(JpegError::NotJpeg))
        );
        if !ok {
            failures.push(format!(
                "{file}: expected {}, got {:?}",
                case["kind"],
                result.map(|i| (i.width, i.height))
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every prefix of a few files is an error, never a panic and never an image.
#[test]
fn every_truncation_is_an_error() {
    for name in [
        "base_420_33x47_q95.jpg",
        "prog_420_33x47_q95.jpg",
        "rstblk_422_61x39.jpg",
        "cv_440_33x47_q75.jpg",
        "ycck_prog_420_41x29.jpg",
    ] {
        let full = std::fs::read(dir().join(name)).unwrap();
        assert!(decode(&full).is_ok(), "{name}");
        for cut in 0..full.len() - 1 {
            let e = decode(&full[..cut]).expect_err("an error").to_string();
            assert!(e.contains("JPEG"), "{e} / {name} cut at {cut}");
        }
    }
}

/// Single-byte corruptions anywhere must not panic (the result may be an image or an error).
#[test]
fn byte_flips_do_not_panic() {
    let full = std::fs::read(dir().join("prog_422_33x47_q95.jpg")).unwrap();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut b = full.clone();
        let at = (state as usize) % b.len();
        b[at] = (state >> 32) as u8;
        let _ = decode(&b);
    }
}

/// Inputs the fuzzer once crashed on (`fuzz/fuzz_targets/jpeg_decoder.rs`).
#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = decode(&bytes);
    }
}

/// Every JPEG in the folder is a listed case, so a fixture set regenerated without some of its
/// tools (the script needs `jpegtran` for a few) cannot pass for complete.
#[test]
fn the_manifest_lists_every_file() {
    let m = manifest();
    let mut listed: Vec<String> = ["decode", "errors", "cmyk"]
        .iter()
        .flat_map(|k| m[*k].as_array().unwrap().iter())
        .map(|c| c["file"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    files.sort();
    assert_eq!(listed, files);
    assert_eq!(m["decode"].as_array().unwrap().len(), 91);
    assert_eq!(m["errors"].as_array().unwrap().len(), 38);
    assert_eq!(m["cmyk"].as_array().unwrap().len(), 20);
}
