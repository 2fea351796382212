//! Prompt sampling: points inside masks, box noise statistics, corrective clicks, mask selection,
//! reproducibility.

use rand::SeedableRng;
use rand::rngs::StdRng;
use sam_data::prompt_sampling::*;

fn disc(h: usize, w: usize, cx: f64, cy: f64, r: f64) -> Vec<bool> {
    (0..h * w)
        .map(|i| {
            let (x, y) = ((i % w) as f64, (i / w) as f64);
            (x - cx).powi(2) + (y - cy).powi(2) <= r * r
        })
        .collect()
}

#[test]
fn positive_points_fall_inside_the_mask_and_are_reproducible() {
    let (h, w) = (40, 60);
    let mask = disc(h, w, 20.0, 15.0, 8.0);
    let mut rng = StdRng::seed_from_u64(1);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..500 {
        let c = sample_positive_point(&mask, w, &mut rng).unwrap();
        assert_eq!(c.label, 1);
        assert!(
            mask[c.y as usize * w + c.x as usize],
            "{c:?} outside the mask"
        );
        seen.insert((c.x as i64, c.y as i64));
    }
    let area = mask.iter().filter(|m| **m).count();
    assert!(
        seen.len() as f64 > 0.8 * area as f64,
        "uniform: {} of {area} pixels hit",
        seen.len()
    );
    let a = sample_positive_point(&mask, w, &mut StdRng::seed_from_u64(7));
    let b = sample_positive_point(&mask, w, &mut StdRng::seed_from_u64(7));
    assert_eq!(a, b);
    assert!(sample_positive_point(&vec![false; h * w], w, &mut rng).is_none());
}

#[test]
fn box_noise_has_ten_percent_std_and_is_clipped_at_twenty_pixels() {
    let (h, w) = (400, 400);
    let config = PromptSamplingConfig::default();
    let mut mask = vec![false; h * w];
    for y in 100..150 {
        for x in 100..160 {
            mask[y * w + x] = true;
        }
    }
    assert_eq!(mask_box(&mask, w), Some([100, 100, 160, 150]));
    assert_eq!(mask_box(&vec![false; h * w], w), None);
    // A 60×50 box: σ = 6 px in x, 5 px in y, well inside the 20 px clip.
    let mut rng = StdRng::seed_from_u64(3);
    let boxes: Vec<[f64; 4]> = (0..20_000)
        .map(|_| noisy_box([100, 100, 160, 150], h, w, &config, &mut rng))
        .collect();
    for (k, sigma, origin) in [
        (0, 6.0, 100.0),
        (1, 5.0, 100.0),
        (2, 6.0, 160.0),
        (3, 5.0, 150.0),
    ] {
        let d: Vec<f64> = boxes.iter().map(|b| b[k] - origin).collect();
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        let std = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d.len() as f64).sqrt();
        assert!(
            mean.abs() < 0.2 && (std - sigma).abs() < 0.2,
            "coordinate {k}: mean {mean}, std {std}"
        );
    }
    // A 360-pixel box: σ = 36 px, so the 20 px clip binds.
    for _ in 0..2000 {
        let b = noisy_box([20, 20, 380, 380], h, w, &config, &mut rng);
        assert!(
            (b[0] - 20.0).abs() <= 20.0 && (b[2] - 380.0).abs() <= 20.0,
            "{b:?}"
        );
        assert!(b[0] <= b[2] && b[1] <= b[3] && b[0] >= 0.0 && b[3] <= h as f64);
    }
}

#[test]
fn corrective_clicks_come_from_the_error_region_with_the_right_label() {
    let (h, w) = (30, 30);
    let gt = disc(h, w, 15.0, 15.0, 8.0);
    let pred = disc(h, w, 18.0, 15.0, 8.0); // shifted right: FN on the left, FP on the right
    let mut rng = StdRng::seed_from_u64(5);
    let (mut pos, mut neg) = (0, 0);
    for _ in 0..600 {
        let c = next_click(&pred, &gt, w, &mut rng).unwrap();
        let i = c.y as usize * w + c.x as usize;
        assert_ne!(pred[i], gt[i], "{c:?} is not an error pixel");
        assert_eq!(c.label, gt[i] as i64);
        if c.label == 1 { pos += 1 } else { neg += 1 }
    }
    assert!(
        pos > 200 && neg > 200,
        "both kinds of errors sampled: {pos} / {neg}"
    );
    assert!(next_click(&gt, &gt, w, &mut rng).is_none());
}

#[test]
fn mask_selection_drops_huge_masks_and_caps_at_64() {
    let config = PromptSamplingConfig::default();
    let image_area = 1000;
    let mut areas: Vec<u64> = (0..100).map(|i| 10 + i).collect();
    areas[3] = 950; // > 90%
    areas[4] = 0; // empty
    let mut rng = StdRng::seed_from_u64(9);
    let chosen = select_masks(&areas, image_area, &config, &mut rng);
    assert_eq!(chosen.len(), 64);
    assert!(!chosen.contains(&3) && !chosen.contains(&4));
    assert!(chosen.windows(2).all(|p| p[0] < p[1]));
    assert_eq!(
        chosen,
        select_masks(&areas, image_area, &config, &mut StdRng::seed_from_u64(9))
    );
    assert_eq!(
        select_masks(&areas[..10], image_area, &config, &mut rng),
        vec![0, 1, 2, 5, 6, 7, 8, 9]
    );
}
