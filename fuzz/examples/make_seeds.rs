//! Writes seed inputs into `fuzz/corpus/<target>/` (created if needed):
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! Deterministic: RLE strings of sam-data's pycocotools fixtures, COCO segmentations of the
//! COCO fixture, SA-1B JSON and JPEGs from the synthetic generator.

use std::path::{Path, PathBuf};

use sam_data::dataset::synthetic::{SyntheticConfig, generate_image};
use serde_json::Value;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixtures = fuzz.join("../crates/sam-data/tests/fixtures");
    let corpus = fuzz.join("corpus");

    // rle_string: [h, w] + the string, for each of the fixture's counts/union/intersection.
    let rle: Vec<Value> =
        serde_json::from_slice(&std::fs::read(fixtures.join("rle.json")).unwrap()).unwrap();
    let dir = corpus.join("rle_string");
    let mut n = 0;
    for case in &rle {
        let size = case["size"].as_array().unwrap();
        let (h, w) = (size[0].as_u64().unwrap(), size[1].as_u64().unwrap());
        if h > 64 || w > 64 {
            continue;
        }
        for key in ["counts", "union", "intersection"] {
            if let Some(s) = case[key].as_str() {
                let mut bytes = vec![h as u8, w as u8];
                bytes.extend_from_slice(s.as_bytes());
                write(&dir, &format!("seed_{n:03}"), &bytes);
                n += 1;
            }
        }
    }
    println!("rle_string: {n} seeds");

    // polygon, binary mode (first byte even): h, w, then [flags, a, b] groups; flag 0x40 puts
    // the coordinate at a / 2 − 10 (a = 2·(v + 10)).
    let dir = corpus.join("polygon");
    let half = |v: f64| [0x40, (2.0 * (v + 10.0)) as u8, 0];
    let shapes: [&[f64]; 3] = [
        &[1.0, 1.0, 4.0, 1.0, 4.0, 4.0, 1.0, 4.0],
        &[5.5, 4.5, 30.0, 8.5, 12.5, 33.0],
        &[
            4.0, 4.0, 24.0, 4.0, 24.0, 10.0, 10.0, 10.0, 10.0, 30.0, 4.0, 30.0,
        ],
    ];
    for (i, shape) in shapes.iter().enumerate() {
        let mut bytes = vec![0u8, 40, 50];
        for &v in *shape {
            bytes.extend_from_slice(&half(v));
        }
        write(&dir, &format!("seed_poly_{i}"), &bytes);
    }
    // Two parts: the second starts with flag bit 7.
    let mut bytes = vec![0u8, 32, 32];
    for (k, &v) in shapes[0].iter().chain(shapes[1]).enumerate() {
        let mut g = half(v);
        if k == shapes[0].len() {
            g[0] |= 0x80;
        }
        bytes.extend_from_slice(&g);
    }
    write(&dir, "seed_poly_two_parts", &bytes);
    // JSON mode (first byte odd): the COCO fixture's segmentations, and the three shapes.
    let coco: Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("coco/instances.json")).unwrap())
            .unwrap();
    let mut n = 0;
    for a in coco["annotations"].as_array().unwrap() {
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(&serde_json::to_vec(&a["segmentation"]).unwrap());
        write(&dir, &format!("seed_json_{n:03}"), &bytes);
        n += 1;
    }
    for text in [
        r#"[[1, 2, 3, 4, 5, 6.5]]"#,
        r#"{"size": [2, 3], "counts": [1, 5]}"#,
        r#"{"size": [2, 3], "counts": "15"}"#,
    ] {
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(text.as_bytes());
        write(&dir, &format!("seed_json_{n:03}"), &bytes);
        n += 1;
    }
    println!("polygon: {} seeds", 4 + n);

    // sa1b_json and jpeg: small synthetic images.
    let config = SyntheticConfig {
        num_images: 4,
        min_side: 16,
        max_side: 48,
        min_objects: 1,
        max_objects: 4,
        min_object_area: 4,
        jpeg_quality: 90,
        seed: 7,
        first_id: 1,
    };
    for id in 1..=4u64 {
        let (image, file) = generate_image(&config, id).unwrap();
        write(
            &corpus.join("sa1b_json"),
            &format!("seed_{id}.json"),
            &serde_json::to_vec(&file).unwrap(),
        );
        let gray = image::DynamicImage::ImageRgb8(image.clone()).to_luma8();
        for (kind, quality, bytes) in [
            (
                "rgb",
                90u8,
                encode(image::DynamicImage::ImageRgb8(image.clone()), 90),
            ),
            ("rgb", 30, encode(image::DynamicImage::ImageRgb8(image), 30)),
            (
                "gray",
                75,
                encode(image::DynamicImage::ImageLuma8(gray), 75),
            ),
        ] {
            // The target prefixes FF D8 itself.
            assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
            write(
                &corpus.join("jpeg"),
                &format!("seed_{id}_{kind}_q{quality}"),
                &bytes[2..],
            );
        }
    }
    println!("sa1b_json: 4 seeds, jpeg: 12 seeds");
}

fn encode(image: image::DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&image)
        .unwrap();
    out
}
