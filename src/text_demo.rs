//! The text-prompt demo, end to end on a CPU (`examples/text_demo`): no pretrained CLIP can be
//! downloaded here, so
//!
//! 1. a tiny CLIP learns, contrastively (InfoNCE), the captions of the synthetic shapes ("a red
//!    triangle") from masked crops of their objects, made as SAM's text training makes them;
//! 2. SAM (the bundled demo model, given an embedding prompt) trains with the paper's App. D.5
//!    recipe: CLIP **image** embeddings of the objects as prompts, then clicks — no text;
//! 3. on held-out images with several objects each, the CLIP **text** embedding of a caption
//!    prompts SAM, and the mask is scored against the object the caption names, next to the
//!    untrained projection and to picking a random object's mask.
//!
//! The results go to `<out>/report.json`; `--write-assets` copies the two models into
//! `assets/text_demo/`, the default of `segment --text`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sam_clip::contrastive::{
    CaptionedCrop, ContrastiveConfig, CropConfig, captioned_crops, retrieval_accuracy,
    shape_caption, train_contrastive,
};
use sam_clip::{ClipConfig, ClipFolder, ClipImageProcessor, ClipModel, ClipTokenizer};
use sam_data::dataset::{
    AnnotatedImage, Dataset, Sa1bDataset, SyntheticConfig, write_synthetic_dataset,
};
use sam_model::Sam;
use sam_predictor::{PredictOptions, Prompt, SamPredictor};
use sam_train::{TextPromptConfig, TrainConfig, Trainer};

use crate::backend;
use crate::cli::{CliError, bundled, number};
use crate::clip_embedder::ClipEmbedder;

type Result<T> = std::result::Result<T, CliError>;

/// The usage text.
pub const USAGE: &str = "\
usage: text_demo [--out DIR] [--train-images N] [--val-images N] [--clip-steps N]
                 [--sam-steps N] [--min-area PX] [--device NAME] [--write-assets]

Trains a tiny CLIP on the synthetic shapes' captions, then SAM's text prompt with CLIP image
embeddings only (paper App. D.5), and measures text-prompt mIoU on held-out images.
--out DIR         run folder (default text_demo_out): data, clip/, sam/, report.json
--train-images N  synthetic training images (default 400)
--val-images N    held-out images (default 100)
--clip-steps N    CLIP optimizer steps (default 1500)
--sam-steps N     SAM optimizer steps (default 2500)
--min-area PX     smallest object (pixels) used for CLIP crops and embedding prompts (default 144)
--write-assets    copy the trained models to assets/text_demo (the default of segment --text)";

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct TextDemoArgs {
    /// Run folder.
    pub out: PathBuf,
    /// Training images.
    pub train_images: usize,
    /// Held-out images.
    pub val_images: usize,
    /// CLIP steps.
    pub clip_steps: usize,
    /// SAM steps.
    pub sam_steps: usize,
    /// Smallest object used.
    pub min_area: u64,
    /// Device name.
    pub device: String,
    /// Copy the models to `assets/text_demo`.
    pub write_assets: bool,
}

impl TextDemoArgs {
    /// Parses arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut a = Self {
            out: PathBuf::from("text_demo_out"),
            train_images: 400,
            val_images: 100,
            clip_steps: 1500,
            sam_steps: 2500,
            min_area: 144,
            device: "flex".into(),
            write_assets: false,
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| CliError::Usage(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--out" => a.out = value()?.into(),
                "--train-images" => a.train_images = number(&flag, &value()?)?,
                "--val-images" => a.val_images = number(&flag, &value()?)?,
                "--clip-steps" => a.clip_steps = number(&flag, &value()?)?,
                "--sam-steps" => a.sam_steps = number(&flag, &value()?)?,
                "--min-area" => a.min_area = number(&flag, &value()?)?,
                "--device" => a.device = value()?,
                "--write-assets" => a.write_assets = true,
                "-h" | "--help" => return Err(CliError::Usage(USAGE.into())),
                other => {
                    return Err(CliError::Usage(format!(
                        "unknown argument {other:?}\n{USAGE}"
                    )));
                }
            }
        }
        for (name, v) in [
            ("--train-images", a.train_images),
            ("--val-images", a.val_images),
            ("--clip-steps", a.clip_steps),
            ("--sam-steps", a.sam_steps),
        ] {
            if v == 0 {
                return Err(CliError::Usage(format!("{name} must be ≥ 1")));
            }
        }
        Ok(a)
    }
}

