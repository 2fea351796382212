//! COCO polygons and the COCO instances reader against pycocotools
//! (`tools/reference/make_coco_fixtures.py`), and corrupt input.

use std::path::{Path, PathBuf};

use sam_data::dataset::{CocoDataset, Dataset};
use sam_data::polygon::{Segmentation, rle_from_polygon, rle_from_polygons};
use sam_data::{DataError, Rle};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coco")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn size(v: &Value) -> [usize; 2] {
    [
        v[0].as_u64().unwrap() as usize,
        v[1].as_u64().unwrap() as usize,
    ]
}

fn coords(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_f64().unwrap())
        .collect()
}

/// Checks an RLE against pycocotools' string and its decoded runs both ways.
fn assert_counts(rle: &Rle, expected: &str, what: &str) {
    assert_eq!(rle.to_coco_string(), expected, "{what}: counts string");
    let parsed = Rle::from_coco_string(expected, rle.size).unwrap();
    assert_eq!(rle.counts, parsed.counts, "{what}: runs");
}

#[test]
fn single_polygons_match_pycocotools() {
    let sweep = read_json(&fixtures().join("polygon_sweep.json"));
    let cases = sweep["single"].as_array().unwrap();
    assert_eq!(cases.len(), 200);
    let mut nonempty = 0;
    for (i, c) in cases.iter().enumerate() {
        let [h, w] = size(&c["size"]);
        let rle = rle_from_polygon(&coords(&c["polygon"]), h, w).unwrap();
        assert_eq!(rle.size, [h, w]);
        assert_counts(&rle, c["counts"].as_str().unwrap(), &format!("single {i}"));
        nonempty += usize::from(rle.area() > 0);
    }
    // The sweep is not all empty masks.
    assert!(nonempty > 150, "{nonempty} non-empty");
}

#[test]
fn multi_polygon_objects_match_pycocotools_merge() {
    let sweep = read_json(&fixtures().join("polygon_sweep.json"));
    let cases = sweep["multi"].as_array().unwrap();
    assert_eq!(cases.len(), 60);
    for (i, c) in cases.iter().enumerate() {
        let [h, w] = size(&c["size"]);
        let polys: Vec<Vec<f64>> = c["polygons"]
            .as_array()
            .unwrap()
            .iter()
            .map(coords)
            .collect();
        let rle = rle_from_polygons(&polys, h, w).unwrap();
        assert_counts(&rle, c["counts"].as_str().unwrap(), &format!("multi {i}"));
    }
}

#[test]
fn every_annotation_matches_ann_to_rle() {
    let instances = read_json(&fixtures().join("instances.json"));
    let expected = read_json(&fixtures().join("expected.json"));
    let sizes: Vec<(u64, [usize; 2])> = instances["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|im| {
            let h = im["height"].as_u64().unwrap() as usize;
            let w = im["width"].as_u64().unwrap() as usize;
            (im["id"].as_u64().unwrap(), [h, w])
        })
        .collect();
    let anns = instances["annotations"].as_array().unwrap();
    assert_eq!(anns.len(), 23);
    for a in anns {
        let id = a["id"].as_u64().unwrap();
        let e = &expected["annotations"][id.to_string()];
        let what = format!("annotation {id} ({})", e["note"]);
        let [h, w] = sizes
            .iter()
            .find(|(i, _)| Some(*i) == a["image_id"].as_u64())
            .unwrap()
            .1;
        let rle = Segmentation::from_json(&a["segmentation"])
            .unwrap()
            .to_rle(h, w)
            .unwrap();
        assert_eq!(rle.size, size(&e["size"]), "{what}");
        assert_counts(&rle, e["counts"].as_str().unwrap(), &what);
        assert_eq!(rle.area(), e["area"].as_u64().unwrap(), "{what}: area");
        let bbox: Vec<f64> = serde_json::from_value(e["bbox"].clone()).unwrap();
        assert_eq!(rle.to_bbox().to_vec(), bbox, "{what}: bbox");
    }
}

