//! SA-1B folders and the synthetic generator: the written data reads back exactly, and every
//! kind of bad data is a typed error naming the file.

use std::path::Path;

use sam_data::DataError;
use sam_data::dataset::synthetic::generate_image;
use sam_data::dataset::{Dataset, Sa1bDataset, SyntheticConfig, write_synthetic_dataset};

fn small_config(n: usize) -> SyntheticConfig {
    SyntheticConfig {
        num_images: n,
        min_side: 48,
        max_side: 96,
        max_objects: 5,
        min_object_area: 20,
        seed: 3,
        ..SyntheticConfig::default()
    }
}

#[test]
fn synthetic_dataset_reads_back_with_exact_masks() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_synthetic_dataset(dir.path(), &small_config(6)).unwrap();
    assert_eq!(paths.len(), 6);
    let ds = Sa1bDataset::open(dir.path()).unwrap();
    assert_eq!(ds.len(), 6);
    let mut objects = 0;
    for i in 0..ds.len() {
        let item = ds.get(i).unwrap();
        let json = ds.read_json(i).unwrap();
        assert_eq!(item.image_id, json.image.image_id);
        let (h, w) = item.size();
        assert_eq!((w, h), (json.image.width, json.image.height));
        assert!((48..=96).contains(&w) && (48..=96).contains(&h));
        let sample = item
            .to_sample(&(0..item.annotations.len()).collect::<Vec<_>>())
            .unwrap();
        // Visible parts of painted shapes never overlap.
        let mut covered = vec![false; w * h];
        for (a, mask) in item.annotations.iter().zip(&sample.masks) {
            assert_eq!(a.rle.area() as f64, a.area);
            assert!(a.area >= 20.0);
            assert_eq!(a.rle.to_bbox(), a.bbox);
            let caption = a.caption.as_deref().unwrap();
            assert!(caption.starts_with("a "), "{caption}");
            let [px, py] = a.point_coords[0];
            assert!(mask[py as usize * w + px as usize], "point inside its mask");
            for (c, &m) in covered.iter_mut().zip(mask) {
                assert!(!(*c && m), "masks overlap");
                *c |= m;
            }
            objects += 1;
        }
        // Boxes of the sample are the masks' exact extents (exclusive ends).
        for (a, b) in item.annotations.iter().zip(&sample.boxes) {
            assert_eq!(
                *b,
                [
                    a.bbox[0],
                    a.bbox[1],
                    a.bbox[0] + a.bbox[2],
                    a.bbox[1] + a.bbox[3]
                ]
            );
        }
    }
    assert!(objects >= 6, "{objects} objects in 6 images");
}

#[test]
fn synthetic_generation_is_reproducible_and_natural_ordered() {
    let config = small_config(12);
    let (a, fa) = generate_image(&config, 7).unwrap();
    let (b, fb) = generate_image(&config, 7).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&fa).unwrap(),
        serde_json::to_string(&fb).unwrap()
    );
    let (c, _) = generate_image(&config, 8).unwrap();
    assert_ne!(a, c);
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_dataset(dir.path(), &config).unwrap();
    let ds = Sa1bDataset::open(dir.path()).unwrap();
    let ids: Vec<u64> = (0..ds.len())
        .map(|i| ds.read_json(i).unwrap().image.image_id)
        .collect();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>(), "sa_2 before sa_10");
}

#[test]
fn bad_synthetic_configs_are_rejected() {
    for bad in [
        SyntheticConfig {
            min_side: 8,
            ..small_config(1)
        },
        SyntheticConfig {
            min_side: 100,
            max_side: 50,
            ..small_config(1)
        },
        SyntheticConfig {
            min_objects: 0,
            ..small_config(1)
        },
        SyntheticConfig {
            jpeg_quality: 0,
            ..small_config(1)
        },
    ] {
        let e = write_synthetic_dataset(tempfile::tempdir().unwrap().path(), &bad).unwrap_err();
        assert!(matches!(e, DataError::InvalidValue(_)), "{e}");
    }
}

fn one_image_dataset() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_dataset(dir.path(), &small_config(1)).unwrap();
    dir
}

fn error_of(dir: &Path) -> DataError {
    Sa1bDataset::open(dir).unwrap().get(0).unwrap_err()
}

fn assert_names(e: &DataError, file: &str) {
    let text = e.to_string();
    assert!(text.contains(file), "error {text:?} should name {file}");
}

#[test]
fn corrupt_jpeg_names_the_image() {
    let dir = one_image_dataset();
    let jpg = dir.path().join("sa_1.jpg");
    let bytes = std::fs::read(&jpg).unwrap();
    std::fs::write(&jpg, &bytes[..bytes.len() / 3]).unwrap();
    let e = error_of(dir.path());
    assert!(matches!(e, DataError::ImageRead { .. }), "{e}");
    assert_names(&e, "sa_1.jpg");
    std::fs::write(&jpg, b"not a jpeg at all").unwrap();
    let e = error_of(dir.path());
    assert!(matches!(e, DataError::ImageRead { .. }), "{e}");
}

#[test]
fn malformed_json_names_the_file() {
    let dir = one_image_dataset();
    let json = dir.path().join("sa_1.json");
    std::fs::write(&json, b"{\"image\": {\"image_id\": 1,").unwrap();
    let e = error_of(dir.path());
    assert!(matches!(e, DataError::DatasetFile { .. }), "{e}");
    assert_names(&e, "sa_1.json");
    std::fs::write(&json, b"{\"image\": 3, \"annotations\": []}").unwrap();
    let e = error_of(dir.path());
    assert_names(&e, "sa_1.json");
    assert_names(&e, "at `image`: invalid type");
}

#[test]
fn missing_image_or_json_is_named() {
    let dir = one_image_dataset();
    std::fs::remove_file(dir.path().join("sa_1.jpg")).unwrap();
    let e = error_of(dir.path());
    assert!(matches!(e, DataError::ImageRead { .. }), "{e}");
    assert_names(&e, "sa_1.jpg");

    let dir = one_image_dataset();
    std::fs::remove_file(dir.path().join("sa_1.json")).unwrap();
    let e = Sa1bDataset::open(dir.path()).unwrap_err();
    assert_names(&e, "sa_1.json");

    let e = Sa1bDataset::open(dir.path().join("nowhere")).unwrap_err();
    assert_names(&e, "nowhere");
}

fn edit_json(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("sa_1.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn rle_disagreeing_with_the_image_is_named() {
    let dir = one_image_dataset();
    edit_json(dir.path(), |v| {
        let size = &mut v["annotations"][0]["segmentation"]["size"];
        size[0] = serde_json::json!(size[0].as_u64().unwrap() + 1);
    });
    let e = error_of(dir.path());
    assert!(matches!(e, DataError::DatasetFile { .. }), "{e}");
    assert_names(&e, "sa_1.json");
    assert!(e.to_string().contains("mask size"), "{e}");

    let dir = one_image_dataset();
    edit_json(dir.path(), |v| {
        v["annotations"][0]["segmentation"]["counts"] = serde_json::json!("0[~~");
    });
    let e = error_of(dir.path());
    assert_names(&e, "sa_1.json");
    assert!(e.to_string().contains("annotation"), "{e}");

    let dir = one_image_dataset();
    edit_json(dir.path(), |v| {
        v["image"]["width"] = serde_json::json!(5000);
    });
    let e = error_of(dir.path());
    assert_names(&e, "sa_1.json");
    assert!(e.to_string().contains("5000"), "{e}");
}