/// Every caption the synthetic shapes can have, without the size word.
pub fn all_captions() -> Vec<String> {
    let shapes = ["circle", "ellipse", "rectangle", "triangle"];
    sam_data::dataset::synthetic::COLORS
        .iter()
        .flat_map(|(c, _)| shapes.iter().map(move |s| format!("a {c} {s}")))
        .collect()
}

/// The tiny CLIP: 32² crops in 8² patches, 64-wide towers, a 64-d joint space, and the CLIP
/// tokenizer of the sam-clip fixtures (a real CLIP-format BPE on a small English corpus).
pub fn tiny_clip_config(tokenizer: &ClipTokenizer) -> Result<ClipConfig> {
    let eot = tokenizer
        .token_to_id("<|endoftext|>")
        .ok_or_else(|| CliError::Usage("the tokenizer has no <|endoftext|>".into()))?;
    let sot = tokenizer
        .token_to_id("<|startoftext|>")
        .ok_or_else(|| CliError::Usage("the tokenizer has no <|startoftext|>".into()))?;
    let json = serde_json::json!({
        "projection_dim": 64,
        "logit_scale_init_value": 2.6592,
        "text_config": {
            "vocab_size": eot + 1, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 32,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
            "bos_token_id": sot, "eos_token_id": eot, "pad_token_id": 1, "projection_dim": 64
        },
        "vision_config": {
            "image_size": 32, "patch_size": 8, "num_channels": 3, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": 64
        }
    });
    ClipConfig::from_json_str(&json.to_string(), Path::new("tiny_clip_config"))
        .map_err(CliError::from)
}

fn synthetic(dir: &Path, n: usize, seed: u64, first_id: u64) -> Result<Arc<Sa1bDataset>> {
    let config = SyntheticConfig {
        num_images: n,
        min_objects: 2,
        max_objects: 6,
        seed,
        first_id,
        ..SyntheticConfig::default()
    };
    if !dir.join(format!("sa_{first_id}.json")).is_file() {
        write_synthetic_dataset(dir, &config)?;
    }
    Ok(Arc::new(Sa1bDataset::open(dir)?))
}

fn crops_of(
    data: &Sa1bDataset,
    clip_processor: &ClipImageProcessor,
    grid: usize,
    crop: &CropConfig,
    passes: usize,
    seed: u64,
) -> Result<Vec<CaptionedCrop>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..passes {
        for i in 0..data.len() {
            let item = data.get(i)?;
            out.extend(captioned_crops(
                &item,
                clip_processor,
                grid,
                crop,
                shape_caption,
                &mut rng,
            )?);
        }
    }
    Ok(out)
}

/// Text-prompt scores on held-out images.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TextScores {
    /// Objects scored (large enough, and the only one of their caption in their image).
    pub objects: usize,
    /// Mean IoU of the mask the text prompt gives (the multimask output SAM scores highest).
    pub miou: f64,
    /// Share of objects whose mask has IoU > 0.5.
    pub hit_rate: f64,
    /// Mean IoU of the best of the three multimask outputs (an oracle choice: how much of the
    /// gap is SAM's IoU head picking the wrong one).
    pub miou_oracle: f64,
    /// Mean IoU of a uniformly random object's mask of the same image (of those scored as
    /// candidates: the image's objects at least `min_area` large).
    pub miou_random_object: f64,
}

/// Prompts `sam` with the CLIP text embedding of each eligible object's caption on the images
/// of `data` and scores the masks.
pub fn score_text_prompts(
    sam: Sam,
    clip: &ClipFolder,
    data: &Sa1bDataset,
    min_area: u64,
) -> Result<TextScores> {
    score_prompts(sam, clip, data, min_area, None)
}

