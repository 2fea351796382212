//! The resampler against Pillow's own output (`tools/reference/make_resize_fixtures.py`):
//! every byte must match.

use std::path::PathBuf;

use sam_data::{DataError, ResizeLongestSide, resize_bilinear_rgb};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fnv1a64(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn generated(h: usize, w: usize) -> Vec<u8> {
    (0..(h * w * 3) as u64)
        .map(|i| ((i.wrapping_mul(1103515245).wrapping_add(12345) >> 16) & 255) as u8)
        .collect()
}

#[test]
fn bilinear_resize_is_bit_identical_to_pillow() {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("pillow_resize.json")).unwrap(),
    )
    .unwrap();
    let bytes = std::fs::read(fixtures().join("pillow_resize.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut checked = 0;
    for case in meta["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (out_h, out_w) = (
            case["out_h"].as_u64().unwrap() as usize,
            case["out_w"].as_u64().unwrap() as usize,
        );
        let (input, in_h, in_w) = if case["generated"].as_bool() == Some(true) {
            let (h, w) = (
                case["in_h"].as_u64().unwrap() as usize,
                case["in_w"].as_u64().unwrap() as usize,
            );
            (generated(h, w), h, w)
        } else {
            let view = st.tensor(&format!("{name}/input")).unwrap();
            (view.data().to_vec(), view.shape()[0], view.shape()[1])
        };
        let actual = match case["target_length"].as_u64() {
            Some(target) => {
                let t = ResizeLongestSide::new(target as usize);
                let (out, (h, w)) = t.apply_image(&input, in_w, in_h).unwrap();
                assert_eq!((h, w), (out_h, out_w), "{name}: target size");
                out
            }
            None => resize_bilinear_rgb(&input, in_w, in_h, out_w, out_h),
        };
        if case["stored"].as_bool() == Some(true) {
            let expected = st.tensor(&format!("{name}/output")).unwrap();
            let expected = expected.data();
            assert_eq!(actual.len(), expected.len(), "{name}: output size");
            let differing = actual.iter().zip(expected).filter(|(a, e)| a != e).count();
            assert_eq!(differing, 0, "{name}: {differing} bytes differ from Pillow");
        } else {
            assert_eq!(
                fnv1a64(&actual),
                case["fnv1a64"].as_str().unwrap(),
                "{name}: hash"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 36);
}

#[test]
fn preprocess_shape_rounds_half_up_like_the_reference() {
    let t = ResizeLongestSide::new(1024);
    assert_eq!(t.get_preprocess_shape(480, 640), (768, 1024));
    assert_eq!(t.get_preprocess_shape(75, 107), (718, 1024));
    assert_eq!(t.get_preprocess_shape(1024, 1024), (1024, 1024));
    assert_eq!(
        ResizeLongestSide::new(144).get_preprocess_shape(75, 107),
        (101, 144)
    );
    let c = t.apply_coords(&[[107.0, 75.0]], (75, 107));
    assert_eq!(c[0], [107.0 * (1024.0 / 107.0), 75.0 * (718.0 / 75.0)]);
    let b = t.apply_boxes(&[[0.0, 0.0, 10.0, 20.0]], (480, 640));
    assert_eq!(b[0], [0.0, 0.0, 16.0, 32.0]);
}

#[test]
fn degenerate_images_are_errors() {
    let t = ResizeLongestSide::new(64);
    assert!(matches!(
        t.apply_image(&[], 0, 5),
        Err(DataError::InvalidImage(_))
    ));
    let e = t.apply_image(&[0; 10], 2, 2).unwrap_err();
    assert!(
        e.to_string().contains("10 bytes, expected 2×2×3 = 12"),
        "{e}"
    );
    // 600×1 shrinks to a zero-width image (the reference raises inside Pillow).
    let e = t.apply_image(&vec![0; 600 * 3], 1, 600).unwrap_err();
    assert!(e.to_string().contains("zero size"), "{e}");
}

#[test]
fn unreadable_image_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = sam_data::load_rgb(dir.path().join("missing.png")).unwrap_err();
    assert!(e.to_string().contains("missing.png"), "{e}");
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let e = sam_data::load_rgb(&bad).unwrap_err();
    assert!(matches!(e, DataError::ImageRead { .. }), "{e}");
}
