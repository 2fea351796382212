//! `evaluate`'s figures are the per-object IoUs of the documented protocol, averaged over
//! objects: recomputed here from the public pieces (the data pipeline, `Sam::predict`, the
//! click rule) with the bundled demo model, whose masks are good enough that a wrong prompt,
//! output choice, grid or average would show.

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use sam_data::dataset::{Dataset, Sa1bDataset, SyntheticConfig, write_synthetic_dataset};
use sam_data::{DataLoader, LoaderConfig, TrainSample, TrainSampleConfig, train_sample};
use sam_model::{PointPrompt, Prompts, Sam, SamConfig, f32_values};
use sam_train::clicks::{Grid, center_click};
use sam_train::{EvalConfig, evaluate};

fn demo_model() -> Sam {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo_model");
    let config = SamConfig::load(dir.join("config.json")).unwrap();
    Sam::load(dir.join("model.bpk"), &config, &Device::flex()).unwrap()
}

/// IoU over the cells covering the image (`rows × cols` of them); 1 when both are empty.
fn iou(pred: &[bool], gt: &[bool], side: usize, rows: usize, cols: usize) -> f64 {
    let (mut inter, mut union) = (0, 0);
    for r in 0..rows {
        for c in 0..cols {
            let (p, g) = (pred[r * side + c], gt[r * side + c]);
            inter += (p && g) as u32;
            union += (p || g) as u32;
        }
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Per object of `sample`: the IoU with its exact box, and with one click.
fn object_ious(sam: &Sam, sample: &TrainSample) -> Vec<(f64, f64)> {
    let device = sam.device();
    let (s, side) = (sam.config().image_size, sam.config().mask_input_size());
    let pixels: Vec<f32> = sample.image.iter().map(|&v| v as f32).collect();
    let hwc = Tensor::<3>::from_data(
        TensorData::new(pixels, [sample.height, sample.width, 3]),
        &device,
    );
    let input = sam
        .preprocess(hwc.permute([2, 0, 1]).unsqueeze::<4>())
        .unwrap();
    let embedding = sam.image_embeddings(input).unwrap();
    let n = sample.objects.len();
    // Cells of `s / side` input pixels; those reaching into the image count.
    let scale = s / side;
    let (rows, cols) = (sample.height.div_ceil(scale), sample.width.div_ceil(scale));
    let gts: Vec<Vec<bool>> = sample
        .objects
        .iter()
        .map(|o| o.gt_low_res.iter().map(|&v| v >= 0.5).collect())
        .collect();
    let binary = |logits: Vec<f32>| -> Vec<Vec<bool>> {
        logits
            .chunks(side * side)
            .map(|c| c.iter().map(|&v| v > 0.0).collect())
            .collect()
    };

    // The exact box: one output.
    let boxes: Vec<f32> = sample
        .objects
        .iter()
        .flat_map(|o| o.bbox.map(|v| v as f32))
        .collect();
    let prompts = Prompts {
        boxes: Some(Tensor::from_data(TensorData::new(boxes, [n, 4]), &device)),
        ..Prompts::default()
    };
    let by_box = sam.predict(embedding.clone(), prompts, false).unwrap();
    let by_box = binary(f32_values(by_box.low_res_masks));

    // One click at the most interior cell of the object (the error region of an empty
    // prediction), or its sampled point when no whole cell is inside; ambiguous, so three
    // outputs, of which the one with the highest predicted IoU counts.
    let grid = Grid::new(s, side, sample.height, sample.width);
    let clicks: Vec<f32> = sample
        .objects
        .iter()
        .zip(&gts)
        .flat_map(|(o, gt)| {
            center_click(&vec![false; side * side], gt, &grid)
                .map_or(o.point, |c| c.xy)
                .map(|v| v as f32)
        })
        .collect();
    let prompts = Prompts {
        points: Some(PointPrompt {
            coords: Tensor::from_data(TensorData::new(clicks, [n, 1, 2]), &device),
            labels: Tensor::<2, Int>::ones([n, 1], &device),
        }),
        ..Prompts::default()
    };
    let by_click = sam.predict(embedding, prompts, true).unwrap();
    let scores = f32_values(by_click.iou_predictions);
    let outputs = scores.len() / n;
    let masks = binary(f32_values(by_click.low_res_masks));
    (0..n)
        .map(|k| {
            let row = &scores[k * outputs..(k + 1) * outputs];
            // The first of equal maxima, as `argmax`.
            let best = (0..outputs).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            (
                iou(&by_box[k], &gts[k], side, rows, cols),
                iou(&masks[k * outputs + best], &gts[k], side, rows, cols),
            )
        })
        .collect()
}

#[test]
fn figures_are_the_per_object_ious_averaged_over_objects() {
    let sam = demo_model();
    let dir = tempfile::tempdir().unwrap();
    let synth = SyntheticConfig {
        num_images: 5,
        min_side: 64,
        max_side: 160,
        seed: 11,
        ..SyntheticConfig::default()
    };
    write_synthetic_dataset(dir.path(), &synth).unwrap();
    let dataset: Arc<dyn Dataset<_, _>> = Arc::new(Sa1bDataset::open(dir.path()).unwrap());

    // The samples the evaluation sees: inference resizing, no augmentation, and each item's
    // draws from the loader's seed (the sampled point of a too-thin object).
    let mut data = TrainSampleConfig {
        image_size: sam.config().image_size,
        low_res_size: sam.config().mask_input_size(),
        augment: None,
        ..TrainSampleConfig::default()
    };
    data.prompts.max_masks_per_image = 64;
    let loader = DataLoader::new(
        dataset.clone(),
        move |item, rng| train_sample(item, &data, rng),
        LoaderConfig {
            batch_size: 1,
            num_workers: 0,
            shuffle: false,
            seed: 0,
            drop_last: false,
            skip_errors: false,
            prefetch_batches: 1,
        },
    )
    .unwrap();
    let per_image: Vec<Vec<(f64, f64)>> = loader
        .epoch(0)
        .unwrap()
        .map(|b| b.unwrap().items.remove(0))
        // Images left without objects (every mask over the area limit) are not evaluated.
        .filter(|sample| !sample.objects.is_empty())
        .map(|sample| object_ious(&sam, &sample))
        .collect();
    let images = per_image.len();
    assert!(images >= 3, "{images} images with objects");
    let mean = |images: &[Vec<(f64, f64)>], pick: fn(&(f64, f64)) -> f64| {
        let all: Vec<f64> = images.iter().flatten().map(pick).collect();
        (all.len(), all.iter().sum::<f64>() / all.len() as f64)
    };
    let (objects, box_miou) = mean(&per_image, |p| p.0);
    let (_, click_miou) = mean(&per_image, |p| p.1);
    // The demo model segments the shapes: the figures are far from 0 and from a constant.
    assert!(
        box_miou > 0.6 && click_miou > 0.4,
        "{box_miou} {click_miou}"
    );
    let distinct = per_image.iter().flatten().map(|p| p.1.to_bits());
    assert!(distinct.collect::<std::collections::BTreeSet<_>>().len() > 3);

    for batch_size in [1, 3] {
        let config = EvalConfig {
            clicks: 1,
            boxes: true,
            max_images: None,
            max_objects: 64,
            batch_size,
            num_workers: 0,
        };
        let report = evaluate(&sam, dataset.clone(), &config).unwrap();
        assert_eq!((report.images, report.objects), (images, objects));
        // Images batched through the encoder may differ in the last bits of a logit.
        let tol = if batch_size == 1 { 1e-12 } else { 0.02 };
        assert!(
            (report.miou_box.unwrap() - box_miou).abs() <= tol,
            "batch {batch_size}: box {:?} vs {box_miou}",
            report.miou_box
        );
        assert!(
            (report.miou_clicks[0] - click_miou).abs() <= tol,
            "batch {batch_size}: 1 click {} vs {click_miou}",
            report.miou_clicks[0]
        );
    }

    // `max_images` takes the first images (with objects) in dataset order.
    let first_two = evaluate(
        &sam,
        dataset,
        &EvalConfig {
            clicks: 1,
            max_images: Some(2),
            batch_size: 1,
            num_workers: 0,
            ..EvalConfig::default()
        },
    )
    .unwrap();
    let (objects, box_miou) = mean(&per_image[..2], |p| p.0);
    assert_eq!((first_two.images, first_two.objects), (2, objects));
    assert!((first_two.miou_box.unwrap() - box_miou).abs() <= 1e-12);
}