#[test]
fn dataset_yields_images_in_file_order_with_their_annotations() {
    let dir = fixtures();
    let ds = CocoDataset::open(dir.join("instances.json"), dir.join("images")).unwrap();
    let expected = read_json(&dir.join("expected.json"));
    assert_eq!(ds.len(), 3);
    let names: Vec<_> = (0..3)
        .map(|i| ds.image_info(i).unwrap().file_name.clone())
        .collect();
    assert_eq!(names, ["a.png", "b.png", "c.png"]);
    assert!(ds.image_info(3).is_none());
    let cats: Vec<_> = ds
        .categories()
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    assert_eq!(cats, [(1, "blob"), (18, "dog")]);

    let instances = read_json(&dir.join("instances.json"));
    let mut seen = 0;
    for i in 0..ds.len() {
        let info = ds.image_info(i).unwrap().clone();
        let item = ds.get(i).unwrap();
        assert_eq!(item.image_id, info.id);
        assert_eq!(item.size(), (info.height, info.width));
        assert_eq!(item.path, dir.join("images").join(&info.file_name));
        let sum: u64 = item.image.as_raw().iter().map(|&v| v as u64).sum();
        assert_eq!(
            sum,
            expected["pixel_sums"][info.id.to_string()]
                .as_u64()
                .unwrap()
        );
        item.check_sizes().unwrap();

        // The file's annotations of this image, in file order.
        let file_anns: Vec<&Value> = instances["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["image_id"].as_u64() == Some(info.id))
            .collect();
        assert_eq!(ds.annotation_count(i), Some(file_anns.len()));
        assert_eq!(item.annotations.len(), file_anns.len());
        for (a, f) in item.annotations.iter().zip(&file_anns) {
            assert_eq!(a.id, f["id"].as_u64().unwrap());
            assert_eq!(a.category_id, f["category_id"].as_u64());
            assert_eq!(a.iscrowd, f["iscrowd"].as_u64() == Some(1));
            assert_eq!(a.area, f["area"].as_f64().unwrap());
            let bbox: [f64; 4] = serde_json::from_value(f["bbox"].clone()).unwrap();
            assert_eq!(a.bbox, bbox);
            let e = &expected["annotations"][a.id.to_string()];
            assert_eq!(
                a.rle.to_coco_string(),
                e["counts"].as_str().unwrap(),
                "{}",
                a.id
            );
            assert!(a.predicted_iou.is_none() && a.point_coords.is_empty());
        }
        seen += item.annotations.len();
    }
    assert_eq!(seen, 23);
    assert_eq!(ds.get(2).unwrap().annotations.len(), 0, "c.png has none");
    let crowds: Vec<u64> = (0..2)
        .flat_map(|i| ds.get(i).unwrap().annotations)
        .filter(|a| a.iscrowd)
        .map(|a| a.id)
        .collect();
    assert_eq!(crowds.len(), 2);
    assert!(matches!(ds.get(3), Err(DataError::DatasetFile { .. })));
}

/// A copy of the fixture set in a temporary folder, with `edit` applied to the JSON.
fn corrupted(edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let src = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for name in ["a.png", "b.png", "c.png"] {
        std::fs::copy(src.join("images").join(name), images.join(name)).unwrap();
    }
    let mut instances = read_json(&src.join("instances.json"));
    edit(&mut instances);
    let file = tmp.path().join("instances.json");
    std::fs::write(&file, serde_json::to_string(&instances).unwrap()).unwrap();
    (tmp, file, images)
}

/// Asserts a `DatasetFile` error naming `file`, with every `needles` in its reason.
fn assert_file_error<T: std::fmt::Debug>(r: Result<T, DataError>, file: &Path, needles: &[&str]) {
    match r {
        Err(DataError::DatasetFile { path, reason }) => {
            assert_eq!(path, file, "{reason}");
            for n in needles {
                assert!(reason.contains(n), "{reason:?} lacks {n:?}");
            }
        }
        other => panic!("expected a DatasetFile error, got {other:?}"),
    }
}

fn annotation_mut(v: &mut Value, id: u64) -> &mut Value {
    v["annotations"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a["id"] == json!(id))
        .unwrap()
}

#[test]
fn malformed_json_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("instances.json");
    std::fs::write(&file, r#"{"images": [{"id": 1, "file_name": "x.png""#).unwrap();
    assert_file_error(
        CocoDataset::open(&file, tmp.path()),
        &file,
        &["malformed", "line 1"],
    );
    std::fs::write(&file, r#"{"images": [{"id": 1, "file_name": "x.png"}]}"#).unwrap();
    assert_file_error(
        CocoDataset::open(&file, tmp.path()),
        &file,
        &["at `images[0]`", "height"],
    );
    let missing = tmp.path().join("missing.json");
    assert_file_error(CocoDataset::open(&missing, tmp.path()), &missing, &[]);
}

#[test]
fn unknown_image_id_and_duplicate_images_are_errors() {
    let (_tmp, file, images) = corrupted(|v| annotation_mut(v, 1003)["image_id"] = json!(99));
    assert_file_error(
        CocoDataset::open(&file, &images),
        &file,
        &["annotation 1003", "99"],
    );
    let (_tmp, file, images) = corrupted(|v| v["images"][1]["id"] = json!(7));
    assert_file_error(CocoDataset::open(&file, &images), &file, &["image id 7"]);
}

#[test]
fn bad_segmentation_shapes_are_errors_naming_the_annotation() {
    for bad in [
        json!([[1, 2, 3, 4]]),
        json!([]),
        json!([1, 2, 3, 4, 5, 6]),
        json!([[1, 2, "x", 4, 5, 6]]),
        json!({"size": [40], "counts": [2000]}),
        json!({"size": [40, 50], "counts": [-1, 2001]}),
        json!({"size": [40, 50]}),
        json!("abc"),
    ] {
        let (_tmp, file, images) =
            corrupted(|v| annotation_mut(v, 1004)["segmentation"] = bad.clone());
        assert_file_error(
            CocoDataset::open(&file, &images),
            &file,
            &["annotation 1004"],
        );
    }
}

#[test]
fn segmentations_that_do_not_fit_the_image_fail_in_get() {
    for bad in [
        json!({"size": [39, 50], "counts": [1950]}),
        json!({"size": [40, 50], "counts": [1999]}),
        json!({"size": [50, 40], "counts": "0"}),
        json!({"size": [40, 50], "counts": "!!"}),
        json!([[0, 0, 3e9, 0, 0, 5]]),
    ] {
        let (_tmp, file, images) =
            corrupted(|v| annotation_mut(v, 1004)["segmentation"] = bad.clone());
        let ds = CocoDataset::open(&file, &images).unwrap();
        assert_file_error(ds.get(0), &file, &["annotation 1004", "image 7"]);
        ds.get(1).unwrap();
    }
}

#[test]
fn image_size_disagreeing_with_the_file_is_an_error() {
    let (_tmp, file, images) = corrupted(|v| v["images"][1]["height"] = json!(28));
    let ds = CocoDataset::open(&file, &images).unwrap();
    assert_file_error(ds.get(1), &file, &["image 3", "33×28", "b.png", "33×27"]);
    ds.get(0).unwrap();
}

#[test]
fn missing_or_corrupt_image_is_an_image_read_error() {
    let (_tmp, file, images) = corrupted(|_| {});
    std::fs::remove_file(images.join("b.png")).unwrap();
    std::fs::write(images.join("c.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let ds = CocoDataset::open(&file, &images).unwrap();
    for (i, name) in [(1, "b.png"), (2, "c.png")] {
        match ds.get(i) {
            Err(DataError::ImageRead { path, .. }) => assert_eq!(path, images.join(name)),
            other => panic!("expected ImageRead for {name}, got {other:?}"),
        }
    }
    ds.get(0).unwrap();
}
