//! Augmentation keeps image, masks, boxes and points consistent, and is reproducible.

use rand::SeedableRng;
use rand::rngs::StdRng;
use sam_data::augment::*;
use sam_data::prompt_sampling::mask_box;

/// A 90×60 image with two rectangles as objects, boxes from the masks, one point inside each.
fn sample() -> Sample {
    let (w, h) = (90, 60);
    let image: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
    let rect = |x0: usize, y0: usize, x1: usize, y1: usize| -> Vec<bool> {
        (0..w * h)
            .map(|i| (x0..x1).contains(&(i % w)) && (y0..y1).contains(&(i / w)))
            .collect()
    };
    let masks = vec![rect(5, 10, 30, 40), rect(50, 20, 85, 55)];
    let boxes = masks
        .iter()
        .map(|m| mask_box(m, w).unwrap().map(|v| v as f64))
        .collect();
    Sample {
        image,
        width: w,
        height: h,
        masks,
        boxes,
        points: vec![vec![[10.0, 20.0]], vec![[60.0, 30.0]]],
    }
}

/// The point's pixel, or one next to it (resampling moves edges by up to a pixel), is on the
/// object.
fn inside(s: &Sample, obj: usize, p: [f64; 2]) -> bool {
    let (x, y) = (p[0].round() as i64, p[1].round() as i64);
    (-1..=1).any(|dy| {
        (-1..=1).any(|dx| {
            let (nx, ny) = (x + dx, y + dy);
            nx >= 0
                && ny >= 0
                && (nx as usize) < s.width
                && (ny as usize) < s.height
                && s.masks[obj][ny as usize * s.width + nx as usize]
        })
    })
}

#[test]
fn flip_is_consistent_and_an_involution() {
    let original = sample();
    let mut s = original.clone();
    s.hflip();
    for i in 0..2 {
        let b = mask_box(&s.masks[i], s.width).unwrap().map(|v| v as f64);
        assert_eq!(b, s.boxes[i], "box {i} follows its mask");
        assert!(
            inside(&s, i, s.points[i][0]),
            "point {i} stays on its object"
        );
    }
    assert_eq!(s.image[0..3], original.image[(89) * 3..90 * 3]);
    s.hflip();
    assert_eq!(s, original);
}

#[test]
fn scale_jitter_and_crop_keep_objects_aligned_and_are_reproducible() {
    let config = AugmentConfig {
        target_size: 64,
        scale_range: (0.5, 2.5),
        flip_prob: 0.5,
        ..Default::default()
    };
    for seed in 0..40 {
        let a = augment(sample(), &config, &mut StdRng::seed_from_u64(seed)).unwrap();
        let b = augment(sample(), &config, &mut StdRng::seed_from_u64(seed)).unwrap();
        assert_eq!(a, b, "seed {seed}: not reproducible");
        a.validate().unwrap();
        assert!(a.width <= 64 && a.height <= 64);
        for i in 0..a.masks.len() {
            let mb = mask_box(&a.masks[i], a.width).unwrap();
            for k in 0..4 {
                assert!(
                    (mb[k] as f64 - a.boxes[i][k]).abs() <= 1.0 + 1e-9,
                    "seed {seed} object {i}: {mb:?} vs {:?}",
                    a.boxes[i]
                );
            }
            for &p in &a.points[i] {
                assert!(
                    inside(&a, i, p),
                    "seed {seed} object {i}: point {p:?} left its mask"
                );
            }
        }
    }
}

#[test]
fn color_jitter_is_identity_at_zero_and_scales_brightness() {
    let zero = AugmentConfig {
        brightness: 0.0,
        contrast: 0.0,
        saturation: 0.0,
        hue: 0.0,
        ..Default::default()
    };
    let mut img: Vec<u8> = (0..300).map(|i| (i % 256) as u8).collect();
    let before = img.clone();
    color_jitter(&mut img, &zero, &mut StdRng::seed_from_u64(1));
    assert_eq!(img, before);
    // Hue alone keeps greys grey; brightness alone scales a flat image by its factor.
    let hue_only = AugmentConfig {
        hue: 0.5,
        ..zero.clone()
    };
    let mut grey = vec![100u8; 30];
    color_jitter(&mut grey, &hue_only, &mut StdRng::seed_from_u64(2));
    assert!(grey.iter().all(|&v| v == 100));
    let bright = AugmentConfig {
        brightness: 0.4,
        ..zero
    };
    let mut flat = vec![100u8; 30];
    color_jitter(&mut flat, &bright, &mut StdRng::seed_from_u64(3));
    assert!(
        flat.iter().all(|&v| v == flat[0]) && (60..=140).contains(&flat[0]),
        "{}",
        flat[0]
    );
}

#[test]
fn low_res_ground_truth_averages_cells_and_leaves_padding_empty() {
    let (h, w) = (8, 6);
    let mask = vec![true; h * w];
    let low = low_res_mask(&mask, h, w, 16, 4).unwrap(); // 4×4 cells of 4×4 pixels
    assert_eq!(low.len(), 16);
    assert_eq!(&low[0..4], &[1.0, 0.5, 0.0, 0.0]);
    assert_eq!(&low[8..12], &[0.0; 4]);
    let e = low_res_mask(&mask, h, w, 16, 5)
        .expect_err("an error")
        .to_string();
    assert!(e.contains("to 5²"), "{e}");
    let e = low_res_mask(&mask[1..], h, w, 16, 4)
        .expect_err("an error")
        .to_string();
    assert!(e.contains("47 px"), "{e}");
}

#[test]
fn bad_samples_and_settings_are_errors() {
    let mut s = sample();
    s.boxes.pop();
    let e = augment(s, &AugmentConfig::default(), &mut StdRng::seed_from_u64(0))
        .expect_err("an error")
        .to_string();
    assert!(e.contains("2 masks but 1 boxes"), "{e}");
    let mut s = sample();
    s.masks[1].pop();
    assert!(s.validate().unwrap_err().to_string().contains("mask 1"));
    let bad = AugmentConfig {
        scale_range: (2.0, 1.0),
        ..Default::default()
    };
    assert!(
        augment(sample(), &bad, &mut StdRng::seed_from_u64(0))
            .unwrap_err()
            .to_string()
            .contains("scale_range")
    );
    let bad = AugmentConfig {
        hue: 0.7,
        ..Default::default()
    };
    let e = bad.validate().expect_err("an error").to_string();
    assert!(e.contains("hue 0.7"), "{e}");
}
