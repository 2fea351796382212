//! The bicubic resampler against Pillow's own `Image.resize(size, BICUBIC)`
//! (`tools/reference/make_bicubic_fixtures.py`): every byte must match.

use std::path::PathBuf;

use sam_data::resize_bicubic_rgb;

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
fn bicubic_resize_is_bit_identical_to_pillow() {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("pillow_bicubic.json")).unwrap(),
    )
    .unwrap();
    let bytes = std::fs::read(fixtures().join("pillow_bicubic.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (mut stored, mut hashed) = (0, 0);
    for case in meta["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let size = |k: &str| case[k].as_u64().unwrap() as usize;
        let (out_h, out_w) = (size("out_h"), size("out_w"));
        let (input, in_h, in_w) = if case["generated"].as_bool() == Some(true) {
            let (h, w) = (size("in_h"), size("in_w"));
            (generated(h, w), h, w)
        } else {
            let view = st.tensor(&format!("{name}/input")).unwrap();
            (view.data().to_vec(), view.shape()[0], view.shape()[1])
        };
        let actual = resize_bicubic_rgb(&input, in_w, in_h, out_w, out_h);
        assert_eq!(actual.len(), out_h * out_w * 3, "{name}: size");
        if case["stored"].as_bool() == Some(true) {
            let expected = st.tensor(&format!("{name}/output")).unwrap();
            let differing = actual
                .iter()
                .zip(expected.data())
                .filter(|(a, e)| a != e)
                .count();
            assert_eq!(differing, 0, "{name}: {differing} bytes differ from Pillow");
            stored += 1;
        } else {
            assert_eq!(
                fnv1a64(&actual),
                case["fnv1a64"].as_str().unwrap(),
                "{name}: {in_w}×{in_h} → {out_w}×{out_h} differs from Pillow"
            );
            hashed += 1;
        }
    }
    assert_eq!((stored, hashed), (36, 6));
}
