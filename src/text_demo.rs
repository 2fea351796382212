//! The text-prompt demo, end to end on a CPU (`examples/text_demo`): no pretrained CLIP can be
//! downloaded here, so
//!
//! 1. a tiny CLIP learns, contrastively (InfoNCE), the captions of the synthetic shapes ("a red
//!    triangle") from masked crops of their objects, made as SAM's text training makes them;
//! 2. SAM (a new model of the demo's size with an embedding prompt, by default; from the
//!    bundled point/box demo model the embedding prompt is learned later and less well) trains
//!    with the paper's App. D.5 recipe: CLIP **image** embeddings of the objects as prompts, then
//!    clicks — no text;
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
                 [--sam-steps N] [--min-area PX] [--sam-start scratch|demo]
                 [--embedder clip|colour-oracle|position-oracle] [--device NAME]
                 [--write-assets]

Trains a tiny CLIP on the synthetic shapes' captions, then SAM's text prompt with CLIP image
embeddings only (paper App. D.5), and measures text-prompt mIoU on held-out images.
--out DIR         run folder (default text_demo_out): data, clip/, sam/, report.json; a rerun
                  reuses each stage made with the same settings and redoes the others
--train-images N  synthetic training images (default 400)
--val-images N    held-out images (default 100)
--clip-steps N    CLIP optimizer steps (default 1500)
--sam-steps N     SAM optimizer steps (default 4000)
--min-area PX     smallest object (pixels) used for CLIP crops and embedding prompts (default 144)
--sam-start S     scratch (default): a new SAM learns points, boxes and embeddings together;
                  demo: the bundled point/box demo model gets a new projection
--embedder E      what SAM trains and is scored with: clip (default), or a diagnostic oracle
                  (one-hot of the object's palette colour, or of its centre's 8×8 grid cell)
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
    /// Where SAM starts.
    pub sam_start: SamStart,
    /// What SAM's embedding prompts are.
    pub embedder: EmbedderKind,
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
            sam_steps: 4000,
            min_area: 144,
            sam_start: SamStart::Scratch,
            embedder: EmbedderKind::Clip,
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
                "--sam-start" => {
                    a.sam_start = match value()?.as_str() {
                        "scratch" => SamStart::Scratch,
                        "demo" => SamStart::Demo,
                        v => {
                            return Err(CliError::Usage(format!(
                                "--sam-start must be scratch or demo, got {v:?}"
                            )));
                        }
                    }
                }
                "--embedder" => {
                    let v = value()?;
                    a.embedder = EmbedderKind::ALL
                        .into_iter()
                        .find(|k| k.name() == v)
                        .ok_or_else(|| {
                            CliError::Usage(format!(
                                "--embedder must be clip, colour-oracle or position-oracle, got {v:?}"
                            ))
                        })?;
                }
                "--device" => a.device = value()?,
                "--write-assets" => a.write_assets = true,
                "-h" | "--help" => return Err(CliError::Help(USAGE.into())),
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

/// Where the demo's SAM starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SamStart {
    /// A new model of the demo's size, trained on points, boxes and embeddings together.
    Scratch,
    /// The bundled demo model (points and boxes), given a new projection.
    Demo,
}

/// What SAM's embedding prompts are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmbedderKind {
    /// The tiny CLIP's image features of masked crops (App. D.5).
    Clip,
    /// Diagnostic: a one-hot of the object's palette colour (what a perfect CLIP would know
    /// of the colour, and nothing of the shape).
    ColourOracle,
    /// Diagnostic: a one-hot of the cell of an 8×8 grid holding the object's centre.
    PositionOracle,
}

impl EmbedderKind {
    /// Every kind, in `--embedder`'s order.
    pub const ALL: [EmbedderKind; 3] = [Self::Clip, Self::ColourOracle, Self::PositionOracle];

    /// The `--embedder` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Clip => "clip",
            Self::ColourOracle => "colour-oracle",
            Self::PositionOracle => "position-oracle",
        }
    }
}

/// The diagnostic oracles of [`EmbedderKind`]: they separate what SAM can learn from an
/// embedding from what the tiny CLIP puts in it.
pub struct OracleEmbedder {
    kind: EmbedderKind,
    dim: usize,
}

impl OracleEmbedder {
    /// `dim` must hold the one-hot (8 colours, 64 cells).
    pub fn new(kind: EmbedderKind, dim: usize) -> Result<Self> {
        let need = match kind {
            EmbedderKind::Clip => {
                return Err(CliError::Usage("the CLIP embedder is not an oracle".into()));
            }
            EmbedderKind::ColourOracle => sam_data::dataset::synthetic::COLORS.len(),
            EmbedderKind::PositionOracle => 64,
        };
        if dim < need {
            return Err(CliError::Usage(format!(
                "the {} needs {need}-d embeddings, the model takes {dim}",
                kind.name()
            )));
        }
        Ok(Self { kind, dim })
    }