/// [`score_text_prompts`] with, when `images` is given, the CLIP **image** embedding of each
/// object's masked crop (box expanded 1.5×, nothing zeroed) as the prompt instead of its
/// caption's text embedding: the condition SAM was trained in, which separates what SAM
/// learned from how well the tiny CLIP aligns texts with crops.
pub fn score_prompts(
    sam: Sam,
    clip: &ClipFolder,
    data: &Sa1bDataset,
    min_area: u64,
    images: Option<&ClipEmbedder>,
) -> Result<TextScores> {
    use sam_train::{ObjectCrop, ObjectEmbedder};
    let captions = all_captions();
    let embeddings = crate::segment::clip_text_embeddings(clip, &captions)?;
    let mut predictor = SamPredictor::new(sam);
    let (mut n, mut iou_sum, mut hits, mut random_sum) = (0usize, 0.0, 0usize, 0.0);
    let mut oracle_sum = 0.0;
    for i in 0..data.len() {
        let item: AnnotatedImage = data.get(i)?;
        let candidates: Vec<(String, Vec<bool>)> = item
            .annotations
            .iter()
            .filter(|a| a.area as u64 >= min_area)
            .filter_map(|a| {
                let caption = shape_caption(a.caption.as_deref()?);
                Some(a.rle.to_mask().map(|m| (caption, m)))
            })
            .collect::<std::result::Result<_, _>>()?;
        if candidates.is_empty() {
            continue;
        }
        predictor.set_image(&item.image)?;
        for (caption, gt) in &candidates {
            if candidates.iter().filter(|(c, _)| c == caption).count() > 1 {
                continue; // ambiguous in this image
            }
            let Some(c) = captions.iter().position(|x| x == caption) else {
                continue;
            };
            let embedding = match images {
                None => embeddings[c].clone(),
                Some(e) => {
                    let (w, h) = (item.image.width() as usize, item.image.height() as usize);
                    let crop = ObjectCrop {
                        mask: gt,
                        expand: 1.5,
                        zero_outside: false,
                    };
                    e.embed(item.image.as_raw(), w, h, &[crop])
                        .map_err(|e| CliError::Usage(format!("CLIP image embedding: {e}")))?
                        .remove(0)
                }
            };
            let prompt = Prompt::default().with_embedding(embedding);
            let pred = predictor.predict(
                &prompt,
                PredictOptions {
                    multimask_output: true,
                    return_logits: false,
                },
            )?;
            let scores = sam_model::f32_values(pred.iou_predictions);
            let best = scores
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(j, _)| j);
            let masks = sam_model::bool_values(pred.masks.into_binary());
            let plane = gt.len();
            let mask = &masks[best * plane..(best + 1) * plane];
            let score = mask_iou(mask, gt);
            oracle_sum += (0..scores.len())
                .map(|j| mask_iou(&masks[j * plane..(j + 1) * plane], gt))
                .fold(0.0, f64::max);
            iou_sum += score;
            hits += usize::from(score > 0.5);
            random_sum += candidates
                .iter()
                .map(|(_, other)| mask_iou(other, gt))
                .sum::<f64>()
                / candidates.len() as f64;
            n += 1;
        }
    }
    let d = n.max(1) as f64;
    Ok(TextScores {
        objects: n,
        miou: iou_sum / d,
        hit_rate: hits as f64 / d,
        miou_oracle: oracle_sum / d,
        miou_random_object: random_sum / d,
    })
}

