//! The bundled demo model (trained at 128²) run at half and double its input side, its position
//! tables resampled: masks from box prompts on held-out synthetic images, compared with the
//! masks at the trained size and with the ground truth. The figures are in docs/numerics.md.

use sam_burn::burn::tensor::Device;
use sam_burn::data::dataset::{Dataset, Sa1bDataset, SyntheticConfig, write_synthetic_dataset};
use sam_burn::predictor::{PredictOptions, Prompt, SamPredictor};
use sam_burn::{Sam, SamConfig};

fn iou(a: &[bool], b: &[bool]) -> f64 {
    let inter = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let union = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

#[test]
fn demo_model_at_other_sizes_keeps_its_masks() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let synth = SyntheticConfig {
        num_images: 16,
        seed: 4242,
        first_id: 3_000_000,
        ..SyntheticConfig::default()
    };
    write_synthetic_dataset(dir.path(), &synth).unwrap();
    let data = Sa1bDataset::open(dir.path()).unwrap();

    let demo = sam_burn::cli::bundled("assets/demo_model");
    let config = SamConfig::load(demo.join("config.json")).unwrap();
    let sizes = [64usize, 128, 256];
    let mut predictors: Vec<SamPredictor> = sizes
        .iter()
        .map(|&s| {
            SamPredictor::new(
                Sam::load_sized(demo.join("model.bpk"), &config, Some(s), &device).unwrap(),
            )
        })
        .collect();
    let options = PredictOptions {
        multimask_output: false,
        return_logits: false,
    };
    // Per size: Σ IoU with the 128² masks, Σ IoU with the ground truth.
    let mut vs_trained = [0f64; 3];
    let mut vs_truth = [0f64; 3];
    let mut n = 0usize;
    for i in 0..data.len() {
        let item = data.get(i).unwrap();
        let mut masks_per_size = Vec::new();
        for p in predictors.iter_mut() {
            p.set_image(&item.image).unwrap();
            let prompts: Vec<Prompt> = item
                .annotations
                .iter()
                .map(|a| {
                    let [x, y, w, h] = a.rle.to_bbox();
                    Prompt::default().with_box([x, y, x + w, y + h])
                })
                .collect();
            let pred = p.predict_batch(&prompts, options).unwrap();
            let bits: Vec<bool> = pred.masks.into_binary().into_data().try_to_vec().unwrap();
            masks_per_size.push(bits);
        }
        let px = (item.image.width() * item.image.height()) as usize;
        for (k, a) in item.annotations.iter().enumerate() {
            let truth = a.rle.to_mask().unwrap();
            let at = |s: usize| &masks_per_size[s][k * px..(k + 1) * px];
            for s in 0..3 {
                vs_trained[s] += iou(at(s), at(1));
                vs_truth[s] += iou(at(s), &truth);
            }
            n += 1;
        }
    }
    let mean = |v: f64| v / n as f64;
    for (s, size) in sizes.iter().enumerate() {
        eprintln!(
            "demo model at {size}²: mIoU vs its 128² masks {:.3}, vs ground truth {:.3} ({n} objects)",
            mean(vs_trained[s]),
            mean(vs_truth[s])
        );
    }
    assert!(n > 20, "{n} objects");
    // Resampling keeps the model working: its masks stay close to the trained size's and far
    // above chance against the truth. Measured (seeded data, flex): vs the 128² masks 0.616 at
    // 64² and 0.716 at 256²; vs the truth 0.542, 0.704 (trained size) and 0.723. The bounds
    // leave 0.05 for other CPUs' round-off.
    let near = |v: f64, measured: f64| (v - measured).abs() <= 0.05;
    assert!(near(mean(vs_trained[0]), 0.616) && near(mean(vs_trained[2]), 0.716));
    assert!(near(mean(vs_truth[0]), 0.542) && near(mean(vs_truth[2]), 0.723));
    assert!(near(mean(vs_truth[1]), 0.704));
}