    fn index(&self, rgb: &[u8], width: usize, mask: &[bool]) -> usize {
        let inside = mask.iter().enumerate().filter(|(_, m)| **m).map(|(i, _)| i);
        let n = mask.iter().filter(|m| **m).count().max(1) as f64;
        if self.kind == EmbedderKind::PositionOracle {
            let height = mask.len() / width.max(1);
            let side = width.max(height).max(1) as f64;
            let (sx, sy) = inside.fold((0.0, 0.0), |(x, y), i| {
                (x + (i % width) as f64 + 0.5, y + (i / width) as f64 + 0.5)
            });
            let cell = |v: f64| ((v / n / side * 8.0) as usize).min(7);
            return cell(sy) * 8 + cell(sx);
        }
        let mut sum = [0.0f64; 3];
        for i in inside {
            for (c, s) in sum.iter_mut().enumerate() {
                *s += f64::from(rgb[i * 3 + c]);
            }
        }
        let mean = sum.map(|s| s / n);
        let distance =
            |rgb: &[u8; 3]| -> f64 { (0..3).map(|c| (f64::from(rgb[c]) - mean[c]).powi(2)).sum() };
        let colours = &sam_data::dataset::synthetic::COLORS;
        (0..colours.len())
            .min_by(|&a, &b| distance(&colours[a].1).total_cmp(&distance(&colours[b].1)))
            .unwrap_or(0)
    }
}