fn mask_iou(a: &[bool], b: &[bool]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        inter += usize::from(x && y);
        union += usize::from(x || y);
    }
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Runs the whole demo; returns the report.
pub fn run(args: TextDemoArgs) -> Result<serde_json::Value> {
    let device: Device = backend::device(&args.device)?;
    let out = &args.out;
    let write_err = |p: &Path, e: &dyn std::fmt::Display| CliError::Write {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(out).map_err(|e| write_err(out, &e))?;
    let train = synthetic(&out.join("shapes_train"), args.train_images, 7, 1)?;
    let val = synthetic(&out.join("shapes_val"), args.val_images, 8, 1_000_000)?;

    // 1. CLIP.
    let tokenizer_file = bundled("crates/sam-clip/tests/fixtures/clip_tiny/tokenizer.json");
    let tokenizer = ClipTokenizer::from_file(&tokenizer_file, 32)?;
    let clip_config = tiny_clip_config(&tokenizer)?;
    let processor = ClipImageProcessor::for_image_size(clip_config.vision_config.image_size);
    let grid = clip_config.vision_config.image_size / clip_config.vision_config.patch_size;
    let crop = CropConfig {
        min_area: args.min_area,
        ..CropConfig::default()
    };
    let train_crops = crops_of(&train, &processor, grid, &crop, 3, 11)?;
    let val_crops = crops_of(&val, &processor, grid, &crop, 1, 12)?;
    eprintln!(
        "CLIP: {} training crops, {} held-out crops, {} captions",
        train_crops.len(),
        val_crops.len(),
        all_captions().len()
    );
    let train_device = device.clone().autodiff();
    train_device.seed(5);
    let clip = ClipModel::new(&clip_config, &train_device)?;
    let untrained_accuracy =
        retrieval_accuracy(&clip.valid(), &tokenizer, &val_crops, &all_captions())?;
    let clip_dir = out.join("clip");
    let clip = if clip_dir.join("model.safetensors").is_file() {
        // A rerun keeps the CLIP the first run trained (delete <out>/clip to retrain it).
        eprintln!("CLIP: reusing {}", clip_dir.display());
        ClipFolder::load(&clip_dir, &device)?.model
    } else {
        let clip_steps = ContrastiveConfig {
            steps: args.clip_steps,
            ..ContrastiveConfig::default()
        };
        let clip = train_contrastive(clip, &tokenizer, &train_crops, &clip_steps, |s| {
            if s.step % 100 == 0 || s.step + 1 == args.clip_steps {
                eprintln!(
                    "CLIP step {:>5}: loss {:.4} lr {:.2e}",
                    s.step, s.loss, s.lr
                );
            }
        })?;
        clip.valid()
    };
    let accuracy = retrieval_accuracy(&clip, &tokenizer, &val_crops, &all_captions())?;
    eprintln!(
        "CLIP caption retrieval on held-out crops: {accuracy:.3} (untrained {untrained_accuracy:.3}, chance {:.3})",
        1.0 / all_captions().len() as f64
    );
    let folder = ClipFolder {
        model: clip,
        tokenizer,
        processor,
        dir: clip_dir.clone(),
    };
    folder.save(&clip_dir)?;
    // Read back, so that what is measured is what was written.
    let folder = ClipFolder::load(&clip_dir, &device)?;

    // 2. SAM with image-embedding prompts only.
    let demo = Sam::load(
        bundled("assets/demo_model/model.bpk"),
        &sam_model::SamConfig::load(bundled("assets/demo_model/config.json"))?,
        &device,
    )?;
    let dim = folder.model.config().projection_dim;
    device.seed(6);
    let start = demo.with_prompt_embedding(dim)?;
    let start_file = out.join("sam_start.bpk");
    start.save(&start_file)?;
    let untrained = score_text_prompts(start.clone(), &folder, &val, args.min_area)?;
    eprintln!(
        "SAM before text training (untrained projection): text-prompt mIoU {:.3} on {} objects",
        untrained.miou, untrained.objects
    );
    let mut config = TrainConfig::demo();
    config.model = start.config().clone();
    config.steps = args.sam_steps;
    config.optim.schedule.total_steps = args.sam_steps;
    config.optim.schedule.warmup_steps = 25.min(args.sam_steps / 4);
    config.optim.schedule.peak_lr = 1e-3;
    // The encoder trains too: finding an object by its colour and shape needs features the
    // point- and box-trained encoder had no reason to keep.
    config.freeze_image_encoder = false;
    config.checkpoint_every = 0;
    config.eval_every = 0;
    config.data.prompts.max_masks_per_image = 8;
    // The embedding round is what is learned here: one click round after it, no mask-only
    // rounds, so that it carries half of the loss instead of a quarter.
    config.interactive.point_rounds = 1;
    config.interactive.mask_only_rounds = 0;
    // Colour names are what the text says: no hue or saturation jitter.
    if let Some(a) = config.data.augment.as_mut() {
        a.hue = 0.0;
        a.saturation = 0.0;
    }
    // The demo model works at 128²: areas scale by (128 / 256)² from the source images.
    config.text = Some(TextPromptConfig {
        min_area: (args.min_area / 4).max(16),
        ..TextPromptConfig::default()
    });
    let sam_out = out.join("sam");
    let embedder = Arc::new(ClipEmbedder::new(ClipFolder::load(&clip_dir, &device)?));
    let latest = sam_train::checkpoint::latest_checkpoint(&sam_out.join("checkpoints"))?;
    let reuse = latest
        .filter(|l| sam_train::checkpoint::read_state(l).is_ok_and(|s| s.step >= args.sam_steps));
    let last = if let Some(last) = reuse {
        // A rerun keeps the SAM the first run trained (delete <out>/sam to retrain it).
        eprintln!("SAM: reusing {}", last.display());
        last
    } else {
        let mut trainer = Trainer::new(
            config.clone(),
            train.clone(),
            &sam_out,
            &device,
            Some(&start_file),
        )?
        .with_text_prompts(embedder.clone())?;
        trainer.run(|m, _| {
            if m.step % 50 == 0 {
                eprintln!(
                    "SAM step {:>4}: loss {:.4}, mIoU first round {:.3} → last {:.3}",
                    m.step, m.loss, m.miou_first, m.miou_last
                );
            }
        })?
    };
    let trained = Sam::load(last.join("model.bpk"), &config.model, &device)?;
    let scores = score_text_prompts(trained.clone(), &folder, &val, args.min_area)?;
    let image_scores = score_prompts(
        trained.clone(),
        &folder,
        &val,
        args.min_area,
        Some(&embedder),
    )?;
    eprintln!(
        "SAM with CLIP image-embedding prompts (its training condition): mIoU {:.3} (hit rate {:.3}, best of 3 {:.3})",
        image_scores.miou, image_scores.hit_rate, image_scores.miou_oracle
    );
    eprintln!(
        "SAM after text training: text-prompt mIoU {:.3} (hit rate {:.3}, best of 3 {:.3}) on {} \
         objects; untrained projection {:.3}; a random object's mask {:.3}",
        scores.miou,
        scores.hit_rate,
        scores.miou_oracle,
        scores.objects,
        untrained.miou,
        scores.miou_random_object
    );
    let report = serde_json::json!({
        "clip": {
            "training_crops": train_crops.len(),
            "held_out_crops": val_crops.len(),
            "captions": all_captions().len(),
            "steps": args.clip_steps,
            "retrieval_accuracy": accuracy,
            "retrieval_accuracy_untrained": untrained_accuracy,
        },
        "sam": {
            "steps": args.sam_steps,
            "text_prompt": scores,
            "image_embedding_prompt": image_scores,
            "untrained_projection": untrained,
        },
        "min_area_source_pixels": args.min_area,
        "train_images": args.train_images,
        "val_images": args.val_images,
    });
    let report_path = out.join("report.json");
    std::fs::write(
        &report_path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .map_err(|e| write_err(&report_path, &e))?;
    if args.write_assets {
        let assets = bundled("assets/text_demo");
        folder.save(assets.join("clip"))?;
        let sam_dir = assets.join("sam");
        std::fs::create_dir_all(&sam_dir).map_err(|e| write_err(&sam_dir, &e))?;
        trained.save(sam_dir.join("model.bpk"))?;
        trained.config().save(sam_dir.join("config.json"))?;
        std::fs::write(
            assets.join("report.json"),
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        )
        .map_err(|e| write_err(&assets, &e))?;
    }
    Ok(report)
}

/// `text_demo` with command-line arguments; prints errors and returns the exit code.
pub fn main(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    crate::cli::exit_code(TextDemoArgs::parse(args).and_then(run))
}