impl sam_train::ObjectEmbedder for OracleEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        crops: &[sam_train::ObjectCrop<'_>],
    ) -> std::result::Result<Vec<Vec<f32>>, String> {
        crops
            .iter()
            .map(|c| {
                if c.mask.len() != width * height || rgb.len() != width * height * 3 {
                    return Err(format!(
                        "mask of {} and image of {} bytes do not fit {width}×{height}",
                        c.mask.len(),
                        rgb.len()
                    ));
                }
                let mut v = vec![0.0; self.dim];
                v[self.index(rgb, width, c.mask)] = 1.0;
                Ok(v)
            })
            .collect()
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

/// The settings a stage's folder was made with, in its `params.json`.
const STAMP: &str = "params.json";

/// Whether `dir` holds what a stage made with `params`. A folder made with other settings (or
/// by a version that wrote no stamp) is removed, so that the stage runs again instead of its
/// stale result being reused under the new settings.
fn reusable(dir: &Path, params: &serde_json::Value) -> Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    let stamp = std::fs::read_to_string(dir.join(STAMP))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    if stamp.as_ref() == Some(params) {
        return Ok(true);
    }
    eprintln!(
        "{}: made with other settings ({}), redoing it",
        dir.display(),
        stamp.map_or("none recorded".into(), |s| s.to_string())
    );
    std::fs::remove_dir_all(dir).map_err(|e| CliError::Write {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(false)
}

/// Records the settings a stage's folder was made with.
fn stamp(dir: &Path, params: &serde_json::Value) -> Result<()> {
    crate::cli::write_file(&dir.join(STAMP), &params.to_string())
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
    let params = serde_json::json!({ "images": n, "seed": seed, "first_id": first_id });
    if !reusable(dir, &params)? {
        write_synthetic_dataset(dir, &config)?;
        stamp(dir, &params)?;
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
    images: Option<&dyn sam_train::ObjectEmbedder>,
) -> Result<TextScores> {
    use sam_train::ObjectCrop;
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
    let clip_params = serde_json::json!({
        "train_images": args.train_images,
        "steps": args.clip_steps,
        "min_area": args.min_area,
    });
    let clip = if reusable(&clip_dir, &clip_params)? && clip_dir.join("model.safetensors").is_file()
    {
        // A rerun with the same settings keeps the CLIP the first run trained.
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
    stamp(&clip_dir, &clip_params)?;
    // Read back, so that what is measured is what was written.
    let folder = ClipFolder::load(&clip_dir, &device)?;

    // 2. SAM with image-embedding prompts only.
    let dim = folder.model.config().projection_dim;
    let demo = Sam::load(
        bundled("assets/demo_model/model.bpk"),
        &sam_model::SamConfig::load(bundled("assets/demo_model/config.json"))?,
        &device,
    )?;
    device.seed(6);
    let demo = demo.with_prompt_embedding(dim)?;
    // The bundled demo model with a new projection: the "untrained projection" baseline.
    let untrained = score_text_prompts(demo.clone(), &folder, &val, args.min_area)?;
    eprintln!(
        "bundled demo model, untrained projection: text-prompt mIoU {:.3} on {} objects",
        untrained.miou, untrained.objects
    );
    // From scratch by default: from the demo model (trained on points and boxes under hue and
    // saturation jitter) the embedding prompt is learned about twice as late and ends lower
    // (docs/text-prompts.md).
    let (start, untrained_model) = match args.sam_start {
        SamStart::Demo => (demo, untrained.clone()),
        SamStart::Scratch => {
            let mut c = demo.config().clone();
            c.prompt_embedding_dim = Some(dim);
            device.seed(6);
            let start = c.init(&device)?;
            let scores = score_text_prompts(start.clone(), &folder, &val, args.min_area)?;
            (start, scores)
        }
    };
    let start_file = out.join("sam_start.bpk");
    start.save(&start_file)?;
    let mut config = TrainConfig::demo();
    config.model = start.config().clone();
    config.steps = args.sam_steps;
    config.optim.schedule.total_steps = args.sam_steps;
    config.optim.schedule.warmup_steps = 50.min(args.sam_steps / 4);
    config.optim.schedule.peak_lr = 1e-3;
    // The encoder trains too: finding an object by its colour and shape needs features that
    // points and boxes alone give no reason to keep.
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
    let embedder: Arc<dyn sam_train::ObjectEmbedder> = match args.embedder {
        EmbedderKind::Clip => Arc::new(ClipEmbedder::new(ClipFolder::load(&clip_dir, &device)?)),
        kind => Arc::new(OracleEmbedder::new(kind, dim)?),
    };
    let sam_params = serde_json::json!({
        "clip": clip_params,
        "steps": args.sam_steps,
        "start": args.sam_start,
        "embedder": args.embedder,
    });
    let reuse = if reusable(&sam_out, &sam_params)? {
        sam_train::checkpoint::latest_checkpoint(&sam_out.join("checkpoints"))?.filter(|l| {
            sam_train::checkpoint::read_state(l).is_ok_and(|s| s.step >= args.sam_steps)
        })
    } else {
        None
    };
    let last = if let Some(last) = reuse {
        // A rerun with the same settings keeps the SAM the first run trained.
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
        let last = trainer.run(|m, _| {
            if m.step % 50 == 0 {
                eprintln!(
                    "SAM step {:>4}: loss {:.4}, mIoU first round {:.3} → last {:.3}",
                    m.step, m.loss, m.miou_first, m.miou_last
                );
            }
        })?;
        stamp(&sam_out, &sam_params)?;
        last
    };
    let trained = Sam::load(last.join("model.bpk"), &config.model, &device)?;
    let image_scores = score_prompts(
        trained.clone(),
        &folder,
        &val,
        args.min_area,
        Some(embedder.as_ref()),
    )?;
    eprintln!(
        "SAM with {} embedding prompts (its training condition): mIoU {:.3} (hit rate {:.3}, best of 3 {:.3})",
        args.embedder.name(),
        image_scores.miou,
        image_scores.hit_rate,
        image_scores.miou_oracle
    );
    // Texts only mean something to a SAM trained with CLIP embeddings.
    let scores = if args.embedder == EmbedderKind::Clip {
        let scores = score_text_prompts(trained.clone(), &folder, &val, args.min_area)?;
        eprintln!(
            "SAM after text training: text-prompt mIoU {:.3} (hit rate {:.3}, best of 3 {:.3}) on {} \
             objects; untrained model {:.3}; bundled demo model with an untrained projection \
             {:.3}; a random object's mask {:.3}",
            scores.miou,
            scores.hit_rate,
            scores.miou_oracle,
            scores.objects,
            untrained_model.miou,
            untrained.miou,
            scores.miou_random_object
        );
        Some(scores)
    } else {
        None
    };
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
            "start": args.sam_start,
            "embedder": args.embedder,
            "steps": args.sam_steps,
            "text_prompt": scores,
            "image_embedding_prompt": image_scores,
            "untrained_model": untrained_model,
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
    crate::allocator::keep_freed_memory();
    crate::cli::exit_code(TextDemoArgs::parse(args).and_then(run))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage folder is reused only with the settings it was made with; otherwise it goes.
    #[test]
    fn stages_are_reused_only_with_their_settings() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("stage");
        let a = serde_json::json!({ "steps": 10 });
        let b = serde_json::json!({ "steps": 20 });
        assert!(!reusable(&dir, &a).unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model"), b"x").unwrap();
        // Made by a version without stamps: redone.
        assert!(!reusable(&dir, &a).unwrap());
        assert!(!dir.exists());
        std::fs::create_dir_all(&dir).unwrap();
        stamp(&dir, &a).unwrap();
        assert!(reusable(&dir, &a).unwrap());
        assert!(!reusable(&dir, &b).unwrap());
        assert!(!dir.exists());
    }
}
